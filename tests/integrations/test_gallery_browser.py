"""The gallery in the web UI, in headless Chromium (Debian's, through Playwright): every gallery
example whose extra is installed runs tracked (offline, as the demo project runs it), and its
application page shows its steps and, once a step is clicked, that step's panel; the page logs
no script error. With ``TURNOUT_GALLERY_SCREENSHOTS=<dir>`` each page is also saved there as
``<name>.png`` (1280x800), the pictures of docs/gallery.md (``docs/img/gallery/``)::

    TURNOUT_GALLERY_SCREENSHOTS=docs/img/gallery \
        python -m pytest tests/integrations/test_gallery_browser.py

Without Playwright or Chromium the test skips, except under ``CI=true`` (a failure)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integrations.browser import CHROMIUM, CHROMIUM_ARGS, require_browser

require_browser()
pytest.importorskip("fastapi")
pytest.importorskip("jinja2")
from playwright.sync_api import Page, expect, sync_playwright  # noqa: E402

from tests.integrations.fastapi_ui import serve_ui  # noqa: E402
from turnout import _gallery  # noqa: E402
from turnout.core.tracking import LocalTracker  # noqa: E402

pytestmark = pytest.mark.slow
PROJECT = "gallery"
TIMEOUT_MS = 15_000
VIEWPORT = {"width": 1280, "height": 800}
SCREENSHOTS = os.environ.get("TURNOUT_GALLERY_SCREENSHOTS")
NAMES = [example.name for example in _gallery.EXAMPLES]


@pytest.fixture(scope="module")
def storage(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every installed example, run once into project ``gallery`` as app ``<name>``."""
    root = tmp_path_factory.mktemp("gallery-browser")
    tracker = LocalTracker(PROJECT, storage_dir=root)
    try:
        for example in _gallery.EXAMPLES:
            if example.installed():
                run = _gallery.GalleryRun(tracker=tracker, app_id=example.name)
                example.run(_gallery.load(example), run)
    finally:
        tracker.close()
    return root


@pytest.fixture(scope="module")
def ui_url(storage: Path) -> Iterator[str]:
    with serve_ui(storage) as url:
        yield url


@pytest.fixture
def page() -> Iterator[tuple[Page, list[str]]]:
    """A fresh 1280x800 page, and the console errors it logs."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            tab = browser.new_page(viewport=VIEWPORT)
            tab.set_default_timeout(TIMEOUT_MS)
            errors: list[str] = []
            tab.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            tab.on("pageerror", lambda e: errors.append(str(e)))
            yield tab, errors
        finally:
            browser.close()


@pytest.mark.parametrize("example", _gallery.EXAMPLES, ids=NAMES)
def test_the_example_s_page_shows_its_steps(
    example: _gallery.Example, ui_url: str, page: tuple[Page, list[str]]
) -> None:
    for library in example.needs:
        pytest.importorskip(library)
    tab, errors = page
    tab.goto(f"{ui_url}/projects/{PROJECT}/apps/{example.name}")
    expect(tab.locator("h1.apptitle")).to_have_text(example.name)
    steps = tab.locator("#steps tbody")
    for action in example.steps:
        expect(steps).to_contain_text(action)
    rows = tab.locator("#steps tbody tr")
    last = rows.count() - 1
    assert last >= len(example.steps) - 1
    link = f"#step-{last} a.steplink"
    tab.wait_for_function(
        f"() => !!document.querySelector('{link}')?.['htmx-internal-data']?.boosted"
    )
    tab.locator(link).first.click()
    expect(tab.locator("#step-panel h2")).to_contain_text(f"Step {last}")
    if SCREENSHOTS:
        folder = Path(SCREENSHOTS)
        folder.mkdir(parents=True, exist_ok=True)
        tab.screenshot(path=str(folder / f"{example.name}.png"))
    assert errors == []
