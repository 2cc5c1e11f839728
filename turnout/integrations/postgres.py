"""PostgreSQL persisters over psycopg 3: ``PostgreSQLPersister`` and ``AsyncPostgreSQLPersister``.

Records are kept by ``turnout.core.sql.SQLStore`` (tables ``<prefix>_steps``, ``<prefix>_apps``
and ``<prefix>_meta``, created on first use); this module only adapts psycopg to it::

    persister = PostgreSQLPersister("postgresql://postgres@127.0.0.1:5432/test")
    persister = PostgreSQLPersister(psycopg_pool.ConnectionPool(dsn))  # for many threads
    persister = await AsyncPostgreSQLPersister.connect(dsn)

A persister given a connection string opens one connection in autocommit mode and closes it in
``close()``; a connection or pool you pass stays yours to close. Every save is one transaction;
a second application advancing the same app id gets ``ConcurrencyError``.

A connection the persister opened is reopened when the server drops it (a restart,
``pg_terminate_backend``), between transactions only: a transaction cut in the middle is never
replayed but fails with a ``PersistenceError`` that says whether the write was applied.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from contextvars import ContextVar
from typing import Any, TypeVar, Union

from turnout.core.burr_layout import BURR_DEFAULT_TABLE, BurrReadingPersister, BurrTable
from turnout.core.errors import PersistenceError
from turnout.core.persistence import AsyncPersister, Opening, StorePersister, SyncPersister
from turnout.core.serde import Serde
from turnout.core.sql import Dialect, SQLStore, check_name
from turnout.integrations import _portable, _reconnect
from turnout.integrations._guard import missing_extra

try:
    import psycopg
    from psycopg.conninfo import conninfo_to_dict, make_conninfo
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
    one_statement_save=True,
)

# Concurrent `CREATE TABLE IF NOT EXISTS` of one table can fail in PostgreSQL with a duplicate key
# in pg_type, and two first uses could both insert the schema row: the transaction that creates
# the tables holds this advisory lock ("turnout" in ASCII) until it ends.
_SETUP_LOCK = 0x7475726E6F7574
_SETUP_SQL = "SELECT pg_advisory_xact_lock(%s)"

Rows = list[tuple[Any, ...]]
Source = Union[str, "psycopg.Connection[Any]", "ConnectionPool[Any]"]
AsyncSource = Union[str, "psycopg.AsyncConnection[Any]", "AsyncConnectionPool[Any]"]
C = TypeVar("C", "psycopg.Connection[Any]", "psycopg.AsyncConnection[Any]")


class _Adapter(_reconnect.Reconnecting[C]):
    """The ``SQLConnection`` protocol written once for psycopg's sync and async APIs.

    Each subclass provides ``_slot`` (a connection for one statement or transaction), ``_connect``
    (open the persister's own connection), ``_query`` and ``_begin``; over the sync API they never
    suspend. A dropped connection is handled by ``_reconnect.Reconnecting``'s rules, and
    ``BEGIN`` is repeated once too (nothing of the transaction was sent yet).
    """

    _database = "PostgreSQL"
    _driver_error = psycopg.Error
    _pool_kind = ""

    def __init__(self, source: Source | AsyncSource) -> None:
        super().__init__(source)
        self._held: ContextVar[C | None] = ContextVar("turnout_postgres_transaction", default=None)

    async def _begin(self, stack: AsyncExitStack[Any], connection: C) -> None:
        raise NotImplementedError

    def _owner(self) -> str:
        if isinstance(self.source, str):
            return _reconnect.OWN
        if isinstance(self.source, (ConnectionPool, AsyncConnectionPool)):
            return _reconnect.POOL
        return _reconnect.GIVEN

    def _place(self) -> str:
        return _where(self.source)

    def _said(self, exc: BaseException) -> str:
        return _said(exc)

    def _alive(self, connection: C) -> bool:
        return not connection.closed

    def _in_transaction(self) -> C | None:
        return self._held.get()

    def _fix(self) -> str:
        return (
            f"Pass a connection string ({self._persister}('postgresql://...') reconnects by "
            f"itself) or a {self._pool_kind} (it replaces broken connections) instead."
        )

    async def _statement(self, connection: C, sql: str, params: Sequence[Any]) -> Rows:
        async with AsyncExitStack() as stack:
            if not connection.autocommit:  # so that it commits on a non-autocommit connection
                await self._begin(stack, connection)
            return await self._query(connection, sql, params)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        if self._held.get() is not None:  # nested: part of the enclosing transaction
            yield
            return
        stage: str = "begin"
        failure: BaseException | None = None
        connection: C | None = None
        try:
            async with self._slot() as connection, AsyncExitStack() as stack:
                try:
                    await self._begin(stack, connection)
                except psycopg.Error as exc:
                    replacement = await self._replace(connection, exc)
                    if replacement is None:
                        raise
                    connection = replacement  # BEGIN failed: nothing to replay but itself
                    await self._begin(stack, connection)
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
            if connection is not None and connection.closed and failure is None:
                raise self._lost(stage, exc) from exc
            raise _failure(f"{stage} a transaction", exc, self.source) from exc

    def is_unique_violation(self, exc: BaseException) -> bool:
        return isinstance(exc, psycopg.errors.UniqueViolation)

    async def lock_setup(self) -> None:
        await self.execute(_SETUP_SQL, [_SETUP_LOCK])


class PostgreSQLConnection(_Adapter["psycopg.Connection[Any]"]):
    """The ``SQLConnection`` adapter over a psycopg ``Connection`` or ``ConnectionPool``, or a
    connection string (connected by ``connect()`` or on first use, reconnected when lost).

    A single connection runs one statement or transaction at a time (threads take turns); a
    pool lends a connection per statement, and one for the whole of a transaction.
    """

    _persister = "PostgreSQLPersister"
    _connection_kind = "psycopg.Connection"
    _pool_kind = "psycopg_pool.ConnectionPool"

    def __init__(self, source: Source) -> None:
        super().__init__(source)
        self._lock = threading.Lock()

    def _open(self) -> psycopg.Connection[Any]:
        assert isinstance(self.source, str)
        try:
            return psycopg.connect(self.source, autocommit=True)
        except psycopg.OperationalError as exc:
            raise _unreachable(self.source, exc, self._persister) from exc

    def connect(self) -> None:
        """Connect now if the persister was given a connection string."""
        if isinstance(self.source, str):
            with self._lock:
                if self.owned is None:
                    self.owned = self._open()

    def close(self) -> None:
        """Close the connection opened from a connection string, if any, for good."""
        with self._lock:
            self._closed = True
            if self.owned is not None:
                self.owned.close()

    async def _connect(self) -> psycopg.Connection[Any]:
        return self._open()

    @asynccontextmanager
    async def _slot(self) -> AsyncIterator[psycopg.Connection[Any]]:
        if isinstance(self.source, ConnectionPool):
            with self.source.connection() as connection:
                yield connection
        else:
            with self._lock:
                yield (
                    self.source
                    if isinstance(self.source, psycopg.Connection)
                    else (await self._own())
                )

    async def _query(
        self, connection: psycopg.Connection[Any], sql: str, params: Sequence[Any]
    ) -> Rows:
        return _query(connection, sql, params)

    async def _begin(self, stack: AsyncExitStack[Any], connection: psycopg.Connection[Any]) -> None:
        stack.enter_context(connection.transaction())


class AsyncPostgreSQLConnection(_Adapter["psycopg.AsyncConnection[Any]"]):
    """The ``SQLConnection`` adapter over a psycopg ``AsyncConnection`` or
    ``AsyncConnectionPool``, or a connection string (connected on first use, reconnected when
    lost)."""

    _persister = "AsyncPostgreSQLPersister"
    _connection_kind = "psycopg.AsyncConnection"
    _pool_kind = "psycopg_pool.AsyncConnectionPool"

    def __init__(self, source: AsyncSource) -> None:
        super().__init__(source)
        self._lock = asyncio.Lock()

    async def _connect(self) -> psycopg.AsyncConnection[Any]:
        assert isinstance(self.source, str)
        try:
            return await psycopg.AsyncConnection.connect(self.source, autocommit=True)
        except psycopg.OperationalError as exc:
            raise _unreachable(self.source, exc, f"await {self._persister}.connect") from exc

    async def open(self) -> None:
        """Connect now if the persister was given a connection string."""
        if isinstance(self.source, str):
            async with self._lock:
                await self._own()

    async def close(self) -> None:
        """Close the connection opened from a connection string, if any, for good."""
        async with self._lock:
            self._closed = True
            if self.owned is not None:
                await self.owned.close()

    @asynccontextmanager
    async def _slot(self) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        if isinstance(self.source, AsyncConnectionPool):
            async with self.source.connection() as connection:
                yield connection
        else:
            async with self._lock:
                yield (
                    self.source
                    if isinstance(self.source, psycopg.AsyncConnection)
                    else (await self._own())
                )

    async def _query(
        self, connection: psycopg.AsyncConnection[Any], sql: str, params: Sequence[Any]
    ) -> Rows:
        return await _aquery(connection, sql, params)

    async def _begin(
        self, stack: AsyncExitStack[Any], connection: psycopg.AsyncConnection[Any]
    ) -> None:
        await stack.enter_async_context(connection.transaction())


class PostgreSQLPersister(SyncPersister):
    """Save applications to PostgreSQL.

    Args:
        conninfo_or_connection_or_pool: a connection string
            (``"postgresql://user@host:5432/db"``, opened here in autocommit mode and closed by
            ``close()``), a ``psycopg.Connection`` or a ``psycopg_pool.ConnectionPool`` (both
            stay yours: close them yourself). Use a pool to save from many threads at once.
        table_name: the prefix of the tables (``<prefix>_steps``, ``<prefix>_apps``, ...).
        serde_kwargs: Burr's serialisation arguments (e.g. ``{"pandas_kwargs": {"path": dir}}``),
            passed to codecs registered Burr's way (``@serialize.register``, Burr's plugins).
        serde: the codec registry (default: ``turnout.core.serde.DEFAULT_SERDE``).
        snapshot_every: a full snapshot every this many steps; the others store their delta.

    Burr's ``from_values(db_name, user, password, host, port, table_name)`` (psycopg2's
    arguments, here mapped onto a psycopg 3 connection string), ``from_config``,
    ``initialize()``, ``is_initialized()`` and ``cleanup()`` work as they do there.

    Raises:
        PersistenceError: the server named by a connection string cannot be reached.
    """

    def __init__(
        self,
        conninfo_or_connection_or_pool: Source,
        table_name: str = "turnout",
        serde_kwargs: dict[str, Any] | None = None,
        *,
        serde: Serde | None = None,
        snapshot_every: int = 100,
    ) -> None:
        check_name(table_name)
        source = conninfo_or_connection_or_pool
        if not isinstance(source, (str, psycopg.Connection, ConnectionPool)):
            raise _wrong_source(source, "PostgreSQLPersister")
        self.connection = PostgreSQLConnection(source)
        self.connection.connect()
        self.table_name = table_name
        self._settings: dict[str, Any] = {"serde": serde, "snapshot_every": snapshot_every}
        try:
            super().__init__(_core(self.connection, table_name, serde, snapshot_every))
            self.set_serde_kwargs(serde_kwargs)
        except BaseException:
            self.close()
            raise

    @classmethod
    def from_values(
        cls,
        db_name: str,
        user: str,
        password: str | None,
        host: str,
        port: int | str,
        table_name: str = "turnout",
        serde_kwargs: dict[str, Any] | None = None,
        **options: Any,
    ) -> PostgreSQLPersister:
        """A persister on a connection it opens (and ``close()``/``cleanup()`` closes) from
        Burr's psycopg2-style values; ``options`` are the keyword-only arguments."""
        conninfo = _conninfo(db_name, user, password, host, port)
        return cls(conninfo, table_name, serde_kwargs, **options)

    def close(self) -> None:
        """Close the connection opened from a connection string (not one you passed)."""
        self.connection.close()

    def __getstate__(self) -> dict[str, Any]:
        # A copy sent to another process (a parallel action's child on a process pool, Ray or
        # Dask) opens its own connection from the same connection parameters.
        return _portable.copy_state(
            self,
            _portable.postgres_conninfo(self.connection.source, "PostgreSQLPersister"),
            self.table_name,
        )

    def __setstate__(self, state: dict[str, Any]) -> None:
        PostgreSQLPersister.__init__(
            self, state["connect"], state["name"], state["serde_kwargs"], **state["settings"]
        )


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
        serde_kwargs: dict[str, Any] | None = None,
        *,
        serde: Serde | None = None,
        snapshot_every: int = 100,
    ) -> None:
        source = conninfo_or_connection_or_pool
        if not isinstance(source, (str, psycopg.AsyncConnection, AsyncConnectionPool)):
            raise _wrong_source(source, "AsyncPostgreSQLPersister")
        self.connection = AsyncPostgreSQLConnection(source)
        self.table_name = table_name
        self._settings: dict[str, Any] = {"serde": serde, "snapshot_every": snapshot_every}
        self._owned_pool: AsyncConnectionPool[Any] | None = None
        super().__init__(_core(self.connection, table_name, serde, snapshot_every))
        self.set_serde_kwargs(serde_kwargs)

    @classmethod
    def from_values(
        cls,
        db_name: str,
        user: str,
        password: str | None,
        host: str,
        port: int | str,
        table_name: str = "turnout",
        use_pool: bool = False,
        **pool_kwargs: Any,
    ) -> Opening[AsyncPostgreSQLPersister]:
        """Burr's async constructor by values: await the result for a connected persister, or
        use it as an async context manager. With ``use_pool`` the persister opens a
        ``psycopg_pool.AsyncConnectionPool`` (``pool_kwargs`` are its arguments, e.g.
        ``min_size``) and ``close()`` closes it."""
        conninfo = _conninfo(db_name, user, password, host, port)

        async def open_() -> AsyncPostgreSQLPersister:
            if not use_pool:
                return await cls.connect(conninfo, table_name)
            pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
                conninfo, open=False, **pool_kwargs
            )
            try:
                await pool.open(wait=True)
            except Exception as exc:
                await pool.close()
                raise _unreachable(conninfo, exc, "AsyncPostgreSQLPersister.from_values") from exc
            persister = cls(pool, table_name)
            persister._owned_pool = pool
            return persister

        return Opening(open_)

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
        """Close the connection opened from a connection string, or the pool opened by
        ``from_values(..., use_pool=True)`` (not one you passed)."""
        await self.connection.close()
        if self._owned_pool is not None:
            await self._owned_pool.close()

    def __getstate__(self) -> dict[str, Any]:
        return _portable.copy_state(
            self,
            _portable.postgres_conninfo(self.connection.source, "AsyncPostgreSQLPersister"),
            self.table_name,
        )

    def __setstate__(self, state: dict[str, Any]) -> None:
        # The copy connects on first use (unpickling cannot await).
        AsyncPostgreSQLPersister.__init__(
            self, state["connect"], state["name"], state["serde_kwargs"], **state["settings"]
        )


