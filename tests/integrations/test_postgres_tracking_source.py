"""The tracking UI's PostgreSQL source (``turnout ui --store postgresql://...``): the
``PostgresSource`` answers what the file store answers for the same runs, pages through the
``<prefix>_apps`` summary its trigger keeps, follows changes by LISTEN/NOTIFY (no query while
nothing is notified) and reads a long history from its tail; ``turnout ui`` refuses a store it
cannot read with the reason. (The pages over this source: test_fastapi_ui_postgres.py.)

Skips when the server is not reachable, except under ``CI=true`` (the ``server`` fixture).
"""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("psycopg")
pytest.importorskip("psycopg_pool")
import psycopg

from tests.integrations.test_postgres import DSN, server
from turnout import ApplicationBuilder, State, action
from turnout.core.trackfiles import TrackingIndex
from turnout.core.tracking import LocalTracker
from turnout.core.tracksource import AppQuery, AppSummary, TrackingSource
from turnout.integrations.postgres_tracking import PostgresSource, PostgresTracker

__all__ = ["server"]  # a fixture, shared with test_postgres

PROJECT = "shop"


@pytest.fixture
def prefix(server: psycopg.Connection[Any]) -> Iterator[str]:
    """A table prefix of this test alone; its tables are dropped afterwards."""
    name = f"ui_{uuid.uuid4().hex[:12]}"
    yield name
    for table in ("records", "apps"):
        server.execute(f"DROP TABLE IF EXISTS {name}_{table}")
    server.execute(f"DROP FUNCTION IF EXISTS {name}_ui_touch()")


@pytest.fixture
def source(prefix: str) -> Iterator[PostgresSource]:
    opened = PostgresSource(DSN, table_prefix=prefix)
    yield opened
    opened.close()


@action(reads=["n"], writes=["n"])
def count(state: State) -> State:
    if state["n"] < 0:
        raise ValueError("n went negative")
    return state.increment(n=1)


