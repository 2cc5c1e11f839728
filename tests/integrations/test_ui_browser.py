"""The tracking UI in a real browser: ``turnout ui`` as a subprocess, driven by headless Chromium.

An application is run with a ``LocalTracker`` into a temporary directory, ``turnout ui --no-demo``
serves that directory on a free port, and Playwright (with Debian's ``/usr/bin/chromium``, never a
downloaded browser) opens the projects page, clicks through to the application, deep-links a step
and checks that the steps table, the state diff and the graph are shown; an artifact ref in a
state downloads its blob from the store given by ``--artifacts``. A second application,
whose partition key, tag, action name and error message are markdown and HTML (an image on a
local port among them), is shown as literal text and makes the browser fetch nothing from that
port. Screenshots are saved
under ``$TURNOUT_ARTIFACTS`` (default: the test's ``tmp_path/artifacts``).

Without Playwright or Chromium the test skips, except under ``CI=true``, where CI installs both
and their absence is a failure.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integrations.browser import CHROMIUM, CHROMIUM_ARGS, require_browser
from turnout import ApplicationBuilder, State, action, default, expr
from turnout.core.artifacts import LocalArtifactStore
from turnout.core.tracking import LocalTracker

require_browser()
from playwright.sync_api import Page, expect, sync_playwright  # noqa: E402

pytest.importorskip("streamlit")
# After the skips above: the helpers import Streamlit.
from tests.integrations.streamlit_ui import run_hostile_app, turnout_ui  # noqa: E402

PROJECT = "browser"
APP_ID = "counter-1"
LIMIT = 4  # increment runs LIMIT times (steps 0..LIMIT-1), then report (step LIMIT)
UI_TIMEOUT_MS = 30_000

pytestmark = pytest.mark.slow

ARTIFACT_PROJECT = "artifacts"
REPORT = b"%PDF-1.7 " + bytes(range(256)) * 8  # the blob the Download button must yield
HOSTILE_PROJECT = "hostile"
TRAP = "127.0.0.1:9"  # the discard port: an injected image would be fetched from here
PAYLOAD = (
    f"![x](http://{TRAP}/x.png) **bold** <img src=http://{TRAP}/y.png> $x$ :red[boom] "
    ":material/home:"
)


@action(reads=["count", "history"], writes=["count", "history"])
def increment(state: State) -> State:
    count = state["count"] + 1
    return state.update(count=count, history=[*state["history"], count])


@action(reads=["count"], writes=[])
def report(state: State) -> tuple[dict[str, str], State]:
    return {"message": f"counted to {state['count']}"}, state


def _run_example_app(storage_dir: Path) -> None:
    tracker = LocalTracker(PROJECT, storage_dir=storage_dir)
    try:
        app = (
            ApplicationBuilder()
            .with_actions(increment, report)
            .with_transitions(
                ("increment", "increment", expr(f"count < {LIMIT}")),
                ("increment", "report", default),
            )
            .with_state(count=0, history=[])
            .with_entrypoint("increment")
            .with_tracker(tracker)
            .with_identifiers(app_id=APP_ID)
            .build()
        )
        app.run(halt_after=["report"])
    finally:
        tracker.close()


def _run_artifact_app(storage_dir: Path, blobs: Path) -> None:
    """Track an application whose state holds a ref to ``REPORT`` in the store at ``blobs``."""
    store = LocalArtifactStore(blobs)

    @action(reads=[], writes=["report"])
    def write_report(state: State) -> State:
        ref = store.put(REPORT, media_type="application/pdf", name="report.pdf")
        return state.update(report=ref)

    tracker = LocalTracker(ARTIFACT_PROJECT, storage_dir=storage_dir)
    try:
        app = (
            ApplicationBuilder()
            .with_actions(write_report)
            .with_transitions()
            .with_entrypoint("write_report")
            .with_tracker(tracker)
            .with_identifiers(app_id="report")
            .build()
        )
        app.step()
    finally:
        tracker.close()


@pytest.fixture(scope="module")
def ui_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Run the example app into a fresh directory, serve it with ``turnout ui``; the base URL."""
    root = tmp_path_factory.mktemp("ui-browser")
    storage = root / "tracking"
    _run_example_app(storage)
    run_hostile_app(storage, PAYLOAD)
    _run_artifact_app(storage, root / "blobs")
    options = ("--host", "127.0.0.1", "--artifacts", str(root / "blobs"))
    with turnout_ui(storage, root / "turnout-ui.log", *options) as port:
        yield f"http://127.0.0.1:{port}"


