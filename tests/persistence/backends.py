"""Opening, closing and cleaning every persistence backend, for the tests and their child processes.

One backend is a ``kind`` (memory, sqlite, postgres, mysql, redis) and a mode (sync or async);
its id is ``kind`` or ``kind-async``. The service-backed kinds live in ``turnout.integrations``
and talk to the servers of this machine (see ``SERVICES``); their addresses can be moved with
``TURNOUT_TEST_POSTGRES``, ``TURNOUT_TEST_MYSQL`` (``host:port``) and ``TURNOUT_TEST_REDIS``.

This module is imported by ``conftest.py`` and by ``child.py`` (run in a subprocess), so it uses
neither pytest nor anything of the test process.
"""

from __future__ import annotations

import importlib
import inspect
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from turnout.core.memory import AsyncInMemoryPersister, InMemoryPersister
from turnout.core.serde import Serde
from turnout.core.sqlite import AsyncSQLitePersister, SQLitePersister

POSTGRES_DSN = os.environ.get("TURNOUT_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
_MYSQL_HOST, _, _MYSQL_PORT = os.environ.get("TURNOUT_TEST_MYSQL", "127.0.0.1:3306").partition(":")
MYSQL_KWARGS: dict[str, Any] = {
    "host": _MYSQL_HOST,
    "port": int(_MYSQL_PORT or 3306),
    "user": "root",
    "password": "",
    "database": "test",
}
REDIS_URL = os.environ.get("TURNOUT_TEST_REDIS", "redis://127.0.0.1:6379/0")

SQL_KINDS = ("sqlite", "postgres", "mysql")
SERVICE_KINDS = ("postgres", "mysql", "redis")


@dataclass(frozen=True, kw_only=True, slots=True)
class Service:
    """A server a backend needs: where it listens and how to start it on this machine."""

    name: str
    module: str  # turnout.integrations.<module>
    host: str
    port: int
    start: str


def _host_port(url: str, default_port: int) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or default_port


SERVICES: dict[str, Service] = {
    "postgres": Service(
        name="PostgreSQL",
        module="postgres",
        host=_host_port(POSTGRES_DSN, 5432)[0],
        port=_host_port(POSTGRES_DSN, 5432)[1],
        start="pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start",
    ),
    "mysql": Service(
        name="MariaDB",
        module="mysql",
        host=MYSQL_KWARGS["host"],
        port=MYSQL_KWARGS["port"],
        start="start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd",
    ),
    "redis": Service(
        name="Redis",
        module="redis",
        host=_host_port(REDIS_URL, 6379)[0],
        port=_host_port(REDIS_URL, 6379)[1],
        start='redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no',
    ),
}


def integration_module_exists(kind: str) -> bool:
    """Whether ``turnout/integrations/<module>.py`` (or a package of that name) is in the tree."""
    import turnout.integrations

    base = Path(turnout.integrations.__file__).parent / SERVICES[kind].module
    return base.with_suffix(".py").exists() or (base / "__init__.py").exists()


def reachable(kind: str) -> bool:
    """Whether the service of ``kind`` accepts TCP connections."""
    service = SERVICES[kind]
    try:
        with socket.create_connection((service.host, service.port), timeout=2):
            return True
    except OSError:
        return False


def free_port() -> int:
    """A local TCP port on which nothing listens (bound and released just now)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def _integration(kind: str) -> Any:
    return importlib.import_module(f"turnout.integrations.{SERVICES[kind].module}")


def location_for(kind: str, workdir: Path) -> Any:
    """Where a backend of ``kind`` keeps its data: a file, a DSN, connect kwargs or a URL."""
    if kind == "sqlite":
        return str(workdir / "turnout.db")
    if kind == "postgres":
        return POSTGRES_DSN
    if kind == "mysql":
        return dict(MYSQL_KWARGS)
    if kind == "redis":
        return REDIS_URL
    return None


def open_sync(
    kind: str,
    location: Any,
    prefix: str,
    *,
    snapshot_every: int = 100,
    serde: Serde | None = None,
    shared_with: Any = None,
) -> Any:
    """A synchronous persister of ``kind`` over the tables (or keys) named by ``prefix``.

    For memory, ``shared_with`` is a persister whose store the new one shares (there is no
    other way for two in-memory persisters to see the same records).
    """
    options: dict[str, Any] = {"serde": serde, "snapshot_every": snapshot_every}
    if kind == "memory":
        if shared_with is not None:
            from turnout.core.persistence import StorePersister, SyncPersister

            return SyncPersister(StorePersister(shared_with.core.store, **options))
        return InMemoryPersister(**options)
    if kind == "sqlite":
        return SQLitePersister(location, prefix, **options)
    if kind == "postgres":
        return _integration(kind).PostgreSQLPersister(location, table_name=prefix, **options)
    if kind == "mysql":
        return _integration(kind).MySQLPersister(dict(location), table_name=prefix, **options)
    if kind == "redis":
        return _integration(kind).RedisPersister(location, prefix=prefix, **options)
    raise ValueError(f"unknown backend kind {kind!r}")


async def open_async(
    kind: str,
    location: Any,
    prefix: str,
    *,
    snapshot_every: int = 100,
    serde: Serde | None = None,
    shared_with: Any = None,
) -> Any:
    """The asynchronous persister of ``kind`` (created inside the running event loop)."""
    options: dict[str, Any] = {"serde": serde, "snapshot_every": snapshot_every}
    if kind == "memory":
        if shared_with is not None:
            from turnout.core.persistence import AsyncPersister, StorePersister

            return AsyncPersister(StorePersister(shared_with.core.store, **options))
        return AsyncInMemoryPersister(**options)
    if kind == "sqlite":
        return AsyncSQLitePersister(location, prefix, **options)
    module = _integration(kind)
    if kind == "postgres":
        return await _connect(
            module.AsyncPostgreSQLPersister, location, table_name=prefix, **options
        )
    if kind == "mysql":
        cls = module.AsyncMySQLPersister
        if hasattr(cls, "connect"):
            return await cls.connect(**dict(location), table_name=prefix, **options)
        return cls(dict(location), table_name=prefix, **options)
    if kind == "redis":
        return await _connect(module.AsyncRedisPersister, location, prefix=prefix, **options)
    raise ValueError(f"unknown backend kind {kind!r}")


async def _connect(cls: Any, location: Any, **kwargs: Any) -> Any:
    """``await cls.connect(location, ...)`` where the class has it, else ``cls(location, ...)``."""
    if hasattr(cls, "connect"):
        return await cls.connect(location, **kwargs)
    return cls(location, **kwargs)


async def aclose(persister: Any) -> None:
    """Close a persister of any kind (``close`` may be sync, async or absent)."""
    close = getattr(persister, "close", None)
    if close is None:
        return
    outcome = close()
    if inspect.isawaitable(outcome):
        await outcome


def close_sync(persister: Any) -> None:
    close = getattr(persister, "close", None)
    if close is not None:
        close()


def table_names(prefix: str) -> list[str]:
    return [f"{prefix}_steps", f"{prefix}_apps", f"{prefix}_meta", f"{prefix}_journal"]


def drop_tables(kind: str, location: Any, tables: list[str]) -> None:
    """Drop ``tables`` through a connection of the test's own (never the persister's)."""
    if kind == "sqlite":
        import sqlite3

        database = sqlite3.connect(location, timeout=10)
        try:
            for table in tables:
                database.execute(f"DROP TABLE IF EXISTS {table}")
            database.commit()
        finally:
            database.close()
    elif kind == "postgres":
        import psycopg

        with psycopg.connect(location, autocommit=True, connect_timeout=10) as server:
            # A persister holding a lock must fail this test, not hang it.
            server.execute("SET lock_timeout = '10s'")
            for table in tables:
                server.execute(f"DROP TABLE IF EXISTS {table}")
    elif kind == "mysql":
        import pymysql  # type: ignore[import-untyped]

        connection = pymysql.connect(**location, autocommit=True, connect_timeout=10)
        try:
            with connection.cursor() as cursor:
                cursor.execute("SET SESSION lock_wait_timeout = 10")
                for table in tables:
                    cursor.execute(f"DROP TABLE IF EXISTS {table}")
        finally:
            connection.close()


def delete_redis_keys(location: str, prefix: str) -> int:
    """Delete every key whose name contains ``prefix`` (unique per test)."""
    import redis

    client = redis.Redis.from_url(location)
    try:
        keys = list(client.scan_iter(match=f"*{prefix}*", count=1000))
        return int(client.delete(*keys)) if keys else 0
    finally:
        client.close()


def clean(kind: str, location: Any, prefix: str) -> None:
    """Remove everything a test stored under ``prefix``."""
    if kind in SQL_KINDS:
        drop_tables(kind, location, table_names(prefix))
    elif kind == "redis":
        delete_redis_keys(location, prefix)


def execute_sql(kind: str, location: Any, statement: str, params: tuple[Any, ...] = ()) -> None:
    """Run one statement through a connection of the test's own (``?`` placeholders)."""
    if kind == "sqlite":
        import sqlite3

        database = sqlite3.connect(location, timeout=10)
        try:
            database.execute(statement, params)
            database.commit()
        finally:
            database.close()
    elif kind == "postgres":
        import psycopg

        with psycopg.connect(location, autocommit=True, connect_timeout=10) as server:
            server.execute(statement.replace("?", "%s"), params)
    elif kind == "mysql":
        import pymysql

        connection = pymysql.connect(**location, autocommit=True, connect_timeout=10)
        try:
            with connection.cursor() as cursor:
                cursor.execute(statement.replace("?", "%s"), params)
        finally:
            connection.close()
    else:
        raise ValueError(f"{kind!r} is not an SQL backend")


