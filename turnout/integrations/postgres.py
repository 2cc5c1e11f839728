"""PostgreSQL persisters over psycopg 3: ``PostgreSQLPersister`` and ``AsyncPostgreSQLPersister``.

Records are kept by ``turnout.core.sql.SQLStore`` (tables ``<prefix>_steps``, ``<prefix>_apps``
and ``<prefix>_meta``, created on first use); this module only adapts psycopg to it::

    persister = PostgreSQLPersister("postgresql://postgres@127.0.0.1:5432/test")
    persister = PostgreSQLPersister(psycopg_pool.ConnectionPool(dsn))  # for many threads
    persister = await AsyncPostgreSQLPersister.connect(dsn)

A persister given a connection string opens one connection in autocommit mode and closes it in
``close()``; a connection or pool you pass stays yours to close. Every save is one transaction;
a second application advancing the same app id gets ``ConcurrencyError``.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from contextvars import ContextVar
from typing import Any, Union

from turnout.core.errors import PersistenceError
from turnout.core.persistence import AsyncPersister, StorePersister, SyncPersister
from turnout.core.serde import Serde
from turnout.core.sql import Dialect, SQLStore, check_name
from turnout.integrations._guard import missing_extra

try:
    import psycopg
    from psycopg.conninfo import conninfo_to_dict
    from psycopg.rows import tuple_row
    from psycopg_pool import AsyncConnectionPool, ConnectionPool
except ImportError as _error:
    raise missing_extra(
        "turnout.integrations.postgres", 'pip install "turnout[postgres]"', _error
    ) from _error

__all__ = [
    "POSTGRES",
    "AsyncPostgreSQLConnection",
    "AsyncPostgreSQLPersister",
    "PostgreSQLConnection",
    "PostgreSQLPersister",
]

POSTGRES = Dialect(
    name="PostgreSQL",
    placeholder="%s",
    key_type="TEXT",
    text_type="TEXT",
    insert_ignore="INSERT",
    on_conflict_nothing=" ON CONFLICT DO NOTHING",
)

# Concurrent `CREATE TABLE IF NOT EXISTS` of one table can fail in PostgreSQL with a duplicate key
# in pg_type, and two first uses could both insert the schema row: the transaction that creates
# the tables holds this advisory lock ("turnout" in ASCII) until it ends.
_SETUP_LOCK = 0x7475726E6F7574
_SETUP_SQL = "SELECT pg_advisory_xact_lock(%s)"

Rows = list[tuple[Any, ...]]
Source = Union[str, "psycopg.Connection[Any]", "ConnectionPool[Any]"]
AsyncSource = Union[str, "psycopg.AsyncConnection[Any]", "AsyncConnectionPool[Any]"]


class PostgreSQLConnection:
    """The ``SQLConnection`` adapter over a psycopg ``Connection`` or ``ConnectionPool``.

    A single connection runs one statement or transaction at a time (threads take turns); a
    pool lends a connection per statement, and one for the whole of a transaction.
    """

    def __init__(self, source: psycopg.Connection[Any] | ConnectionPool[Any]) -> None:
        self.source = source
        self._lock = threading.Lock()
        self._held: ContextVar[psycopg.Connection[Any] | None] = ContextVar(
            "turnout_postgres_transaction", default=None
        )

    @contextmanager
    def _connection(self) -> Iterator[psycopg.Connection[Any]]:
        held = self._held.get()
        if held is not None:
            yield held
        elif isinstance(self.source, ConnectionPool):
            with self.source.connection() as connection:
                yield connection
        else:
            with self._lock:
                yield self.source

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> Rows:
        in_transaction = self._held.get() is not None
        with self._connection() as connection:
            if in_transaction:
                return _query(connection, sql, params)
            if connection.autocommit:
                return _query(connection, sql, params)
            with connection.transaction():  # so that it commits on a non-autocommit connection
                return _query(connection, sql, params)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        if self._held.get() is not None:  # nested: part of the enclosing transaction
            yield
            return
        stage, failure = "begin", None
        try:
            with self._connection() as connection, connection.transaction():
                token = self._held.set(connection)
                stage = "run"
                try:
                    yield
                except BaseException as exc:
                    stage, failure = "roll back", exc
                    raise
                finally:
                    self._held.reset(token)
                stage = "commit"
        except psycopg.Error as exc:
            if exc is failure:
                raise
            raise _failure(f"{stage} a transaction", exc, self.source) from exc

    def is_unique_violation(self, exc: BaseException) -> bool:
        return isinstance(exc, psycopg.errors.UniqueViolation)

    async def lock_setup(self) -> None:
        await self.execute(_SETUP_SQL, [_SETUP_LOCK])


class AsyncPostgreSQLConnection:
    """The ``SQLConnection`` adapter over a psycopg ``AsyncConnection`` or
    ``AsyncConnectionPool``, or a connection string (connected on first use)."""

    def __init__(self, source: AsyncSource) -> None:
        self.source = source
        self.owned: psycopg.AsyncConnection[Any] | None = None
        self._lock = asyncio.Lock()
        self._held: ContextVar[psycopg.AsyncConnection[Any] | None] = ContextVar(
            "turnout_postgres_async_transaction", default=None
        )

    async def _open(self) -> psycopg.AsyncConnection[Any]:
        if isinstance(self.source, psycopg.AsyncConnection):
            return self.source
        if self.owned is None:
            assert isinstance(self.source, str)
            try:
                self.owned = await psycopg.AsyncConnection.connect(self.source, autocommit=True)
            except psycopg.OperationalError as exc:
                raise _unreachable(
                    self.source, exc, "await AsyncPostgreSQLPersister.connect"
                ) from exc
        return self.owned

    async def open(self) -> None:
        """Connect now if the persister was given a connection string."""
        if not isinstance(self.source, AsyncConnectionPool):
            async with self._lock:
                await self._open()

    async def close(self) -> None:
        """Close the connection opened from a connection string, if any."""
        async with self._lock:
            if self.owned is not None:
                await self.owned.close()

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        held = self._held.get()
        if held is not None:
            yield held
        elif isinstance(self.source, AsyncConnectionPool):
            async with self.source.connection() as connection:
                yield connection
        else:
            async with self._lock:
                yield await self._open()

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> Rows:
        in_transaction = self._held.get() is not None
        async with self._connection() as connection:
            if in_transaction:
                return await _aquery(connection, sql, params)
            if connection.autocommit:
                return await _aquery(connection, sql, params)
            async with connection.transaction():
                return await _aquery(connection, sql, params)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        if self._held.get() is not None:
            yield
            return
        stage, failure = "begin", None
        try:
            async with self._connection() as connection, connection.transaction():
                token = self._held.set(connection)
                stage = "run"
                try:
                    yield
                except BaseException as exc:
                    stage, failure = "roll back", exc
                    raise
                finally:
                    self._held.reset(token)
                stage = "commit"
        except psycopg.Error as exc:
            if exc is failure:
                raise
            raise _failure(f"{stage} a transaction", exc, self.source) from exc

    def is_unique_violation(self, exc: BaseException) -> bool:
        return isinstance(exc, psycopg.errors.UniqueViolation)

    async def lock_setup(self) -> None:
        await self.execute(_SETUP_SQL, [_SETUP_LOCK])


class PostgreSQLPersister(SyncPersister):
    """Save applications to PostgreSQL.

    Args:
        conninfo_or_connection_or_pool: a connection string
            (``"postgresql://user@host:5432/db"``, opened here in autocommit mode and closed by
            ``close()``), a ``psycopg.Connection`` or a ``psycopg_pool.ConnectionPool`` (both
            stay yours: close them yourself). Use a pool to save from many threads at once.
        table_name: the prefix of the tables (``<prefix>_steps``, ``<prefix>_apps``, ...).
        serde: the codec registry (default: ``turnout.core.serde.DEFAULT_SERDE``).
        snapshot_every: a full snapshot every this many steps; the others store their delta.

    Raises:
        PersistenceError: the server named by a connection string cannot be reached.
    """

    def __init__(
        self,
        conninfo_or_connection_or_pool: Source,
        table_name: str = "turnout",
        *,
        serde: Serde | None = None,
        snapshot_every: int = 100,
    ) -> None:
        check_name(table_name)
        source = conninfo_or_connection_or_pool
        self._owned: psycopg.Connection[Any] | None = None
        if isinstance(source, str):
            conninfo = source
            try:
                self._owned = source = psycopg.connect(conninfo, autocommit=True)
            except psycopg.OperationalError as exc:
                raise _unreachable(conninfo, exc, "PostgreSQLPersister") from exc
        elif not isinstance(source, (psycopg.Connection, ConnectionPool)):
            raise _wrong_source(source, "PostgreSQLPersister")
        self.connection = PostgreSQLConnection(source)
        store = SQLStore(self.connection, POSTGRES, table_name)
        try:
            super().__init__(StorePersister(store, serde=serde, snapshot_every=snapshot_every))
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Close the connection opened from a connection string (not one you passed)."""
        if self._owned is not None:
            self._owned.close()


