"""The background writer of a PostgreSQL tracking store: a bounded queue, batches, retries.

Hooks append rows to the queue and return: the step path holds a lock for an append and wakes
the thread only when the queue was empty or a batch is full. The thread then lingers up to
``_LINGER`` seconds (less when ``flush()`` or a full batch asks) so that rows go in batches of
many, takes what has accumulated (at most ``batch_size`` rows), numbers each app's rows on from
the app's last position (``pos``, unique per app), sends them with one binary ``COPY`` in one
transaction and upserts the apps it touched. A position another writer took first fails the
copy: the writer reads the app's last position again, numbers the batch anew, and stops vouching
for that app's run (``_vouch``): its rows are no longer alone. A batch that fails otherwise (the
server is down, the connection dropped or was terminated) is retried on a new connection with a
growing pause (up to 2 s) until it is written or the writer is closed; each row carries the
writer's id and a counter under a unique constraint, and a batch whose commit may have been cut
is looked up by them before it is sent again, so it is never written twice.

**When the database is slow or down** (the documented policy): a row that finds the queue full
waits up to ``block_timeout`` seconds for room, then is dropped, counted in ``dropped`` and
reported once per outage through ``logging`` (logger ``turnout.tracking``); while the outage
lasts (from that drop, or from a failed batch, until a batch is written again) further rows
that find the queue full are dropped at once, so a stalled database slows the application by
at most one ``block_timeout`` per outage. A failed batch is reported once per outage too (one
"cannot write; retrying" line), and the writer keeps it, reconnecting with a growing pause,
until the database takes it. ``close()`` waits up to its timeout for the queue to drain and
counts what it could not write as dropped.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import psycopg

from turnout.core.tracklog import Record
from turnout.integrations.postgres_tracking._reader import Tables, schema

__all__ = ["Row", "Writer"]

logger = logging.getLogger("turnout.tracking")

# (app_id, partition_key, run, seq, kind, finished, snapshot, version, payload, time); the
# payload is the line itself, or the record (immutable, holding only encoded values) that the
# writer's ``render`` turns into the line on the writing thread, off the step path.
Row = tuple[str, str | None, str | None, int | None, str, bool, bool, int, "str | Record", float]
Render = Callable[[str, "Record"], str]
_PAUSE_MAX = 2.0
_LINGER = 0.05  # seconds the thread lets rows accumulate before a batch (flush() cuts it short)
_COLUMNS = (
    "project, app_id, pos, partition_key, run, seq, kind, finished, snapshot, vouch, version, "
    "writer, n, payload, created_at"
)
_TYPES = [
    "text", "text", "int8", "text", "text", "int8", "text", "bool", "bool", "int8", "int2",
    "int8", "int8", "text", "timestamptz",
]  # fmt: skip
_SETUP_LOCK = 0x7475726E74726B  # "turntrk": serialises concurrent first CREATE TABLEs
_KEEP: list[Any] = []  # connections inherited across fork(): never closed (they are the parent's)


@dataclass(slots=True)
class _Run:
    """What a writer knows of one app since its own last app row (``MarkWriter``'s rule)."""

    run: str
    app_pos: int
    next_seq: int  # the sequence id the next finished step must take
    clean: bool = True


@dataclass(slots=True)
class _App:
    next_pos: int  # where this writer's next row of the app goes
    run: _Run | None = None


def _vouch(app: _App, pos: int, row: Row) -> int | None:
    """Advance ``app`` past ``row`` at ``pos``; for a finished step of a run this writer wrote
    alone and in order so far, the position of that run's app row (its vouch)."""
    _app_id, _key, run, seq, kind, finished = row[:6]
    app.next_pos = pos + 1
    if kind == "app":
        app.run = None if run is None else _Run(run, pos, 0 if seq is None else seq + 1)
        return None
    state = app.run
    if state is None or not state.clean:
        return None
    if kind == "begin" and seq is not None and seq > state.next_seq:
        state.clean = False
    elif kind == "end" and finished:
        if seq != state.next_seq or run != state.run:
            state.clean = False
            return None
        state.next_seq += 1
        return state.app_pos
    return None


def ensure_tables(conn: Any, t: Tables) -> None:
    """Create the tables of ``t`` if they do not exist, once across concurrent callers."""
    found = conn.execute("SELECT to_regclass(%s), to_regclass(%s)", [t.records, t.apps]).fetchone()
    if None not in found:
        return
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", [_SETUP_LOCK])
        for statement in schema(t):
            conn.execute(statement)
        # Snapshot rows are large and TOASTed: lz4 compresses them several times faster than
        # the default pglz (on the server, which shares the machine with the writers). A
        # server without lz4 (built without it, before PostgreSQL 14) keeps its default.
        with contextlib.suppress(psycopg.Error), conn.transaction():
            conn.execute(f"ALTER TABLE {t.records} ALTER COLUMN payload SET COMPRESSION lz4")


class Writer:
    """One tracker's queue and writing thread (started on the first row, restarted in a
    forked child).

    Args:
        connect: opens a connection (autocommit) for the writer's own use; ``None`` when
            ``pool`` lends them.
        pool: a ``psycopg_pool.ConnectionPool`` to borrow a connection from per batch.
        tables: where the rows go.
        render: the line of a row whose payload is a record (called on the writing thread;
            whatever it raises skips that row, logged once per writer).
        max_queue, block_timeout, batch_size: see ``PostgresTracker``.
    """

    def __init__(
        self,
        *,
        connect: Callable[[], Any] | None,
        pool: Any,
        tables: Tables,
        render: Render | None = None,
        max_queue: int,
        block_timeout: float,
        batch_size: int,
    ) -> None:
        self._connect, self._pool, self._tables = connect, pool, tables
        self._render = render
        self._render_failed = False
        self._block, self._batch_size, self._max_queue = block_timeout, batch_size, max_queue
        self.writer_id = int.from_bytes(os.urandom(8), "big") >> 1  # a positive BIGINT
        self.dropped = 0
        self._n = 0
        self._lock = threading.Lock()
        self._done = threading.Condition(self._lock)  # rows settled, or room in the queue
        self._pending: deque[tuple[int, Row]] = deque()
        self._wake = threading.Event()  # rows are waiting (or the writer is closing)
        self._hurry = threading.Event()  # a flush or a full batch: stop lingering
        self._queued = 0  # rows accepted so far
        self._settled = 0  # rows written or dropped so far
        self._outage = False  # the database is down or slow: rows that find no room are dropped
        self._warned = False  # this outage was reported
        self._closed = False
        self._closing = threading.Event()
        self._pid = -1
        self._thread: threading.Thread | None = None
        self._conn: Any = None
        self._ready = False
        self._unsure: int | None = None  # the first ``n`` of a batch whose commit may be cut
        self._apps: dict[str, _App] = {}  # positions and vouching, per app (the thread's own)

    # -- the step path ---------------------------------------------------------------------------

    def put(self, row: Row) -> None:
        """Queue ``row`` for writing, or drop it by the policy in the module docstring."""
        if self._pid != os.getpid():
            self._start()
        if self._closed:
            self._drop(1, "the tracker was closed (close() was called)")
            return
        with self._lock:
            waiting = len(self._pending)
            if waiting >= self._max_queue and not self._room():
                self._settled += 1  # accepted and dropped at once: flush() need not wait
                self._queued += 1
                full = True
            else:
                self._n += 1
                self._queued += 1
                self._pending.append((self._n, row))
                full = False
        if full:
            self._drop(1, f"its queue of {self._max_queue} rows is full")
        elif waiting == 0:
            self._wake.set()
        elif waiting + 1 == self._batch_size:
            self._hurry.set()

    def _room(self) -> bool:
        """Wait (holding the lock's condition) up to ``block_timeout`` for room in the queue,
        unless an outage is on; start an outage when none came."""
        if not self._outage and self._done.wait_for(
            lambda: len(self._pending) < self._max_queue, self._block
        ):
            return True
        self._outage = True
        return False

    def _drop(self, count: int, why: str) -> None:
        with self._lock:
            first, self._warned = not self._warned, True
            self.dropped += count
        if first:
            logger.warning(
                "tracking into PostgreSQL (%s) dropped %d record(s): %s; the database is "
                "slow or unreachable. Records are dropped while this lasts (counted in "
                "PostgresTracker.dropped).",
                self._tables.records, count, why,
            )  # fmt: skip

    # -- control ---------------------------------------------------------------------------------

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every row queued so far is written (or dropped); ``False`` on timeout."""
        if self._thread is None or self._pid != os.getpid():
            return True
        with self._lock:
            target = self._queued
            if self._settled >= target:
                return True
        self._hurry.set()
        with self._lock:
            return self._done.wait_for(lambda: self._settled >= target, timeout)

    def close(self, timeout: float = 10.0) -> None:
        """Write what is queued (waiting up to ``timeout`` seconds), then stop the thread."""
        if self._closed:
            return
        self._closed = True
        if self._thread is None or self._pid != os.getpid():
            return
        self.flush(timeout)
        self._closing.set()
        self._hurry.set()
        self._wake.set()
        self._thread.join(timeout)
        with self._lock:
            left = len(self._pending)
            self._pending.clear()
            self._settled += left
            self._done.notify_all()
        if left:
            self._drop(left, "the tracker was closed before they could be written")
        if self._conn is not None and not self._thread.is_alive():
            self._conn.close()
            self._conn = None

    def _start(self) -> None:
        with self._lock:
            if self._pid == os.getpid():
                return
            if self._conn is not None:  # the parent's, inherited by fork(): leave it be
                _KEEP.append(self._conn)
                self._conn = None
            self._pending = deque()
            self._wake, self._hurry = threading.Event(), threading.Event()
            self._queued = self._settled = 0
            self._apps = {}  # the parent's positions, if forked: read them anew
            # A forked child numbers its rows from its parent's counter: a writer id of its
            # own keeps (writer, n) unique.
            self.writer_id = int.from_bytes(os.urandom(8), "big") >> 1
            self._pid = os.getpid()
            self._thread = threading.Thread(
                target=self._loop, name="turnout-postgres-tracking", daemon=True
            )
            self._thread.start()

    # -- the writing thread ----------------------------------------------------------------------

    def _loop(self) -> None:
        while True:
            if not self._pending:
                if self._closing.is_set():
                    return
                self._wake.wait()
            self._wake.clear()
            if not self._hurry.is_set():
                self._hurry.wait(_LINGER)
            with self._lock:
                take = min(len(self._pending), self._batch_size)
                batch = [self._pending.popleft() for _ in range(take)]
                if not self._pending:
                    self._hurry.clear()
                self._done.notify_all()  # room in the queue
            rendered = self._rendered(batch)
            if rendered:
                self._send(rendered)

    def _rendered(self, batch: list[tuple[int, Row]]) -> list[tuple[int, Row]]:
        """``batch`` with every record payload turned into its line; a row whose line cannot
        be made is skipped (counted in ``dropped``, never written)."""
        out = []
        for n, row in batch:
            payload = row[8]
            if not isinstance(payload, str):
                try:
                    assert self._render is not None, "a record payload needs a render"
                    row = (*row[:8], self._render(row[0], payload), row[9])
                except Exception as exc:  # never expected; a tracker must not stop writing
                    with self._lock:
                        self._settled += 1
                        self.dropped += 1
                        self._done.notify_all()
                        first, self._render_failed = not self._render_failed, True
                    if first:
                        logger.warning(
                            "tracking of app %r skipped a record it could not write: %r",
                            row[0], exc,
                        )  # fmt: skip
                    continue
            out.append((n, row))
        return out

    def _send(self, batch: list[tuple[int, Row]]) -> None:
        pause = 0.05
        while True:
            try:
                self._insert(batch)
                self._outage = self._warned = False
                break
            except (psycopg.Error, OSError) as exc:
                self._forget_connection()
                self._ready = False  # the tables may be gone too: create them again
                self._unsure = batch[0][0]  # the commit may have gone through before the cut
                if self._closing.is_set():
                    self._drop(
                        len(batch), f"the tracker was closed while the database was down ({exc})"
                    )
                    break
                if not self._outage:
                    self._outage = True
                    logger.warning(
                        "tracking into PostgreSQL (%s) cannot write (%s); retrying",
                        self._tables.records, exc,
                    )  # fmt: skip
                self._closing.wait(pause)  # close() ends the wait
                pause = min(pause * 2, _PAUSE_MAX)
        self._unsure = None
        with self._lock:
            self._settled += len(batch)
            self._done.notify_all()

    def _insert(self, batch: list[tuple[int, Row]]) -> None:
        if self._pool is not None:
            with self._pool.connection() as conn:
                self._write(conn, batch)
        else:
            if self._conn is None:
                self._conn = self._connect()  # type: ignore[misc]
            self._write(self._conn, batch)

    def _write(self, conn: Any, batch: list[tuple[int, Row]]) -> None:
        t = self._tables
        if not self._ready:
            ensure_tables(conn, t)
            self._ready = True
        if (
            self._unsure is not None
            and conn.execute(
                f"SELECT 1 FROM {t.records} WHERE writer = %s AND n = %s",
                [self.writer_id, self._unsure],
            ).fetchone()
        ):
            # The batch committed before the connection was lost: it is written. What this
            # writer knew of its apps' positions is stale; read them again.
            for app_id in {row[0] for _n, row in batch}:
                self._apps.pop(app_id, None)
            return
        while True:
            try:
                with conn.transaction():
                    written = _insert_rows(conn, t, self.writer_id, self._apps, batch)
                self._apps.update(written)
                return
            except psycopg.errors.UniqueViolation as exc:
                # Another writer took positions this one counted on: read them again. The
                # runs of these apps are no longer this writer's alone, so it forgets them
                # too, and vouches again from their next app row.
                for app_id in {row[0] for _n, row in batch}:
                    self._apps.pop(app_id, None)
                if (exc.diag.constraint_name or "").endswith("_writer_n_key"):
                    return  # this very batch is in already (a retry after a cut commit)

    def _forget_connection(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):  # already broken: nothing to close cleanly
                self._conn.close()
            self._conn = None


def _copy_app(app: _App) -> _App:
    return _App(next_pos=app.next_pos, run=None if app.run is None else replace(app.run))


def _insert_rows(
    conn: Any, t: Tables, writer_id: int, known: dict[str, _App], batch: list[tuple[int, Row]]
) -> dict[str, _App]:
    """Insert ``batch`` (inside the caller's transaction) as writer ``writer_id``, which knows
    the positions of the apps in ``known`` (left as they are); the batch's apps after it."""
    touched = {row[0] for _n, row in batch}
    # Copies: the states change only if the transaction commits.
    apps = {a: _copy_app(known[a]) for a in touched if a in known}
    for app_id in sorted(touched - apps.keys()):
        where, where_params = t.where(app_id)
        last = conn.execute(
            f"SELECT max(pos) FROM {t.records} WHERE {where}", where_params
        ).fetchone()[0]
        apps[app_id] = _App(next_pos=0 if last is None else last + 1)
    latest: dict[str, tuple[str | None, float]] = {}
    stamp = dt.datetime.fromtimestamp
    with conn.cursor() as cur:
        with cur.copy(f"COPY {t.records} ({_COLUMNS}) FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(_TYPES)
            for n, row in batch:
                app_id, key, run, seq, kind, finished, snapshot, version, payload, at = row
                app = apps[app_id]
                pos = app.next_pos
                vouch = _vouch(app, pos, row)
                copy.write_row(
                    (
                        t.project, app_id, pos, key, run, seq, kind, finished, snapshot,
                        vouch, version, writer_id, n, payload, stamp(at, dt.UTC),
                    )
                )  # fmt: skip
                previous = latest.get(app_id, (None, at))
                latest[app_id] = (key if kind == "app" else previous[0], at)
        cur.executemany(
            f"INSERT INTO {t.apps} AS a (project, app_id, partition_key, created_at, "
            f"updated_at) VALUES (%s, %s, %s, %s, %s) ON CONFLICT (project, app_id) DO "
            f"UPDATE SET updated_at = GREATEST(a.updated_at, EXCLUDED.updated_at), "
            f"partition_key = COALESCE(EXCLUDED.partition_key, a.partition_key)",
            [
                (t.project, app_id, key, when, when)
                for app_id, (key, at) in sorted(latest.items())  # one order: no deadlocks
                for when in [stamp(at, dt.UTC)]
            ],
        )
    return apps