def remove_record(
    kind: str, location: Any, prefix: str, persister: Any, app_id: str, sequence_id: int
) -> None:
    """Remove one stored record behind the persister's back, with the backend's own means (an
    SQL DELETE, Redis ZREM and HDEL, a dict pop), as a hand edit or a bad restore would."""
    if kind in SQL_KINDS:
        execute_sql(
            kind,
            location,
            f"DELETE FROM {prefix}_steps WHERE app_id = ? AND sequence_id = ?",
            (app_id, sequence_id),
        )
    elif kind == "redis":
        import redis

        client = redis.Redis.from_url(location)
        try:
            for index in ("ids", "snapshots"):
                client.zrem(f"{prefix}:{index}::{app_id}", str(sequence_id))
            client.hdel(f"{prefix}:records::{app_id}", str(sequence_id))
        finally:
            client.close()
    else:
        del persister.core.store._records[("", app_id)][sequence_id]


def remove_app_row(kind: str, location: Any, prefix: str, persister: Any, app_id: str) -> None:
    """Remove an app's row but not its records (what a save racing a delete used to leave)."""
    if kind in SQL_KINDS:
        execute_sql(kind, location, f"DELETE FROM {prefix}_apps WHERE app_id = ?", (app_id,))
    elif kind == "redis":
        import redis

        client = redis.Redis.from_url(location)
        try:
            client.hdel(f"{prefix}:apps:", app_id)
        finally:
            client.close()
    else:
        del persister.core.store._apps[("", app_id)]
