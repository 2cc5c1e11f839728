"""Cost insights and test-case downloads in headless Chromium (Debian's, through Playwright): a
user goes from a project's applications to its cost page (totals, model table with a hostile
model name shown as text, SVG charts), opens an application's insights tab, checks the price
table, then downloads a step's case file and the annotations' cases, which
``turnout.testing`` reads; no script error or CSP violation on the way.

Without Playwright or Chromium the test skips, except under ``CI=true`` (a failure)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integrations.browser import (
    CHROMIUM,
    CHROMIUM_ARGS,
    chromium,
    watched_tab,
)

pytest.importorskip("fastapi")
pytest.importorskip("jinja2")
from playwright.sync_api import Page, expect, sync_playwright

from tests.integrations.fastapi_ui import PROJECT, increment, serve_ui, write_data
from tests.integrations.fastapi_ui_tokens import (
    ASK_IN,
    ASK_OUT,
    ASKS,
    HOSTILE,
    write_token_runs,
)
from tests.integrations.fastapi_ui_tokens import PROJECT as COSTS
from turnout.core.tracking import LocalTracker
from turnout.integrations.fastapi.ui.insights_routes import fmt_cost
from turnout.testing import assert_case, load_cases

pytestmark = pytest.mark.slow
TIMEOUT_MS = 15_000


@pytest.fixture
def page(tmp_path: Path) -> Iterator[tuple[Page, str, list[str]]]:
    """A fresh page on a served UI of both data sets, its base URL, and its console errors."""
    root = tmp_path / "tracking"
    write_data(root)
    write_token_runs(LocalTracker(COSTS, storage_dir=root))
    with (
        serve_ui(root) as url,
        chromium() as browser,
        watched_tab(
            browser, width=1400, height=1000, timeout_ms=TIMEOUT_MS, accept_downloads=True
        ) as (tab, errors),
    ):
        yield tab, url, errors


def test_the_cost_pages_show_totals_models_and_charts(
    page: tuple[Page, str, list[str]],
) -> None:
    tab, url, errors = page
    tab.goto(f"{url}/projects/{COSTS}")
    tab.locator("#insights-link").click()
    expect(tab).to_have_url(f"{url}/projects/{COSTS}/insights")
    cost = fmt_cost(ASKS * (ASK_IN * 2.5 + ASK_OUT * 10.0) / 1e6)
    expect(tab.locator("#total-cost")).to_have_text(cost)
    expect(tab.locator("#unpriced")).to_contain_text("300 tokens")
    rows = tab.locator("#models tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.nth(0).locator("td").first).to_have_text("gpt-4o-2024-08-06")
    expect(rows.nth(1).locator("td").first).to_have_text(HOSTILE)  # as text, not markup
    expect(rows.nth(1).locator("td").last).to_have_text("not priced")
    assert tab.locator("img").count() == 0  # the hostile name made no element
    expect(tab.locator("#tokens-over-time svg g.col")).to_have_count(1)
    bars = tab.locator("#tokens-per-action svg g.barrow")
    expect(bars).to_have_count(3)
    widths = [float(bars.nth(i).locator("rect").get_attribute("width").rstrip("%"))
              for i in range(3)]  # fmt: skip
    assert widths[0] == pytest.approx(45.0)  # ask: the most tokens, the longest bar
    assert 0 < widths[2] < widths[0]  # summarise
    tab.locator("#app-costs a", has_text="chat").click()
    expect(tab).to_have_url(f"{url}/projects/{COSTS}/apps/chat/insights")
    expect(tab.locator("nav.tabs a.on")).to_have_text("insights")
    expect(tab.locator("#tokens-per-step svg g.col")).to_have_count(ASKS + 1)
    heights = [
        float(tab.locator("#tokens-per-step svg g.col rect").nth(i).get_attribute("height") or 0)
        for i in range(ASKS + 1)
    ]
    assert heights[0] == heights[1] == heights[2] > heights[3] > 0
    tab.locator("#tokens-per-step svg g.col").first.hover()
    tab.locator("a", has_text="the price table").first.click()
    expect(tab.locator("#price-table")).to_contain_text("gpt-4o-mini")
    expect(tab.locator("#price-origin")).to_contain_text("as of")
    tab.go_back()
    expect(tab).to_have_url(f"{url}/projects/{COSTS}/apps/chat/insights")
    json_link = tab.locator("#insights a", has_text="/insights").get_attribute("href")
    shown = tab.request.get(f"{url}{json_link}").json()  # the page's figures, as JSON
    assert shown["totals"]["steps"] == ASKS + 1
    assert errors == []


def test_a_steps_case_file_and_the_annotations_cases_download(
    page: tuple[Page, str, list[str]], tmp_path: Path
) -> None:
    tab, url, errors = page
    tab.goto(f"{url}/projects/{PROJECT}/apps/counter/steps/2")
    tab.locator("#testcase summary").click()
    with tab.expect_download() as download:
        tab.locator("#download-case").click()
    assert download.value.suggested_filename == "turnout_case_counter_2.json"
    saved = tmp_path / "case.json"
    download.value.save_as(saved)
    (case,) = load_cases(saved, "increment")
    assert case["name"] == "counter-2-increment"
    assert_case(increment, case)
    expect(tab.locator("#step-panel h2")).to_contain_text("Step 2")  # the page stayed

    form = tab.locator("#annotations form.annotate")
    form.locator("select[name=mark]").select_option("good")
    form.locator("button[type=submit]").click()
    expect(tab.locator("#annotations summary")).to_have_text("Annotations (1)")
    tab.goto(f"{url}/projects/{PROJECT}/annotations")
    with tab.expect_download() as download:
        tab.locator("#export-cases").click()
    cases = json.loads(Path(download.value.path()).read_text(encoding="utf-8"))
    assert [c["name"].rsplit("-", 1)[0] for c in cases] == ["counter-2-increment"]
    assert cases[0]["expected_state"] == case["expected_state"]
    assert errors == []


def test_the_price_table_is_edited_on_its_page(tmp_path: Path) -> None:
    root = tmp_path / "tracking"
    write_token_runs(LocalTracker(COSTS, storage_dir=root))
    prices = tmp_path / "prices.json"
    prices.write_text('{"models": {"gpt-4o": {"input": 2.5, "output": 10}}}')
    with serve_ui(root, prices=prices) as url, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            tab = browser.new_page()
            tab.set_default_timeout(TIMEOUT_MS)
            errors: list[str] = []
            tab.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            tab.on("pageerror", lambda e: errors.append(str(e)))
            tab.goto(f"{url}/prices")
            text = tab.locator("#price-text")
            text.fill('{"models": {"gpt-4o": {"input": "lots", "output": 1}}}')
            tab.locator("#price-save").click()
            expect(tab.locator("#price-problem")).to_contain_text("models['gpt-4o'].input")
            mine = {
                "models": {
                    "gpt-4o": {"input": 10, "output": 10},
                    HOSTILE: {"input": 0, "output": 0},
                }
            }
            text.fill(json.dumps(mine))
            tab.locator("#price-save").click()
            expect(tab.locator("#price-saved")).to_be_visible()
            expect(tab.locator("#price-table")).to_contain_text(HOSTILE)
            assert tab.locator("img").count() == 0
            assert json.loads(prices.read_text()) == mine
            tab.goto(f"{url}/projects/{COSTS}/apps/chat/insights")
            cost = fmt_cost(ASKS * (ASK_IN + ASK_OUT) * 10 / 1e6)
            expect(tab.locator("#total-cost")).to_have_text(cost)
            expect(tab.locator("#unpriced")).to_have_count(0)  # the hostile model is priced now
            assert errors == []
        finally:
            browser.close()
