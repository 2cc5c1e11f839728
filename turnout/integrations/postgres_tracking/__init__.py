"""Tracking into PostgreSQL: ``PostgresTracker``, the local tracker's records in a database.

``PostgresTracker(dsn, project=...)`` is a hook like ``LocalTracker`` and writes the same
records (the app row with the graph and starting state, step begin/end with deltas and periodic
snapshots, spans, attributes, stream markers, fork/spawn links), one row each, from any number
of processes and hosts::

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
from typing import Any

from turnout.core.errors import PersistenceError
from turnout.core.persistence import PersistedStateData
from turnout.core.serde import DEFAULT_SERDE, Serde
from turnout.core.sql import check_name
from turnout.core.trackhistory import load_chain
from turnout.core.tracking import LocalTracker
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
from turnout.integrations.postgres_tracking._source import PostgresSource
from turnout.integrations.postgres_tracking._writer import Writer, ensure_tables

__all__ = ["PostgresSource", "PostgresTracker", "PostgresTrackingStore"]


class PostgresTracker(LocalTracker):
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
            project, None, serde_kwargs, serde=serde, snapshot_every=snapshot_every, tags=tags
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
        self._writer = _writer or Writer(
            connect=None if self._pool is not None else self._connect, pool=self._pool,
            tables=self._tables, max_queue=max_queue, block_timeout=block_timeout,
            batch_size=batch_size,
        )  # fmt: skip
        self._partitions: dict[str, str | None] = {}
        self._read_lock = threading.Lock()
        self._read_conn: Any = None
        self._flush_each_run = False  # a copy in another process: flush before the run returns
        if self._owns_writer:
            weakref.finalize(self, self._writer.close)
            atexit.register(_close_at_exit, weakref.ref(self))

    def _connect(self) -> Any:
        return psycopg.connect(self.dsn, autocommit=True, connect_timeout=5)

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
        return PostgresTracker(
            self._pool if self._pool is not None else self.dsn, project=self.project,
            table_prefix=self.table_prefix, serde=self.serde, serde_kwargs=self.serde_kwargs,
            snapshot_every=self.snapshot_every, tags=self.tags if tags is None else tags,
            _writer=self._writer, **self._settings,
        )  # fmt: skip

    # -- writing ---------------------------------------------------------------------------------

    @property
    def dropped(self) -> int:
        """Records dropped because the database was too slow or down (see the policy)."""
        return self._writer.dropped

    def _write(self, app_id: str, record: Record) -> None:
        try:
            line = self._encoder.line(app_id, record.to_json()).decode("utf-8")[:-1]
        except Exception as exc:  # never expected; still, a tracker must not break the app
            self._skip(app_id, exc)
            return
        if isinstance(record, AppRecord):
            self._partitions[app_id] = record.partition_key
            run, seq = record.run, record.sequence_id
        else:
            run, seq = self._runs.get(app_id), getattr(record, "seq", None)
        finished = isinstance(record, EndRecord) and record.finished
        snapshot = isinstance(record, EndRecord) and record.snapshot is not None
        self._writer.put(
            (
                app_id, self._partitions.get(app_id), run, seq, record.KIND, finished, snapshot,
                FORMAT_VERSION, line, getattr(record, "time", 0.0),
            )
        )  # fmt: skip

    def _skip(self, app_id: str, exc: BaseException) -> None:
        from turnout.core.tracking import logger

        logger.warning("tracking of app %r skipped a record it could not write: %r", app_id, exc)

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
        with self._read_lock:
            if self._read_conn is not None:
                self._read_conn.close()
                self._read_conn = None

    # -- reading ---------------------------------------------------------------------------------

    @contextmanager
    def _reading(self) -> Iterator[Any]:
        if self._pool is not None:
            with self._pool.connection() as conn:
                ensure_tables(conn, self._tables)
                yield conn
            return
        with self._read_lock:
            for attempt in (1, 2):
                try:
                    if self._read_conn is None or self._read_conn.closed:
                        self._read_conn = self._connect()
                        ensure_tables(self._read_conn, self._tables)
                    break
                except psycopg.OperationalError as exc:
                    self._read_conn = None
                    if attempt == 2:
                        raise PersistenceError(
                            f"cannot read tracking from PostgreSQL ({self._tables.records}): "
                            f"{exc}. Check that the server named by the connection string is up."
                        ) from exc
            try:
                yield self._read_conn
            except psycopg.OperationalError:
                self._read_conn.close()  # dropped: the next read connects anew
                self._read_conn = None
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

    def load(
        self, partition_key: str | None, app_id: str, sequence_id: int | None = None, **kwargs: Any
    ) -> PersistedStateData | None:
        """The state after tracked step ``sequence_id`` (the last finished one if ``None``),
        for ``initialize_from``, from the nearest snapshot row; ``None`` if the app or the step
        is not tracked. Raises ``PersistenceError`` as ``LocalTracker.load`` does."""
        with self._reading() as conn:
            chain = _reader.fast_chain(conn, self._tables, app_id, sequence_id)
            if chain is None:
                chain = _reader.full_chain(conn, self._tables, app_id, sequence_id)
        if chain is None:
            return None
        return load_chain(
            chain, app_id, partition_key, self._bound_serde, where=self._tables.label(app_id)
        )

    @property
    def project_dir(self) -> Any:
        raise AttributeError(
            "a PostgresTracker has no project directory: its records are in PostgreSQL "
            "(read them with read_records(app_id))"
        )


def _close_at_exit(ref: weakref.ref[PostgresTracker]) -> None:
    tracker = ref()
    if tracker is not None:
        tracker.close()
