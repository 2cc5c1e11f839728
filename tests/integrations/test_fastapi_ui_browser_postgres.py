"""The web UI on a PostgreSQL store in headless Chromium (Debian's, through Playwright):
projects → applications → an application → a step click (htmx swap) shows the step's state and
a ``PostgresTracker`` fork snippet; then live mode shows a step tracked while the page is open,
without a reload (the server hears of it by LISTEN/NOTIFY). No page logs a
Content-Security-Policy violation or a script error. Screenshots go to ``$TURNOUT_ARTIFACTS``
(default: the test's ``tmp_path/artifacts``).

Skips without Playwright, Chromium or a reachable PostgreSQL, except under ``CI=true``."""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integrations.browser import CHROMIUM, CHROMIUM_ARGS, require_browser

require_browser()
pytest.importorskip("fastapi")
pytest.importorskip("jinja2")
pytest.importorskip("psycopg")
import psycopg  # noqa: E402
from playwright.sync_api import expect, sync_playwright  # noqa: E402

from tests.integrations.fastapi_ui import PROJECT, counter_builder, serve_ui  # noqa: E402
from tests.integrations.test_fastapi_ui_browser import BOOSTED, _click_step  # noqa: E402
from tests.integrations.test_fastapi_ui_postgres import drop_prefix  # noqa: E402
from tests.integrations.test_postgres import DSN, server  # noqa: E402
from turnout.integrations.postgres_tracking import PostgresTracker  # noqa: E402

__all__ = ["server"]  # a fixture, shared with test_postgres

pytestmark = pytest.mark.slow
TIMEOUT_MS = 15_000


@pytest.fixture
def prefix(server: psycopg.Connection[Any]) -> Iterator[str]:
    name = f"webui_{uuid.uuid4().hex[:12]}"
    yield name
    drop_prefix(server, name)


def test_the_pages_and_live_mode_on_a_postgresql_store(prefix: str, tmp_path: Path) -> None:
    tracker = PostgresTracker(DSN, project=PROJECT, table_prefix=prefix)
    errors: list[str] = []
    try:
        counter_builder(tracker, "done", 3).build().run(halt_after=["report"])
        live = counter_builder(tracker, "live-run", limit=10).build()
        live.step()
        live.step()
        tracker.flush()
        with serve_ui(DSN, table_prefix=prefix, live_poll=60.0) as url, sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            try:
                tab = browser.new_page(viewport={"width": 1400, "height": 1000})
                tab.set_default_timeout(TIMEOUT_MS)
                tab.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
                tab.on("pageerror", lambda e: errors.append(str(e)))
                tab.goto(url + "/")
                expect(tab.locator("body")).to_contain_text(f"{prefix}_records")
                tab.get_by_role("link", name=PROJECT, exact=True).click()
                expect(tab.locator("#apps tbody tr")).to_have_count(2)
                tab.locator("#apps").get_by_role("link", name="done", exact=True).click()
                app_url = f"{url}/projects/{PROJECT}/apps/done"
                expect(tab).to_have_url(app_url)
                expect(tab.locator("#steps tbody tr")).to_have_count(4)
                tab.wait_for_function(BOOSTED)
                _click_step(tab, 2)
                expect(tab).to_have_url(f"{app_url}/steps/2")
                expect(tab.locator("#step-panel h2")).to_contain_text("Step 2")
                expect(tab.locator("#step-2")).to_have_class(re.compile(r"\bselected\b"))
                expect(tab.locator("#fork")).to_contain_text("PostgresTracker(")
                _shot(tab, tmp_path, "pg-step")

                tab.goto(f"{url}/projects/{PROJECT}/apps/live-run?live=true")
                expect(tab.locator("#steps tbody tr")).to_have_count(2)
                tab.evaluate("window.__sameDocument = true")
                # The live stream is connected once the page's SSE source is open.
                tab.wait_for_function(
                    "() => document.querySelector('#app-main')"
                    "?.['htmx-internal-data']?.sseEventSource?.readyState === 1"
                )
                live.step()
                tracker.flush()
                expect(tab.locator("#step-2")).to_be_visible()
                expect(tab.locator("#app-summary")).to_contain_text("3 steps")
                assert tab.evaluate("window.__sameDocument === true"), "the page was reloaded"
                _shot(tab, tmp_path, "pg-live")
            finally:
                browser.close()
    finally:
        tracker.close()
    assert errors == []


def _shot(page: Any, tmp_path: Path, name: str) -> None:
    folder = Path(os.environ.get("TURNOUT_ARTIFACTS", tmp_path / "artifacts"))
    folder.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(folder / f"web-ui-{name}.png"), full_page=True)
