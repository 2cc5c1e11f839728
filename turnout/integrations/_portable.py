"""How the server persisters (Redis, PostgreSQL, MySQL) pickle: a copy sent to another process
(a parallel action's children on a process pool, Ray, Dask) reconnects with the same connection
arguments and keeps every setting, and never carries a live connection, lock or pool.

Each persister's ``__getstate__`` returns ``copy_state(...)`` with how to connect, as one of the
functions below derives it from what the persister was given, and its ``__setstate__`` runs its
own ``__init__`` on that. A connection or client the caller passed is described by the
parameters its driver exposes (as Burr's persisters do); one whose driver does not expose them
raises ``TypeError`` naming what to pass instead. The copy owns what it opens.

The drivers are imported inside the functions: each persister module has imported its own by the
time it calls one, and the others need not be installed.
"""

from __future__ import annotations

import inspect
from typing import Any

__all__ = ["copy_state", "mysql_arguments", "postgres_conninfo", "redis_arguments"]

_PLAIN = (str, bytes, int, float, bool, type(None))


def copy_state(persister: Any, connect: Any, name: str) -> dict[str, Any]:
    """What a pickled copy of ``persister`` needs: how to connect (``connect``), the table name
    or key prefix (``name``), the serde and snapshot settings it was built with (its
    ``_settings``) and Burr's ``serde_kwargs`` as they are now."""
    return {
        "connect": connect,
        "name": name,
        "settings": dict(persister._settings),
        "serde_kwargs": dict(persister.serde_kwargs),
    }


def redis_arguments(client: Any, persister: str) -> dict[str, Any]:
    """The constructor arguments that create a client connecting as ``client`` (a
    ``redis.Redis`` or ``redis.asyncio.Redis``) does: the plain values of its pool's connection
    arguments (host, port, db, username, password, timeouts, TLS files, ...), where Burr's
    persister keeps host, port, db and password."""
    pool = client.connection_pool
    kwargs = dict(pool.connection_kwargs)
    if kwargs.get("credential_provider") is not None:
        raise TypeError(
            f"a {persister} whose client authenticates with a credential_provider cannot be "
            f"sent to another process (the provider is not plain data): create the client with "
            f"username= and password=, or give {persister} a URL such as "
            f"'redis://user:password@host:6379/0'"
        )
    if "path" in kwargs:
        kwargs["unix_socket_path"] = kwargs.pop("path")
    if "SSL" in pool.connection_class.__name__:
        kwargs["ssl"] = True
    accepted = inspect.signature(type(client).__init__).parameters
    return {k: v for k, v in kwargs.items() if k in accepted and isinstance(v, _PLAIN)}


def postgres_conninfo(source: Any, persister: str) -> str:
    """A connection string that connects as ``source`` (a connection string, a psycopg
    connection or pool) does. A connection says its parameters, password included, through
    ``info``; a pool keeps the string it was given and its connection arguments. The copy opens
    one connection of its own, never a pool."""
    import psycopg
    from psycopg.conninfo import make_conninfo
    from psycopg_pool import AsyncConnectionPool, ConnectionPool

    if isinstance(source, str):
        return source
    fix = (
        f"Give {persister} a connection string ({persister}('postgresql://user@host:5432/db')) "
        f"or build it with {persister}.from_values(...)"
    )
    if isinstance(source, (ConnectionPool, AsyncConnectionPool)):
        conninfo, kwargs = source.conninfo, source.kwargs
        if not isinstance(conninfo, str) or not isinstance(kwargs, (dict, type(None))):
            raise TypeError(
                f"this {persister} cannot be sent to another process: its pool computes its "
                f"connection string or arguments with a function, which a copy cannot call "
                f"again. {fix}"
            )
        known = {option.keyword.decode() for option in psycopg.pq.Conninfo.get_defaults()}
        return make_conninfo(conninfo, **{k: v for k, v in (kwargs or {}).items() if k in known})
    try:
        info = source.info
        params: dict[str, Any] = dict(info.get_parameters())
        if info.password:
            params["password"] = info.password
        return make_conninfo(**params)
    except psycopg.Error as exc:
        raise TypeError(
            f"this {persister} cannot be sent to another process: the connection parameters "
            f"of its {type(source).__name__} cannot be read ({type(exc).__name__}: {exc}). {fix}"
        ) from exc


def mysql_arguments(source: Any, persister: str) -> dict[str, Any]:
    """Connection arguments that connect as ``source`` (a dict of them, a PyMySQL connection,
    or an aiomysql connection or pool) does. PyMySQL keeps a connection's parameters in public
    attributes; aiomysql keeps a connection's password and a pool's arguments private, so those
    are refused with the fix."""
    import pymysql  # type: ignore[import-untyped]

    if isinstance(source, dict):
        return dict(source)
    if isinstance(source, pymysql.connections.Connection):
        kwargs: dict[str, Any] = {
            "host": source.host,
            "port": source.port,
            "user": _text(source.user),
            "password": _text(source.password),
            "database": _text(source.db),
            "charset": source.charset,
            "unix_socket": source.unix_socket,
        }
        return {k: v for k, v in kwargs.items() if v not in (None, "")}
    kind = "pool" if "Pool" in type(source).__name__ else "connection"
    raise TypeError(
        f"an {persister} on an aiomysql {kind} cannot be sent to another process: aiomysql "
        f"does not say how to connect again (the password is private). Build it from connection "
        f"arguments instead: {persister}({{'host': ..., 'user': ..., 'password': ..., "
        f"'db': ...}}) or await {persister}.connect(host=..., ...)"
    )


def _text(value: Any) -> Any:
    return value.decode("utf-8") if isinstance(value, bytes) else value
