"""Every page of the tracking UI in headless Chromium, on the demo data a first ``turnout ui``
generates plus a ``support`` project (a waiting application, one that wrote artifacts, one
running live) and two annotations made through the API. Each page must show its key content and
log no script error or Content-Security-Policy violation.

With ``TURNOUT_UI_SCREENSHOTS=<dir>`` each page is also saved as ``<dir>/<name>.png`` (1280x800):
that is how the pictures of docs/ui.md (``docs/img/ui/``) are made::

    TURNOUT_UI_SCREENSHOTS=docs/img/ui python -m pytest \
        tests/integrations/test_fastapi_ui_screenshots.py

To picture a new page, add one ``Shot`` line to ``PAGES`` (and the picture to docs/ui.md: a test
checks that the docs show every one).

Without Playwright or Chromium the test skips, except under ``CI=true`` (a failure)."""

from __future__ import annotations

import json
import os
import re
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.integrations.browser import (
    chromium,
    require_browser,
    watched_tab,
)

require_browser()
pytest.importorskip("fastapi")
pytest.importorskip("jinja2")
from playwright.sync_api import Browser, Page, expect  # noqa: E402

from tests.integrations.fastapi_ui import counter_builder, serve_ui  # noqa: E402
from turnout import ApplicationBuilder, ApplicationContext, State, action  # noqa: E402
from turnout.core.artifacts import LocalArtifactStore  # noqa: E402
from turnout.core.tracking import LocalTracker  # noqa: E402
from turnout.tracking import demo  # noqa: E402

pytestmark = pytest.mark.slow

SCREENSHOTS_ENV = "TURNOUT_UI_SCREENSHOTS"
TIMEOUT_MS = 20_000
DOCS = Path(__file__).resolve().parents[2] / "docs" / "ui.md"
SUPPORT = "support"


@dataclass(frozen=True)
class Shot:
    """A page to open and picture: ``selector`` must show ``text``; with ``scroll``, the picture
    has it in the middle of the window (else it shows the page's top)."""

    name: str
    path: str
    selector: str
    text: str
    scroll: bool = False


PAGES = (
    Shot("projects", "/", "table", "demo"),
    Shot("applications", "/projects/demo", "#apps", "approval-routed-failure"),
    Shot("application", "/projects/demo/apps/chatbot", "#steps", "respond"),
    Shot("step-diff", "/projects/demo/apps/chatbot/steps/3", "#diff", "append"),
    Shot(
        "failed-step",
        "/projects/demo/apps/approval-routed-failure/steps/3",
        "#step-panel",
        "Retried attempts (2)",
    ),
    Shot(
        "graph", "/projects/demo/apps/approval-retried/steps/5?action=publish", "#graph", "publish"
    ),
    Shot("timeline", "/projects/demo/apps/simulation/timeline", "#timeline-lanes", "round0"),
    Shot("search", "/projects/demo/search?q=thanks", "#search-hits", "thanks"),
    Shot("annotations", "/projects/demo/annotations", "main", "too terse"),
    Shot("waiting", f"/projects/{SUPPORT}/apps/reply-draft/waiting", "#answer-form", "tone"),
    Shot(
        "artifacts", f"/projects/{SUPPORT}/apps/weekly-report/steps/0", "#artifacts", "chart", True
    ),
    Shot("insights", "/projects/demo/apps/chatbot/insights", "#insights", "respond"),
    Shot("project-insights", "/projects/demo/insights", "#app-costs", "chatbot"),
    Shot("prices", "/prices", "#price-table", "gpt-4o"),
)


# -- the data ------------------------------------------------------------------------------------

REPLY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "approved": {"type": "boolean", "description": "send the reply as drafted?"},
        "tone": {"enum": ["warm", "neutral", "formal"]},
        "note": {"type": "string", "description": "a word for the writer"},
    },
    "required": ["approved"],
}


@action(reads=["draft"], writes=["decision"])
def await_approval(state: State, __context: ApplicationContext) -> State:
    decision = __context.suspend(
        "approval",
        schema=REPLY_SCHEMA,
        metadata={"to": "ana@example.com", "draft": state["draft"]},
    )
    return state.update(decision=decision)


def _waiting(tracker: LocalTracker) -> None:
    (
        ApplicationBuilder()
        .with_actions(await_approval)
        .with_transitions(("await_approval", "await_approval"))
        .with_state(draft="Hello Ana, your refund was sent today.")
        .with_entrypoint("await_approval")
        .with_identifiers(app_id="reply-draft")
        .with_tracker(tracker)
        .build()
        .step()
    )


def _artifacts(tracker: LocalTracker, store: LocalArtifactStore) -> None:
    chart = store.put(
        b"\x89PNG\r\n\x1a\n" + bytes(18_000), media_type="image/png", name="chart.png"
    )
    report = store.put(b"%PDF-1.7 weekly" * 900, media_type="application/pdf", name="report.pdf")

    @action(reads=[], writes=["chart", "report", "week"])
    def build_report(state: State) -> tuple[dict[str, Any], State]:
        return {"pages": 3}, state.update(chart=chart, report=report, week="2026-W49")

    (
        ApplicationBuilder()
        .with_actions(build_report)
        .with_transitions(("build_report", "build_report"))
        .with_entrypoint("build_report")
        .with_identifiers(app_id="weekly-report")
        .with_tracker(tracker)
        .build()
        .step()
    )


