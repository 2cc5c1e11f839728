"""Persisters survive pickling: a copy sent to another process (a parallel action's child on a
process pool, Ray, Dask) reconnects with the same arguments and keeps every setting, and never
carries a live connection, lock or pool."""

from __future__ import annotations

import asyncio
import inspect
import multiprocessing
import pickle
import sys
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.persistence import backends
from tests.persistence.conftest import ALL_IDS, Harness, _harness
from turnout import State


def _load_in_child(blob: bytes, partition_key: str | None, app_id: str) -> dict[str, Any]:
    """What the unpickled persister loads in a fresh process, and the settings it carries."""

    async def main() -> dict[str, Any]:
        persister = pickle.loads(blob)
        try:
            loaded = persister.load(partition_key, app_id)
            data = await loaded if inspect.isawaitable(loaded) else loaded
            return {
                "state": data["state"].get_all(),
                "sequence_id": data["sequence_id"],
                "partition_key": data["partition_key"],
                "serde_kwargs": persister.serde_kwargs,
                "snapshot_every": persister.core.snapshot_every,
            }
        finally:
            closed = persister.close()
            if inspect.isawaitable(closed):
                await closed

    return asyncio.run(main())


def _in_a_spawned_process(blob: bytes, partition_key: str | None, app_id: str) -> dict[str, Any]:
    spawn = multiprocessing.get_context("spawn")
    # A spawned child re-runs the parent's __main__ from its __file__; a test run in which
    # Streamlit's AppTest ran a page script leaves __main__ pointing at that script, so the
    # child would start by running it. Pickling needs no __main__: leave it out.
    main = sys.modules["__main__"]
    saved = main.__dict__.pop("__file__", None)
    try:
        with ProcessPoolExecutor(max_workers=1, mp_context=spawn) as pool:
            return pool.submit(_load_in_child, blob, partition_key, app_id).result(timeout=120)
    finally:
        if saved is not None:
            main.__file__ = saved


@pytest.fixture(params=[i for i in ALL_IDS if not i.startswith("memory")])
def stored(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Harness]:
    """Every backend whose records live outside this process (not the in-memory one)."""
    yield from _harness(request, tmp_path)


@pytest.mark.parametrize("partition_key", [None, "user-1"], ids=["no-partition", "partition"])
def test_a_pickled_persister_loads_in_a_spawned_process_what_the_parent_saved(
    stored: Harness, partition_key: str | None
) -> None:
    made = stored.open(snapshot_every=7)
    made.set_serde_kwargs({"note": "kept"})
    stored.save(partition_key, "app", 0, "count", State({"n": 1, "who": "parent"}))
    stored.save(partition_key, "app", 1, "count", State({"n": 2, "who": "parent"}))

    got = _in_a_spawned_process(pickle.dumps(made), partition_key, "app")

    assert got == {
        "state": {"n": 2, "who": "parent"},
        "sequence_id": 1,
        "partition_key": partition_key,
        "serde_kwargs": {"note": "kept"},
        "snapshot_every": 7,
    }


def test_a_copy_writes_to_the_same_tables_and_the_original_sees_it(stored: Harness) -> None:
    stored.save("p", "app", 0, "count", State({"n": 1}))
    copy = pickle.loads(pickle.dumps(stored.persister))
    try:
        stored.run(copy.save("p", "app", 1, "count", State({"n": 2}), "completed"))
    finally:
        stored.run(backends.aclose(copy))
    assert stored.load("p", "app").state["n"] == 2


def test_a_pickle_carries_no_connection_lock_or_pool(service_persister: Harness) -> None:
    h = service_persister
    h.save(None, "app", 0, "count", State({"n": 1}))  # connected, tables created
    blob = pickle.dumps(h.persister)
    for unwanted in (b"psycopg.Connection", b"redis.client", b"pymysql.connections", b"_thread"):
        assert unwanted not in blob


# -- connections the caller passed ---------------------------------------------------------------


def test_a_postgres_persister_on_a_given_connection_reconnects_with_its_parameters() -> None:
    postgres = pytest.importorskip("turnout.integrations.postgres")
    import psycopg

    with psycopg.connect(backends.POSTGRES_DSN, autocommit=True) as connection:
        persister = postgres.PostgreSQLPersister(connection, "tpickle_given")
        try:
            persister.save(None, "app", 0, "count", State({"n": 1}), "completed")
            copy = pickle.loads(pickle.dumps(persister))
            try:
                assert copy.load(None, "app")["state"]["n"] == 1
                assert copy.table_name == "tpickle_given"
            finally:
                copy.close()
        finally:
            persister.close()
            backends.clean("postgres", backends.POSTGRES_DSN, "tpickle_given")


