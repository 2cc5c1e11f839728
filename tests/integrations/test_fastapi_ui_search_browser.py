"""Search and the interactive graph in headless Chromium (Debian's, through Playwright): the
graph zooms (buttons, wheel) and pans (a drag that does not follow the action under it);
clicking an action filters the steps table (``?action=``) and Back shows every step again; the
search box lists matching steps, each a link to its step. No page logs a Content-Security-Policy
violation or a script error.

Without Playwright or Chromium the test skips, except under ``CI=true`` (a failure)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integrations.browser import (
    chromium,
    watched_tab,
)

pytest.importorskip("fastapi")
pytest.importorskip("jinja2")
from playwright.sync_api import Page, expect

from tests.integrations.fastapi_ui import LIMIT, PROJECT, serve_ui, write_data

pytestmark = pytest.mark.slow
TIMEOUT_MS = 15_000
VIEW = "() => document.getElementById('graph').getAttribute('viewBox')"


@pytest.fixture(scope="module")
def ui_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("webui-search-browser") / "tracking"
    write_data(root)
    with serve_ui(root) as url:
        yield url


@pytest.fixture
def page() -> Iterator[tuple[Page, list[str]]]:
    """A fresh page, and the console errors it logs (CSP violations among them)."""
    with (
        chromium() as browser,
        watched_tab(browser, width=1400, height=1000, timeout_ms=TIMEOUT_MS) as (tab, errors),
    ):
        yield tab, errors


def _box(tab: Page) -> list[float]:
    return [float(n) for n in tab.evaluate(VIEW).split()]


def test_zoom_pan_filter_by_action_back_and_search(
    ui_url: str, page: tuple[Page, list[str]], tmp_path: Path
) -> None:
    tab, errors = page
    app_url = f"{ui_url}/projects/{PROJECT}/apps/counter"
    tab.goto(app_url)
    tab.wait_for_function("() => document.getElementById('graph')?.dataset.zoomable === '1'")
    full = _box(tab)

    tab.get_by_role("button", name="+").click()
    zoomed = _box(tab)
    assert zoomed[2] < full[2]
    graph = tab.locator("#graph").bounding_box()
    assert graph is not None
    middle = (graph["x"] + graph["width"] / 2, graph["y"] + graph["height"] / 2)
    tab.mouse.move(*middle)
    tab.mouse.wheel(0, 300)  # away: zoom out
    assert _box(tab)[2] > zoomed[2]
    before = _box(tab)
    report = tab.locator('a.nodelink[data-action="report"] rect').bounding_box()
    assert report is not None
    start = (report["x"] + 5, report["y"] + 5)  # a drag that starts on an action pans
    tab.mouse.move(*start)
    tab.mouse.down()
    tab.mouse.move(start[0] - 60, start[1] - 40, steps=5)
    tab.mouse.up()
    panned = _box(tab)
    assert panned[0] > before[0]
    assert panned[1] > before[1]
    expect(tab).to_have_url(app_url)  # not a click on the action
    tab.get_by_role("button", name="fit").click()
    assert _box(tab) == full

    tab.locator('a.nodelink[data-action="report"]').click()
    expect(tab).to_have_url(f"{app_url}?action=report")
    expect(tab.locator("#steps tbody tr")).to_have_count(1)
    expect(tab.locator("#action-filter")).to_contain_text("report")
    link = f"document.querySelector('#step-{LIMIT} a.steplink')"
    tab.wait_for_function(f"() => !!{link}?.['htmx-internal-data']?.boosted")  # htmx took it
    tab.locator(f"#step-{LIMIT} a.steplink").first.click()
    expect(tab).to_have_url(f"{app_url}/steps/{LIMIT}?action=report")
    expect(tab.locator("#step-panel h2")).to_contain_text(f"Step {LIMIT}")
    expect(tab.locator("#steps tbody tr")).to_have_count(1)
    tab.go_back()
    expect(tab).to_have_url(f"{app_url}?action=report")
    tab.go_back()
    expect(tab).to_have_url(app_url)
    expect(tab.locator("#steps tbody tr")).to_have_count(LIMIT + 1)

    tab.get_by_placeholder("search steps").fill("Counted TO")
    tab.get_by_placeholder("search steps").press("Enter")
    expect(tab).to_have_url(f"{app_url}/search?q=Counted+TO")
    expect(tab.locator("#search-hits mark")).to_have_text(["counted to"])
    tab.locator("#search-hits a.steplink").first.click()
    expect(tab).to_have_url(f"{app_url}/steps/{LIMIT}")
    expect(tab.locator("#step-panel h2")).to_contain_text(f"Step {LIMIT}")
    assert errors == []