def _core(
    connection: PostgreSQLConnection | AsyncPostgreSQLConnection,
    table_name: str,
    serde: Serde | None,
    snapshot_every: int,
) -> StorePersister:
    """The rules over turnout's tables, falling back to Burr's table ``table_name`` (read-only)
    for apps turnout has no record of: see ``turnout.core.burr_layout``."""
    return BurrReadingPersister(
        SQLStore(connection, POSTGRES, table_name),
        serde=serde,
        snapshot_every=snapshot_every,
        burr=BurrTable(connection, POSTGRES, table_name, fallback=_burr_default(table_name)),
    )


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


def _conninfo(db_name: str, user: str, password: str | None, host: str, port: int | str) -> str:
    """A psycopg 3 connection string from psycopg2-style values (Burr's ``from_values``)."""
    values = {"dbname": db_name, "user": user, "password": password, "host": host, "port": port}
    return make_conninfo(**{k: str(v) for k, v in values.items() if v not in (None, "")})


def _failure(what: str, exc: BaseException, source: object) -> PersistenceError:
    return PersistenceError(
        f"PostgreSQL at {_where(source)} failed to {what}: {type(exc).__name__}: "
        f"{' '.join(str(exc).split())}. Records already saved are unchanged."
    )


def _said(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {' '.join(str(exc).split())}"


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


def _burr_default(table_name: str) -> str | None:
    """Burr's default table, read when the persister is left at turnout's default prefix."""
    return BURR_DEFAULT_TABLE if table_name == "turnout" else None
