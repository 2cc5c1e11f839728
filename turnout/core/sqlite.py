"""SQLite persisters: the embedded default, standard library only.

``SQLitePersister("app.db")`` keeps every application's steps in one file. The file is in WAL
mode with a busy timeout, so several threads and processes can read and write it at once; every
save is one ``BEGIN IMMEDIATE`` transaction, so a killed process leaves either the whole step or
none of it. ``AsyncSQLitePersister`` runs the same code in a worker thread.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar, cast

from turnout.core.burr_layout import BURR_DEFAULT_TABLE, BurrReadingPersister, BurrTable
from turnout.core.errors import PersistenceError
from turnout.core.persistence import AsyncPersister, Opening, StorePersister, SyncPersister
from turnout.core.serde import Serde
from turnout.core.sql import Dialect, SQLConnection, SQLStore, check_name
from turnout.core.sqlite_given import (
    AsyncConnectionLike,
    GivenAsyncSQLiteConnection,
    is_async_connection,
)

__all__ = ["SQLITE", "AsyncSQLitePersister", "SQLitePersister"]

SQLITE = Dialect(
    name="SQLite",
    placeholder="?",
    key_type="TEXT",
    text_type="TEXT",
    insert_ignore="INSERT OR IGNORE",
    lock_row="",
    table_exists="SELECT 1 FROM sqlite_master WHERE type = 'table' AND lower(name) = lower(?)",
)


class SQLiteConnection:
    """The ``SQLConnection`` adapter over one ``sqlite3`` connection, shared by threads."""

    def __init__(
        self,
        path: str | Path,
        *,
        timeout: float = 30.0,
        connect_kwargs: dict[str, Any] | None = None,
        synchronous: str = "NORMAL",
    ) -> None:
        if synchronous not in ("NORMAL", "FULL"):
            raise ValueError(f"synchronous must be 'NORMAL' or 'FULL', got {synchronous!r}")
        if not isinstance(path, (str, os.PathLike)):
            # Burr's async persister takes an aiosqlite connection first: str() of one would
            # silently create a file named after the object.
            raise PersistenceError(
                f"the SQLite persisters take the database path (a str or Path), got "
                f"{type(path).__module__}.{type(path).__qualname__}: {path!r}. Pass the file's "
                f"path, e.g. AsyncSQLitePersister('app.db') or "
                f"await AsyncSQLitePersister.from_values('app.db')."
            )
        self.path = str(path)
        arguments: dict[str, Any] = {"timeout": timeout, **(connect_kwargs or {})}
        timeout = float(arguments["timeout"])
        # The connection is shared by threads under a lock (the async persister's worker thread
        # too), so check_same_thread is always off, whatever the caller passed (Burr users pass
        # check_same_thread=False); transactions are explicit BEGIN IMMEDIATE, so autocommit.
        arguments.update(check_same_thread=False, isolation_level=None)
        self._connection = sqlite3.connect(self.path, **arguments)
        self._lock = threading.RLock()
        self._depth = 0
        try:
            if self.path != ":memory:":
                _enable_wal(self._connection, timeout)
            self._connection.execute(f"PRAGMA busy_timeout={int(timeout * 1000)}")
            # NORMAL (WAL): a killed process never loses a commit; only a power cut can lose
            # the last ones. FULL syncs the disk on every commit, several times slower.
            self._connection.execute(f"PRAGMA synchronous={synchronous}")
        except sqlite3.DatabaseError as exc:
            self._connection.close()
            raise PersistenceError(
                f"{self.path!r} is not a SQLite database turnout can open ({exc}): it is "
                f"another kind of file, or a damaged or truncated database. Give "
                f"SQLitePersister the path of a turnout database or of a new file, or restore "
                f"this one from a backup."
            ) from exc

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            rows: list[tuple[Any, ...]] = self._connection.execute(sql, params).fetchall()
            return rows

    def transaction(self) -> _Transaction:
        return _Transaction(self)

    def is_unique_violation(self, exc: BaseException) -> bool:
        return isinstance(exc, sqlite3.IntegrityError)

    async def lock_setup(self) -> None:
        """Nothing to do: ``BEGIN IMMEDIATE`` already lets one writer in at a time."""

    def failure(self, doing: str, exc: sqlite3.Error) -> PersistenceError:
        """A clear error for a failed transaction (most often: another process held the lock
        longer than the timeout)."""
        return PersistenceError(
            f"SQLite could not {doing} on {self.path!r}: {exc}. Another process may hold the "
            f"database; raise SQLitePersister(timeout=...) or retry. Records already saved are "
            f"unchanged."
        )

    def close(self) -> None:
        with self._lock:
            self._connection.close()


class _Transaction:
    def __init__(self, connection: SQLiteConnection) -> None:
        self._c = connection

    async def __aenter__(self) -> None:
        self._c._lock.acquire()
        if self._c._depth == 0:
            try:
                self._c._connection.execute("BEGIN IMMEDIATE")
            except BaseException as exc:
                self._c._lock.release()
                if isinstance(exc, sqlite3.Error):
                    raise self._c.failure("start a write transaction", exc) from exc
                raise
        self._c._depth += 1

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            self._c._depth -= 1
            if self._c._depth == 0:
                try:
                    self._c._connection.execute("ROLLBACK" if exc_type else "COMMIT")
                except sqlite3.Error as error:
                    if exc_type is None:
                        raise self._c.failure("commit", error) from error
        finally:
            self._c._lock.release()


class SQLitePersister(SyncPersister):
    """Save applications to a SQLite file.

    Burr's constructor, ``from_values``, ``from_config``, ``initialize()``,
    ``is_initialized()`` and ``cleanup()`` work as they do there.

    Args:
        db_path: the database file (created if missing), or ``":memory:"``.
        table_name: the prefix of the tables (``<prefix>_steps``, ``<prefix>_apps``, ...).
        serde_kwargs: Burr's serialisation arguments (e.g. ``{"pandas_kwargs": {"path": dir}}``),
            passed to codecs registered Burr's way (``@serialize.register``, Burr's plugins).
        connect_kwargs: more arguments for ``sqlite3.connect`` (``check_same_thread`` is
            accepted and always off: the connection is shared by threads under a lock).
        connection: Burr's argument: a ``sqlite3`` connection of yours to ``db_path``. It stays
            yours (open it, close it); the persister opens its own connection to the same file,
            because its saves need autocommit and WAL mode.
        serde: the codec registry (default: ``turnout.core.serde.DEFAULT_SERDE``).
        snapshot_every: a full snapshot every this many steps; the others store their delta.
        timeout: seconds to wait for another writer's lock before failing.
        synchronous: ``"NORMAL"`` (the default: safe when a process is killed) or ``"FULL"``
            (also safe against power loss, at the cost of a disk sync per step).
    """

    def __init__(
        self,
        db_path: str | Path,
        table_name: str = "turnout",
        serde_kwargs: dict[str, Any] | None = None,
        connect_kwargs: dict[str, Any] | None = None,
        connection: sqlite3.Connection | None = None,
        *,
        serde: Serde | None = None,
        snapshot_every: int = 100,
        timeout: float = 30.0,
        synchronous: str = "NORMAL",
    ) -> None:
        check_name(table_name, "table_name")  # before the file is created
        _check_given(connection, db_path)
        self._arguments: dict[str, Any] = {
            "db_path": db_path,
            "table_name": table_name,
            "serde_kwargs": serde_kwargs,
            "connect_kwargs": connect_kwargs,
            "serde": serde,
            "snapshot_every": snapshot_every,
            "timeout": timeout,
            "synchronous": synchronous,
        }
        self.db_path = db_path
        self.table_name = table_name
        self.connection = SQLiteConnection(
            db_path, timeout=timeout, connect_kwargs=connect_kwargs, synchronous=synchronous
        )
        self._closes_connection = True
        super().__init__(_core(self.connection, table_name, serde, snapshot_every))
        self.set_serde_kwargs(serde_kwargs)

    @classmethod
    def from_values(
        cls,
        db_path: str | Path,
        table_name: str = "turnout",
        serde_kwargs: dict[str, Any] | None = None,
        connect_kwargs: dict[str, Any] | None = None,
        **options: Any,
    ) -> SQLitePersister:
        """Burr's constructor by values; ``options`` are the keyword-only arguments."""
        return cls(db_path, table_name, serde_kwargs, connect_kwargs, **options)

    def copy(self) -> SQLitePersister:
        """Burr's copy for a child application: a persister on the same database and tables,
        with its own connection to the file. An in-memory database has no file another
        connection could open, so its copy shares this connection (and leaves closing it to
        this persister). A subclass's copy is of its own class and shares this connection, so
        what the subclass adds (state, overridden methods) carries over to the children."""
        if _in_memory(self.db_path) or type(self) is not SQLitePersister:
            return _sharing(self)
        return SQLitePersister(**{**self._arguments, "serde_kwargs": self.serde_kwargs})

    def close(self) -> None:
        """Close the database connection (a copy sharing it leaves it open)."""
        if self._closes_connection:
            self.connection.close()

    def __getstate__(self) -> dict[str, Any]:
        # A copy sent to another process (a parallel action's child on a process pool, Ray or
        # Dask) opens its own connection to the same file.
        if str(self._arguments["db_path"]) == ":memory:":
            raise TypeError(
                "a SQLitePersister on ':memory:' cannot be sent to another process (its "
                "database lives in this one); give it a file path"
            )
        return {**self._arguments, "serde_kwargs": self.serde_kwargs}

    def __setstate__(self, arguments: dict[str, Any]) -> None:
        self.__init__(**arguments)  # type: ignore[misc]


