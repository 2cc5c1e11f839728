"""MySQL and MariaDB persisters: ``MySQLPersister`` (PyMySQL) and ``AsyncMySQLPersister``
(aiomysql).

Records are kept by ``turnout.core.sql.SQLStore`` (tables ``<prefix>_steps``, ``<prefix>_apps``
and ``<prefix>_meta``, created on first use); this module only adapts the drivers to it::

    persister = MySQLPersister({"host": "127.0.0.1", "user": "root", "database": "test"})
    persister = await AsyncMySQLPersister.connect(host="127.0.0.1", user="root", database="test")

Keys are ``VARCHAR(255)`` in ``utf8mb4`` with the binary collation, so app ids and partition keys
compare exactly (case matters) — except for trailing spaces, which MySQL's ``PAD SPACE``
collations ignore. A persister given connection arguments opens its own connection (autocommit,
``utf8mb4``, strict ``TRADITIONAL`` SQL mode, so a key longer than 255 characters is an error
rather than silently cut) and closes it in ``close()``; a connection or pool you pass stays yours
to close. Every save is one transaction between explicit ``BEGIN`` and ``COMMIT``; the primary key
is the final guard, so a second application advancing the same app id gets ``ConcurrencyError``.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import weakref
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from contextvars import ContextVar
from typing import Any

from turnout.core.errors import PersistenceError
from turnout.core.persistence import AsyncPersister, StorePersister, SyncPersister
from turnout.core.serde import Serde
from turnout.core.sql import Dialect, SQLStore, check_name
from turnout.integrations import _portable, _reconnect
from turnout.integrations._guard import missing_extra

try:
    # Neither PyMySQL nor aiomysql ships type information.
    import aiomysql  # type: ignore[import-untyped]
    import pymysql  # type: ignore[import-untyped]
    import pymysql.cursors  # type: ignore[import-untyped]
except ImportError as _error:
    raise missing_extra(
        "turnout.integrations.mysql", 'pip install "turnout[mysql]"', _error
    ) from _error

__all__ = [
    "MYSQL",
    "AsyncMySQLConnection",
    "AsyncMySQLPersister",
    "MySQLConnection",
    "MySQLPersister",
]

# TEXT cannot be part of a primary key; utf8mb4_bin compares exactly (the server's default
# collation is usually case-insensitive, which would merge app ids "A" and "a").
_CHARSET = "CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
MYSQL = Dialect(
    name="MySQL",
    placeholder="%s",
    key_type=f"VARCHAR(255) {_CHARSET}",
    text_type=f"LONGTEXT {_CHARSET}",
    # Not INSERT IGNORE: IGNORE also turns strict-mode errors (a value too long) into warnings
    # and stores the value cut or coerced. This no-op update skips an existing row and no more.
    insert_ignore="INSERT",
    on_conflict_nothing=" ON DUPLICATE KEY UPDATE app_id = app_id",
    table_exists=(
        "SELECT 1 FROM information_schema.tables WHERE table_schema = DATABASE() "
        "AND lower(table_name) = lower(%s)"
    ),
)

# DDL commits implicitly in MySQL, so the transaction that creates the tables cannot keep a
# second first use from inserting the schema row too: that transaction holds this named lock.
_SETUP_LOCK = "turnout.setup"
_SETUP_TIMEOUT = 60
_DUPLICATE_KEY = 1062
# The client's codes for a connection the server dropped: "server has gone away", "lost
# connection during query", "lost connection (system error)"; and the server's answer to a
# statement over max_allowed_packet, after which it hangs up.
_LOST = {(2006,), (2013,), (2055,)}
_PACKET_TOO_LARGE = 1153
# Statements with fewer characters than this are far below any max_allowed_packet (>= 1 MiB by
# default): only longer ones are measured against the server's limit.
_CHECK_ABOVE = 64 * 1024

_OWN_DEFAULTS: dict[str, Any] = {
    "charset": "utf8mb4",
    "autocommit": True,
    "sql_mode": "TRADITIONAL",
}

Rows = list[tuple[Any, ...]]


class _Held:
    """The connection a transaction runs on, for the statements inside it."""

    __slots__ = ("connection", "setup_locked")

    def __init__(self, connection: Any) -> None:
        self.connection = connection
        self.setup_locked = False


class _Adapter(_reconnect.Reconnecting[Any]):
    """The ``SQLConnection`` protocol written once for both drivers, over ``_slot`` (one
    connection for a statement or a transaction), ``_query`` (run one statement on it),
    ``_connect`` (open the persister's own connection) and ``_alive``; the lost-connection rules
    are ``_reconnect.Reconnecting``'s.
    """

    _database = "MySQL"
    _driver_error = pymysql.err.MySQLError
    _pooled = False  # whether the async API, which takes a pool

    def __init__(self, source: Any) -> None:
        super().__init__(source)
        self._held: ContextVar[_Held | None] = ContextVar("turnout_mysql", default=None)
        self._limits: weakref.WeakKeyDictionary[Any, int] = weakref.WeakKeyDictionary()

    def _owner(self) -> str:
        if isinstance(self.source, dict):
            return _reconnect.OWN
        if isinstance(self.source, aiomysql.Pool):
            return _reconnect.POOL
        return _reconnect.GIVEN

    def _place(self) -> str:
        return _where(self.source)

    def _said(self, exc: BaseException) -> str:
        return _said(exc)

    def _in_transaction(self) -> Any:
        held = self._held.get()
        return None if held is None else held.connection

    def _gone(self, connection: Any, exc: BaseException) -> bool:
        """Whether ``exc`` means the server dropped ``connection`` (which is then closed)."""
        gone = isinstance(exc, pymysql.err.InterfaceError) or (
            isinstance(exc, pymysql.err.OperationalError) and exc.args[:1] in _LOST
        )
        if gone or not self._alive(connection):
            with contextlib.suppress(Exception):  # already closed, or its socket is gone
                connection.close()
            return True
        return False

    def _fix(self) -> str:
        pool = " or an aiomysql pool (it replaces broken connections)" if self._pooled else ""
        return (
            f"Pass the connection arguments instead ({self._persister}({{'host': ..., "
            f"'user': ..., 'database': ...}}) reconnects by itself){pool}."
        )

    async def _run(self, connection: Any, sql: str, params: Sequence[Any]) -> Rows:
        """``_query``, but a statement over the server's ``max_allowed_packet`` is refused
        before it is sent: the server would answer by dropping the connection."""
        size = 0
        if len(sql) + sum(len(p) for p in params if isinstance(p, (str, bytes))) > _CHECK_ABOVE:
            size = _packet_size(connection, sql, params)
            limit = self._limits.get(connection)
            if limit is None:
                rows = await self._query(connection, "SELECT @@max_allowed_packet", ())
                limit = self._limits[connection] = int(rows[0][0])
            if size > limit:
                raise _too_large(size, limit, self.source, sent=False)
        try:
            return await self._query(connection, sql, params)
        except pymysql.err.OperationalError as exc:
            if exc.args[:1] != (_PACKET_TOO_LARGE,):
                raise
            self._gone(connection, exc)  # the server hangs up after this error
            limit = self._limits.get(connection, 0)
            raise _too_large(size or len(sql), limit, self.source, sent=True) from exc

    async def _statement(self, connection: Any, sql: str, params: Sequence[Any]) -> Rows:
        rows = await self._run(connection, sql, params)
        if not connection.get_autocommit():
            # End the implicit transaction, or later reads see this snapshot forever.
            await self._query(connection, "COMMIT", ())
        return rows

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        if self._held.get() is not None:  # nested: part of the enclosing transaction
            yield
            return
        async with self._slot() as connection:
            try:
                await self._query(connection, "BEGIN", ())
            except pymysql.err.MySQLError as exc:
                replacement = await self._replace(connection, exc)
                if replacement is None:
                    if not self._alive(connection):
                        raise self._lost("begin", exc) from exc
                    raise _failure("begin a transaction", exc) from exc
                connection = replacement  # BEGIN failed: nothing to replay but itself
                try:
                    await self._query(connection, "BEGIN", ())
                except pymysql.err.MySQLError as again:
                    raise _failure("begin a transaction", again) from again
            held = _Held(connection)
            token = self._held.set(held)
            try:
                yield
            except BaseException:
                # The error in the body is the one to report; a connection that cannot roll
                # back is gone, and the server rolls its transaction back.
                with contextlib.suppress(pymysql.err.MySQLError, OSError):
                    await self._query(connection, "ROLLBACK", ())
                raise
            else:
                try:
                    await self._query(connection, "COMMIT", ())
                except pymysql.err.MySQLError as exc:
                    if self._gone(connection, exc):
                        raise self._lost("commit", exc) from exc
                    raise _failure("commit a transaction", exc) from exc
            finally:
                self._held.reset(token)
                if held.setup_locked and self._alive(connection):
                    with contextlib.suppress(pymysql.err.MySQLError, OSError):
                        await self._query(connection, "SELECT RELEASE_LOCK(%s)", [_SETUP_LOCK])

    def is_unique_violation(self, exc: BaseException) -> bool:
        return isinstance(exc, pymysql.err.IntegrityError) and exc.args[:1] == (_DUPLICATE_KEY,)

    async def lock_setup(self) -> None:
        """A named lock held until the setup transaction ends: MySQL commits ``CREATE TABLE``
        at once, so the transaction alone does not keep two first uses apart."""
        held = self._held.get()
        if held is None or held.setup_locked:
            return
        rows = await self._query(
            held.connection, "SELECT GET_LOCK(%s, %s)", [_SETUP_LOCK, _SETUP_TIMEOUT]
        )
        if not rows or rows[0][0] != 1:
            raise PersistenceError(
                f"MySQL: another process has been creating turnout's tables for "
                f"{_SETUP_TIMEOUT}s (named lock {_SETUP_LOCK!r}); retry when it is done."
            )
        held.setup_locked = True


class _Cursor(aiomysql.Cursor):  # type: ignore[misc]
    """aiomysql turns every server note into a Python warning (PyMySQL stopped in 1.0); the
    note of ``CREATE TABLE IF NOT EXISTS`` on existing tables is expected, not the user's."""

    async def _show_warnings(self, connection: Any) -> None:
        return None


class MySQLConnection(_Adapter):
    """The ``SQLConnection`` adapter over one PyMySQL connection, shared by threads in turn, or
    over ``pymysql.connect`` arguments (connected by ``connect()`` or on first use, reconnected
    when lost)."""

    _persister = "MySQLPersister"
    _connection_kind = "pymysql connection"

    def __init__(self, source: pymysql.connections.Connection | Mapping[str, Any]) -> None:
        super().__init__(dict(source) if isinstance(source, Mapping) else source)
        self._lock = threading.Lock()

    def _open(self) -> Any:
        try:
            return pymysql.connect(**{**_OWN_DEFAULTS, **self.source})
        except pymysql.err.OperationalError as exc:
            raise _unreachable(self.source, exc, self._persister) from exc

    def connect(self) -> None:
        """Connect now if the persister was given connection arguments."""
        if isinstance(self.source, dict):
            with self._lock:
                if self.owned is None:
                    self.owned = self._open()

    def close(self) -> None:
        """Close the connection opened from connection arguments, if any, for good."""
        with self._lock:
            self._closed = True
            if self.owned is not None and self.owned.open:
                self.owned.close()

    async def _connect(self) -> Any:
        return self._open()

    def _alive(self, connection: Any) -> bool:
        return bool(connection.open)

    @asynccontextmanager
    async def _slot(self) -> AsyncIterator[Any]:
        with self._lock:
            yield await self._own() if isinstance(self.source, dict) else self.source

    async def _query(self, connection: Any, sql: str, params: Sequence[Any]) -> Rows:
        with connection.cursor(pymysql.cursors.Cursor) as cursor:
            cursor.execute(sql, list(params) if params else None)
            return list(cursor.fetchall()) if cursor.description is not None else []


class AsyncMySQLConnection(_Adapter):
    """The ``SQLConnection`` adapter over an aiomysql connection or pool, or connection
    arguments (connected on first use, reconnected when lost)."""

    _persister = "AsyncMySQLPersister"
    _connection_kind = "aiomysql connection"
    _pooled = True

    def __init__(self, source: Any) -> None:
        super().__init__(source)
        self._lock = asyncio.Lock()

    async def _connect(self) -> Any:
        kwargs = {**_OWN_DEFAULTS, **self.source}
        if "database" in kwargs:  # PyMySQL's name; aiomysql only knows `db`
            kwargs["db"] = kwargs.pop("database")
        try:
            return await aiomysql.connect(**kwargs)
        except pymysql.err.OperationalError as exc:
            raise _unreachable(self.source, exc, f"await {self._persister}.connect") from exc

    def _alive(self, connection: Any) -> bool:
        return not connection.closed

    async def open(self) -> None:
        """Connect now if the persister was given connection arguments."""
        if isinstance(self.source, dict):
            async with self._lock:
                await self._own()

    async def close(self) -> None:
        """Close the connection opened from connection arguments, if any, for good."""
        async with self._lock:
            self._closed = True
            if self.owned is not None:
                await self.owned.ensure_closed()

    @asynccontextmanager
    async def _slot(self) -> AsyncIterator[Any]:
        if isinstance(self.source, aiomysql.Pool):
            try:
                connection = await self.source.acquire()
            except pymysql.err.MySQLError as exc:
                raise _failure("get a connection from the pool", exc) from exc
            try:
                yield connection
            finally:
                await self.source.release(connection)
        else:
            async with self._lock:
                yield await self._own() if isinstance(self.source, dict) else self.source

    async def _query(self, connection: Any, sql: str, params: Sequence[Any]) -> Rows:
        async with connection.cursor(_Cursor) as cursor:
            await cursor.execute(sql, list(params) if params else None)
            if cursor.description is None:
                return []
            return list(await cursor.fetchall())


class MySQLPersister(SyncPersister):
    """Save applications to MySQL or MariaDB.

    Args:
        connection_or_kwargs: a PyMySQL connection (stays yours: close it yourself), or the
            arguments of ``pymysql.connect`` (``host``, ``port``, ``user``, ``password``,
            ``database``, ...), for a connection opened here and closed by ``close()``.
        table_name: the prefix of the tables (``<prefix>_steps``, ``<prefix>_apps``, ...).
        serde_kwargs: Burr's serialisation arguments (e.g. ``{"pandas_kwargs": {"path": dir}}``),
            passed to codecs registered Burr's way (``@serialize.register``, Burr's plugins).
        serde: the codec registry (default: ``turnout.core.serde.DEFAULT_SERDE``).
        snapshot_every: a full snapshot every this many steps; the others store their delta.

    Like the other persisters it has Burr's ``from_values`` (here ``db_name, user, password,
    host, port``), ``from_config``, ``initialize()``, ``is_initialized()`` and ``cleanup()``.

    Raises:
        PersistenceError: the server named by the arguments cannot be reached.
    """

    def __init__(
        self,
        connection_or_kwargs: pymysql.connections.Connection | Mapping[str, Any],
        table_name: str = "turnout",
        serde_kwargs: dict[str, Any] | None = None,
        *,
        serde: Serde | None = None,
        snapshot_every: int = 100,
    ) -> None:
        check_name(table_name)
        source = connection_or_kwargs
        if not isinstance(source, (Mapping, pymysql.connections.Connection)):
            raise _wrong_source(source, "MySQLPersister")
        self.connection = MySQLConnection(source)
        self.connection.connect()
        store = SQLStore(self.connection, MYSQL, table_name)
        self.table_name = table_name
        self._settings: dict[str, Any] = {"serde": serde, "snapshot_every": snapshot_every}
        try:
            super().__init__(StorePersister(store, serde=serde, snapshot_every=snapshot_every))
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
        port: int = 3306,
        table_name: str = "turnout",
        serde_kwargs: dict[str, Any] | None = None,
        **options: Any,
    ) -> MySQLPersister:
        """A persister on a connection it opens (and ``close()``/``cleanup()`` closes), from the
        same values as ``PostgreSQLPersister.from_values``."""
        kwargs = {"database": db_name, "user": user, "host": host, "port": int(port)}
        if password:
            kwargs["password"] = password
        return cls(kwargs, table_name, serde_kwargs, **options)

    def close(self) -> None:
        """Close the connection opened from connection arguments (not one you passed)."""
        self.connection.close()

    def __getstate__(self) -> dict[str, Any]:
        # A copy sent to another process (a parallel action's child on a process pool, Ray or
        # Dask) opens its own connection with the same arguments.
        return _portable.copy_state(
            self,
            _portable.mysql_arguments(self.connection.source, "MySQLPersister"),
            self.table_name,
        )

    def __setstate__(self, state: dict[str, Any]) -> None:
        MySQLPersister.__init__(
            self, state["connect"], state["name"], state["serde_kwargs"], **state["settings"]
        )


