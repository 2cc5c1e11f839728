"""``turnout prune`` and ``turnout tracking copy`` on a real PostgreSQL tracking store
(``PostgresTrackingStore``): whole apps removed, dry runs change nothing, files -> PostgreSQL ->
files loads the same states, a second copy writes nothing.

Skips when the server is not reachable, except under ``CI=true`` (the ``server`` fixture).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("psycopg")
pytest.importorskip("psycopg_pool")
import psycopg

from tests.core.test_trackadmin import DAY, count, states, track
from tests.integrations.test_postgres import DSN, server
from turnout import ApplicationBuilder
from turnout.cli import main
from turnout.core.errors import TrackingAdminError
from turnout.core.trackadmin import FileStore, StoredApp, copy_project, prune
from turnout.core.tracking import LocalTracker
from turnout.integrations.postgres_tracking import PostgresTracker, PostgresTrackingStore
from turnout.integrations.postgres_tracking._reader import fast_chain

__all__ = ["server"]  # a fixture, shared with test_postgres

STEPS = {"old": 4, "older": 2, "new": 5}


@pytest.fixture
def prefix(server: psycopg.Connection[Any]) -> Iterator[str]:
    """A table prefix of this test alone; its tables are dropped afterwards."""
    name = f"adm_{uuid.uuid4().hex[:12]}"
    yield name
    for table in ("records", "apps"):
        server.execute(f"DROP TABLE IF EXISTS {name}_{table}")


@pytest.fixture
def files(tmp_path: Path) -> Path:
    root = tmp_path / "files"
    for app_id, steps in STEPS.items():
        track(root, app_id, steps, partition_key="user")
    return root


@pytest.fixture
def store(files: Path, prefix: str) -> Iterator[PostgresTrackingStore]:
    """The files' project copied into PostgreSQL, "old" and "older" aged 40 and 60 days."""
    with PostgresTrackingStore(DSN, project="p", table_prefix=prefix) as pg:
        copy_project(FileStore("p", files), pg)
        for app_id, days in (("old", 40), ("older", 60), ("new", 1)):
            pg._conn.execute(
                f"UPDATE {prefix}_apps SET updated_at = now() - make_interval(days => %s) "
                f"WHERE app_id = %s",
                [days, app_id],
            )
        yield pg


def table(server: psycopg.Connection[Any], prefix: str) -> list[tuple[Any, ...]]:
    rows = server.execute(f"SELECT * FROM {prefix}_records ORDER BY id").fetchall()
    apps = server.execute(f"SELECT * FROM {prefix}_apps ORDER BY app_id").fetchall()
    return [*rows, *apps]


def test_a_copy_into_postgresql_loads_the_same_states_fast(
    store: PostgresTrackingStore, files: Path, prefix: str, server: psycopg.Connection[Any]
) -> None:
    tracker = PostgresTracker(DSN, project="p", table_prefix=prefix)
    try:
        for app_id, steps in STEPS.items():
            assert states(tracker, app_id, steps) == states(LocalTracker("p", files), app_id, steps)
        assert sorted(tracker.list_app_ids(partition_key="user")) == sorted(STEPS)
        # The copy vouched for its rows as the writer would: loads start at a snapshot row.
        assert fast_chain(server, tracker._tables, "new", None) is not None
        app = (
            ApplicationBuilder()
            .with_actions(count=count)
            .with_transitions(("count", "count"))
            .initialize_from(tracker, default_state={}, default_entrypoint="count")
            .with_identifiers(app_id="new", partition_key="user")
            .build()
        )
        assert app.state["n"] == 5
        assert app.sequence_id == 4
    finally:
        tracker.close()


def test_files_to_postgresql_to_files_round_trips_line_for_line(
    store: PostgresTrackingStore, files: Path, tmp_path: Path
) -> None:
    back = tmp_path / "back"
    report = copy_project(store, FileStore("p", back))
    assert sorted(report.copied) == sorted(STEPS)
    for app_id, steps in STEPS.items():
        source, copy = LocalTracker("p", files), LocalTracker("p", back)
        assert copy.log_path(app_id).read_bytes() == source.log_path(app_id).read_bytes()
        assert states(copy, app_id, steps) == states(source, app_id, steps)
    # Last activity travels: prune selects the same apps from the copy as from the database.
    in_db = [a.app_id for a in prune(store, older_than=30 * DAY).selected]
    in_files = [a.app_id for a in prune(FileStore("p", back), older_than=30 * DAY).selected]
    assert in_db == in_files == ["old", "older"]