def _annotate(url: str) -> None:
    """Two annotations on demo steps, through the JSON API the panel's form also posts to."""
    for body in (
        {"app_id": "chatbot", "seq": 3, "tags": ["tone"], "note": "too terse", "mark": "bad",
         "expected": "I can count, chat and stream answers: what would you like?"},
        {"app_id": "approval-retried", "seq": 5, "tags": ["retry"], "note": "published on the "
         "second attempt", "mark": "good", "expected": None},
    ):  # fmt: skip
        request = urllib.request.Request(
            f"{url}/api/v1/projects/demo/annotations",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json", "X-Turnout-UI": "1"},
            method="POST",
        )
        with urllib.request.urlopen(request) as answer:
            assert answer.status == 201, answer.read()


@pytest.fixture(scope="module")
def storage(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The demo project (as a first ``turnout ui`` makes it) and the support project; the
    tracking directory and the artifact store's."""
    base = tmp_path_factory.mktemp("ui-pages")
    root, blobs = base / "tracking", base / "blobs"
    demo.generate(root)
    tracker = LocalTracker(SUPPORT, storage_dir=root)
    try:
        _waiting(tracker)
        _artifacts(tracker, LocalArtifactStore(blobs))
    finally:
        tracker.close()
    return root, blobs


@pytest.fixture(scope="module")
def ui_url(storage: tuple[Path, Path]) -> Iterator[str]:
    root, blobs = storage
    with serve_ui(root, artifacts=blobs, live_poll=0.1) as url:
        _annotate(url)
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


@pytest.fixture
def page(browser: Browser) -> Iterator[tuple[Page, list[str]]]:
    """A fresh tab, and the errors it logs (CSP violations among them)."""
    with watched_tab(browser, width=1280, height=800, timeout_ms=TIMEOUT_MS) as made:
        yield made


def _picture(tab: Page, name: str) -> None:
    """Save the viewport as ``$TURNOUT_UI_SCREENSHOTS/<name>.png`` when that is set."""
    folder = os.environ.get(SCREENSHOTS_ENV)
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        tab.screenshot(path=str(Path(folder) / f"{name}.png"), animations="disabled")


# -- the pages -----------------------------------------------------------------------------------


@pytest.mark.parametrize("shot", PAGES, ids=[shot.name for shot in PAGES])
def test_each_page_shows_its_content(ui_url: str, page: tuple[Page, list[str]], shot: Shot) -> None:
    tab, errors = page
    answer = tab.goto(ui_url + shot.path)
    assert answer is not None
    assert answer.status == 200, shot.path
    target = tab.locator(shot.selector).first
    expect(target).to_contain_text(shot.text)
    if shot.scroll:
        target.evaluate("element => element.scrollIntoView({block: 'center'})")
    _picture(tab, shot.name)
    assert errors == []


def test_a_long_error_does_not_cover_the_step_panel(
    ui_url: str, page: tuple[Page, list[str]]
) -> None:
    """The steps table keeps to its column: a long error wraps (or the table scrolls) rather
    than spreading over the chosen step's heading."""
    tab, errors = page
    tab.goto(f"{ui_url}/projects/demo/apps/approval-routed-failure/steps/3")
    heading = tab.locator("#step-panel h2")
    expect(heading).to_contain_text("Step 3")
    table = tab.locator("section.steps").bounding_box()
    panel = tab.locator("#step-panel").bounding_box()
    assert table is not None
    assert panel is not None
    assert table["x"] + table["width"] <= panel["x"] + 1, (table, panel)
    box = heading.bounding_box()
    assert box is not None
    on_top = tab.evaluate(
        "([x, y]) => document.querySelector('#step-panel h2').contains("
        "document.elementFromPoint(x, y))",
        [box["x"] + 5, box["y"] + box["height"] / 2],
    )
    assert on_top, "something covers the step panel's heading"
    assert errors == []


def test_the_live_page_shows_a_step_recorded_while_it_is_open(
    storage: tuple[Path, Path], ui_url: str, page: tuple[Page, list[str]]
) -> None:
    tab, errors = page
    root, _blobs = storage
    tracker = LocalTracker(SUPPORT, storage_dir=root)
    try:
        app = counter_builder(tracker, "nightly-count", limit=10).build()
        for _ in range(3):
            app.step()
        tab.goto(f"{ui_url}/projects/{SUPPORT}/apps/nightly-count?live=true")
        expect(tab.locator("#steps tbody tr")).to_have_count(3)
        expect(tab.locator("a.live.on")).to_be_visible()
        tab.wait_for_function("() => !!document.querySelector('#app-main[sse-connect]')")
        app.step()
        expect(tab.locator("#steps tbody tr").first).to_have_id("step-3")
        expect(tab.locator("#app-summary")).to_contain_text("4 steps")
        _picture(tab, "live")
    finally:
        tracker.close()
    assert errors == []


def test_the_docs_show_every_picture() -> None:
    """docs/ui.md shows each page's picture, and each picture it shows is taken here."""
    taken = {shot.name for shot in PAGES} | {"live"}
    shown = set(re.findall(r"\]\(img/ui/([a-z-]+)\.png\)", DOCS.read_text(encoding="utf-8")))
    assert shown == taken
    for name in taken:
        assert (DOCS.parent / "img" / "ui" / f"{name}.png").is_file(), name
