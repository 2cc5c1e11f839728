"""What every headless-Chromium test needs: Playwright and Debian's Chromium (a skip without
them, a failure under ``CI=true``, where .ci/run installs both) and the flags this machine needs.

A test module calls ``require_browser()`` before importing ``playwright``."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

__all__ = ["CHROMIUM", "CHROMIUM_ARGS", "require_browser"]

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
