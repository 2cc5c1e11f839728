"""``PostgresTracker``'s step path only queues a record; its writer thread turns the record into
the row's line later. What the row holds must still be what the step produced, whatever the
application or the caller does to those values afterwards.

Skips when PostgreSQL is not reachable, except under ``CI=true`` (the ``server`` fixture).
"""

from __future__ import annotations

from typing import Any

import pytest

pytest.importorskip("psycopg")
pytest.importorskip("psycopg_pool")
import psycopg

from tests.integrations.test_postgres import DSN, server
from tests.integrations.test_postgres_tracking import prefix
from turnout import ApplicationBuilder, State, action
from turnout.core.tracklog import BeginRecord, EndRecord
from turnout.integrations.postgres_tracking import PostgresTracker

__all__ = ["prefix", "server"]  # fixtures


@action(
    reads=["log"],
    writes=["log"],
)
def note(state: State, entry: dict[str, Any]) -> State:
    return state.append(log={"i": entry["i"]})  # the state does not share the input


def test_rows_hold_the_values_of_their_step_though_they_change_before_the_writer_runs(
    prefix: str,
) -> None:
    """The state's list grows in place step after step, and the caller mutates the input it
    passed after each step: every snapshot and every begin row still holds that step's
    values (the record is an immutable copy, made on the step path)."""
    tracker = PostgresTracker(DSN, project="frozen", table_prefix=prefix, snapshot_every=1)
    app = (
        ApplicationBuilder()
        .with_actions(note=note)
        .with_transitions(("note", "note"))
        .with_state(log=[])
        .with_entrypoint("note")
        .with_identifiers(app_id="frozen")
        .with_tracker(tracker)
        .build()
    )
    for i in range(30):  # no flush between steps: the writer renders them afterwards
        entry = {"i": i, "tags": ["new"]}
        app.step(inputs={"entry": entry})
        entry["tags"].append("changed after the step")
        entry["i"] = -1
    assert len(app.state["log"]) == 30
    assert tracker.flush(30)
    records = tracker.read_records("frozen").records
    begins = [r for r in records if isinstance(r, BeginRecord)]
    ends = [r for r in records if isinstance(r, EndRecord)]
    assert [b.inputs["entry"]["i"] for b in begins] == list(range(30))
    assert {tuple(b.inputs["entry"]["tags"]) for b in begins} == {("new",)}
    for end in ends:
        assert end.snapshot is not None
        assert [e["i"] for e in end.snapshot["log"]] == list(range(end.seq + 1))
    loaded = tracker.load(None, "frozen", 9)
    assert loaded is not None
    assert [e["i"] for e in loaded.state["log"]] == list(range(10))
    tracker.close()
    assert tracker.dropped == 0


def test_new_tables_compress_payloads_with_lz4_where_the_server_has_it(
    server: psycopg.Connection[Any], prefix: str
) -> None:
    """Snapshot rows are TOASTed; lz4 takes them several times faster than pglz. A server
    without lz4 keeps its default compression, and tracking still works."""
    try:
        with server.transaction():
            server.execute("SET LOCAL default_toast_compression = lz4")
        has_lz4 = True
    except psycopg.Error:
        has_lz4 = False
    tracker = PostgresTracker(DSN, project="lz4", table_prefix=prefix)
    assert tracker.list_app_ids() == []  # creates the tables
    method = server.execute(
        "SELECT attcompression FROM pg_attribute WHERE attrelid = %s::regclass "
        "AND attname = 'payload'",
        [f"{prefix}_records"],
    ).fetchone()
    assert method is not None
    assert method[0] == "l" if has_lz4 else method[0] in ("", "\x00")
    tracker.close()