@pytest.fixture
def artifacts(tmp_path: Path) -> Path:
    directory = Path(os.environ.get("TURNOUT_ARTIFACTS") or tmp_path / "artifacts")
    directory.mkdir(parents=True, exist_ok=True)
    return directory


@pytest.fixture
def page(ui_url: str) -> Iterator[Page]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            context = browser.new_context(viewport={"width": 1400, "height": 1000})
            yield context.new_page()
        finally:
            browser.close()


def _shot(page: Page, directory: Path, name: str) -> Path:
    path = directory / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def _steps_table_cell(page: Page, row: int, column: int) -> Any:
    # st.dataframe draws on a canvas; Glide Data Grid mirrors the cells into an accessible table.
    return page.locator('[data-testid="stDataFrame"]').locator(
        f'[data-testid="glide-cell-{column}-{row}"]'
    )


def test_the_ui_shows_steps_state_diff_and_graph(page: Page, ui_url: str, artifacts: Path) -> None:
    shots = []

    # Projects page, then into the project by its button.
    page.goto(ui_url)
    expect(page.get_by_role("heading", name="turnout · projects")).to_be_visible(
        timeout=UI_TIMEOUT_MS
    )
    shots.append(_shot(page, artifacts, "1-projects"))
    page.get_by_role("button", name=f"Open {PROJECT}").click()

    # Applications page: pick the application in the "Open an application" select box.
    expect(page.get_by_role("heading", name=f"{PROJECT} · applications")).to_be_visible(
        timeout=UI_TIMEOUT_MS
    )
    expect(page.get_by_text("1 of 1 applications")).to_be_visible(timeout=UI_TIMEOUT_MS)
    shots.append(_shot(page, artifacts, "2-applications"))
    page.get_by_role("combobox", name="Open an application").click()
    page.get_by_role("option", name=APP_ID, exact=True).click()

    # Application page: the steps table lists every step, the last one (report) is chosen.
    expect(page.get_by_role("heading", name=APP_ID, exact=True)).to_be_visible(
        timeout=UI_TIMEOUT_MS
    )
    expect(page.get_by_text(f"Step {LIMIT} · report · completed")).to_be_visible(
        timeout=UI_TIMEOUT_MS
    )
    # Columns: the row marker (0), the "open" buttons (1), seq (2), action (3), ...
    for seq in range(LIMIT + 1):
        expect(_steps_table_cell(page, seq, 2)).to_have_text(str(seq), timeout=UI_TIMEOUT_MS)
        action_name = "increment" if seq < LIMIT else "report"
        expect(_steps_table_cell(page, seq, 3)).to_have_text(action_name)
    # The URL is updated by the page's script after it renders: wait for it, never read it once.
    expect(page).to_have_url(re.compile(rf"[?&]app={re.escape(APP_ID)}(&|$)"))
    expect(page).to_have_url(re.compile(rf"[?&]project={PROJECT}(&|$)"))
    shots.append(_shot(page, artifacts, "3-application"))

    # A row's "open" button (the grid's pinned first column, drawn on the canvas) opens its step.
    grid = page.get_by_test_id("stDataFrame").first.bounding_box()
    assert grid is not None
    page.mouse.click(grid["x"] + 68, grid["y"] + 35 * 2 + 17)  # header, row 0, then row 1
    expect(page.get_by_text("Step 1 · increment · completed")).to_be_visible(timeout=UI_TIMEOUT_MS)
    expect(page).to_have_url(re.compile(r"[?&]step=1(&|$)"), timeout=UI_TIMEOUT_MS)

    # Deep link to step 2 on the State tab, then its diff: count 2 -> 3, history grows.
    page.goto(f"{ui_url}/?project={PROJECT}&app={APP_ID}&step=2&tab=State")
    expect(page.get_by_text("Step 2 · increment · completed")).to_be_visible(timeout=UI_TIMEOUT_MS)
    page.get_by_test_id("stRadio").get_by_text("diff", exact=True).click()
    diff = page.locator("table.turnout-diff")
    expect(diff).to_be_visible(timeout=UI_TIMEOUT_MS)
    count_row = diff.locator("tr", has=page.locator("code", has_text="count"))
    expect(count_row.first).to_contain_text("changed")
    expect(count_row.first).to_contain_text("2")
    expect(count_row.first).to_contain_text("3")
    expect(diff.locator("tr", has=page.locator("code", has_text="history"))).to_be_visible()
    shots.append(_shot(page, artifacts, "4-step-diff"))

    # Graph tab: Graphviz renders an SVG with both actions.
    page.get_by_test_id("stButtonGroup").get_by_text("Graph", exact=True).click()
    svg = page.get_by_test_id("stGraphVizChart").locator("svg")
    expect(svg.first).to_be_visible(timeout=UI_TIMEOUT_MS)
    expect(svg.first).to_contain_text("increment")
    expect(svg.first).to_contain_text("report")
    expect(page).to_have_url(re.compile(r"[?&]tab=Graph(&|$)"), timeout=UI_TIMEOUT_MS)
    shots.append(_shot(page, artifacts, "5-graph"))

    for path in shots:
        assert path.is_file(), path
        assert path.stat().st_size > 0, path


