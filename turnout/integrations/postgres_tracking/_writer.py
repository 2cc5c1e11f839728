"""The background writer of a PostgreSQL tracking store: a bounded queue, batches, retries.

Hooks put rows on the queue and return; one thread per writer takes what has accumulated (at
most ``batch_size`` rows), numbers each app's rows on from the app's last position (``pos``,
unique per app), inserts them in one transaction and upserts the apps it touched. A position
another writer took first fails the insert: the writer reads the app's last position again,
numbers the batch anew, and stops vouching for that app's run (``_vouch``): its rows are no
longer alone. A batch that fails otherwise (the server is down, the connection dropped) is
retried with a growing pause (up to 2 s) until it is written or the writer is closed; each row
carries the writer's id and a counter under a unique constraint, so a batch whose commit was cut
and is sent again is not written twice.

**When the database is slow or down** (the documented policy): a row that finds the queue full
waits up to ``block_timeout`` seconds for room, then is dropped, counted in ``dropped`` and
reported once per outage through ``logging`` (logger ``turnout.tracking``); while the outage
lasts (until a batch is written again) further rows that find the queue full are dropped at
once, so a stalled database slows the application by at most one ``block_timeout``.
``close()`` waits up to its timeout for the queue to drain and counts what it could not write
as dropped.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import queue
import threading
from collections.abc import Callable
from copy import deepcopy
from dataclasses import dataclass
from typing import Any

import psycopg

from turnout.integrations.postgres_tracking._reader import Tables, schema

__all__ = ["Row", "Writer"]

logger = logging.getLogger("turnout.tracking")

# (app_id, partition_key, run, seq, kind, finished, snapshot, version, payload, time)
Row = tuple[str, str | None, str | None, int | None, str, bool, bool, int, str, float]
_STOP = object()
_PAUSE_MAX = 2.0
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


class Writer:
    """One tracker's queue and writing thread (started on the first row, restarted in a
    forked child).

    Args:
        connect: opens a connection (autocommit) for the writer's own use; ``None`` when
            ``pool`` lends them.
        pool: a ``psycopg_pool.ConnectionPool`` to borrow a connection from per batch.
        tables: where the rows go.
        max_queue, block_timeout, batch_size: see ``PostgresTracker``.
    """

    def __init__(
        self,
        *,
        connect: Callable[[], Any] | None,
        pool: Any,
        tables: Tables,
        max_queue: int,
        block_timeout: float,
        batch_size: int,
    ) -> None:
        self._connect, self._pool, self._tables = connect, pool, tables
        self._block, self._batch_size, self._max_queue = block_timeout, batch_size, max_queue
        self.writer_id = int.from_bytes(os.urandom(8), "big") >> 1  # a positive BIGINT
        self.dropped = 0
        self._n = 0
        self._lock = threading.Lock()
        self._done = threading.Condition(self._lock)
        self._queued = 0  # rows accepted so far
        self._settled = 0  # rows written or dropped so far
        self._outage = False  # the database is down or slow: rows that find no room are dropped
        self._warned = False  # this outage was reported
        self._closed = False
        self._closing = threading.Event()
        self._pid = -1
        self._thread: threading.Thread | None = None
        self._queue: queue.Queue[Any] = queue.Queue(max_queue)
        self._conn: Any = None
        self._ready = False
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
            self._n += 1
            item = (self._n, row)
            self._queued += 1
        try:
            if self._outage:
                self._queue.put_nowait(item)
            else:
                self._queue.put(item, timeout=self._block)
        except queue.Full:
            with self._lock:
                self._settled += 1
                self._done.notify_all()
            self._outage = True
            self._drop(1, f"its queue of {self._max_queue} rows is full")

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
        self._queue.put(_STOP)  # may block briefly: the thread is draining or dropping
        self._thread.join(timeout)
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _start(self) -> None:
        with self._lock:
            if self._pid == os.getpid():
                return
            if self._conn is not None:  # the parent's, inherited by fork(): leave it be
                _KEEP.append(self._conn)
                self._conn = None
            self._queue = queue.Queue(self._max_queue)
            self._queued = self._settled = 0
            self._apps = {}  # the parent's positions, if forked: read them anew
            self._pid = os.getpid()
            self._thread = threading.Thread(
                target=self._loop, name="turnout-postgres-tracking", daemon=True
            )
            self._thread.start()

    # -- the writing thread ----------------------------------------------------------------------

    def _loop(self) -> None:
        while True:
            item = self._queue.get()
            batch = []
            stop = item is _STOP
            if not stop:
                batch.append(item)
            while not stop and len(batch) < self._batch_size:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is _STOP:
                    stop = True
                else:
                    batch.append(more)
            if batch:
                self._send(batch)
            if stop:
                return

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
        while True:
            try:
                with conn.transaction():
                    written = self._insert_rows(conn, batch)
                self._apps.update(written)
                return
            except psycopg.errors.UniqueViolation:
                # Another writer took positions this one counted on: read them again. The
                # runs of these apps are no longer this writer's alone, so it forgets them
                # too, and vouches again from their next app row.
                for app_id in {row[0] for _n, row in batch}:
                    self._apps.pop(app_id, None)

    def _insert_rows(self, conn: Any, batch: list[tuple[int, Row]]) -> dict[str, _App]:
        """Insert ``batch`` (inside the caller's transaction); its apps' states after it."""
        t = self._tables
        touched = {row[0] for _n, row in batch}
        # Copies: the states change only if the transaction commits.
        apps = {a: deepcopy(self._apps[a]) for a in touched if a in self._apps}
        for app_id in sorted(touched - apps.keys()):
            where, where_params = t.where(app_id)
            last = conn.execute(
                f"SELECT max(pos) FROM {t.records} WHERE {where}", where_params
            ).fetchone()[0]
            apps[app_id] = _App(next_pos=0 if last is None else last + 1)
        params = []
        latest: dict[str, tuple[str | None, float]] = {}
        for n, row in batch:
            app_id, key, run, seq, kind, finished, snapshot, version, payload, at = row
            app = apps[app_id]
            pos = app.next_pos
            vouch = _vouch(app, pos, row)
            params.append(
                (
                    t.project, app_id, pos, key, run, seq, kind, finished, snapshot, vouch,
                    version, self.writer_id, n, payload, dt.datetime.fromtimestamp(at, dt.UTC),
                )
            )  # fmt: skip
            known = latest.get(app_id, (None, at))
            latest[app_id] = (key if kind == "app" else known[0], at)
        with conn.cursor() as cur:
            cur.executemany(
                f"INSERT INTO {t.records} (project, app_id, pos, partition_key, run, seq, kind, "
                f"finished, snapshot, vouch, version, writer, n, payload, created_at) VALUES "
                f"(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
                f"ON CONFLICT (writer, n) DO NOTHING",
                params,
            )
            cur.executemany(
                f"INSERT INTO {t.apps} AS a (project, app_id, partition_key, created_at, "
                f"updated_at) VALUES (%s, %s, %s, %s, %s) ON CONFLICT (project, app_id) DO "
                f"UPDATE SET updated_at = GREATEST(a.updated_at, EXCLUDED.updated_at), "
                f"partition_key = COALESCE(EXCLUDED.partition_key, a.partition_key)",
                [
                    (t.project, app_id, key, stamp, stamp)
                    for app_id, (key, at) in sorted(latest.items())  # one order: no deadlocks
                    for stamp in [dt.datetime.fromtimestamp(at, dt.UTC)]
                ],
            )
        return apps

    def _forget_connection(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):  # already broken: nothing to close cleanly
                self._conn.close()
            self._conn = None
