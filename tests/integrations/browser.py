"""What every headless-Chromium test needs: Playwright and Debian's Chromium (a skip without
them, a failure under ``CI=true``, where .ci/run installs both) and the flags this machine needs.

A test module calls ``require_browser()`` before importing ``playwright``."""

from __future__ import annotations

import contextlib
import importlib.util
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

__all__ = ["CHROMIUM", "CHROMIUM_ARGS", "chromium", "require_browser", "watched_tab"]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def require_browser() -> None:
    """Skip the calling test module (fail it under ``CI=true``) without Playwright or Chromium."""
    in_ci = os.environ.get("CI") == "true"
    if importlib.util.find_spec("playwright") is None:
        if in_ci:
            pytest.fail("CI=true but Playwright is missing (the dev extra)", pytrace=False)
        pytest.skip(
            "the browser test needs Playwright (pip install -e '.[dev]')", allow_module_level=True
        )
    if not CHROMIUM.is_file():
        if in_ci:
            pytest.fail(
                f"CI=true but {CHROMIUM} is missing (apt-get install chromium)", pytrace=False
            )
        pytest.skip(
            f"no Chromium at {CHROMIUM} (apt-get install chromium)", allow_module_level=True
        )


@contextlib.contextmanager
def chromium() -> Iterator[Any]:
    """Debian's Chromium, headless with ``CHROMIUM_ARGS``, closed on exit (a Playwright
    ``Browser``; call ``require_browser()`` first)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@contextlib.contextmanager
def watched_tab(
    browser: Any, *, width: int, height: int, timeout_ms: float, **options: Any
) -> Iterator[tuple[Any, list[str]]]:
    """A fresh context's tab of ``width`` x ``height`` (``options``: more of Playwright's
    ``new_context`` options), and the errors it logs (console errors, CSP violations among
    them, and uncaught exceptions)."""
    context = browser.new_context(viewport={"width": width, "height": height}, **options)
    tab = context.new_page()
    tab.set_default_timeout(timeout_ms)
    errors: list[str] = []
    tab.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    tab.on("pageerror", lambda e: errors.append(str(e)))
    try:
        yield tab, errors
    finally:
        context.close()
