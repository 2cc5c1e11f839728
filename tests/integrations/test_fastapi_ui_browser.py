"""The web UI in headless Chromium (Debian's, through Playwright): projects → applications →
an application → a step click (htmx swap, URL pushed) → Back returns to the previous view, then
live mode shows a step written while the page is open, without a reload. No page logs a
Content-Security-Policy violation or a script error. Screenshots go to ``$TURNOUT_ARTIFACTS``
(default: the test's ``tmp_path/artifacts``).

Without Playwright or Chromium the test skips, except under ``CI=true`` (a failure)."""

from __future__ import annotations

import os
import re
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

from tests.integrations.fastapi_ui import (
    LIMIT,
    PROJECT,
    counter_builder,
    serve_ui,
    write_data,
)
from turnout.core.tracking import LocalTracker

pytestmark = pytest.mark.slow
TIMEOUT_MS = 15_000
# htmx has taken over the step links (before that, a click is a full page load).
BOOSTED = "() => !!document.querySelector('a.steplink')?.['htmx-internal-data']?.boosted"


def _click_step(tab: Page, seq: int) -> None:
    """Click step ``seq``'s link once htmx has taken it over (it does so on its settle step,
    ~20 ms after a swap: a person cannot click sooner, a script can)."""
    link = f"#step-{seq} a.steplink"
    tab.wait_for_function(
        f"() => !!document.querySelector('{link}')?.['htmx-internal-data']?.boosted"
    )
    tab.locator(link).first.click()


@pytest.fixture(scope="module")
def storage(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("webui-browser") / "tracking"
    write_data(root)
    return root


@pytest.fixture(scope="module")
def ui_url(storage: Path) -> Iterator[str]:
    with serve_ui(storage, live_poll=0.1) as url:
        yield url


@pytest.fixture
def page(tmp_path: Path) -> Iterator[tuple[Page, list[str]]]:
    """A fresh page, and the console errors it logs (CSP violations among them)."""
    with (
        chromium() as browser,
        watched_tab(browser, width=1400, height=1000, timeout_ms=TIMEOUT_MS) as (tab, errors),
    ):
        yield tab, errors


def _shot(page: Page, tmp_path: Path, name: str) -> None:
    folder = Path(os.environ.get("TURNOUT_ARTIFACTS", tmp_path / "artifacts"))
    folder.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(folder / f"web-ui-{name}.png"), full_page=True)


def test_projects_apps_app_step_and_back(
    ui_url: str, page: tuple[Page, list[str]], tmp_path: Path
) -> None:
    tab, errors = page
    tab.goto(ui_url + "/")
    _shot(tab, tmp_path, "projects")
    tab.get_by_role("link", name=PROJECT, exact=True).click()
    expect(tab).to_have_url(f"{ui_url}/projects/{PROJECT}")
    expect(tab.locator("#apps tbody tr")).to_have_count(4)
    _shot(tab, tmp_path, "apps")
    tab.locator("#apps").get_by_role("link", name="counter", exact=True).click()
    app_url = f"{ui_url}/projects/{PROJECT}/apps/counter"
    expect(tab).to_have_url(app_url)
    expect(tab.locator("#steps tbody tr")).to_have_count(LIMIT + 1)
    expect(tab.locator("#step-panel")).to_contain_text("Choose a step")

    tab.wait_for_function(BOOSTED)
    tab.evaluate("window.__sameDocument = true")  # gone if a click reloads the page
    _click_step(tab, 2)
    expect(tab).to_have_url(f"{app_url}/steps/2")
    expect(tab.locator("#step-panel h2")).to_contain_text("Step 2")
    expect(tab.locator("#step-2")).to_have_class(re.compile(r"\bselected\b"))
    _click_step(tab, 3)
    expect(tab).to_have_url(f"{app_url}/steps/3")
    expect(tab.locator("#step-panel h2")).to_contain_text("Step 3")
    expect(tab.locator("#step-2")).not_to_have_class(re.compile(r"\bselected\b"))
    assert tab.evaluate("window.__sameDocument === true"), "a step click reloaded the page"
    _shot(tab, tmp_path, "step")

    tab.go_back()
    expect(tab).to_have_url(f"{app_url}/steps/2")
    expect(tab.locator("#step-panel h2")).to_contain_text("Step 2")
    expect(tab.locator("#step-2")).to_have_class(re.compile(r"\bselected\b"))
    tab.go_back()
    expect(tab).to_have_url(app_url)
    expect(tab.locator("#step-panel")).to_contain_text("Choose a step")
    tab.go_forward()
    expect(tab).to_have_url(f"{app_url}/steps/2")
    expect(tab.locator("#step-panel h2")).to_contain_text("Step 2")
    assert errors == []


def test_a_failed_step_and_a_missing_one(ui_url: str, page: tuple[Page, list[str]]) -> None:
    tab, errors = page
    tab.goto(f"{ui_url}/projects/{PROJECT}/apps/flaky/steps/1")
    expect(tab.locator("pre.traceback").first).to_contain_text("ValueError: explode always fails")
    expect(tab.locator("#step-1")).to_have_class(re.compile(r"\bselected\b.*\bst-failed\b"))
    answer = tab.goto(f"{ui_url}/projects/{PROJECT}/apps/flaky/steps/9")
    assert answer is not None
    assert answer.status == 404
    expect(tab.locator(".notfound")).to_contain_text("has no step 9")
    assert [e for e in errors if "404" not in e] == []


def test_live_mode_shows_a_step_written_while_the_page_is_open(
    storage: Path, ui_url: str, page: tuple[Page, list[str]], tmp_path: Path
) -> None:
    tab, errors = page
    tracker = LocalTracker(PROJECT, storage_dir=storage)
    try:
        app = counter_builder(tracker, "live-run", limit=10).build()
        app.step()
        app.step()
        app_url = f"{ui_url}/projects/{PROJECT}/apps/live-run"
        tab.goto(app_url)
        expect(tab.locator("#steps tbody tr")).to_have_count(2)
        tab.wait_for_function(BOOSTED)
        tab.evaluate("window.__sameDocument = true")
        tab.get_by_role("link", name="○ live").click()  # an htmx swap that turns live mode on
        expect(tab).to_have_url(f"{app_url}?live=true")
        expect(tab.locator("#app-summary")).to_contain_text("2 steps")
        app.step()
        expect(tab.locator("#step-2")).to_be_visible()
        expect(tab.locator("#steps tbody tr").first).to_have_id("step-2")
        expect(tab.locator("#app-summary")).to_contain_text("3 steps")
        app.step()
        expect(tab.locator("#step-3")).to_be_visible()
        assert tab.evaluate("window.__sameDocument === true"), "live mode reloaded the page"
        _shot(tab, tmp_path, "live")
    finally:
        tracker.close()
    assert errors == []