class AsyncSQLitePersister(AsyncPersister):
    """``SQLitePersister`` for async applications: each call runs in a worker thread, so the
    event loop never waits on the disk. The arguments are ``SQLitePersister``'s, except
    ``connection``.

    ``from_values``/``from_config`` return what Burr's do: await it for the persister, or use
    it as ``async with AsyncSQLitePersister.from_values("app.db") as persister:``.

    Args:
        connection: Burr's constructor argument: an open ``aiosqlite`` connection to use instead
            of ``db_path`` (``AsyncSQLitePersister(connection=conn)``, or first, as in Burr:
            ``AsyncSQLitePersister(conn, "burr_state")``). It is used as it is (no WAL mode or
            busy timeout added), and ``close()``/``cleanup()`` close it, as Burr's do.
    """

    def __init__(
        self,
        db_path: str | Path | AsyncConnectionLike | None = None,
        table_name: str = "turnout",
        serde_kwargs: dict[str, Any] | None = None,
        connect_kwargs: dict[str, Any] | None = None,
        *,
        connection: AsyncConnectionLike | None = None,
        serde: Serde | None = None,
        snapshot_every: int = 100,
        timeout: float = 30.0,
        synchronous: str = "NORMAL",
    ) -> None:
        check_name(table_name, "table_name")  # before the file is created
        if connection is None and is_async_connection(db_path):
            connection, db_path = cast("AsyncConnectionLike", db_path), None
        self._arguments: dict[str, Any] = {
            "db_path": db_path,
            "table_name": table_name,
            "connect_kwargs": connect_kwargs,
            "serde": serde,
            "snapshot_every": snapshot_every,
            "timeout": timeout,
            "synchronous": synchronous,
        }
        self.db_path = db_path
        self.table_name = table_name
        self._closes_connection = True
        sql: SQLConnection
        if connection is not None:
            _check_async_given(connection, db_path)
            self._given: GivenAsyncSQLiteConnection | None = GivenAsyncSQLiteConnection(connection)
            self.connection: Any = connection
            sql = self._given
        else:
            if db_path is None:
                raise PersistenceError(
                    "AsyncSQLitePersister needs a database: give its path "
                    "(AsyncSQLitePersister('app.db')) or an open aiosqlite connection "
                    "(AsyncSQLitePersister(connection=conn))."
                )
            self._given = None
            self.connection = sql = SQLiteConnection(
                cast("str | Path", db_path),
                timeout=timeout,
                connect_kwargs=connect_kwargs,
                synchronous=synchronous,
            )
        core = _core(sql, table_name, serde, snapshot_every)
        super().__init__(core, threaded=self._given is None)
        self.set_serde_kwargs(serde_kwargs)

    def copy(self) -> AsyncSQLitePersister:
        """Burr's copy for a child application: a persister on the same database and tables.
        It opens its own connection to a file; an in-memory database or a connection you gave
        is shared (as Burr's copy shares it), and closing it is left to this persister; so is
        the connection of a subclass, whose copy is of its own class."""
        if (
            self._given is not None
            or _in_memory(self.db_path)
            or type(self) is not AsyncSQLitePersister
        ):
            return _sharing(self)
        return AsyncSQLitePersister(**self._arguments, serde_kwargs=self.serde_kwargs)

    def __getstate__(self) -> dict[str, Any]:
        # As SQLitePersister's: a copy in another process opens its own connection to the file.
        if self._given is not None or _in_memory(self.db_path):
            where = "an aiosqlite connection you gave" if self._given else "':memory:'"
            raise TypeError(
                f"an AsyncSQLitePersister on {where} cannot be sent to another process (the "
                f"connection lives in this one); give it a file path: "
                f"AsyncSQLitePersister('app.db')"
            )
        return {**self._arguments, "serde_kwargs": self.serde_kwargs}

    def __setstate__(self, arguments: dict[str, Any]) -> None:
        AsyncSQLitePersister.__init__(self, **arguments)

    @classmethod
    def from_values(
        cls,
        db_path: str | Path,
        table_name: str = "turnout",
        serde_kwargs: dict[str, Any] | None = None,
        connect_kwargs: dict[str, Any] | None = None,
        **options: Any,
    ) -> Opening[AsyncSQLitePersister]:
        """Burr's constructor by values; ``options`` are the keyword-only arguments."""

        async def open_() -> AsyncSQLitePersister:
            return cls(db_path, table_name, serde_kwargs, connect_kwargs, **options)

        return Opening(open_)

    async def close(self) -> None:
        """Close the database connection (a copy sharing it leaves it open)."""
        if not self._closes_connection:
            return
        if self._given is not None:
            await self._given.close()
        else:
            self.connection.close()


