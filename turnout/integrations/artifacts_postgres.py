"""Artifact stores in PostgreSQL: ``PostgreSQLArtifactStore`` and
``AsyncPostgreSQLArtifactStore``, for deployments whose processes share a database but no disk.

Blobs live in one table (default ``turnout_artifacts``, created on first use), one row per
digest, the bytes in a ``bytea`` column::

    store = PostgreSQLArtifactStore("postgresql://postgres@127.0.0.1:5432/test")
    ref = store.put(report_bytes, media_type="application/pdf")
    store.get(ref)                       # checked against the digest

A write is one ``INSERT ... ON CONFLICT DO NOTHING`` (atomic: a reader sees the whole row or no
row). ``bytea`` holds up to 1 GB and a blob travels in one piece, so keep artifacts to what fits
comfortably in memory (tens of MB); bigger files belong on a shared disk or an object store.
Connections are handled as by the PostgreSQL persisters (``turnout.integrations.postgres``): a
connection string is opened here (and reconnected when dropped), a connection or pool you pass
stays yours to close.
"""

from __future__ import annotations

from typing import Any

from turnout.core.artifacts import ArtifactStore, AsyncArtifactStore
from turnout.core.sql import check_name
from turnout.integrations._guard import missing_extra

try:
    import psycopg
    from psycopg_pool import AsyncConnectionPool, ConnectionPool
except ImportError as _error:
    raise missing_extra(
        "turnout.integrations.artifacts_postgres", 'pip install "turnout[postgres]"', _error
    ) from _error

from turnout.integrations.postgres import (
    AsyncPostgreSQLConnection,
    AsyncSource,
    PostgreSQLConnection,
    Source,
)

__all__ = ["AsyncPostgreSQLArtifactStore", "PostgreSQLArtifactStore"]

DEFAULT_TABLE = "turnout_artifacts"


class _Connection(PostgreSQLConnection):
    _persister = "PostgreSQLArtifactStore"


class _AsyncConnection(AsyncPostgreSQLConnection):
    _persister = "AsyncPostgreSQLArtifactStore"


class _Table:
    """The ``ArtifactBackend`` over one table, written once for psycopg's sync and async
    connections (over the sync one its coroutines never suspend)."""

    def __init__(self, connection: PostgreSQLConnection | AsyncPostgreSQLConnection, table: str):
        self.connection = connection
        self.table = check_name(table, "artifact table name")
        self._ready = False

    def describe(self, digest: str | None = None) -> str:
        where = f"PostgreSQL table {self.table!r} at {self.connection._place()}"
        return where if digest is None else f"the row {digest[:12]}... of {where}"

    async def _run(self, sql: str, params: list[Any]) -> list[tuple[Any, ...]]:
        if not self._ready:
            async with self.connection.transaction():
                # Concurrent CREATE TABLE IF NOT EXISTS of one table can fail: take turns.
                await self.connection.lock_setup()
                await self.connection.execute(
                    f"CREATE TABLE IF NOT EXISTS {self.table} (digest TEXT PRIMARY KEY, "
                    f"size_bytes BIGINT NOT NULL, data BYTEA NOT NULL, "
                    f"created_at TIMESTAMPTZ NOT NULL DEFAULT now())"
                )
            self._ready = True
        return await self.connection.execute(sql.format(table=self.table), params)

    async def write(self, digest: str, data: bytes) -> None:
        await self._run(
            "INSERT INTO {table} (digest, size_bytes, data) VALUES (%s, %s, %s) "
            "ON CONFLICT (digest) DO NOTHING",
            [digest, len(data), data],
        )

    async def read(self, digest: str) -> bytes | None:
        rows = await self._run("SELECT data FROM {table} WHERE digest = %s", [digest])
        return bytes(rows[0][0]) if rows else None

    async def contains(self, digest: str) -> bool:
        return bool(await self._run("SELECT 1 FROM {table} WHERE digest = %s", [digest]))

    async def remove(self, digest: str) -> bool:
        rows = await self._run("DELETE FROM {table} WHERE digest = %s RETURNING 1", [digest])
        return bool(rows)


class PostgreSQLArtifactStore(ArtifactStore):
    """Artifacts in a PostgreSQL table (see the module docstring).

    Args:
        conninfo_or_connection_or_pool: a connection string (opened here in autocommit mode,
            closed by ``close()``), a ``psycopg.Connection`` or a
            ``psycopg_pool.ConnectionPool`` (both stay yours to close; a pool for many threads).
        table_name: the table (letters, digits, underscores).

    Raises:
        PersistenceError: the server named by a connection string cannot be reached.
    """

    def __init__(self, conninfo_or_connection_or_pool: Source, table_name: str = DEFAULT_TABLE):
        source = conninfo_or_connection_or_pool
        if not isinstance(source, (str, psycopg.Connection, ConnectionPool)):
            raise TypeError(_wrong_source(source, sync=True))
        check_name(table_name, "artifact table name")
        self.connection = _Connection(source)
        self.connection.connect()
        self.table_name = table_name
        super().__init__(_Table(self.connection, table_name))

    def close(self) -> None:
        """Close the connection opened from a connection string (not one you passed)."""
        self.connection.close()


class AsyncPostgreSQLArtifactStore(AsyncArtifactStore):
    """``PostgreSQLArtifactStore`` for async code, over psycopg's async API.

    Args:
        conninfo_or_connection_or_pool: a connection string (connected on first use; closed by
            ``close()``), a ``psycopg.AsyncConnection`` or an open
            ``psycopg_pool.AsyncConnectionPool`` (both stay yours to close).
        table_name: the table (letters, digits, underscores).
    """

    def __init__(
        self, conninfo_or_connection_or_pool: AsyncSource, table_name: str = DEFAULT_TABLE
    ):
        source = conninfo_or_connection_or_pool
        if not isinstance(source, (str, psycopg.AsyncConnection, AsyncConnectionPool)):
            raise TypeError(_wrong_source(source, sync=False))
        check_name(table_name, "artifact table name")
        self.connection = _AsyncConnection(source)
        self.table_name = table_name
        super().__init__(_Table(self.connection, table_name))

    async def close(self) -> None:
        """Close the connection opened from a connection string (not one you passed)."""
        await self.connection.close()


def _wrong_source(source: object, *, sync: bool) -> str:
    if sync:
        kinds = "a connection string, a psycopg.Connection or a psycopg_pool.ConnectionPool"
        other: tuple[type, ...] = (psycopg.AsyncConnection, AsyncConnectionPool)
        hint = "; for an async connection or pool use AsyncPostgreSQLArtifactStore"
    else:
        kinds = (
            "a connection string, a psycopg.AsyncConnection or a psycopg_pool.AsyncConnectionPool"
        )
        other = (psycopg.Connection, ConnectionPool)
        hint = "; for a sync connection or pool use PostgreSQLArtifactStore"
    name = "PostgreSQLArtifactStore" if sync else "AsyncPostgreSQLArtifactStore"
    shown = hint if isinstance(source, other) else ""
    return f"{name}() takes {kinds}, got {type(source).__name__}{shown}."
