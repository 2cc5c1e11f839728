"""The web UI's timeline tab: a fan-out application's steps as one lane and its spawned
children as nested lanes, zoomable by URL, on a tracking directory and on PostgreSQL."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("jinja2")
from fastapi.testclient import TestClient

from tests.integrations import parallel_actions as pa
from tests.integrations.test_postgres import server
from turnout.core.tracking import LocalTracker
from turnout.integrations.fastapi.ui import create_ui_app
from turnout.integrations.fastapi.ui._timeline import fanout_bars, timeline
from turnout.integrations.fastapi.ui.timeline_pages import zoom_links

__all__ = ["server"]  # a fixture, shared with test_postgres

PROJECT = "fanout"
ITEMS = [3, 1, 2]
PAGE = f"/projects/{PROJECT}/apps/parent/timeline"


def run_fanout(tracker: Any) -> None:
    """Two ``square_all`` steps, each spawning one child per item (six children)."""
    app = pa.square_all_app(ITEMS, lambda: ThreadPoolExecutor(2), tracker=tracker, app_id="parent")
    app.step()
    app.step()
    flush = getattr(tracker, "flush", None)
    if callable(flush):
        assert flush(30)


@pytest.fixture(scope="module")
def storage(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("timeline") / "tracking"
    run_fanout(LocalTracker(PROJECT, storage_dir=root))
    return root


def lanes(html: str) -> list[tuple[str, str]]:
    """(depth, app id) of each lane drawn, top to bottom."""
    return re.findall(r'<g class="lane depth-(\d)" data-app="([^"]+)">', html)


def bars(html: str) -> list[tuple[str, float, float]]:
    return [
        (status, float(x), float(w))
        for status, x, w in re.findall(
            r'<g class="tbar st-(\w+)">.*?<rect x="([\d.]+)%" y="\d+" width="([\d.]+)%"',
            html,
            flags=re.S,
        )
    ]


def check_whole_run(client: TestClient) -> None:
    page = client.get(PAGE)
    assert page.status_code == 200, page.text
    drawn = lanes(page.text)
    assert drawn[0] == ("0", "parent")
    children = [app for depth, app in drawn if depth == "1"]
    assert len(children) == 2 * len(ITEMS)
    assert len(set(children)) == len(children)
    assert len(drawn) == 1 + len(children)
    drawn_bars = bars(page.text)
    # Two parent steps and each child's one step, all completed, inside the bar area.
    assert len(drawn_bars) == 2 + len(children)
    assert {status for status, _x, _w in drawn_bars} == {"completed"}
    assert all(x >= 30 and x + w <= 99.6 for _s, x, w in drawn_bars)
    # Each child links to its own step page; the parent's lane to the parent's steps.
    assert f'href="/projects/{PROJECT}/apps/parent/steps/1"' in page.text
    assert f'href="/projects/{PROJECT}/apps/{children[0]}/steps/0"' in page.text


def test_a_fanout_app_has_a_lane_per_child_below_its_own(storage: Path) -> None:
    with TestClient(create_ui_app(storage)) as client:
        check_whole_run(client)
        app_page = client.get(f"/projects/{PROJECT}/apps/parent")
        assert f'href="{PAGE}"' in app_page.text  # the tab


def test_zooming_into_the_second_half_leaves_the_first_step_out(storage: Path) -> None:
    with TestClient(create_ui_app(storage)) as client:
        whole = bars(client.get(PAGE).text)
        zoomed_page = client.get(PAGE + "?start=0.999&end=1")
        zoomed = bars(zoomed_page.text)
        assert 0 < len(zoomed) < len(whole)
        assert "(+" in zoomed_page.text  # a lane says how many of its steps are outside
        bad = client.get(PAGE + "?start=2")
        assert bad.status_code == 422


def test_the_geometry_follows_the_times(storage: Path) -> None:
    with TestClient(create_ui_app(storage)) as client:
        source = client.app.state.source  # type: ignore[attr-defined]
        log = source.app(PROJECT, "parent")
        view = timeline(source, PROJECT, log, "parent")
        steps = log.step_list()
        first, second = view.lanes[0].bars
        assert view.run_start is not None
        assert view.run_end is not None
        assert steps[0].start is not None
        total = view.run_end - view.run_start
        assert first.seq == 0
        assert second.seq == 1
        expected = (steps[0].start - view.run_start) / total * 100
        assert first.left == pytest.approx(expected, abs=0.01)
        assert second.left + second.width <= 100.001
        assert first.left < second.left
        # The window's right half only: it starts half way through the run.
        half = timeline(source, PROJECT, log, "parent", start=0.5, end=1.0)
        assert half.window_start == pytest.approx(view.run_start + total / 2)


def test_zoom_links_stay_inside_the_run() -> None:
    links = zoom_links(0.0, 1.0)
    assert links["in"] == (0.25, 0.75)
    assert links["out"] == (0.0, 1.0)
    assert zoom_links(0.9, 1.0)["right"] == (0.9, 1.0)
    assert zoom_links(0.0, 0.1)["left"] == (0.0, 0.1)
    assert zoom_links(0.4, 0.6)["right"] == (0.5, 0.7)  # by half a window


def test_an_app_without_children_has_one_lane_and_an_unknown_app_is_a_404(
    tmp_path: Path,
) -> None:
    from tests.integrations.fastapi_ui import write_data

    write_data(tmp_path)
    with TestClient(create_ui_app(tmp_path)) as client:
        page = client.get("/projects/webui/apps/counter/timeline")
        assert lanes(page.text) == [("0", "counter")]
        assert len(bars(page.text)) == 5
        # A step that spawned nothing has no children's waterfall.
        step = client.get("/projects/webui/apps/counter/steps/0")
        assert step.status_code == 200
        assert 'id="fanout"' not in step.text
        assert client.get("/projects/webui/apps/nope/timeline").status_code == 404


@pytest.fixture(scope="module")
def pg_prefix(server: Any) -> Iterator[str]:
    from tests.integrations.test_fastapi_ui_postgres import drop_prefix
    from tests.integrations.test_postgres import DSN
    from turnout.integrations.postgres_tracking import PostgresTracker

    prefix = f"timeline_{uuid.uuid4().hex[:12]}"
    tracker = PostgresTracker(DSN, project=PROJECT, table_prefix=prefix)
    try:
        run_fanout(tracker)
    finally:
        tracker.close()
    yield prefix
    drop_prefix(server, prefix)


def test_the_timeline_over_postgresql(pg_prefix: str) -> None:
    from tests.integrations.test_postgres import DSN

    with TestClient(create_ui_app(DSN, table_prefix=pg_prefix)) as client:
        check_whole_run(client)


def test_a_fanout_step_shows_its_childrens_steps_in_its_waterfall(storage: Path) -> None:
    with TestClient(create_ui_app(storage)) as client:
        page = client.get(f"/projects/{PROJECT}/apps/parent/steps/1")
        assert page.status_code == 200
        assert 'id="fanout"' in page.text
        source = client.app.state.source  # type: ignore[attr-defined]
        log = source.app(PROJECT, "parent")
        rows, left_out = fanout_bars(source, PROJECT, log, 1)
        assert left_out == 0
        spawned = sorted(c.app_id for c in log.children_of(1))
        assert sorted(r.app_id for r in rows if r.span is None) == spawned
        assert all(r.left >= 0 and r.left + r.width <= 100.001 for r in rows)
        for app_id in spawned:
            assert f'href="/projects/{PROJECT}/apps/{app_id}/steps/0"' in page.text
        # Past the limit, the remaining children are counted, not read.
        few, more = fanout_bars(source, PROJECT, log, 1, limit=2)
        assert [r.app_id for r in few] == [r.app_id for r in rows][:2]
        assert more == len(spawned) - 2


def test_children_are_drawn_under_their_step_in_start_order_up_to_the_lane_limit(
    storage: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from turnout.integrations.fastapi.ui import _timeline

    with TestClient(create_ui_app(storage)) as client:
        source = client.app.state.source  # type: ignore[attr-defined]
        log = source.app(PROJECT, "parent")
        view = timeline(source, PROJECT, log, "parent")
        children = view.lanes[1:]
        assert [lane.parent_seq for lane in children] == [0, 0, 0, 1, 1, 1]
        starts = [(lane.parent_seq, lane.bars[0].left) for lane in children]
        assert starts == sorted(starts)
        monkeypatch.setattr(_timeline, "MAX_LANES", 3)
        few = timeline(source, PROJECT, log, "parent")
        assert len(few.lanes) == 3
        assert few.more == 4
        assert "4 more child applications not drawn" in client.get(PAGE).text
