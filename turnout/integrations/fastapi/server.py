"""``turnout serve``: a FastAPI app around ``serve()`` run by uvicorn, with its workers.

uvicorn starts each worker in a fresh process and imports the app from a string, so the
command's choices travel in environment variables (``TURNOUT_SERVE_*``) that ``create_app``
reads in every worker.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from turnout.core.errors import GraphSetupError
from turnout.core.sqlite import AsyncSQLitePersister
from turnout.integrations.fastapi.relay import LocalRelay, Relay
from turnout.integrations.fastapi.router import serve

__all__ = ["create_app", "load_factory", "open_persister", "open_relay", "run"]

_ENV = {
    "factory": "TURNOUT_SERVE_FACTORY",
    "db": "TURNOUT_SERVE_DB",
    "table": "TURNOUT_SERVE_TABLE",
    "on_busy": "TURNOUT_SERVE_ON_BUSY",
    "pool_size": "TURNOUT_SERVE_POOL_SIZE",
    "cache_size": "TURNOUT_SERVE_CACHE_SIZE",
}
POOL_SIZE = 16
"""PostgreSQL connections per worker by default: a request holds one per statement or save,
so a pool smaller than the requests in flight makes them queue for connections (the default
of ``psycopg_pool``, 4, did at 16 concurrent clients)."""


def load_factory(spec: str) -> Any:
    """``module:attribute`` -> the factory it names."""
    module, _, attribute = spec.partition(":")
    if not module or not attribute:
        raise GraphSetupError([f"the factory {spec!r} is not module:attribute (e.g. app:factory)"])
    return getattr(importlib.import_module(module), attribute)


def open_persister(
    url: str, table: str = "turnout", *, pool_size: int = POOL_SIZE
) -> tuple[Any, Any]:
    """The async persister for ``url`` (``sqlite:///path`` or ``postgresql://...``) and the
    pool to open when serving starts (``None`` for SQLite): ``pool_size`` connections."""
    if url.startswith("sqlite:///"):
        return AsyncSQLitePersister(url.removeprefix("sqlite:///"), table), None
    if url.startswith(("postgresql://", "postgres://")):
        from psycopg_pool import AsyncConnectionPool

        from turnout.integrations.postgres import AsyncPostgreSQLPersister

        if not isinstance(pool_size, int) or pool_size < 1:
            raise GraphSetupError([f"pool_size={pool_size!r}: use a number of connections >= 1"])
        pool: Any = AsyncConnectionPool(
            url, open=False, min_size=pool_size, max_size=pool_size,
            kwargs={"autocommit": True},
        )  # fmt: skip
        return AsyncPostgreSQLPersister(pool, table), pool
    raise GraphSetupError(
        [f"--db {url!r}: use sqlite:///path/to/file.db or postgresql://user@host:5432/db"]
    )


def open_relay(url: str, table: str = "turnout") -> Relay:
    """The relay for ``url``: ``PostgresRelay`` for PostgreSQL (runs followed from any worker
    and host), ``LocalRelay`` otherwise."""
    if url.startswith(("postgresql://", "postgres://")):
        from turnout.integrations.fastapi.pgrelay import PostgresRelay

        return PostgresRelay(url, namespace=table)
    return LocalRelay()


def create_app() -> FastAPI:
    """The app one worker serves, configured by ``TURNOUT_SERVE_*`` (see ``run``)."""
    factory = load_factory(os.environ[_ENV["factory"]])
    url, table = os.environ[_ENV["db"]], os.environ.get(_ENV["table"], "turnout")
    persister, pool = open_persister(url, table, pool_size=_int_env("pool_size", POOL_SIZE))
    relay = open_relay(url, table)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if pool is not None:
            await pool.open(wait=True)
        await persister.initialize()
        try:
            yield
        finally:
            await relay.aclose()
            await persister.close()
            if pool is not None:
                await pool.close()

    app = FastAPI(title="turnout", lifespan=lifespan)
    on_busy = os.environ.get(_ENV["on_busy"], "reject")
    cache_size = _int_env("cache_size", 1024)
    app.include_router(
        serve(factory, persister=persister, on_busy=on_busy, cache_size=cache_size, relay=relay)
    )
    return app


def _int_env(name: str, default: int) -> int:
    text = os.environ.get(_ENV[name])
    if text is None:
        return default
    if not text.strip().isdigit():
        raise GraphSetupError([f"{_ENV[name]}={text!r}: use a whole number, e.g. {default}"])
    return int(text)


def run(
    factory: str, *, db: str, table: str = "turnout", host: str = "127.0.0.1", port: int = 8000,
    workers: int = 1, on_busy: str = "reject", pool_size: int | None = None,
    cache_size: int | None = None, proxy_headers: bool = True,
    forwarded_allow_ips: str | None = None,
) -> None:  # fmt: skip
    """Serve ``factory`` (``module:attribute``) with uvicorn until interrupted.

    ``pool_size`` (PostgreSQL connections per worker) and ``cache_size`` (applications kept
    per worker) default to ``TURNOUT_SERVE_POOL_SIZE``/``TURNOUT_SERVE_CACHE_SIZE``, else 16
    and 1024. ``proxy_headers`` and ``forwarded_allow_ips`` are uvicorn's: behind a reverse
    proxy, the client address and scheme come from ``X-Forwarded-For``/``X-Forwarded-Proto``
    when the request comes from one of ``forwarded_allow_ips`` (default: uvicorn's,
    ``127.0.0.1`` or ``$FORWARDED_ALLOW_IPS``).
    """
    import uvicorn

    load_factory(factory)  # fail here, once, rather than in every worker
    os.environ.update(
        {_ENV["factory"]: factory, _ENV["db"]: db, _ENV["table"]: table, _ENV["on_busy"]: on_busy}
    )
    for name, value in (("pool_size", pool_size), ("cache_size", cache_size)):
        if value is not None:
            os.environ[_ENV[name]] = str(value)
    uvicorn.run(
        "turnout.integrations.fastapi.server:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        proxy_headers=proxy_headers,
        forwarded_allow_ips=forwarded_allow_ips,
    )