def test_traced_markup_is_shown_as_text_and_fetches_nothing(
    page: Page, ui_url: str, artifacts: Path
) -> None:
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.goto(f"{ui_url}/?project={HOSTILE_PROJECT}&app=victim&tab=Error")
    step = page.get_by_test_id("stHeading").filter(has_text="Step 0")
    expect(step).to_have_text(f"Step 0 · {PAYLOAD} · failed", timeout=UI_TIMEOUT_MS)
    alert = page.get_by_test_id("stAlert").filter(has_text="ValueError")
    expect(alert).to_have_text(f"ValueError: {PAYLOAD}")
    expect(page.get_by_text(f"partition key: {PAYLOAD}", exact=False)).to_be_visible()
    expect(page.get_by_text(f"tags: note={PAYLOAD}", exact=False)).to_be_visible()
    page.get_by_role("combobox", name="Step").click()  # select box options are text as they are
    expect(page.get_by_role("option")).to_have_text([f"0 · {PAYLOAD} · failed"])
    page.keyboard.press("Escape")
    _shot(page, artifacts, "6-hostile-app")
    page.goto(f"{ui_url}/?project={HOSTILE_PROJECT}")  # the applications page, with its filters
    expect(page.get_by_text("1 of 1 applications")).to_be_visible(timeout=UI_TIMEOUT_MS)
    page.goto(ui_url)  # and the projects page
    expect(page.get_by_role("button", name=f"Open {HOSTILE_PROJECT}")).to_be_visible(
        timeout=UI_TIMEOUT_MS
    )
    main = page.get_by_test_id("stMain")
    assert main.locator(f'img[src*="{TRAP}"]').count() == 0
    assert main.locator("strong", has_text="bold").count() == 0
    assert [url for url in requested if TRAP in url] == []


def test_a_bad_url_parameter_shows_a_message(page: Page, ui_url: str) -> None:
    page.goto(f"{ui_url}/?project=../{HOSTILE_PROJECT}&page=abc")
    alert = page.get_by_test_id("stAlert").filter(has_text="URL parameter project=")
    expect(alert).to_contain_text(
        f"URL parameter project='../{HOSTILE_PROJECT}' was ignored", timeout=UI_TIMEOUT_MS
    )
    expect(page.get_by_role("heading", name="turnout · projects")).to_be_visible()


def test_an_artifact_ref_downloads_its_blob(page: Page, ui_url: str, artifacts: Path) -> None:
    page.goto(f"{ui_url}/?project={ARTIFACT_PROJECT}&app=report&tab=State")
    line = page.get_by_text("report · artifact · report.pdf · application/pdf · 2.0 KiB")
    expect(line).to_be_visible(timeout=UI_TIMEOUT_MS)
    _shot(page, artifacts, "7-artifact")
    with page.expect_download(timeout=UI_TIMEOUT_MS) as download_info:
        page.get_by_test_id("stDownloadButton").get_by_role("button", name="Download").click()
    download = download_info.value
    assert download.suggested_filename == "report.pdf"
    assert Path(download.path()).read_bytes() == REPORT