def _core(
    connection: SQLConnection, table_name: str, serde: Serde | None, snapshot_every: int
) -> StorePersister:
    """The rules over turnout's tables, falling back to Burr's table ``table_name`` (read-only)
    for apps turnout has no record of: see ``turnout.core.burr_layout``."""
    return BurrReadingPersister(
        SQLStore(connection, SQLITE, table_name),
        serde=serde,
        snapshot_every=snapshot_every,
        burr=BurrTable(connection, SQLITE, table_name, fallback=_burr_default(table_name)),
    )


def _enable_wal(connection: sqlite3.Connection, timeout: float) -> None:
    """Switch the file to WAL mode. SQLite answers "database is locked" at once, without its busy
    handler, when several connections switch a new file at the same moment, so retry briefly."""
    deadline = time.monotonic() + timeout
    delay = 0.001
    while True:
        try:
            connection.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.05)


P = TypeVar("P", SQLitePersister, AsyncSQLitePersister)


def _in_memory(db_path: object) -> bool:
    return str(db_path) == ":memory:" or str(db_path).startswith("file::memory:")


def _sharing(persister: P) -> P:
    """A copy of ``persister`` on the same connection and tables, which does not close it."""
    # Not copy.copy: pickling (a copy for another process) opens a new connection instead.
    copied = object.__new__(type(persister))
    copied.__dict__.update(persister.__dict__)
    copied.serde_kwargs = dict(persister.serde_kwargs)
    copied._closes_connection = False
    return copied