class AsyncPostgreSQLPersister(AsyncPersister):
    """``PostgreSQLPersister`` for async applications, over psycopg's async API.

    Args:
        conninfo_or_connection_or_pool: a connection string (connected on first use, or at
            once with ``await AsyncPostgreSQLPersister.connect(dsn)``; closed by ``close()``),
            a ``psycopg.AsyncConnection`` or an open ``psycopg_pool.AsyncConnectionPool`` (both
            stay yours to close).

    The other arguments are ``PostgreSQLPersister``'s.
    """

    def __init__(
        self,
        conninfo_or_connection_or_pool: AsyncSource,
        table_name: str = "turnout",
        *,
        serde: Serde | None = None,
        snapshot_every: int = 100,
    ) -> None:
        source = conninfo_or_connection_or_pool
        if not isinstance(source, (str, psycopg.AsyncConnection, AsyncConnectionPool)):
            raise _wrong_source(source, "AsyncPostgreSQLPersister")
        self.connection = AsyncPostgreSQLConnection(source)
        store = SQLStore(self.connection, POSTGRES, table_name)
        super().__init__(StorePersister(store, serde=serde, snapshot_every=snapshot_every))

    @classmethod
    async def connect(
        cls,
        conninfo: str,
        table_name: str = "turnout",
        *,
        serde: Serde | None = None,
        snapshot_every: int = 100,
    ) -> AsyncPostgreSQLPersister:
        """A persister connected to ``conninfo`` now (``PersistenceError`` if unreachable)."""
        persister = cls(conninfo, table_name, serde=serde, snapshot_every=snapshot_every)
        await persister.connection.open()
        return persister

    async def close(self) -> None:
        """Close the connection opened from a connection string (not one you passed)."""
        await self.connection.close()


