"""Tracking into PostgreSQL: ``PostgresTracker``, the local tracker's records in a database.

``PostgresTracker(dsn, project=...)`` is a hook like ``LocalTracker`` (both derive from
``turnout.core.trackbase.RecordingTracker``, which turns hook calls into records) and writes
the same records (the app row with the graph and starting state, step begin/end with deltas
and periodic snapshots, spans, attributes, stream markers, fork/spawn links), one row each,
from any number of processes and hosts::

    tracker = PostgresTracker("postgresql://postgres@127.0.0.1:5432/test", project="chat")
    app = ApplicationBuilder()....with_tracker(tracker).build()

Rows go to ``<table_prefix>_records`` (``project, app_id, pos, partition_key, run, seq, kind,
payload, created_at``, ``payload`` being the checksummed JSON line a ``LocalTracker`` would
append, ``pos`` its place in the app's history)
and ``<table_prefix>_apps`` (one row per app, for listing); both are created on first use.
Writes leave the step path: a bounded queue, written in batches by one background thread per
tracker, flushed by ``flush()``, ``close()`` and at interpreter exit. What happens when the
database is slow or down is ``turnout.integrations.postgres_tracking._writer``'s documented
policy (wait up to ``block_timeout`` for room, then drop and count in ``dropped``).

The tracker is a loader for ``initialize_from`` (``load`` starts at the nearest snapshot row,
``_reader``), lists app ids, and gives an app's records in ``tracklog.read_records``' typed form
(``read_records``). It pickles to its settings and connection string, so children of parallel
actions run in a process pool track into the same store under their parent.

``PostgresTrackingStore(dsn, project=...)`` is one project of these tables for ``turnout prune``
and ``turnout tracking copy`` (``turnout.core.trackadmin``); ``PostgresSource(dsn)`` is every
project of them as the tracking UI reads them (``turnout ui --store postgresql://...``).
"""

from __future__ import annotations

import atexit
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from typing import Any

from turnout.core._track_encoder import _SafeEncoder
from turnout.core.errors import PersistenceError
from turnout.core.serde import DEFAULT_SERDE, Serde
from turnout.core.sql import check_name
from turnout.core.trackbase import RecordingTracker
from turnout.core.trackhistory import Chain
from turnout.core.tracklog import FORMAT_VERSION, AppRecord, EndRecord, LogChunk, Record
from turnout.integrations._guard import missing_extra

try:
    import psycopg
    from psycopg_pool import ConnectionPool
except ImportError as _error:
    raise missing_extra(
        "turnout.integrations.postgres_tracking", 'pip install "turnout[postgres]"', _error
    ) from _error

from turnout.integrations.postgres_tracking import _reader
from turnout.integrations.postgres_tracking._admin import PostgresTrackingStore
from turnout.integrations.postgres_tracking._annotations import PostgresAnnotations
from turnout.integrations.postgres_tracking._source import PostgresSource
from turnout.integrations.postgres_tracking._writer import Writer, ensure_tables

__all__ = ["PostgresAnnotations", "PostgresSource", "PostgresTracker", "PostgresTrackingStore"]