def test_a_postgres_persister_on_a_pool_reconnects_with_the_pool_s_conninfo() -> None:
    postgres = pytest.importorskip("turnout.integrations.postgres")
    from psycopg_pool import ConnectionPool

    with ConnectionPool(backends.POSTGRES_DSN, kwargs={"connect_timeout": 7}) as pool:
        persister = postgres.PostgreSQLPersister(pool, "tpickle_pool")
        copy = pickle.loads(pickle.dumps(persister))
        try:
            assert isinstance(copy.connection.source, str)
            assert "connect_timeout=7" in copy.connection.source
        finally:
            copy.close()


def test_a_closed_given_postgres_connection_cannot_be_pickled_and_the_error_names_the_fix() -> None:
    postgres = pytest.importorskip("turnout.integrations.postgres")
    import psycopg

    connection = psycopg.connect(backends.POSTGRES_DSN, autocommit=True)
    persister = postgres.PostgreSQLPersister(connection, "tpickle_closed")
    connection.close()
    with pytest.raises(TypeError, match=r"connection string .*from_values"):
        pickle.dumps(persister)


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
def test_a_redis_persister_on_a_given_client_reconnects_with_its_arguments(is_async: bool) -> None:
    module = pytest.importorskip("turnout.integrations.redis")
    import redis
    import redis.asyncio

    kind = redis.asyncio.Redis if is_async else redis.Redis
    client = kind(host="127.0.0.1", port=6379, db=0, decode_responses=True, socket_timeout=9)
    cls = module.AsyncRedisPersister if is_async else module.RedisPersister
    persister = cls(client, "tpickle_redis", snapshot_every=5)
    copy = pickle.loads(pickle.dumps(persister))
    kwargs = copy.client.connection_pool.connection_kwargs
    assert (kwargs["host"], kwargs["port"], kwargs["db"]) == ("127.0.0.1", 6379, 0)
    assert (kwargs["decode_responses"], kwargs["socket_timeout"]) == (True, 9)
    assert (copy.store.prefix, copy.core.snapshot_every) == ("tpickle_redis", 5)
    assert copy.client is not client


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
def test_burr_s_redis_persister_keeps_its_namespace_through_pickling(is_async: bool) -> None:
    pytest.importorskip("turnout.integrations.redis")
    from turnout.integrations.persisters import b_redis

    cls = b_redis.AsyncRedisBasePersister if is_async else b_redis.RedisBasePersister
    persister = cls.from_values("127.0.0.1", 6379, 0, namespace="tpickle_ns")
    copy = pickle.loads(pickle.dumps(persister))
    assert type(copy) is cls
    assert (copy.namespace, copy.store.prefix) == ("tpickle_ns", "tpickle_ns")
    assert copy.connection is copy.client
    assert copy.core.burr.namespace == "tpickle_ns"


def test_a_mysql_persister_on_a_given_connection_reconnects_with_its_parameters() -> None:
    mysql = pytest.importorskip("turnout.integrations.mysql")
    import pymysql

    connection = pymysql.connect(**backends.MYSQL_KWARGS)
    try:
        persister = mysql.MySQLPersister(connection, "tpickle_my")
        copy = pickle.loads(pickle.dumps(persister))
        try:
            source = copy.connection.source
            assert isinstance(source, dict)
            assert (source["host"], source["port"]) == (connection.host, connection.port)
            assert copy.table_name == "tpickle_my"
        finally:
            copy.close()
    finally:
        connection.close()


def test_an_aiomysql_connection_cannot_be_pickled_and_the_error_names_the_fix() -> None:
    mysql = pytest.importorskip("turnout.integrations.mysql")
    import aiomysql

    async def main() -> None:
        kwargs = dict(backends.MYSQL_KWARGS)
        kwargs["db"] = kwargs.pop("database")
        connection = await aiomysql.connect(**kwargs)
        try:
            persister = mysql.AsyncMySQLPersister(connection, "tpickle_amy")
            with pytest.raises(TypeError, match=r"AsyncMySQLPersister\(\{'host'"):
                pickle.dumps(persister)
        finally:
            connection.close()

    asyncio.run(main())
