"""Burr's persister API on the real PostgreSQL, MariaDB and Redis servers: the constructors and
classmethods Burr's users call (``from_values`` with psycopg2-style values, ``from_config``,
Burr's Redis constructors with ``namespace``), ``initialize``/``is_initialized``/``cleanup``, and
Burr's module paths (``turnout.integrations.persisters.*``). Each test uses its own table prefix
or key prefix and removes it afterwards."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.compat.test_burr_persisters import resumable
from tests.persistence import backends
from tests.persistence.conftest import require_backend
from turnout import State

# The servers the persistence suite uses (TURNOUT_TEST_POSTGRES, _MYSQL, _REDIS), in the
# psycopg2-style, PyMySQL-style and redis-py arguments Burr's from_values takes.
DSN = backends.POSTGRES_DSN
_PG_URL = urlsplit(DSN)
PG: dict[str, Any] = {
    "db_name": _PG_URL.path.lstrip("/"),
    "user": _PG_URL.username or "postgres",
    "password": _PG_URL.password or "unused-with-trust-auth",
    "host": backends.SERVICES["postgres"].host,
    "port": backends.SERVICES["postgres"].port,
}
MARIADB: dict[str, Any] = {
    "db_name": backends.MYSQL_KWARGS["database"],
    **{key: backends.MYSQL_KWARGS[key] for key in ("user", "password", "host", "port")},
}
REDIS: dict[str, Any] = {
    "host": backends.SERVICES["redis"].host,
    "port": backends.SERVICES["redis"].port,
    "db": int(urlsplit(backends.REDIS_URL).path.lstrip("/") or 0),
}


def unique(kind: str) -> str:
    return f"burrcompat_{kind}_{uuid.uuid4().hex[:12]}"


# -- PostgreSQL ------------------------------------------------------------------------------------


@pytest.fixture
def pg_prefix() -> Iterator[str]:
    pytest.importorskip("psycopg")
    pytest.importorskip("psycopg_pool")
    require_backend("postgres")
    name = unique("pg")
    yield name
    backends.clean("postgres", DSN, name)


def test_postgres_from_values_maps_burrs_psycopg2_arguments_onto_psycopg3(pg_prefix: str) -> None:
    from turnout.integrations.persisters import b_psycopg2, postgresql

    assert postgresql.PostgreSQLPersister is b_psycopg2.PostgreSQLPersister
    persister = postgresql.PostgreSQLPersister.from_values(**PG, table_name=pg_prefix)
    try:
        assert persister.is_initialized() is False
        persister.initialize()
        assert persister.is_initialized() is True
        app = resumable(persister, "a").build()
        app.step()
        app.step()
    finally:
        persister.cleanup()
    config = {**PG, "table_name": pg_prefix}
    with b_psycopg2.PostgreSQLPersister.from_config(config) as again:
        assert again.is_initialized() is True
        assert resumable(again, "a").build().state["n"] == 2


def test_postgres_cleanup_closes_the_connection_from_values_opened(pg_prefix: str) -> None:
    from turnout.core.errors import PersistenceError
    from turnout.integrations.postgres import PostgreSQLPersister

    persister = PostgreSQLPersister.from_values(**PG, table_name=pg_prefix)
    persister.initialize()
    persister.cleanup()
    with pytest.raises(PersistenceError):
        persister.list_app_ids(None)


@pytest.mark.parametrize("use_pool", [False, True], ids=["connection", "pool"])
def test_async_postgres_from_values_is_awaitable_and_an_async_context_manager(
    pg_prefix: str, use_pool: bool
) -> None:
    from turnout.integrations.persisters import b_asyncpg

    async def main() -> tuple[bool, bool, int]:
        opening = b_asyncpg.AsyncPostgreSQLPersister.from_values(
            **PG, table_name=pg_prefix, use_pool=use_pool
        )
        async with opening as persister:
            before = await persister.is_initialized()
            await persister.initialize()
            app = await resumable(persister, "x").abuild()
            await app.astep()
        again = await b_asyncpg.AsyncPostgreSQLPersister.from_config(
            {**PG, "table_name": pg_prefix, "use_pool": use_pool}
        )
        try:
            resumed = await resumable(again, "x").abuild()
            return before, await again.is_initialized(), resumed.state["n"]
        finally:
            await again.cleanup()

    assert asyncio.run(main()) == (False, True, 1)


# -- MariaDB -------------------------------------------------------------------------------------


@pytest.fixture
def mysql_prefix() -> Iterator[str]:
    pytest.importorskip("pymysql")
    pytest.importorskip("aiomysql")
    require_backend("mysql")
    name = unique("my")
    yield name
    backends.clean("mysql", backends.MYSQL_KWARGS, name)


def test_mysql_persister_has_the_same_burr_lifecycle(mysql_prefix: str) -> None:
    from turnout.integrations.mysql import MySQLPersister

    persister = MySQLPersister.from_values(**MARIADB, table_name=mysql_prefix)
    try:
        assert persister.is_initialized() is False
        persister.initialize()
        assert persister.is_initialized() is True
        resumable(persister, "m").build().step()
    finally:
        persister.cleanup()
    with MySQLPersister.from_config({**MARIADB, "table_name": mysql_prefix}) as again:
        assert resumable(again, "m").build().state["n"] == 1


# -- Redis ---------------------------------------------------------------------------------------


@pytest.fixture
def namespace() -> Iterator[str]:
    pytest.importorskip("redis")
    require_backend("redis")
    name = unique("rd")
    yield name
    backends.delete_redis_keys(backends.REDIS_URL, name)  # also "<name>_other:..." of one test


def test_redis_base_persister_from_values_keeps_each_namespace_apart(namespace: str) -> None:
    from turnout.integrations.persisters.b_redis import RedisBasePersister

    persister = RedisBasePersister.from_values(**REDIS, namespace=namespace)
    other = RedisBasePersister.from_values(**REDIS, namespace=f"{namespace}_other")
    try:
        assert persister.is_initialized() is False
        persister.initialize()
        assert persister.is_initialized() is True
        app = resumable(persister, "r").build()
        app.step()
        app.step()
        assert resumable(persister, "r").build().state["n"] == 2
        assert other.list_app_ids(None) == []  # another namespace sees nothing
        assert persister.namespace == namespace
    finally:
        persister.cleanup()
        other.cleanup()


def test_redis_base_persister_leaves_a_given_client_open(namespace: str) -> None:
    import redis

    from turnout.integrations.persisters.b_redis import RedisBasePersister

    client = redis.Redis(**REDIS)
    try:
        persister = RedisBasePersister(client, None, namespace)
        persister.save(None, "r", 0, "count", State({"n": 1}), "completed")
        persister.cleanup()
        assert client.ping() is True
        assert persister.connection is client
    finally:
        client.close()


def test_burrs_older_redis_persister_constructor_takes_host_port_db(namespace: str) -> None:
    from turnout.integrations.persisters.b_redis import RedisPersister

    with RedisPersister(REDIS["host"], REDIS["port"], REDIS["db"], namespace=namespace) as p:
        p.save("pk", "r", 0, "count", State({"n": 5}), "completed")
        loaded = p.load("pk", "r")
        assert loaded is not None
        assert loaded["state"]["n"] == 5


def test_async_redis_base_persister_from_values(namespace: str) -> None:
    from turnout.integrations.persisters.b_redis import AsyncRedisBasePersister

    async def main() -> tuple[bool, int]:
        persister = AsyncRedisBasePersister.from_values(**REDIS, namespace=namespace)
        try:
            await persister.initialize()
            app = await resumable(persister, "r").abuild()
            await app.astep()
            resumed = await resumable(persister, "r").abuild()
            return await persister.is_initialized(), resumed.state["n"]
        finally:
            await persister.cleanup()

    assert asyncio.run(main()) == (True, 1)


def test_add_namespace_to_partition_key_prefixes_only_with_a_namespace() -> None:
    pytest.importorskip("redis")
    from turnout.integrations.persisters.b_redis import add_namespace_to_partition_key

    assert add_namespace_to_partition_key("pk", "proj") == "proj:pk"
    assert add_namespace_to_partition_key("pk") == "pk"
    assert add_namespace_to_partition_key("pk", "") == "pk"


def test_a_namespace_that_cannot_prefix_keys_is_refused_with_the_rule(namespace: str) -> None:
    from turnout.core.errors import InvalidNameError
    from turnout.integrations.persisters.b_redis import RedisBasePersister

    with pytest.raises(InvalidNameError, match="'my project'"):
        RedisBasePersister.from_values(**REDIS, namespace="my project")


# -- PostgreSQL tables Burr wrote ------------------------------------------------------------------

# The layout of apache-burr 0.43's psycopg2 PostgreSQLPersister (b_psycopg2.create_table and
# save): one row per step, the state as JSONB with Burr's control keys inside it, the default
# partition key "" (the primary key makes the column NOT NULL).
BURR_PG_TABLE = """
CREATE TABLE {table} (
    partition_key TEXT DEFAULT '',
    app_id TEXT NOT NULL,
    sequence_id INTEGER NOT NULL,
    position TEXT NOT NULL,
    status TEXT NOT NULL,
    state JSONB NOT NULL,
    created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
    PRIMARY KEY (partition_key, app_id, sequence_id, position)
)
"""


@pytest.fixture
def burr_pg_table(pg_prefix: str) -> Iterator[str]:
    import json

    import psycopg

    rows = [
        ("alice", "app-1", 0, "count", {"n": 1, "__SEQUENCE_ID": 0, "__PRIOR_STEP": "count"}),
        ("alice", "app-1", 1, "count", {"n": 2, "__SEQUENCE_ID": 1, "__PRIOR_STEP": "count"}),
        ("", "app-2", 0, "count", {"n": 7, "__SEQUENCE_ID": 0, "__PRIOR_STEP": "count"}),
    ]
    with psycopg.connect(DSN, autocommit=True) as connection:
        connection.execute(BURR_PG_TABLE.format(table=pg_prefix))
        for pk, app_id, sequence_id, position, state in rows:
            connection.execute(
                f"INSERT INTO {pg_prefix} (partition_key, app_id, sequence_id, position, state, "
                f"status) VALUES (%s, %s, %s, %s, %s, 'completed')",
                (pk, app_id, sequence_id, position, json.dumps(state)),
            )
    yield pg_prefix
    with psycopg.connect(DSN, autocommit=True) as connection:
        connection.execute(f"DROP TABLE IF EXISTS {pg_prefix}")


def test_a_burr_written_postgres_table_loads_and_the_app_resumes(burr_pg_table: str) -> None:
    from turnout.integrations.postgres import PostgreSQLPersister

    with PostgreSQLPersister.from_values(**PG, table_name=burr_pg_table) as persister:
        loaded = persister.load("alice", "app-1")
        assert loaded is not None
        assert (loaded.sequence_id, loaded.state.get_all()) == (1, {"n": 2})
        assert loaded.created_at.tzinfo is not None
        none_partition = persister.load(None, "app-2")  # Burr's "" partition key
        assert none_partition is not None
        assert none_partition.state["n"] == 7
        assert persister.list_app_ids(None) == ["app-2"]
        app = resumable(persister, "app-1").with_identifiers(partition_key="alice").build()
        assert app.sequence_id == 1
        app.step()
        latest = persister.load("alice", "app-1")
        assert latest is not None
        assert (latest.sequence_id, latest.state["n"]) == (2, 3)


def test_a_burr_written_postgres_table_resumes_in_an_async_application(
    burr_pg_table: str,
) -> None:
    from turnout.integrations.postgres import AsyncPostgreSQLPersister

    async def main() -> int:
        async with AsyncPostgreSQLPersister.from_values(
            **PG, table_name=burr_pg_table
        ) as persister:
            app = await resumable(persister, "app-2").abuild()
            await app.astep()
            return int(app.state["n"])

    assert asyncio.run(main()) == 8


def test_a_postgres_table_named_like_the_prefix_without_burrs_columns_is_ignored(
    pg_prefix: str,
) -> None:
    import psycopg

    from turnout.integrations.postgres import PostgreSQLPersister

    with psycopg.connect(DSN, autocommit=True) as connection:
        connection.execute(f"CREATE TABLE {pg_prefix} (x INTEGER)")
    try:
        with PostgreSQLPersister.from_values(**PG, table_name=pg_prefix) as persister:
            assert persister.load(None, "a") is None
            persister.save(None, "a", 0, "count", State({"n": 1}), "completed")
            assert persister.list_app_ids(None) == ["a"]
    finally:
        with psycopg.connect(DSN, autocommit=True) as connection:
            connection.execute(f"DROP TABLE IF EXISTS {pg_prefix}")


# -- Redis keys Burr wrote -------------------------------------------------------------------------


def write_burr_redis_keys(namespace: str) -> None:
    """The keys apache-burr 0.43's RedisBasePersister(namespace=...) writes for two steps of app
    "app-1" in partition "alice" (b_redis.save): a hash per step, and a sorted set per partition
    holding each app id with its latest sequence id."""
    import json

    import redis

    client = redis.Redis(**REDIS)
    try:
        for sequence_id, n in ((0, 1), (1, 2)):
            state = {"n": n, "__SEQUENCE_ID": sequence_id, "__PRIOR_STEP": "count"}
            client.hset(
                f"{namespace}:alice:app-1:{sequence_id}",
                mapping={
                    "partition_key": "alice",
                    "app_id": "app-1",
                    "sequence_id": sequence_id,
                    "position": "count",
                    "state": json.dumps(state),
                    "status": "completed",
                    "created_at": "2026-12-05T18:05:52.123456+00:00",
                },
            )
            client.zadd(f"{namespace}:alice", {"app-1": sequence_id})
    finally:
        client.close()


def test_burr_written_redis_keys_load_and_the_app_resumes(namespace: str) -> None:
    from turnout.integrations.persisters.b_redis import RedisBasePersister

    write_burr_redis_keys(namespace)
    with RedisBasePersister.from_values(**REDIS, namespace=namespace) as persister:
        loaded = persister.load("alice", "app-1")
        assert loaded is not None
        assert (loaded.sequence_id, loaded.state.get_all()) == (1, {"n": 2})
        first = persister.load("alice", "app-1", sequence_id=0)
        assert first is not None
        assert first.state["n"] == 1
        assert persister.list_app_ids("alice") == ["app-1"]
        app = resumable(persister, "app-1").with_identifiers(partition_key="alice").build()
        assert app.sequence_id == 1
        app.step()
        latest = persister.load("alice", "app-1")
        assert latest is not None
        assert (latest.sequence_id, latest.state["n"]) == (2, 3)
        assert persister.list_app_ids("alice") == ["app-1"]


def test_burr_written_redis_keys_resume_in_an_async_application(namespace: str) -> None:
    from turnout.integrations.persisters.b_redis import AsyncRedisBasePersister

    write_burr_redis_keys(namespace)

    async def main() -> tuple[int, int]:
        persister = AsyncRedisBasePersister.from_values(**REDIS, namespace=namespace)
        try:
            app = (
                await resumable(persister, "app-1").with_identifiers(partition_key="alice").abuild()
            )
            await app.astep()
            return app.sequence_id or 0, int(app.state["n"])
        finally:
            await persister.cleanup()

    assert asyncio.run(main()) == (2, 3)


@pytest.mark.parametrize(
    ("library", "module", "extra"),
    [
        ("redis", "turnout.integrations.persisters.b_redis", "redis"),
        ("psycopg", "turnout.integrations.persisters.postgresql", "postgres"),
        ("psycopg", "turnout.integrations.persisters.b_psycopg2", "postgres"),
        ("psycopg", "turnout.integrations.persisters.b_asyncpg", "postgres"),
    ],
    ids=["b_redis", "postgresql", "b_psycopg2", "b_asyncpg"],
)
def test_burrs_persister_modules_name_the_extra_when_the_driver_is_missing(
    library: str, module: str, extra: str
) -> None:
    from tests.integrations.missing_extra import import_without

    said = import_without(library, module)
    assert said.startswith("MissingExtraError")
    assert f'pip install "turnout[{extra}]"' in said