class PostgresTracker(RecordingTracker):
    """Track applications into PostgreSQL; see the module docstring.

    Args:
        source: a connection string (the tracker opens its own connections, one for the
            writer and one for reads, and reopens them when dropped), or a
            ``psycopg_pool.ConnectionPool`` (borrowed per batch and per read; yours to close;
            a pickled copy connects with the pool's connection string).
        project: the project's name, as for ``LocalTracker``.
        table_prefix: the tables are ``<prefix>_records`` and ``<prefix>_apps``.
        serde, serde_kwargs, snapshot_every, tags: as for ``LocalTracker``.
        max_queue: rows held for writing at most; beyond that the database is too slow.
        block_timeout: how long a step waits for room in a full queue before its row is dropped
            (once per outage; later rows of the same outage are dropped at once).
        batch_size: rows written per transaction at most.
    """

    def __init__(
        self,
        source: str | ConnectionPool[Any],
        *,
        project: str = "default",
        table_prefix: str = "turnout_tracking",
        serde: Serde | None = None,
        serde_kwargs: dict[str, Any] | None = None,
        snapshot_every: int = 50,
        tags: dict[str, str] | None = None,
        max_queue: int = 10_000,
        block_timeout: float = 1.0,
        batch_size: int = 500,
        _writer: Writer | None = None,
    ) -> None:
        super().__init__(
            project, serde_kwargs, serde=serde, snapshot_every=snapshot_every, tags=tags
        )
        if isinstance(source, str):
            self.dsn, self._pool = source, None
        elif isinstance(source, ConnectionPool):
            conninfo = source.conninfo  # a string, or a callable giving one (psycopg_pool 3.3)
            self.dsn, self._pool = conninfo() if callable(conninfo) else conninfo, source
        else:
            raise TypeError(
                f"PostgresTracker takes a connection string or a psycopg_pool.ConnectionPool, "
                f"got {type(source).__name__}; e.g. "
                f'PostgresTracker("postgresql://user@host:5432/db", project="chat")'
            )
        self.table_prefix = check_name(table_prefix)
        self._tables = _reader.Tables(prefix=table_prefix, project=self.project)
        self._settings: dict[str, Any] = {
            "max_queue": max_queue, "block_timeout": block_timeout, "batch_size": batch_size,
        }  # fmt: skip
        # Copies in this process share their original's writer (one queue, thread and
        # connection); only the original closes it.
        self._owns_writer = _writer is None
        # Nothing the writer holds refers back to the tracker, so an unused tracker is collected
        # and its finalizer closes the writer.
        self._writer = _writer or Writer(
            connect=None if self._pool is not None else partial(_connect, self.dsn),
            pool=self._pool, tables=self._tables, render=partial(_render, self._encoder),
            max_queue=max_queue, block_timeout=block_timeout, batch_size=batch_size,
        )  # fmt: skip
        self._partitions: dict[str, str | None] = {}
        self._read = _ReadConnection()
        self._flush_each_run = False  # a copy in another process: flush before the run returns
        # What the tracker opened is closed when it is collected (or at exit), unless close()
        # came first.
        weakref.finalize(self, _release, self._writer if self._owns_writer else None, self._read)
        if self._owns_writer:
            atexit.register(_close_at_exit, weakref.ref(self))

    def _connect(self) -> Any:
        return _connect(self.dsn)

    # -- copies ----------------------------------------------------------------------------------

    def __getstate__(self) -> dict[str, Any]:
        """The settings and connection string: a copy in another process connects anew."""
        return {
            "dsn": self.dsn, "project": self.project, "table_prefix": self.table_prefix,
            "serde": None if self.serde is DEFAULT_SERDE else self.serde,
            "serde_kwargs": self.serde_kwargs, "snapshot_every": self.snapshot_every,
            "tags": self.tags, **self._settings,
        }  # fmt: skip

    def __setstate__(self, data: dict[str, Any]) -> None:
        data = dict(data)
        self.__init__(data.pop("dsn"), **data)  # type: ignore[misc]
        # A copy unpickled in a worker process may outlive no hook of its run: write before
        # the run returns (the parent reads its children's rows after they finish).
        self._flush_each_run = True

    def copy(self, *, tags: dict[str, str] | None = None) -> PostgresTracker:
        """A tracker writing to the same tables and project through this one's writer (the
        children of a parallel action get one each: they add no thread or connection), with
        ``tags`` instead of this one's when given. Its ``close()`` flushes; this one's closes
        the writer. A copy pickled to another process gets a writer of its own there."""
        return super().copy(tags=tags)

    def _replica(self, tags: dict[str, str]) -> PostgresTracker:
        return PostgresTracker(
            self._pool if self._pool is not None else self.dsn, project=self.project,
            table_prefix=self.table_prefix, serde=self.serde, serde_kwargs=self.serde_kwargs,
            snapshot_every=self.snapshot_every, tags=tags, _writer=self._writer,
            **self._settings,
        )  # fmt: skip

    # -- writing ---------------------------------------------------------------------------------

    @property
    def dropped(self) -> int:
        """Records dropped because the database was too slow or down (see the policy)."""
        return self._writer.dropped

    def _write(self, app_id: str, record: Record) -> None:
        # The step path only queues the record: it is frozen and holds encoded values only
        # (fresh containers the serde built), so the writing thread turns it into its
        # checksummed line (``_render``) while the application goes on.
        finished = snapshot = False
        if isinstance(record, AppRecord):
            self._partitions[app_id] = record.partition_key
            run, seq = record.run, record.sequence_id
        else:
            run, seq = self._runs.get(app_id), getattr(record, "seq", None)
            if isinstance(record, EndRecord):
                finished, snapshot = record.finished, record.has_snapshot
        self._writer.put(
            (
                app_id, self._partitions.get(app_id), run, seq, record.KIND, finished, snapshot,
                FORMAT_VERSION, record, getattr(record, "time", 0.0),
            )
        )  # fmt: skip

    def post_run_execute_call(self, **future_kwargs: Any) -> None:
        if self._flush_each_run:
            self.flush()

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every record tracked so far is written (or dropped by the policy);
        ``False`` if ``timeout`` seconds passed first."""
        return self._writer.flush(timeout)

    def close(self, timeout: float = 10.0) -> None:
        """Write what is queued (waiting up to ``timeout`` seconds; the rest is dropped), stop
        the writer and close the connections the tracker opened. A closed tracker still reads;
        records tracked after ``close()`` are dropped. A ``copy()`` only flushes."""
        if self._owns_writer:
            self._writer.close(timeout)
        else:
            self._writer.flush(timeout)
        self._read.close()

    # -- reading ---------------------------------------------------------------------------------

    @contextmanager
    def _reading(self) -> Iterator[Any]:
        if self._pool is not None:
            with self._pool.connection() as conn:
                ensure_tables(conn, self._tables)
                yield conn
            return
        with self._read.lock:
            for attempt in (1, 2):
                try:
                    if self._read.conn is None or self._read.conn.closed:
                        self._read.conn = self._connect()
                        ensure_tables(self._read.conn, self._tables)
                    break
                except psycopg.OperationalError as exc:
                    self._read.conn = None
                    if attempt == 2:
                        raise PersistenceError(
                            f"cannot read tracking from PostgreSQL ({self._tables.records}): "
                            f"{exc}. Check that the server named by the connection string is up."
                        ) from exc
            try:
                yield self._read.conn
            except psycopg.OperationalError:
                self._read.conn.close()  # dropped: the next read connects anew
                self._read.conn = None
                raise

    def list_app_ids(self, partition_key: str | None = None, **kwargs: Any) -> list[str]:
        """The tracked app ids of the project (of one partition if given), most recently
        written first (records still queued are not there yet: ``flush()`` first)."""
        with self._reading() as conn:
            return _reader.app_ids(conn, self._tables, partition_key)

    def read_records(self, app_id: str, after: int = -1) -> LogChunk:
        """The records of ``app_id`` as ``tracklog.read_records`` gives a log's: typed, in
        order, led by a ``format`` record; ``offset`` is the last row's position, to pass back
        as ``after`` to read only newer rows."""
        with self._reading() as conn:
            return _reader.read_records(conn, self._tables, app_id, after)

    def _find_chain(self, app_id: str, sequence_id: int | None) -> Chain | None:
        """From the nearest snapshot row a writer vouched for, else the whole history."""
        with self._reading() as conn:
            chain = _reader.fast_chain(conn, self._tables, app_id, sequence_id)
            if chain is None:
                chain = _reader.full_chain(conn, self._tables, app_id, sequence_id)
        return chain

    def _where(self, app_id: str) -> str:
        return self._tables.label(app_id)

    @property
    def project_dir(self) -> Any:
        raise AttributeError(
            "a PostgresTracker has no project directory: its records are in PostgreSQL "
            "(read them with read_records(app_id))"
        )


def _connect(dsn: str) -> Any:
    return psycopg.connect(dsn, autocommit=True, connect_timeout=5)


def _render(encoder: _SafeEncoder, app_id: str, record: Record) -> str:
    """The checksummed line of ``record`` (what a local log holds), without its newline."""
    return encoder.line(app_id, record.to_json()).decode("utf-8")[:-1]


class _ReadConnection:
    """The connection a tracker reads through (opened on the first read), apart from the
    tracker so that its finalizer can close it."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.conn: Any = None

    def close(self) -> None:
        with self.lock:
            if self.conn is not None:
                self.conn.close()
                self.conn = None


def _release(writer: Writer | None, read: _ReadConnection) -> None:
    if writer is not None:
        writer.close()
    read.close()


def _close_at_exit(ref: weakref.ref[PostgresTracker]) -> None:
    tracker = ref()
    if tracker is not None:
        tracker.close()