class AsyncMySQLPersister(AsyncPersister):
    """``MySQLPersister`` for async applications, over aiomysql.

    Args:
        connection_or_kwargs: an aiomysql connection or pool (they stay yours to close), or the
            arguments of ``aiomysql.connect`` (``database`` is accepted for ``db``), connected on
            first use, or at once with ``await AsyncMySQLPersister.connect(**kwargs)``, and
            closed by ``close()``.

    The other arguments are ``MySQLPersister``'s.
    """

    def __init__(
        self,
        connection_or_kwargs: Any,
        table_name: str = "turnout",
        serde_kwargs: dict[str, Any] | None = None,
        *,
        serde: Serde | None = None,
        snapshot_every: int = 100,
    ) -> None:
        source = connection_or_kwargs
        if isinstance(source, Mapping):
            source = dict(source)
        elif not isinstance(source, (aiomysql.Connection, aiomysql.Pool)):
            raise _wrong_source(source, "AsyncMySQLPersister")
        self.connection = AsyncMySQLConnection(source)
        self.table_name = table_name
        self._settings: dict[str, Any] = {"serde": serde, "snapshot_every": snapshot_every}
        store = SQLStore(self.connection, MYSQL, table_name)
        super().__init__(StorePersister(store, serde=serde, snapshot_every=snapshot_every))
        self.set_serde_kwargs(serde_kwargs)

    @classmethod
    async def connect(
        cls,
        table_name: str = "turnout",
        *,
        serde: Serde | None = None,
        snapshot_every: int = 100,
        **kwargs: Any,
    ) -> AsyncMySQLPersister:
        """A persister connected now with ``aiomysql.connect(**kwargs)`` (``PersistenceError``
        if the server cannot be reached)."""
        persister = cls(kwargs, table_name, serde=serde, snapshot_every=snapshot_every)
        await persister.connection.open()
        return persister

    async def close(self) -> None:
        """Close the connection opened from connection arguments (not one you passed)."""
        await self.connection.close()

    def __getstate__(self) -> dict[str, Any]:
        return _portable.copy_state(
            self,
            _portable.mysql_arguments(self.connection.source, "AsyncMySQLPersister"),
            self.table_name,
        )

    def __setstate__(self, state: dict[str, Any]) -> None:
        # The copy connects on first use (unpickling cannot await).
        AsyncMySQLPersister.__init__(
            self, state["connect"], state["name"], state["serde_kwargs"], **state["settings"]
        )


