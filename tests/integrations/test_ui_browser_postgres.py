"""The tracking UI on a PostgreSQL store in a real browser: ``turnout ui --store postgresql://...``
as a subprocess, driven by headless Chromium (``tests/integrations/browser.py``).

An application is tracked with ``PostgresTracker`` into tables of a fresh prefix; the projects
page, the applications page and the application's steps table and state are checked; then, on
an application's page in live mode, a step tracked after the page was drawn appears without a
reload (the server learns of it by LISTEN/NOTIFY). Screenshots are saved under
``$TURNOUT_ARTIFACTS`` (default: the test's ``tmp_path/artifacts``).

Skips without Playwright, Chromium or a reachable PostgreSQL, except under ``CI=true``.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integrations.browser import CHROMIUM, CHROMIUM_ARGS, require_browser

require_browser()
from playwright.sync_api import Page, expect, sync_playwright  # noqa: E402

pytest.importorskip("streamlit")
pytest.importorskip("psycopg")
import psycopg  # noqa: E402

from tests.integrations.streamlit_ui import ticker, turnout_ui  # noqa: E402
from tests.integrations.test_postgres import DSN, server  # noqa: E402
from turnout.integrations.postgres_tracking import PostgresTracker  # noqa: E402

__all__ = ["server"]  # a fixture, shared with test_postgres

PROJECT = "pgbrowser"
UI_TIMEOUT_MS = 30_000

pytestmark = pytest.mark.slow


@pytest.fixture
def prefix(server: psycopg.Connection[Any]) -> Iterator[str]:
    name = f"uib_{uuid.uuid4().hex[:12]}"
    yield name
    for table in ("records", "apps"):
        server.execute(f"DROP TABLE IF EXISTS {name}_{table}")
    server.execute(f"DROP FUNCTION IF EXISTS {name}_ui_touch()")


@pytest.fixture
def tracker(prefix: str) -> Iterator[PostgresTracker]:
    opened = PostgresTracker(DSN, project=PROJECT, table_prefix=prefix)
    yield opened
    opened.close()


@pytest.fixture
def page() -> Iterator[Page]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            context = browser.new_context(viewport={"width": 1400, "height": 1000})
            yield context.new_page()
        finally:
            browser.close()


def _cell(page: Page, row: int, column: int) -> Any:
    return page.locator('[data-testid="stDataFrame"]').locator(
        f'[data-testid="glide-cell-{column}-{row}"]'
    )


def test_the_ui_reads_postgresql_and_follows_a_live_app(
    page: Page, tracker: PostgresTracker, prefix: str, tmp_path: Path
) -> None:
    shots = Path(os.environ.get("TURNOUT_ARTIFACTS") or tmp_path / "artifacts")
    shots.mkdir(parents=True, exist_ok=True)
    done, live = ticker(tracker, "done"), ticker(tracker, "live")
    for _ in range(3):
        done.step()
    live.step()
    tracker.flush()
    options = ("--store", DSN, "--table-prefix", prefix)
    with turnout_ui(tmp_path / "unused", tmp_path / "turnout-ui.log", *options) as port:
        url = f"http://127.0.0.1:{port}"
        page.goto(url)
        expect(page.get_by_role("heading", name="turnout · projects")).to_be_visible(
            timeout=UI_TIMEOUT_MS
        )
        expect(page.get_by_text(f"{prefix}_records")).to_be_visible()
        page.get_by_role("button", name=f"Open {PROJECT}").click()
        expect(page.get_by_text("2 of 2 applications")).to_be_visible(timeout=UI_TIMEOUT_MS)
        page.screenshot(path=str(shots / "pg-1-applications.png"), full_page=True)
        page.get_by_role("combobox", name="Open an application").click()
        page.get_by_role("option", name="done", exact=True).click()
        expect(page.get_by_text("Step 2 · tick · completed")).to_be_visible(timeout=UI_TIMEOUT_MS)
        for seq in range(3):
            expect(_cell(page, seq, 2)).to_have_text(str(seq), timeout=UI_TIMEOUT_MS)
        expect(page.get_by_text('"n":3').or_(page.get_by_text('"n": 3')).first).to_be_visible()
        page.screenshot(path=str(shots / "pg-2-application.png"), full_page=True)

        # Live: a step tracked after the page was drawn shows up without a reload.
        page.goto(f"{url}/?project={PROJECT}&app=live&live=1")
        expect(_cell(page, 0, 2)).to_have_text("0", timeout=UI_TIMEOUT_MS)
        live.step()
        tracker.flush()
        expect(_cell(page, 1, 2)).to_have_text("1", timeout=UI_TIMEOUT_MS)
        page.screenshot(path=str(shots / "pg-3-live.png"), full_page=True)