@action(reads=["n"], writes=["n"])
def halve(state: State) -> State:
    return state.update(n=state["n"] // 2)


def _run(tracker: Any, app_id: str, *, steps: int, start: int = 0, key: str | None = None) -> Any:
    """``steps`` steps of a counter from ``start`` (a negative start fails the first step)."""
    app = (
        ApplicationBuilder()
        .with_actions(count, halve)
        .with_transitions(("count", "halve"), ("halve", "count"))
        .with_state(n=start)
        .with_entrypoint("count")
        .with_identifiers(app_id=app_id, partition_key=key)
        .with_tracker(tracker)
        .build()
    )
    for _ in range(steps):
        try:
            app.step()
        except ValueError:
            break
    return app


def _track_both(root: Path, prefix: str) -> None:
    """The same runs into a directory and into PostgreSQL: ok, failed, keyed, tagged, forked."""
    for tracker in (
        LocalTracker(PROJECT, root, tags={"team": "a"}),
        PostgresTracker(DSN, project=PROJECT, table_prefix=prefix, tags={"team": "a"}),
    ):
        try:
            _run(tracker, "ok", steps=5)
            _run(tracker, "broken", steps=3, start=-1, key="eu")
            _run(tracker, "keyed", steps=2, key="us")
            _run(tracker, "parent", steps=4)
            if isinstance(tracker, PostgresTracker):
                tracker.flush()  # its rows are written in the background: the fork reads them
            forked = (
                ApplicationBuilder()
                .with_actions(count, halve)
                .with_transitions(("count", "halve"), ("halve", "count"))
                .initialize_from(
                    tracker,
                    resume_at_next_action=True,
                    default_state={},
                    default_entrypoint="count",
                    fork_from_app_id="parent",
                    fork_from_sequence_id=1,
                )
                .with_identifiers(app_id="child")
                .with_tracker(tracker)
                .build()
            )
            forked.step()
        finally:
            tracker.close()


def _shape(summary: AppSummary) -> tuple[Any, ...]:
    """What a listing shows of an app, times aside (the two stores round them differently)."""
    return (
        summary.app_id,
        summary.partition_key,
        summary.status,
        summary.step_count,
        summary.error_count,
        summary.parent,
        summary.children,
        summary.tags,
    )


def test_postgres_source_lists_what_the_file_store_lists_for_the_same_runs(
    tmp_path: Path, prefix: str, source: PostgresSource
) -> None:
    _track_both(tmp_path, prefix)
    files = TrackingIndex(tmp_path)
    assert isinstance(source, TrackingSource)
    assert isinstance(files, TrackingSource)
    from_files = {a.app_id: _shape(a) for a in files.app_page(PROJECT, AppQuery()).apps}
    from_pg = {a.app_id: _shape(a) for a in source.app_page(PROJECT, AppQuery()).apps}
    assert from_pg == from_files
    assert from_pg["broken"][2:5] == ("failed", 1, 1)
    assert from_pg["child"][5] is not None
    assert from_pg["child"][5].app_id == "parent"
    assert [c.app_id for c in from_pg["parent"][6]] == ["child"]
    (project,) = source.projects()
    assert (project.name, project.app_count) == (PROJECT, 5)
    for app_id in from_files:
        pg_log, file_log = source.app(PROJECT, app_id), files.app(PROJECT, app_id)
        assert pg_log is not None
        assert file_log is not None
        assert [(s.seq, s.action, s.status) for s in pg_log.step_list()] == [
            (s.seq, s.action, s.status) for s in file_log.step_list()
        ]
        last = file_log.step_list()[-1].seq
        assert pg_log.state_after(last) == file_log.state_after(last)
    assert source.app(PROJECT, "nobody") is None


def test_postgres_source_filters_and_pages_in_the_database(
    prefix: str, source: PostgresSource
) -> None:
    tracker = PostgresTracker(DSN, project=PROJECT, table_prefix=prefix, tags={"run": "x"})
    try:
        for number in range(7):
            _run(tracker, f"app-{number}", steps=2, start=-1 if number % 3 == 0 else 0,
                 key=None if number % 2 else "k")  # fmt: skip
    finally:
        tracker.close()
    page = source.app_page(PROJECT, AppQuery(limit=3))
    assert (page.total, page.matched, len(page.apps)) == (7, 7, 3)
    assert page.partition_keys == (None, "k")
    assert page.tags == ("run=x",)
    rest = source.app_page(PROJECT, AppQuery(offset=3, limit=10))
    assert {a.app_id for a in page.apps} | {a.app_id for a in rest.apps} == {
        f"app-{n}" for n in range(7)
    }
    failed = source.app_page(PROJECT, AppQuery(status="failed", limit=None))
    assert sorted(a.app_id for a in failed.apps) == ["app-0", "app-3", "app-6"]
    keyless = source.app_page(PROJECT, AppQuery(partition_keys=(None,), limit=None))
    assert sorted(a.app_id for a in keyless.apps) == ["app-1", "app-3", "app-5"]
    assert source.app_page(PROJECT, AppQuery(tag="run=y")).matched == 0


def test_an_app_written_before_the_trigger_is_summarised_from_its_rows(
    server: psycopg.Connection[Any], prefix: str
) -> None:
    tracker = PostgresTracker(DSN, project=PROJECT, table_prefix=prefix)
    try:
        _run(tracker, "old", steps=3, start=-1)
    finally:
        tracker.close()
    # As tables made by a turnout before the UI's trigger: no trigger, no summary columns.
    server.execute(f"DROP TRIGGER {prefix}_ui_touch ON {prefix}_records")
    columns = "status first_seq last_seq errors first_time last_time tags parent whole"
    for column in columns.split():
        server.execute(f"ALTER TABLE {prefix}_apps DROP COLUMN ui_{column}")
    source = PostgresSource(DSN, table_prefix=prefix)
    try:
        (old,) = source.app_page(PROJECT).apps  # the source adds the trigger and columns back
        assert (old.status, old.step_count, old.error_count) == ("failed", 1, 1)
        tracker = PostgresTracker(DSN, project=PROJECT, table_prefix=prefix)
        try:
            _run(tracker, "new", steps=2)
        finally:
            tracker.close()
        apps = {a.app_id: a for a in source.app_page(PROJECT).apps}
        assert (apps["new"].status, apps["new"].step_count) == ("completed", 2)
        whole = server.execute(
            f"SELECT app_id, ui_whole FROM {prefix}_apps ORDER BY app_id"
        ).fetchall()
        assert whole == [("new", True), ("old", False)]
    finally:
        source.close()


def _settled(server: psycopg.Connection[Any], prefix: str, source: PostgresSource) -> None:
    """Until the source heard every notification committed so far: notifications arrive in
    commit order, so once it hears a marker sent now, it heard all before it."""
    marker = uuid.uuid4().hex
    server.execute("SELECT pg_notify(%s, %s)", [f"{prefix}_changes", f'["(marker)", "{marker}"]'])
    deadline = time.monotonic() + 10
    while source.changes_of("(marker)", marker) == 0:
        assert time.monotonic() < deadline, "the listener never heard the marker"
        source.wait(source.changes(), timeout=1)


def test_live_changes_arrive_by_notification_and_nothing_is_queried_without_one(
    server: psycopg.Connection[Any],
    prefix: str,
    source: PostgresSource,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tracker = PostgresTracker(DSN, project=PROJECT, table_prefix=prefix)
    try:
        app = _run(tracker, "live", steps=1)
        tracker.flush()
        assert source.wait_listening(10)
        _settled(server, prefix, source)
        log = source.app(PROJECT, "live")
        assert log is not None
        assert len(log.step_list()) == 1
        reads: list[Any] = []
        real = source.read

        def counted(*args: Any, **kwargs: Any) -> Any:
            reads.append(args)
            return real(*args, **kwargs)

        monkeypatch.setattr(source, "read", counted)
        since = source.changes()
        assert source.app(PROJECT, "live") is log
        assert reads == []  # nothing was notified: no query
        app.step()
        tracker.flush()
        assert source.wait(since, timeout=10) > since  # woken by NOTIFY, not by the timeout
        _settled(server, prefix, source)
        assert source.changes_of(PROJECT, "live") > since  # the notification names this app
        assert [s.seq for s in source.app(PROJECT, "live").step_list()] == [0, 1]  # type: ignore[union-attr]
        assert len(reads) == 1
        assert reads[0][2] is not None
    finally:
        tracker.close()


def test_turnout_ui_refuses_a_store_it_cannot_read(prefix: str) -> None:
    def ui(*options: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "turnout.cli", "ui", "--no-demo", "--port", "1", *options],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip

    result = ui("--store", "/var/lib/turnout")
    assert result.returncode == 2
    assert "is not a PostgreSQL connection string" in result.stderr
    result = ui("--store", "postgresql://someone:s3cret@127.0.0.1:1/test")
    assert result.returncode == 2
    assert "Check that the server named by --store is up" in result.stderr
    assert "s3cret" not in result.stderr
    assert "***" in result.stderr
    result = ui("--store", DSN, "--table-prefix", "bad name")
    assert result.returncode == 2
    assert "--table-prefix 'bad name'" in result.stderr


def test_a_long_history_is_read_from_a_snapshot_row_near_its_end(prefix: str) -> None:
    tracker = PostgresTracker(DSN, project=PROJECT, table_prefix=prefix, snapshot_every=10)
    try:
        _run(tracker, "long", steps=200)
    finally:
        tracker.close()
    reader = PostgresSource(DSN, table_prefix=prefix, listen=False)
    whole = reader.app(PROJECT, "long")
    reader.close()
    source = PostgresSource(DSN, table_prefix=prefix, listen=False, long_app=100, window=60)
    try:
        tail = source.app(PROJECT, "long")
        assert tail is not None
        assert whole is not None
        assert tail.partial
        assert not whole.partial
        steps = tail.step_list()
        assert steps[0].snapshot is not None
        assert [s.seq for s in steps] == list(range(steps[0].seq, 200))
        assert len(steps) < 100
        for step in steps[1:]:
            assert tail.state_after(step.seq) == whole.state_after(step.seq)
        assert tail.summary(PROJECT).step_count == 200
        tail.load_all()
        assert [s.seq for s in tail.step_list()] == list(range(200))
    finally:
        source.close()