def _check_async_given(connection: object, db_path: object) -> None:
    if not is_async_connection(connection):
        raise PersistenceError(
            f"AsyncSQLitePersister(connection=...) takes an open aiosqlite connection "
            f"(await aiosqlite.connect('app.db')), got {type(connection).__qualname__}; or "
            f"leave it out and give the database's path."
        )
    if db_path is not None:
        raise PersistenceError(
            f"AsyncSQLitePersister got both a database path ({db_path!r}) and connection=...: "
            f"give one of them."
        )


def _check_given(connection: object, db_path: str | Path) -> None:
    if connection is None:
        return
    if not isinstance(connection, sqlite3.Connection):
        raise PersistenceError(
            f"SQLitePersister(connection=...) takes a sqlite3.Connection, got "
            f"{type(connection).__qualname__}; or leave it out and give db_path only."
        )
    if str(db_path) == ":memory:" or str(db_path).startswith("file::memory:"):
        raise PersistenceError(
            "SQLitePersister(':memory:', connection=...) cannot share your in-memory database: "
            "the persister opens its own connection to db_path. Give a file path, or leave "
            "connection out."
        )


def _burr_default(table_name: str) -> str | None:
    """Burr's default table, read when the persister is left at turnout's default prefix."""
    return BURR_DEFAULT_TABLE if table_name == "turnout" else None