def _query(connection: psycopg.Connection[Any], sql: str, params: Sequence[Any]) -> Rows:
    # tuple_row: the store unpacks tuples, whatever row factory the caller's connection has.
    with connection.cursor(row_factory=tuple_row) as cursor:
        cursor.execute(sql, list(params) if params else None)
        return cursor.fetchall() if cursor.description is not None else []


async def _aquery(
    connection: psycopg.AsyncConnection[Any], sql: str, params: Sequence[Any]
) -> Rows:
    async with connection.cursor(row_factory=tuple_row) as cursor:
        await cursor.execute(sql, list(params) if params else None)
        return await cursor.fetchall() if cursor.description is not None else []


def _failure(what: str, exc: BaseException, source: object) -> PersistenceError:
    return PersistenceError(
        f"PostgreSQL at {_where(source)} failed to {what}: {type(exc).__name__}: "
        f"{' '.join(str(exc).split())}. Records already saved are unchanged."
    )


def _params(conninfo: str) -> dict[str, Any]:
    try:
        return conninfo_to_dict(conninfo)
    except psycopg.Error:
        return {}


def _where(source: object) -> str:
    """``host:port`` of a connection string, connection or pool."""
    if isinstance(source, (ConnectionPool, AsyncConnectionPool)):
        source = source.conninfo
    if isinstance(source, str):
        params = _params(source)
        host = params.get("host") or params.get("hostaddr") or "the default host"
        return f"{host}:{params.get('port') or 5432}"
    try:
        info = getattr(source, "info", None)
        return f"{info.host}:{info.port}" if info is not None else "the server"
    except psycopg.Error:  # a closed connection no longer says where it was
        return "the server"


def _unreachable(conninfo: str, exc: BaseException, call: str) -> PersistenceError:
    params = _params(conninfo)
    return PersistenceError(
        f"cannot connect to PostgreSQL at {_where(conninfo)} (database {params.get('dbname')!r}, "
        f"user {params.get('user')!r}). Start the server or fix the connection string given to "
        f"{call}(...), e.g. 'postgresql://postgres@127.0.0.1:5432/test'. The driver said: "
        f"{' '.join(str(exc).split())}"
    )


def _wrong_source(source: object, persister: str) -> TypeError:
    sync = persister == "PostgreSQLPersister"
    kinds = (
        "a connection string, a psycopg.Connection or a psycopg_pool.ConnectionPool"
        if sync
        else "a connection string, a psycopg.AsyncConnection or a psycopg_pool.AsyncConnectionPool"
    )
    hint = ""
    if isinstance(source, (psycopg.AsyncConnection, AsyncConnectionPool)) and sync:
        hint = "; for an async connection or pool use AsyncPostgreSQLPersister"
    elif isinstance(source, (psycopg.Connection, ConnectionPool)) and not sync:
        hint = "; for a sync connection or pool use PostgreSQLPersister"
    return TypeError(f"{persister}() takes {kinds}, got {type(source).__name__}{hint}.")
