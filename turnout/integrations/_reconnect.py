"""What the SQL adapters (PostgreSQL, MySQL) say when the server drops a connection, once.

The rules they share: a connection the persister opened itself is reopened between
transactions; a read, or the ``BEGIN`` of a transaction, that met a dropped connection is
repeated once on the new connection (nothing was written); a transaction cut after it began is
never replayed, and the error says whether its write was applied.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, Generic, TypeVar

from turnout.core.errors import PersistenceError

__all__ = ["Reconnecting", "closed", "given_broken", "is_read", "lost"]

C = TypeVar("C")
Rows = list[tuple[Any, ...]]

_DURING = {
    "read": "while reading: nothing was written",
    "write": "during a statement outside a transaction: it may or may not be applied",
    "begin": "before the transaction began: nothing was written",
    "run": (
        "in the middle of a transaction: the server rolls back what was not committed, so this "
        "write (a save, delete or prune) was not applied"
    ),
    "commit": (
        "while committing: the write (a save, delete or prune) may or may not have been "
        "applied. Load the app to find out (e.g. ApplicationBuilder().initialize_from("
        "persister, ...)); saving the same sequence id again is safe: if the first save was "
        "applied, the second gets ConcurrencyError"
    ),
}

OWN, POOL, GIVEN = "own", "pool", "given"


def is_read(sql: str) -> bool:
    """Whether ``sql`` only reads, so that running it again after a lost connection is safe."""
    return sql.lstrip()[:6].upper() == "SELECT"


def lost(
    database: str, where: str, stage: str, owner: str, fix: str, said: str
) -> PersistenceError:
    """The server at ``where`` dropped the connection at ``stage`` (a key of ``_DURING``);
    ``owner`` says who opened the connection: the persister, a pool, or the caller."""
    if owner == OWN:
        then = "The persister reconnects on its next call."
    elif owner == POOL:
        then = "The pool replaces the broken connection on the next call."
    else:
        then = (
            f"The connection you passed is closed now and turnout does not reopen a "
            f"connection it was given. {fix}"
        )
    return PersistenceError(
        f"{database} at {where} dropped the connection {_DURING[stage]}. {then} "
        f"The driver said: {said}"
    )


def given_broken(
    database: str, where: str, kind: str, persister: str, fix: str, said: str
) -> PersistenceError:
    """The ``kind`` of connection the caller passed to ``persister`` was dropped by the server."""
    return PersistenceError(
        f"the {kind} passed to {persister} is broken: {database} at {where} dropped it "
        f"({said}), and turnout does not reopen a connection it was given. {fix}"
    )


def closed(database: str, where: str, persister: str) -> PersistenceError:
    """``persister.close()`` was called: it does not reconnect any more."""
    return PersistenceError(
        f"this {persister} was closed (close() was called), so it no longer connects to "
        f"{database} at {where}: create a new {persister}(...) to load or save again."
    )


class Reconnecting(Generic[C]):
    """The rules above written once over connections of type ``C``, for the ``SQLConnection``
    adapters of both SQL modules: the persister's own connection (``_own``), replacing a dropped
    one (``_replace``), the error that says what a drop did (``_lost``), and ``execute``.

    A subclass (one per driver API) says which database it is, who opened ``source``
    (``_owner``), how its connections are told alive and reopened, and how a statement runs.
    """

    _database = ""
    _persister = ""
    _connection_kind = ""
    _driver_error: type[Exception] = Exception

    def __init__(self, source: Any) -> None:
        self.source = source
        self.owned: C | None = None  # the connection opened from connection arguments
        self._closed = False

    def _owner(self) -> str:
        """``OWN`` (connection arguments), ``POOL`` or ``GIVEN`` (a connection passed in)."""
        raise NotImplementedError

    def _place(self) -> str:
        """``host:port`` of ``source``, for messages."""
        raise NotImplementedError

    def _said(self, exc: BaseException) -> str:
        """What the driver said, for messages."""
        raise NotImplementedError

    def _fix(self) -> str:
        """The sentence naming what to pass instead of a connection that is not reopened."""
        raise NotImplementedError

    def _alive(self, connection: C) -> bool:
        raise NotImplementedError

    def _gone(self, connection: C, exc: BaseException) -> bool:
        """Whether ``exc`` means the server dropped ``connection``."""
        return not self._alive(connection)

    async def _connect(self) -> C:
        """Open the persister's own connection."""
        raise NotImplementedError

    def _slot(self) -> AbstractAsyncContextManager[C]:
        """One connection for a statement or a transaction."""
        raise NotImplementedError

    def _in_transaction(self) -> C | None:
        """The connection of the transaction this task is in, if any."""
        raise NotImplementedError

    async def _query(self, connection: C, sql: str, params: Sequence[Any]) -> Rows:
        raise NotImplementedError

    async def _run(self, connection: C, sql: str, params: Sequence[Any]) -> Rows:
        """A statement inside a transaction."""
        return await self._query(connection, sql, params)

    async def _statement(self, connection: C, sql: str, params: Sequence[Any]) -> Rows:
        """A statement outside a transaction, committed."""
        raise NotImplementedError

    async def _own(self) -> C:
        """The persister's own connection, reopened first if the server dropped it."""
        if self._closed:
            raise closed(self._database, self._place(), self._persister)
        if self.owned is None or not self._alive(self.owned):
            self.owned = await self._connect()
        return self.owned

    async def _replace(self, connection: C, exc: BaseException) -> C | None:
        """A new connection for ``connection`` if the server dropped it and it is the
        persister's own; ``None`` if ``exc`` is not a lost connection or a pool lent it (the
        pool discards it); a ``PersistenceError`` naming the fix if the caller passed it."""
        if not self._gone(connection, exc):
            return None
        if self._owner() == OWN:
            self.owned = await self._connect()
            return self.owned
        if connection is self.source:
            raise given_broken(
                self._database,
                self._place(),
                self._connection_kind,
                self._persister,
                self._fix(),
                self._said(exc),
            ) from exc
        return None

    def _lost(self, stage: str, exc: BaseException) -> PersistenceError:
        return lost(
            self._database, self._place(), stage, self._owner(), self._fix(), self._said(exc)
        )

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> Rows:
        held = self._in_transaction()
        if held is not None:
            try:
                return await self._run(held, sql, params)
            except self._driver_error as exc:
                if self._gone(held, exc):
                    raise self._lost("run", exc) from exc
                raise
        async with self._slot() as connection:
            try:
                return await self._statement(connection, sql, params)
            except self._driver_error as exc:
                replacement = await self._replace(connection, exc)
                # Only a read is repeated: SQLStore writes inside transaction(), and a write
                # that lost its connection may have been applied.
                if replacement is None or not is_read(sql):
                    if not self._alive(connection):
                        raise self._lost("read" if is_read(sql) else "write", exc) from exc
                    raise
            return await self._statement(replacement, sql, params)
