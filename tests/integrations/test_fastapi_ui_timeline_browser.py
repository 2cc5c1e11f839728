"""The timeline tab and the answer form in headless Chromium: the tab opens from the app page,
the wheel zooms (a new URL each time; Back returns to the whole run), a bar opens its step, and
a waiting application's form, filled in, gives the checked answer — with no console error
(CSP violations among them)."""

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

from tests.integrations.fastapi_ui import serve_ui
from tests.integrations.test_fastapi_ui_timeline import PROJECT, run_fanout
from tests.integrations.test_fastapi_ui_waiting import ask
from turnout import ApplicationBuilder
from turnout.core.tracking import LocalTracker

pytestmark = pytest.mark.slow
TIMEOUT_MS = 15_000


@pytest.fixture(scope="module")
def ui_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("timeline-browser") / "tracking"
    run_fanout(LocalTracker(PROJECT, storage_dir=root))
    (
        ApplicationBuilder()
        .with_actions(ask)
        .with_transitions(("ask", "ask"))
        .with_entrypoint("ask")
        .with_tracker(LocalTracker(PROJECT, storage_dir=root))
        .with_identifiers(app_id="asker")
        .build()
        .step()
    )
    with serve_ui(root) as url:
        yield url


@pytest.fixture
def page() -> Iterator[tuple[Page, list[str]]]:
    with (
        chromium() as browser,
        watched_tab(browser, width=1400, height=1000, timeout_ms=TIMEOUT_MS) as (tab, errors),
    ):
        yield tab, errors


def _shot(tab: Page, tmp_path: Path, name: str) -> None:
    folder = Path(os.environ.get("TURNOUT_ARTIFACTS", tmp_path / "artifacts"))
    folder.mkdir(parents=True, exist_ok=True)
    tab.screenshot(path=str(folder / f"web-ui-{name}.png"), full_page=True)


def test_the_timeline_zooms_with_the_wheel_and_back_returns(
    ui_url: str, page: tuple[Page, list[str]], tmp_path: Path
) -> None:
    tab, errors = page
    tab.goto(f"{ui_url}/projects/{PROJECT}/apps/parent")
    tab.locator("#timeline-tab").click()
    expect(tab).to_have_url(re.compile(r"/apps/parent/timeline$"))
    lanes = tab.locator("svg#timeline-lanes g.lane")
    expect(lanes).to_have_count(7)
    _shot(tab, tmp_path, "timeline")
    box = tab.locator("svg#timeline-lanes").bounding_box()
    assert box is not None
    # Zoom in over the right end of the bars: the URL names the window, half the run, and
    # the moment under the pointer stays under it.
    tab.mouse.move(box["x"] + box["width"] * 0.97, box["y"] + 10)
    tab.mouse.wheel(0, -200)
    tab.wait_for_url(re.compile(r"timeline\?start=0\.\d+&end=0\.\d+$"))
    found = re.search(r"start=([\d.]+)&end=([\d.]+)", tab.url)
    assert found is not None
    start, end = float(found.group(1)), float(found.group(2))
    assert end - start == pytest.approx(0.5, abs=0.0002)
    under = (0.97 - 0.30) / 0.695  # the pointer's place in the bar area
    assert start + under * 0.5 == pytest.approx(under, abs=0.01)
    expect(tab.locator("#zoom-form input[name=start]")).to_have_value(str(start))
    tab.go_back()
    expect(tab).to_have_url(re.compile(r"/apps/parent/timeline$"))
    # A bar opens its step.
    tab.locator("svg#timeline-lanes g.lane").first.locator("a").first.click()
    expect(tab).to_have_url(re.compile(r"/apps/parent/steps/0$"))
    expect(tab.locator("#fanout")).to_be_visible()
    # A child's step opens as a page of its own (not swapped into the parent's page).
    tab.locator("#fanout a").first.click()
    expect(tab).to_have_url(re.compile(r"/apps/[0-9a-f-]{36}/steps/0$"))
    expect(tab.locator("h1.apptitle")).not_to_have_text("parent")
    assert errors == []


def test_the_answer_form_gives_the_checked_answer(
    ui_url: str, page: tuple[Page, list[str]]
) -> None:
    tab, errors = page
    tab.goto(f"{ui_url}/projects/{PROJECT}/apps/asker")
    tab.locator("#waiting-notice a").click()
    tab.locator("#in-f\\.0").check()
    tab.locator("#in-f\\.2").fill("-3")
    tab.get_by_role("button", name="Check and show the snippet").click()
    expect(tab.locator("#answer-error")).to_contain_text("$.score")
    tab.locator("#in-f\\.2").fill("4")
    tab.locator("#in-f\\.4").select_option(label="warm")
    tab.locator("#in-f\\.5\\.0").fill("Ann")
    tab.get_by_role("button", name="Check and show the snippet").click()
    expect(tab.locator("#snippet")).to_contain_text("app.resume('review<1>', value)")
    expect(tab.locator("#answer")).to_contain_text('"tone": "warm"')
    # The refused answer's page came with a 422 (the browser logs it); nothing else.
    assert len(errors) == 1
    assert "422" in errors[0]