def test_a_second_copy_into_postgresql_writes_nothing(
    store: PostgresTrackingStore, files: Path, prefix: str, server: psycopg.Connection[Any]
) -> None:
    before = table(server, prefix)
    report = copy_project(FileStore("p", files), store)
    assert sorted(report.skipped) == sorted(STEPS)
    assert report.lines == 0
    assert table(server, prefix) == before


def test_a_copy_completes_an_app_postgresql_holds_a_prefix_of(
    store: PostgresTrackingStore, files: Path, prefix: str
) -> None:
    track(files, "new", 2, partition_key="user")  # the source ran on after the first copy
    report = copy_project(FileStore("p", files), store)
    assert report.completed == ("new",)
    assert sorted(report.skipped) == ["old", "older"]
    tracker = PostgresTracker(DSN, project="p", table_prefix=prefix)
    try:
        local = LocalTracker("p", files)
        assert states(tracker, "new", 2) == states(local, "new", 2)  # the new timeline
        latest, expected = tracker.load(None, "new"), local.load(None, "new")
        assert latest is not None
        assert expected is not None
        assert (latest.sequence_id, latest.state.get_all()) == (1, expected.state.get_all())
    finally:
        tracker.close()


def test_a_copy_refuses_an_app_whose_rows_differ(
    store: PostgresTrackingStore, tmp_path: Path, prefix: str, server: psycopg.Connection[Any]
) -> None:
    track(tmp_path / "other", "new", 1, partition_key="user")
    before = table(server, prefix)
    report = copy_project(FileStore("p", tmp_path / "other"), store)
    assert [app_id for app_id, _ in report.refused] == ["new"]
    assert table(server, prefix) == before


def test_a_checksumless_log_is_refused_by_postgresql(store: PostgresTrackingStore) -> None:
    old = StoredApp(app_id="v1", partition_key=None, version=1, lines=("{}",), records=())
    with pytest.raises(TrackingAdminError, match="checksummed lines only"):
        store.write(old, have=0)


def test_a_dry_run_on_postgresql_changes_nothing(
    store: PostgresTrackingStore, prefix: str, server: psycopg.Connection[Any]
) -> None:
    before = table(server, prefix)
    report = prune(store, keep_last=1)
    assert table(server, prefix) == before
    assert [a.app_id for a in report.selected] == ["old", "older"]
    rows = server.execute(
        f"SELECT count(*), sum(octet_length(payload)) FROM {prefix}_records "
        f"WHERE app_id IN ('old', 'older')"
    ).fetchone()
    assert (report.rows, report.size) == (rows[0], rows[1])
    assert f"would remove 2 of 3 app(s), {report.size / 1000:.1f} kB, {rows[0]} rows" in (
        report.summary()
    )


def test_apply_on_postgresql_removes_exactly_the_selected_apps(
    store: PostgresTrackingStore, prefix: str, server: psycopg.Connection[Any]
) -> None:
    kept = server.execute(f"SELECT * FROM {prefix}_records WHERE app_id = 'new' ORDER BY id")
    kept_rows = kept.fetchall()
    report = prune(store, older_than=30 * DAY, apply=True)
    assert [a.app_id for a in report.selected] == ["old", "older"]
    assert server.execute(f"SELECT * FROM {prefix}_records ORDER BY id").fetchall() == kept_rows
    assert server.execute(f"SELECT app_id FROM {prefix}_apps").fetchall() == [("new",)]


def test_the_commands_prune_and_copy_a_postgresql_store(
    store: PostgresTrackingStore,
    prefix: str,
    tmp_path: Path,
    server: psycopg.Connection[Any],
    capsys: pytest.CaptureFixture[str],
) -> None:
    where = ["--store", DSN, "--table-prefix", prefix]
    assert main(["prune", "--keep-last", "2", *where]) == 0
    assert "would remove 1 of 3 app(s)" in capsys.readouterr().out
    assert main(["prune", "--keep-last", "2", "--apply", *where]) == 0
    assert "removed 1 of 3 app(s)" in capsys.readouterr().out
    copy = ["tracking", "copy", DSN, str(tmp_path / "out"), "--project", "p"]
    assert main([*copy, "--table-prefix", prefix]) == 0
    assert "copied 2 app(s)" in capsys.readouterr().out
    assert sorted(LocalTracker("p", tmp_path / "out").list_app_ids()) == ["new", "old"]
    assert main([*copy, "--table-prefix", prefix]) == 0
    assert "skipped 2 already there" in capsys.readouterr().out
