"""The PostgreSQL and Redis artifact stores beyond the store contract (``tests/artifacts``):
what they take, what stays the caller's, the missing-extra error and an unreachable server.
Skips when a server is not reachable, except under ``CI=true``."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import pytest

from tests.artifacts.conftest import require_service
from tests.integrations.missing_extra import import_without
from tests.persistence import backends
from turnout.core.errors import ArtifactError, InvalidNameError, PersistenceError


@pytest.fixture
def pg() -> Iterator[str]:
    require_service("postgres")
    name = f"t_{uuid.uuid4().hex[:16]}"
    yield name
    backends.drop_tables("postgres", backends.POSTGRES_DSN, [name])


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    require_service("redis")
    import redis

    name = f"t_{uuid.uuid4().hex[:16]}"
    yield name
    with redis.Redis.from_url(backends.REDIS_URL) as admin:
        keys = list(admin.scan_iter(match=f"{name}:*"))
        if keys:
            admin.delete(*keys)


@pytest.mark.parametrize(
    ("library", "adapter", "extra"),
    [
        ("psycopg", "turnout.integrations.artifacts_postgres", "postgres"),
        ("redis", "turnout.integrations.artifacts_redis", "redis"),
    ],
    ids=["postgres", "redis"],
)
def test_a_missing_driver_names_the_extra_to_install(
    library: str, adapter: str, extra: str
) -> None:
    said = import_without(library, adapter)
    assert said.startswith("MissingExtraError")
    assert f'pip install "turnout[{extra}]"' in said


def test_postgres_store_creates_its_table_on_first_use_and_leaves_a_given_connection_open(
    pg: str,
) -> None:
    import psycopg

    from turnout.integrations.artifacts_postgres import PostgreSQLArtifactStore

    with psycopg.connect(backends.POSTGRES_DSN, autocommit=True) as connection:
        store = PostgreSQLArtifactStore(connection, pg)
        ref = store.put(b"abc")
        store.close()
        assert not connection.closed
        row = connection.execute(f"SELECT size_bytes, data FROM {pg}").fetchone()
        assert row == (3, b"abc")
    other = PostgreSQLArtifactStore(backends.POSTGRES_DSN, pg)
    try:
        assert other.get(ref) == b"abc"
    finally:
        other.close()


def test_postgres_stores_refuse_the_other_modes_connection_and_bad_table_names(pg: str) -> None:
    import psycopg

    from turnout.integrations.artifacts_postgres import (
        AsyncPostgreSQLArtifactStore,
        PostgreSQLArtifactStore,
    )

    with (
        psycopg.connect(backends.POSTGRES_DSN) as connection,
        pytest.raises(TypeError, match="use PostgreSQLArtifactStore"),
    ):
        AsyncPostgreSQLArtifactStore(connection, pg)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="takes a connection string"):
        PostgreSQLArtifactStore(42, pg)  # type: ignore[arg-type]
    with pytest.raises(InvalidNameError, match="artifact table name"):
        PostgreSQLArtifactStore(backends.POSTGRES_DSN, "x; DROP TABLE y")


def test_postgres_store_on_an_unreachable_server_names_the_fix() -> None:
    pytest.importorskip("psycopg")
    from turnout.integrations.artifacts_postgres import PostgreSQLArtifactStore

    dsn = f"postgresql://postgres@127.0.0.1:{backends.free_port()}/test?connect_timeout=5"
    with pytest.raises(PersistenceError, match="PostgreSQLArtifactStore"):
        PostgreSQLArtifactStore(dsn)


def test_async_postgres_store_over_a_pool(pg: str) -> None:
    from psycopg_pool import AsyncConnectionPool

    from turnout.integrations.artifacts_postgres import AsyncPostgreSQLArtifactStore

    async def main() -> bytes:
        async with AsyncConnectionPool(backends.POSTGRES_DSN, open=False) as pool:
            store = AsyncPostgreSQLArtifactStore(pool, pg)
            ref = await store.put(b"pooled")
            await store.close()
            return await store.get(ref)  # the pool is the caller's: still open

    assert asyncio.run(main()) == b"pooled"


def test_redis_store_refuses_a_client_that_decodes_replies(redis_prefix: str) -> None:
    import redis
    import redis.asyncio

    from turnout.integrations.artifacts_redis import AsyncRedisArtifactStore, RedisArtifactStore

    with (
        redis.Redis.from_url(backends.REDIS_URL, decode_responses=True) as decoding,
        pytest.raises(TypeError, match="decode_responses=False"),
    ):
        RedisArtifactStore(decoding, redis_prefix)
    with pytest.raises(TypeError, match="use RedisArtifactStore"):
        AsyncRedisArtifactStore(redis.Redis.from_url(backends.REDIS_URL), redis_prefix)  # type: ignore[arg-type]
    with pytest.raises(InvalidNameError, match="key prefix"):
        RedisArtifactStore(backends.REDIS_URL, "a:b")


def test_redis_store_leaves_a_given_client_open_and_keys_blobs_by_digest(
    redis_prefix: str,
) -> None:
    import redis

    from turnout.integrations.artifacts_redis import RedisArtifactStore

    with redis.Redis.from_url(backends.REDIS_URL) as client:
        store = RedisArtifactStore(client, redis_prefix)
        ref = store.put(b"abc")
        store.close()
        assert client.get(f"{redis_prefix}:artifact:{ref.digest}") == b"abc"


def test_redis_store_on_an_unreachable_server_names_the_store_and_the_ref() -> None:
    pytest.importorskip("redis")
    from turnout.core.artifacts import ArtifactRef
    from turnout.integrations.artifacts_redis import RedisArtifactStore

    store = RedisArtifactStore(f"redis://127.0.0.1:{backends.free_port()}/0")
    ref = ArtifactRef(digest="0" * 64, size_bytes=1)
    with pytest.raises(
        ArtifactError, match=r"Redis at redis://127\.0\.0\.1:\d+/0 .* failed to read artifact 0{64}"
    ):
        store.get(ref)
    store.close()