def _failure(what: str, exc: BaseException) -> PersistenceError:
    return PersistenceError(
        f"MySQL failed to {what}: {type(exc).__name__}: {exc}. Records already saved are unchanged."
    )


def _where(source: object) -> str:
    """``host:port`` of connection arguments or a connection."""
    if isinstance(source, Mapping):
        return f"{source.get('host', 'localhost')}:{source.get('port', 3306)}"
    host, port = getattr(source, "host", None), getattr(source, "port", None)
    return f"{host}:{port}" if host is not None else "the server"


def _said(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _packet_size(connection: Any, sql: str, params: Sequence[Any]) -> int:
    """The bytes of ``sql`` with ``params`` as the driver sends it (plus the command byte)."""
    text = sql % tuple(connection.escape(param) for param in params) if params else sql
    return len(text.encode("utf-8")) + 1


def _too_large(size: int, limit: int, source: object, *, sent: bool) -> PersistenceError:
    mib = 1024 * 1024
    needed = min(((size * 5 // 4) // mib + 1) * mib, 1024 * mib)  # with room; 1 GiB at most
    over = f"max_allowed_packet of {limit:,} bytes" if limit else "max_allowed_packet"
    outcome = (
        "the server refused it and dropped the connection (the next call reconnects a "
        "connection the persister opened)"
        if sent
        else "it was not sent and the connection stays usable"
    )
    return PersistenceError(
        f"MySQL at {_where(source)}: a statement of {size:,} bytes (a step's state or delta) is "
        f"over the server's {over}, so nothing was saved: {outcome}. Keep less in the state, "
        f"or raise the server's limit (SET GLOBAL max_allowed_packet = {needed}; or "
        f"max_allowed_packet = {needed // mib}M in the server's configuration) and open a new "
        f"persister: a connection keeps the limit it started with."
    )


def _unreachable(kwargs: Mapping[str, Any], exc: BaseException, call: str) -> PersistenceError:
    where = f"{kwargs.get('host', 'localhost')}:{kwargs.get('port', 3306)}"
    database = kwargs.get("database", kwargs.get("db"))
    return PersistenceError(
        f"cannot connect to MySQL at {where} (database {database!r}, user "
        f"{kwargs.get('user')!r}). Start the server or fix the connection arguments given to "
        f"{call}(...), e.g. host='127.0.0.1', port=3306, user='root', database='test'. The "
        f"driver said: {exc}"
    )


def _wrong_source(source: object, persister: str) -> TypeError:
    if persister == "MySQLPersister":
        kinds = "a pymysql connection or a dict of pymysql.connect() arguments"
        wrong = isinstance(source, (aiomysql.Connection, aiomysql.Pool))
        hint = "; for an aiomysql connection or pool use AsyncMySQLPersister" if wrong else ""
    else:
        kinds = "an aiomysql connection or pool, or a dict of aiomysql.connect() arguments"
        wrong = isinstance(source, pymysql.connections.Connection)
        hint = "; for a pymysql connection use MySQLPersister" if wrong else ""
    return TypeError(f"{persister}() takes {kinds}, got {type(source).__name__}{hint}.")
