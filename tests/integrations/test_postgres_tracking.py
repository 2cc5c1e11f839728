"""``PostgresTracker`` against a real PostgreSQL: the local tracker's records in a database,
written by a background writer from many processes, resumed from the nearest snapshot row, and
the policy when the database is down.

Skips when the server is not reachable, except under ``CI=true`` (the ``server`` fixture).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import uuid
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("psycopg")
pytest.importorskip("psycopg_pool")
import psycopg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from tests.core.test_parallel import SquareAll
from tests.integrations.reconnect_checks import Relay
from tests.integrations.test_postgres import DSN, server
from turnout import ApplicationBuilder, RetryPolicy, State, action, streaming_action
from turnout.core.errors import PersistenceError
from turnout.core.tracking import LocalTracker
from turnout.core.tracklog import AppRecord, EndRecord, FormatRecord
from turnout.integrations.postgres_tracking import PostgresTracker, _reader

__all__ = ["server"]  # a fixture, shared with test_postgres

APP = "tracked"


@pytest.fixture
def prefix(server: psycopg.Connection[Any]) -> Iterator[str]:
    """A table prefix of this test alone; its tables are dropped afterwards."""
    name = f"trk_{uuid.uuid4().hex[:12]}"
    yield name
    for table in ("records", "apps"):
        server.execute(f"DROP TABLE IF EXISTS {name}_{table}")


@action(reads=["n"], writes=["n"])
def count(state: State) -> State:
    return state.increment(n=1)


@action(reads=["n", "items"], writes=["n", "items"])
def traced(state: State, __tracer: Any) -> State:
    __tracer.log_attribute("model", "stand-in")
    with __tracer("retrieve") as outer:
        outer.log_attributes(documents=3)
        with __tracer("rank"):
            pass
    return state.increment(n=1).append(items=f"item {state['n']}")


@streaming_action(reads=[], writes=["reply"])
def speak(state: State) -> Iterator[Any]:
    for word in ("a", "b"):
        yield {"token": word}
    yield {"reply": "a b"}, state.update(reply="a b")


def counter(tracker: Any, app_id: str = APP, **initialize: Any) -> ApplicationBuilder:
    return (
        ApplicationBuilder()
        .with_actions(count=count)
        .with_transitions(("count", "count"))
        .with_identifiers(app_id=app_id)
        .initialize_from(tracker, default_state={"n": 0}, default_entrypoint="count", **initialize)
        .with_tracker(tracker)
    )


def normalised(records: Any) -> list[dict[str, Any]]:
    """Records without what differs between two trackers of the same run (times, run ids)."""
    out = []
    for record in records:
        data = record.to_json()
        for key in ("time", "run"):
            data.pop(key, None)
        out.append(data)
    return out


# -- writing and reading -------------------------------------------------------------------------


def test_every_record_kind_round_trips_as_the_local_log_holds_it(
    prefix: str, tmp_path: Path
) -> None:
    tracker = PostgresTracker(DSN, project="kinds", table_prefix=prefix, snapshot_every=2)
    local = LocalTracker("kinds", tmp_path, snapshot_every=2)
    app = (
        ApplicationBuilder()
        .with_actions(traced=traced, speak=speak)
        .with_transitions(("traced", "speak"), ("speak", "traced"))
        .with_state(n=0, items=[])
        .with_entrypoint("traced")
        .with_identifiers(app_id=APP, partition_key="user")
        .with_tracker(tracker)
        .with_hooks(local)
        .build()
    )
    app.step()
    _, streamed = app.stream_result(halt_after=["speak"])
    list(streamed)
    app.step()
    for kind, builder in (
        ("fork", ApplicationBuilder().initialize_from(
            tracker, default_state={}, default_entrypoint="traced", fork_from_app_id=APP,
            fork_from_partition_key="user", fork_from_sequence_id=0)),
        ("spawn", ApplicationBuilder().with_state(n=0, items=[]).with_entrypoint("traced")
            .with_spawning_parent(APP, 1, "user")),
    ):  # fmt: skip
        tracker.flush()
        (
            builder.with_actions(traced=traced, speak=speak)
            .with_transitions(("traced", "speak"))
            .with_identifiers(app_id=f"{kind}-child")
            .with_tracker(tracker)
            .with_hooks(local)
            .build()
        )
    tracker.close()
    chunk = tracker.read_records(APP)
    kinds = {record.KIND for record in chunk.records}
    assert kinds == {
        "format", "app", "begin", "end", "span_start", "span_end", "attr", "stream_start",
        "stream_first", "stream_end", "child",
    }  # fmt: skip
    local_records = _local_records(local, APP)
    assert normalised(chunk.records) == normalised(local_records)
    assert chunk.bad_lines == 0
    assert sorted(tracker.list_app_ids()) == ["fork-child", "spawn-child", APP]
    assert tracker.list_app_ids(partition_key="user") == [APP]
    newer = tracker.read_records(APP, after=chunk.offset)
    assert newer.records == ()


def _local_records(local: LocalTracker, app_id: str) -> Any:
    from turnout.core.tracklog import read_records

    return read_records(local.log_path(app_id)).records


def test_read_records_goes_on_from_the_offset_it_gave(prefix: str) -> None:
    tracker = PostgresTracker(DSN, project="p", table_prefix=prefix)
    app = counter(tracker).build()
    app.step()
    tracker.flush()
    first = tracker.read_records(APP)
    app.step()
    tracker.flush()
    then = tracker.read_records(APP, after=first.offset)
    assert [r.KIND for r in then.records] == ["begin", "end"]
    assert isinstance(then.records[1], EndRecord)
    assert then.records[1].seq == 1
    tracker.close()


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_an_application_resumes_from_the_store_in_another_tracker(prefix: str, mode: str) -> None:
    tracker = PostgresTracker(DSN, project="p", table_prefix=prefix, snapshot_every=5)
    app = counter(tracker).build()
    for _ in range(12):
        app.step()
    tracker.close()
    again = PostgresTracker(DSN, project="p", table_prefix=prefix)
    builder = counter(again, resume_at_next_action=True)
    resumed = builder.build() if mode == "sync" else asyncio.run(builder.abuild())
    assert (resumed.sequence_id, resumed.state["n"]) == (11, 12)
    resumed.step() if mode == "sync" else asyncio.run(resumed.astep())
    again.flush()
    loaded = again.load(None, APP)
    assert loaded is not None
    assert (loaded.sequence_id, loaded.state["n"]) == (12, 13)
    middle = again.load(None, APP, 7)
    assert middle is not None
    assert middle.state["n"] == 8
    assert again.load("someone else", APP) is None
    assert again.load(None, "never tracked") is None
    again.close()


def test_a_forked_application_loads_from_its_own_rows(prefix: str) -> None:
    tracker = PostgresTracker(DSN, project="p", table_prefix=prefix, snapshot_every=3)
    app = counter(tracker).build()
    for _ in range(8):
        app.step()
    tracker.flush()
    fork = counter(tracker, "fork", fork_from_app_id=APP, fork_from_sequence_id=4).build()
    for _ in range(7):
        fork.step()
    tracker.flush()
    with tracker._reading() as conn:
        fast = _reader.fast_chain(conn, tracker._tables, "fork", None)
        assert fast is not None
        assert fast == _reader.full_chain(conn, tracker._tables, "fork", None)
    loaded = tracker.load(None, "fork")
    assert loaded is not None
    assert (loaded.sequence_id, loaded.state["n"]) == (11, 12)
    tracker.close()


# -- many processes ------------------------------------------------------------------------------


def _track_in_process(prefix: str, app_id: str, steps: int) -> tuple[int, int, int]:
    """Run ``steps`` tracked steps; the state and sequence id reached, and rows dropped."""
    tracker = PostgresTracker(DSN, project="many", table_prefix=prefix, snapshot_every=50)
    app = counter(tracker, app_id).build()
    for _ in range(steps):
        app.step()
    tracker.close()
    return app.state["n"], app.sequence_id, tracker.dropped


def test_eight_processes_of_2000_steps_track_concurrently_and_every_history_is_whole(
    prefix: str,
) -> None:
    """Issue 17's proof: 8 processes x 2,000 steps into one store, every step present, in
    order and contiguous, and every app resumes (initialize_from) where its process stopped."""
    steps, apps = 2000, [f"proc-{i}" for i in range(8)]
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=8, mp_context=spawn) as pool:
        reached = list(pool.map(_track_in_process, [prefix] * 8, apps, [steps] * 8))
    assert reached == [(steps, steps - 1, 0)] * 8
    reader = PostgresTracker(DSN, project="many", table_prefix=prefix)
    assert sorted(reader.list_app_ids()) == apps
    for app_id in apps:
        chunk = reader.read_records(app_id)
        kinds = [r.KIND for r in chunk.records]
        assert kinds == ["format", "app"] + ["begin", "end"] * steps, app_id
        seqs = [r.seq for r in chunk.records[2:]]  # type: ignore[union-attr]
        assert seqs == [seq for seq in range(steps) for _ in (0, 1)], app_id
        with reader._reading() as conn:  # each writer vouched for its own app's rows
            assert _reader.fast_chain(conn, reader._tables, app_id, None) is not None
        resumed = counter(reader, app_id).build()
        assert (resumed.state["n"], resumed.sequence_id) == (steps, steps - 1)
    reader.close()


def test_two_writers_of_one_app_id_keep_every_row_and_the_load_refuses_as_a_whole_replay(
    prefix: str,
) -> None:
    first = PostgresTracker(DSN, project="p", table_prefix=prefix, snapshot_every=2)
    second = PostgresTracker(DSN, project="p", table_prefix=prefix, snapshot_every=2)
    one, two = counter(first).build(), counter(second).build()
    for _ in range(3):
        one.step()
        first.flush()
        two.step()
        second.flush()
    kinds = [r.KIND for r in first.read_records(APP).records]
    assert (kinds.count("app"), kinds.count("begin"), kinds.count("end")) == (2, 6, 6)
    with first._reading() as conn:
        assert _reader.fast_chain(conn, first._tables, APP, None) is None
        with pytest.raises(PersistenceError, match="out of place"):
            _reader.full_chain(conn, first._tables, APP, None)
    with pytest.raises(PersistenceError, match="out of place"):
        first.load(None, APP)
    first.close()
    second.close()


def test_children_in_a_process_pool_track_into_the_store_under_their_parent(prefix: str) -> None:
    tracker = PostgresTracker(DSN, project="pool", table_prefix=prefix)
    spawn = multiprocessing.get_context("spawn")
    app = (
        ApplicationBuilder()
        .with_actions(fan=SquareAll())
        .with_transitions(("fan", "fan"))
        .with_state(items=[1, 2, 3])
        .with_entrypoint("fan")
        .with_identifiers(app_id="parent")
        .with_tracker(tracker)
        .with_parallel_executor(lambda: ProcessPoolExecutor(max_workers=2, mp_context=spawn))
        .build()
    )
    _, _, state = app.step()  # type: ignore[misc]
    assert state["outs"] == [1, 4, 9]
    tracker.flush()
    links = [r for r in tracker.read_records("parent").records if r.KIND == "child"]
    assert len(links) == 3
    for link in links:
        child = tracker.read_records(link.child_app_id).records  # type: ignore[union-attr]
        assert [r.KIND for r in child] == ["format", "app", "begin", "end"]
        assert child[1].spawning_parent["app_id"] == "parent"  # type: ignore[union-attr]
    loaded = tracker.load(None, "parent")  # its rows and its children's links interleave
    assert loaded is not None
    assert loaded.state["outs"] == [1, 4, 9]
    tracker.close()


# -- the database slow or down -------------------------------------------------------------------


def test_records_are_dropped_counted_and_reported_while_the_database_is_down(
    prefix: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    info = conninfo_to_dict(DSN)
    with Relay(str(info.get("host") or "127.0.0.1"), int(str(info.get("port") or 5432))) as relay:
        relayed = make_conninfo(DSN, host="127.0.0.1", port=relay.port)
        tracker = PostgresTracker(
            relayed, project="down", table_prefix=prefix, max_queue=4, block_timeout=0,
            batch_size=2,
        )  # fmt: skip
        local = LocalTracker("down", tmp_path)
        app = counter(tracker).with_hooks(local).build()
        app.step()
        assert tracker.flush()
        relay.stop()
        with caplog.at_level(logging.WARNING, logger="turnout.tracking"):
            for _ in range(10):
                app.step()
        assert tracker.dropped >= 10 * 2 - (4 + 2)  # the queue and one batch in hand are kept
        assert "PostgresTracker.dropped" in caplog.text
        relay.start()
        assert tracker.flush()  # the batch in hand and the queue are written once it is back
        for _ in range(2):
            app.step()
        tracker.close()
    reader = PostgresTracker(DSN, project="down", table_prefix=prefix)
    written = [r for r in reader.read_records(APP).records if not isinstance(r, FormatRecord)]
    tracked = [r for r in _local_records(local, APP) if not isinstance(r, FormatRecord)]
    assert len(written) + tracker.dropped == len(tracked)
    assert [r.KIND for r in written[-4:]] == ["begin", "end", "begin", "end"]
    with pytest.raises(PersistenceError, match="missing or unreadable"):
        reader.load(None, APP)  # nothing is guessed over the dropped steps
    reader.close()


def test_a_closed_tracker_drops_what_it_is_given_and_still_reads(prefix: str) -> None:
    tracker = PostgresTracker(DSN, project="p", table_prefix=prefix)
    app = counter(tracker).build()
    app.step()
    tracker.close()
    app.step()
    assert tracker.dropped == 2
    loaded = tracker.load(None, APP)
    assert loaded is not None
    assert loaded.sequence_id == 0
    tracker.close()


def test_a_copy_writes_through_its_original_and_closing_it_only_flushes(prefix: str) -> None:
    tracker = PostgresTracker(DSN, project="p", table_prefix=prefix)
    copy = tracker.copy(tags={"role": "child"})
    counter(copy, "child").build().step()
    copy.close()
    assert [r.KIND for r in tracker.read_records("child").records][1:] == ["app", "begin", "end"]
    counter(tracker).build().step()  # the original still writes
    tracker.close()
    assert tracker.dropped == 0
    assert sorted(tracker.list_app_ids()) == ["child", APP]
    app_line = tracker.read_records("child").records[1]
    assert isinstance(app_line, AppRecord)
    assert app_line.tags == {"role": "child"}


def test_a_tracker_given_something_else_than_a_dsn_or_pool_names_the_fix() -> None:
    with pytest.raises(TypeError, match=r"connection string or a psycopg_pool\.ConnectionPool"):
        PostgresTracker(42, project="p")  # type: ignore[arg-type]


# -- the property: the nearest snapshot gives the whole replay's answer ---------------------------

_COLUMNS = "app_id, pos, partition_key, run, seq, kind, finished, snapshot, vouch, version, payload"


def _baseline(tracker: PostgresTracker) -> None:
    """Snapshots, a retried step, a failed one, a resume from the latest step and one from an
    earlier step (a second timeline), each from a new tracker object."""
    attempts = {"n": 0}

    @action(reads=["n"], writes=["n"], retry=RetryPolicy(max_attempts=2, initial_delay=0, jitter=0))
    def work(state: State) -> State:
        attempts["n"] += 1
        if attempts["n"] == 3:
            raise ValueError("flaky")
        if attempts["n"] in (6, 7):
            raise KeyError("broken")
        return state.increment(n=1)

    def session(steps: int, sequence_id: int | None = None, **initialize: Any) -> None:
        copy = PostgresTracker(DSN, project="fuzz", table_prefix=tracker.table_prefix,
                               snapshot_every=3)  # fmt: skip
        app = (
            ApplicationBuilder()
            .with_actions(work=work)
            .with_transitions(("work", "work"))
            .with_identifiers(app_id=APP, sequence_id=sequence_id)
            .initialize_from(copy, default_state={"n": 0}, default_entrypoint="work", **initialize)
            .with_tracker(copy)
            .build()
        )
        for _ in range(steps):
            with contextlib.suppress(KeyError):
                app.step()
        copy.close()

    session(7)
    session(4)
    session(3, sequence_id=7, override_state_values={"n": 50})


@pytest.fixture(scope="module")
def damaged_store(server: psycopg.Connection[Any]) -> Iterator[tuple[Any, Any, list[Any]]]:
    name = f"trk_{uuid.uuid4().hex[:12]}"
    tracker = PostgresTracker(DSN, project="fuzz", table_prefix=name, snapshot_every=3)
    _baseline(tracker)  # each session in a tracker of its own, as another process would
    rows = server.execute(
        f"SELECT {_COLUMNS} FROM {name}_records WHERE app_id = %s ORDER BY pos", [APP]
    ).fetchall()
    with tracker._reading() as conn:
        tables = tracker._tables
        for seq in [None, *range(11)]:
            fast = _reader.fast_chain(conn, tables, APP, seq)
            assert fast is None or fast == _reader.full_chain(conn, tables, APP, seq)
        assert _reader.fast_chain(conn, tables, APP, None) is not None  # whole: it answers
        yield conn, tables, rows
    tracker.close()
    for table in ("records", "apps"):
        server.execute(f"DROP TABLE IF EXISTS {name}_{table}")


_ROW = st.integers(min_value=0, max_value=200)
damages = st.tuples(st.sampled_from(["drop", "copy late", "move late", "other run"]), _ROW)


def _damage(rows: list[Any], chosen: list[tuple[str, int]]) -> list[Any]:
    """``rows`` with rows lost, written twice or late (another writer's, a retried batch), or
    naming another run: what can happen to rows that are only appended and deleted."""
    rows = list(rows)
    for what, i in chosen:
        i = i % len(rows)
        row, last = rows[i], max(r[1] for r in rows)
        if what == "drop":
            del rows[i]
        elif what in ("copy late", "move late"):
            if what == "move late":
                del rows[i]
            rows.append((row[0], last + 1, *row[2:8], None, *row[9:]))
        else:
            rows[i] = (*row[:3], "elsewhere", *row[4:])
    return rows


@settings(
    max_examples=60, deadline=None, derandomize=True, database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)  # fmt: skip
@given(chosen=st.lists(damages, min_size=0, max_size=3))
def test_the_nearest_snapshot_gives_the_whole_replays_answer_on_damaged_rows(
    damaged_store: tuple[Any, Any, list[Any]], chosen: list[tuple[str, int]]
) -> None:
    conn, tables, rows = damaged_store
    with conn.transaction():
        conn.execute(f"DELETE FROM {tables.records} WHERE project = %s", [tables.project])
        with conn.cursor() as cur:
            cur.executemany(
                f"INSERT INTO {tables.records} (project, {_COLUMNS}, writer, n, created_at) "
                f"VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, 0, %s, now())",
                [(tables.project, *row, n) for n, row in enumerate(_damage(rows, chosen))],
            )
    for seq in [None, *range(12)]:
        fast = _reader.fast_chain(conn, tables, APP, seq)
        if fast is None:
            continue
        try:
            whole = _reader.full_chain(conn, tables, APP, seq)
        except PersistenceError as exc:
            raise AssertionError(
                f"the snapshot answered for {seq}, the whole replay raised"
            ) from exc
        assert fast == whole, seq


# -- other tools read the store ------------------------------------------------------------------


def test_export_otel_sends_the_same_spans_from_the_store_as_from_the_files(
    prefix: str, tmp_path: Path
) -> None:
    pytest.importorskip("opentelemetry.exporter.otlp.proto.http")
    from tests.integrations.otlp_sink import OTLPSink
    from turnout.cli import main
    from turnout.integrations.opentelemetry import export_tracked

    tracker = PostgresTracker(DSN, project="otel", table_prefix=prefix)
    local = LocalTracker("otel", tmp_path)
    app = (
        ApplicationBuilder()
        .with_actions(traced=traced, speak=speak)
        .with_transitions(("traced", "speak"))
        .with_state(n=0, items=[])
        .with_entrypoint("traced")
        .with_identifiers(app_id=APP)
        .with_tracker(tracker)
        .with_hooks(local)
        .build()
    )
    app.step()
    _, streamed = app.stream_result(halt_after=["speak"])
    list(streamed)
    tracker.close()

    def spans(sink: OTLPSink) -> list[tuple[Any, ...]]:
        return sorted((s.name, s.trace_id, s.span_id, s.parent_span_id) for s in sink.spans)

    with OTLPSink() as from_files, OTLPSink() as from_store:
        export_tracked("otel", storage_dir=tmp_path, endpoint=from_files.endpoint)
        argv = ["export-otel", "--project", "otel", "--store", DSN, "--table-prefix", prefix]
        assert main([*argv, "--endpoint", from_store.endpoint]) == 0
        assert len(from_store.spans) >= 4
        assert spans(from_store) == spans(from_files)


def test_importing_without_psycopg_raises_missing_extra_naming_the_install() -> None:
    from tests.integrations.missing_extra import import_without

    printed = import_without("psycopg", "turnout.integrations.postgres_tracking")
    assert printed.startswith("MissingExtraError")
    assert 'pip install "turnout[postgres]"' in printed
