"""Fixtures running one test body against every artifact store, sync and async.

``store`` is parametrised over the local directory, PostgreSQL and Redis stores, each sync and
async (ids ``local``, ``local-async``, ...). It gives a ``StoreHarness``: the store under test
plus helpers that call it the same way whether it is sync or async, damage a stored blob behind
the store's back, and count the blobs stored. Every test gets its own directory, table or key
prefix, dropped afterwards. A server that does not answer skips its tests, except with
``CI=true``, where it fails (as in ``tests/persistence``).
"""

from __future__ import annotations

import asyncio
import inspect
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.persistence import backends
from turnout.core.artifacts import ArtifactRef, AsyncLocalArtifactStore, LocalArtifactStore

STORE_IDS = ["local", "local-async", "postgres", "postgres-async", "redis", "redis-async"]


def require_service(kind: str) -> None:
    """Skip (or, under CI, fail) when the server of ``kind`` does not answer."""
    if kind not in backends.SERVICES:
        return
    pytest.importorskip("psycopg" if kind == "postgres" else "redis")
    service = backends.SERVICES[kind]
    if not backends.reachable(kind):
        message = (
            f"{service.name} is not reachable at {service.host}:{service.port}; "
            f"start it with: {service.start}"
        )
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)


class StoreHarness:
    """One artifact store under test, with helpers that hide whether it is sync or async."""

    def __init__(self, store_id: str, workdir: Path) -> None:
        self.id = store_id
        self.kind = store_id.split("-")[0]
        self.is_async = store_id.endswith("-async")
        self.name = f"t_{uuid.uuid4().hex[:16]}"  # the table or key prefix of this test alone
        self.workdir = workdir
        self.loop = asyncio.new_event_loop()
        self.store: Any = self.run(self._open())

    async def _open(self) -> Any:
        if self.kind == "local":
            root = self.workdir / "artifacts"
            return AsyncLocalArtifactStore(root) if self.is_async else LocalArtifactStore(root)
        if self.kind == "postgres":
            from turnout.integrations import artifacts_postgres as pg

            cls: Any = (
                pg.AsyncPostgreSQLArtifactStore if self.is_async else pg.PostgreSQLArtifactStore
            )
            return cls(backends.POSTGRES_DSN, self.name)
        from turnout.integrations import artifacts_redis as rd

        cls = rd.AsyncRedisArtifactStore if self.is_async else rd.RedisArtifactStore
        return cls(backends.REDIS_URL, self.name)

    def run(self, value: Any) -> Any:
        """``value`` itself, or what it gives when awaited on this test's event loop."""
        if inspect.isawaitable(value):
            return self.loop.run_until_complete(value)
        return value

    def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """``store.<method>(...)``, awaited if the store is async."""
        return self.run(getattr(self.store, method)(*args, **kwargs))

    # -- behind the store's back -------------------------------------------------------------------

    def damage(self, ref: ArtifactRef, data: bytes) -> None:
        """Replace the stored bytes of ``ref`` with ``data``, as a disk fault or another program
        would, without going through the store."""
        if self.kind == "local":
            path = self.workdir / "artifacts" / "sha256" / ref.digest[:2] / ref.digest[2:]
            path.write_bytes(data)
        elif self.kind == "postgres":
            import psycopg

            with psycopg.connect(backends.POSTGRES_DSN, autocommit=True) as admin:
                admin.execute(
                    f"UPDATE {self.name} SET data = %s WHERE digest = %s", [data, ref.digest]
                )
        else:
            import redis

            with redis.Redis.from_url(backends.REDIS_URL) as admin:
                admin.set(f"{self.name}:artifact:{ref.digest}", data)

    def count(self) -> int:
        """How many blobs the store holds."""
        if self.kind == "local":
            files = (self.workdir / "artifacts" / "sha256").rglob("*")
            return sum(1 for f in files if f.is_file() and not f.name.startswith(".tmp-"))
        if self.kind == "postgres":
            import psycopg

            with psycopg.connect(backends.POSTGRES_DSN, autocommit=True) as admin:
                exists = admin.execute("SELECT to_regclass(%s)", [self.name]).fetchone()
                if exists is None or exists[0] is None:
                    return 0  # the store creates its table on first use
                row = admin.execute(f"SELECT count(*) FROM {self.name}").fetchone()
                return int(row[0]) if row else 0
        import redis

        with redis.Redis.from_url(backends.REDIS_URL) as admin:
            return len(list(admin.scan_iter(match=f"{self.name}:*")))

    def close(self) -> None:
        try:
            self.call("close")
        finally:
            self.loop.close()
            if self.kind == "postgres":
                backends.drop_tables("postgres", backends.POSTGRES_DSN, [self.name])
            elif self.kind == "redis":
                import redis

                with redis.Redis.from_url(backends.REDIS_URL) as admin:
                    keys = list(admin.scan_iter(match=f"{self.name}:*"))
                    if keys:
                        admin.delete(*keys)


@pytest.fixture(params=STORE_IDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreHarness]:
    """Every artifact store, sync and async, on a fresh directory, table or key prefix."""
    require_service(request.param.split("-")[0])
    harness = StoreHarness(request.param, tmp_path)
    try:
        yield harness
    finally:
        harness.close()
