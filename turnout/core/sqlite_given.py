"""An ``SQLConnection`` over an async SQLite connection the caller opened (``aiosqlite``).

Burr's ``AsyncSQLitePersister(connection, table_name, serde_kwargs)`` takes an open
``aiosqlite`` connection; ``AsyncSQLitePersister(connection=...)`` does the same here. The
connection is driven by duck typing (``execute_fetchall``, ``execute``, ``commit``, ``close``),
so the core never imports ``aiosqlite``.

The caller's connection keeps its settings (turnout's own connections add WAL mode and a busy
timeout). One connection serves every coroutine, so a write transaction (``BEGIN IMMEDIATE`` ...
``COMMIT``) holds an ``asyncio.Lock`` that statements from other tasks wait on: they never run
inside another task's transaction or see its uncommitted rows.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Sequence
from types import TracebackType
from typing import Any, Protocol

from turnout.core.errors import PersistenceError

__all__ = ["AsyncConnectionLike", "GivenAsyncSQLiteConnection", "is_async_connection"]


class AsyncConnectionLike(Protocol):
    """The part of an ``aiosqlite.Connection`` the persister uses."""

    async def execute_fetchall(
        self, sql: str, parameters: Sequence[Any] = ...
    ) -> Any: ...  # an iterable of rows

    async def commit(self) -> None: ...

    async def close(self) -> None: ...


def is_async_connection(value: object) -> bool:
    """Whether ``value`` looks like an open ``aiosqlite`` connection (not a path)."""
    return callable(getattr(value, "execute_fetchall", None)) and callable(
        getattr(value, "commit", None)
    )


class GivenAsyncSQLiteConnection:
    """The ``SQLConnection`` adapter over a caller's ``aiosqlite`` connection."""

    def __init__(self, connection: AsyncConnectionLike) -> None:
        self.connection = connection
        self.path = ""  # the caller's connection does not say which file: messages leave it out
        self._lock = asyncio.Lock()
        self._owner: asyncio.Task[Any] | None = None
        self._depth = 0

    def _mine(self) -> bool:
        return self._owner is not None and self._owner is asyncio.current_task()

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        if self._mine():
            return await self._execute(sql, params)
        async with self._lock:
            rows = await self._execute(sql, params)
            # Outside a transaction: Python's sqlite3 may have opened one implicitly (DML in its
            # default isolation level); commit it so nothing is left pending on the connection.
            if getattr(self.connection, "in_transaction", True):
                await self.connection.commit()
            return rows

    async def _execute(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        return [tuple(row) for row in await self.connection.execute_fetchall(sql, tuple(params))]

    def transaction(self) -> _GivenTransaction:
        return _GivenTransaction(self)

    def is_unique_violation(self, exc: BaseException) -> bool:
        return isinstance(exc, sqlite3.IntegrityError)

    async def lock_setup(self) -> None:
        """Nothing to do: ``BEGIN IMMEDIATE`` already lets one writer in at a time."""

    async def close(self) -> None:
        await self.connection.close()


class _GivenTransaction:
    def __init__(self, connection: GivenAsyncSQLiteConnection) -> None:
        self._c = connection

    async def __aenter__(self) -> None:
        c = self._c
        if c._mine():
            c._depth += 1
            return
        await c._lock.acquire()
        try:
            await c._execute("BEGIN IMMEDIATE", ())
        except BaseException as exc:
            c._lock.release()
            if isinstance(exc, sqlite3.Error):
                raise PersistenceError(
                    f"SQLite could not start a write transaction on the given connection: "
                    f"{exc}. Another connection may hold the database; retry. Records already "
                    f"saved are unchanged."
                ) from exc
            raise
        c._owner = asyncio.current_task()
        c._depth = 1

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        c = self._c
        c._depth -= 1
        if c._depth > 0:
            return
        try:
            try:
                await c._execute("ROLLBACK" if exc_type else "COMMIT", ())
            except sqlite3.Error as error:
                if exc_type is None:
                    raise PersistenceError(
                        f"SQLite could not commit on the given connection: {error}. Records "
                        f"already saved are unchanged."
                    ) from error
        finally:
            c._owner = None
            c._lock.release()
