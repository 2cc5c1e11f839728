"""The PostgreSQL persisters against a real server: construction (connection string, connection,
pool; sync and async), closing, the missing-extra error, the schema created on first use,
connections the caller configured differently, an unreachable server, racing writers, and
applications that save and resume through PostgreSQL.

Each test uses its own table prefix and drops its tables afterwards. When the server is not
reachable the tests skip, except under ``CI=true``, where that is a failure. Async code runs in
``asyncio.run()``: no pytest plugin is needed.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import pytest

pytest.importorskip("psycopg")
pytest.importorskip("psycopg_pool")
import psycopg
from psycopg.pq import TransactionStatus
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool, ConnectionPool

from tests.integrations import sql_backend_checks as checks
from turnout import State
from turnout.core.errors import PersistenceError
from turnout.core.sql import SCHEMA_VERSION
from turnout.integrations.postgres import AsyncPostgreSQLPersister, PostgreSQLPersister

DSN = os.environ.get("TURNOUT_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


# -- fixtures ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server() -> Iterator[psycopg.Connection[Any]]:
    """An administration connection; skips (fails under CI=true) when PostgreSQL is down."""
    try:
        admin = psycopg.connect(DSN, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        reason = (
            f"PostgreSQL is not reachable at {DSN} ({exc}); start it with `pg_ctlcluster "
            f"--skip-systemctl-redirect $(ls /etc/postgresql) main start`"
        )
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    with admin:
        yield admin


@pytest.fixture
def prefix(server: psycopg.Connection[Any]) -> Iterator[str]:
    """A table prefix of this test alone; its tables are dropped afterwards."""
    name = f"t_{uuid.uuid4().hex[:16]}"
    yield name
    for table in ("steps", "apps", "meta", "journal"):
        server.execute(f"DROP TABLE IF EXISTS {name}_{table}")


def tables(server: psycopg.Connection[Any], prefix: str) -> list[str]:
    rows = server.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_name LIKE %s "
        "ORDER BY table_name",
        [f"{prefix}%"],
    ).fetchall()
    return [row[0] for row in rows]


@contextmanager
def sync_source(kind: str) -> Iterator[Any]:
    """What a ``PostgreSQLPersister`` is given, closed afterwards if the test opened it."""
    if kind == "dsn":
        yield DSN
    elif kind == "connection":
        with psycopg.connect(DSN, autocommit=True) as connection:
            yield connection
    else:
        autocommit = kind == "pool-autocommit"
        with ConnectionPool(
            DSN, min_size=1, max_size=2, open=True, kwargs={"autocommit": autocommit}
        ) as pool:
            yield pool


@asynccontextmanager
async def async_persister(kind: str, prefix: str) -> AsyncIterator[AsyncPostgreSQLPersister]:
    """An ``AsyncPostgreSQLPersister`` built the way ``kind`` names, closed afterwards."""
    if kind == "dsn":
        async with AsyncPostgreSQLPersister(DSN, prefix) as persister:
            yield persister
    elif kind == "connect":
        async with await AsyncPostgreSQLPersister.connect(DSN, prefix) as persister:
            yield persister
    elif kind == "connection":
        async with await psycopg.AsyncConnection.connect(DSN, autocommit=True) as connection:
            yield AsyncPostgreSQLPersister(connection, prefix)
    else:
        async with AsyncConnectionPool(DSN, min_size=1, max_size=2, open=False) as pool:
            yield AsyncPostgreSQLPersister(pool, prefix)


SYNC_KINDS = ["dsn", "connection", "pool", "pool-autocommit"]
ASYNC_KINDS = ["dsn", "connect", "connection", "pool"]


# -- construction and closing --------------------------------------------------------------------


@pytest.mark.parametrize("kind", SYNC_KINDS, ids=SYNC_KINDS)
def test_persister_saves_and_loads_over_each_kind_of_source(prefix: str, kind: str) -> None:
    with sync_source(kind) as source, PostgreSQLPersister(source, prefix) as persister:
        checks.saves_and_loads(persister)


@pytest.mark.parametrize("kind", ASYNC_KINDS, ids=ASYNC_KINDS)
def test_async_persister_saves_and_loads_over_each_kind_of_source(prefix: str, kind: str) -> None:
    checks.async_saves_and_loads(lambda: async_persister(kind, prefix))


def test_close_closes_the_connection_opened_from_a_connection_string(prefix: str) -> None:
    persister = PostgreSQLPersister(DSN, prefix)
    persister.save(None, "app", 0, "start", State({"count": 0}), "completed")
    persister.close()
    persister.close()  # closing twice is harmless
    with pytest.raises(PersistenceError, match="closed"):
        persister.load(None, "app")


@pytest.mark.parametrize("kind", ["connection", "pool"], ids=["connection", "pool"])
def test_close_leaves_a_connection_or_pool_the_caller_passed_open(prefix: str, kind: str) -> None:
    with sync_source(kind) as source:
        persister = PostgreSQLPersister(source, prefix)
        persister.save(None, "app", 0, "start", State({"count": 0}), "completed")
        persister.close()
        assert not source.closed
        assert PostgreSQLPersister(source, prefix).load(None, "app") is not None


def test_async_close_closes_its_own_connection_and_leaves_a_passed_one_open(prefix: str) -> None:
    async def main() -> None:
        own = await AsyncPostgreSQLPersister.connect(DSN, prefix)
        await own.save(None, "app", 0, "start", State({"count": 0}), "completed")
        await own.close()
        await own.close()
        with pytest.raises(PersistenceError, match="closed"):
            await own.load(None, "app")
        async with await psycopg.AsyncConnection.connect(DSN, autocommit=True) as connection:
            passed = AsyncPostgreSQLPersister(connection, prefix)
            await passed.close()
            assert not connection.closed
            assert await passed.load(None, "app") is not None

    asyncio.run(main())


def test_an_async_persister_never_used_closes_without_connecting(prefix: str) -> None:
    async def main() -> None:
        persister = AsyncPostgreSQLPersister(DSN, prefix)
        await persister.close()
        assert persister.connection.owned is None

    asyncio.run(main())


WRONG_SOURCES = {
    "sync-given-async-connection": ("sync", "async", "use AsyncPostgreSQLPersister"),
    "async-given-sync-connection": ("async", "sync", "use PostgreSQLPersister"),
    "sync-given-a-number": ("sync", 42, "got int"),
    "async-given-a-number": ("async", 42, "got int"),
}


@pytest.mark.parametrize(
    ("persister", "source", "message"), WRONG_SOURCES.values(), ids=list(WRONG_SOURCES)
)
def test_a_source_of_the_wrong_kind_is_a_type_error_naming_the_right_class(
    server: Any, persister: str, source: Any, message: str
) -> None:
    async def main() -> None:
        given: Any = source
        if source == "async":
            given = await psycopg.AsyncConnection.connect(DSN)
        elif source == "sync":
            given = psycopg.connect(DSN)
        try:
            cls: Any = PostgreSQLPersister if persister == "sync" else AsyncPostgreSQLPersister
            with pytest.raises(TypeError, match=message):
                cls(given)
        finally:
            if source == "async":
                await given.close()
            elif source == "sync":
                given.close()

    asyncio.run(main())


def test_an_invalid_table_name_is_rejected_before_connecting() -> None:
    with pytest.raises(ValueError, match="bad-name"):
        PostgreSQLPersister(
            f"postgresql://postgres@127.0.0.1:{checks.closed_port()}/test", "bad-name"
        )


@pytest.mark.parametrize("module", ["psycopg", "psycopg_pool"], ids=["psycopg", "psycopg_pool"])
def test_importing_without_the_driver_raises_missing_extra_naming_the_install(module: str) -> None:
    code = (
        "import sys\n"
        f"sys.modules[{module!r}] = None\n"
        "from turnout.core.errors import MissingExtraError\n"
        "try:\n"
        "    import turnout.integrations.postgres\n"
        "except MissingExtraError as exc:\n"
        "    assert isinstance(exc, ImportError)\n"
        "    print(exc)\n"
        "else:\n"
        "    raise SystemExit('the import succeeded')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=False
    )
    assert result.returncode == 0, result.stderr
    assert 'pip install "turnout[postgres]"' in result.stdout
    assert repr(module) in result.stdout


# -- schema, connections configured by the caller -------------------------------------------------


FIRST_USES: dict[str, Callable[[PostgreSQLPersister], object]] = {
    "load": lambda p: p.load("user", "app"),
    "list_app_ids": lambda p: p.list_app_ids("user"),
    "save": lambda p: p.save("user", "app", 0, "start", State({"n": 1}), "completed"),
}


@pytest.mark.parametrize("use", FIRST_USES.values(), ids=list(FIRST_USES))
def test_tables_are_created_on_first_use(
    server: psycopg.Connection[Any], prefix: str, use: Callable[[PostgreSQLPersister], object]
) -> None:
    with PostgreSQLPersister(DSN, prefix) as persister:
        assert tables(server, prefix) == []
        use(persister)
        assert tables(server, prefix) == [
            f"{prefix}_apps",
            f"{prefix}_journal",
            f"{prefix}_meta",
            f"{prefix}_steps",
        ]
    meta = server.execute(f"SELECT name, value FROM {prefix}_meta").fetchall()
    assert meta == [("schema", str(SCHEMA_VERSION))]


def test_persisters_using_new_tables_at_the_same_moment_all_succeed(
    server: psycopg.Connection[Any], prefix: str
) -> None:
    """Concurrent CREATE TABLE IF NOT EXISTS can collide in pg_type; setup is serialised."""
    persisters = [PostgreSQLPersister(DSN, prefix) for _ in range(6)]
    barrier = threading.Barrier(len(persisters))
    errors: list[BaseException] = []

    def first_save(index: int) -> None:
        barrier.wait()
        try:
            persisters[index].save(None, f"app{index}", 0, "a", State({"i": index}), "completed")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=first_save, args=(i,)) for i in range(len(persisters))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for persister in persisters:
        persister.close()
    assert errors == []
    assert server.execute(f"SELECT COUNT(*) FROM {prefix}_meta").fetchone() == (1,)
    assert server.execute(f"SELECT COUNT(*) FROM {prefix}_steps").fetchone() == (6,)


def test_a_caller_connection_without_autocommit_and_with_dict_rows_works_and_is_left_idle(
    prefix: str,
) -> None:
    with psycopg.connect(DSN, row_factory=dict_row) as connection:
        persister = PostgreSQLPersister(connection, prefix)
        persister.save("user", "app", 0, "start", State({"count": 0}), "completed")
        assert connection.info.transaction_status == TransactionStatus.IDLE
        loaded = persister.load("user", "app")
        assert loaded is not None
        assert loaded.state["count"] == 0
        assert connection.info.transaction_status == TransactionStatus.IDLE
        with PostgreSQLPersister(DSN, prefix) as other:
            other.save(
                "user", "app", 1, "count", State({"count": 1}), "completed",
                changes=[("set", "count", 1)], previous_sequence_id=0,
            )  # fmt: skip
        loaded = persister.load("user", "app")
        assert loaded is not None
        assert loaded.sequence_id == 1


def test_a_pool_of_one_connection_saves_without_waiting_on_itself(prefix: str) -> None:
    """A transaction holds its connection; the statements inside it reuse that connection."""
    with ConnectionPool(DSN, min_size=1, max_size=1, open=True, timeout=5) as pool:
        persister = PostgreSQLPersister(pool, prefix)
        for sequence_id in range(3):
            persister.save(None, "app", sequence_id, "a", State({"n": sequence_id}), "completed")
        assert persister.delete("app") == 3


@pytest.mark.parametrize("kind", ["dsn", "pool"], ids=["dsn", "pool"])
def test_one_persister_serves_concurrent_threads(prefix: str, kind: str) -> None:
    with sync_source(kind) as source, PostgreSQLPersister(source, prefix) as persister:
        barrier = threading.Barrier(8)

        def run(index: int) -> None:
            barrier.wait()
            for sequence_id in range(3):
                persister.save(
                    None, f"app{index}", sequence_id, "a", State({"n": sequence_id}), "completed",
                    changes=[("set", "n", sequence_id)],
                    previous_sequence_id=sequence_id - 1 if sequence_id else None,
                )  # fmt: skip

        threads = [threading.Thread(target=run, args=(i,)) for i in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        loaded = [persister.load(None, f"app{i}") for i in range(8)]
        assert [(r.sequence_id, r.state["n"]) if r else None for r in loaded] == [(2, 2)] * 8


def test_one_async_connection_serves_concurrent_tasks(prefix: str) -> None:
    async def main() -> None:
        async with async_persister("connection", prefix) as persister:
            await asyncio.gather(
                *(
                    persister.save(None, f"app{i}", 0, "a", State({"i": i}), "completed")
                    for i in range(10)
                )
            )
            assert sorted(await persister.list_app_ids(None)) == sorted(
                f"app{i}" for i in range(10)
            )

    asyncio.run(main())


# -- an unreachable server -----------------------------------------------------------------------


def test_an_unreachable_server_is_a_persistence_error_naming_host_and_port() -> None:
    port = checks.closed_port()
    with pytest.raises(PersistenceError, match=f"PostgreSQL at 127.0.0.1:{port}"):
        PostgreSQLPersister(f"postgresql://postgres@127.0.0.1:{port}/test")


def test_an_unreachable_server_behind_a_pool_is_a_persistence_error_naming_host_and_port() -> None:
    port = checks.closed_port()
    dsn = f"postgresql://postgres@127.0.0.1:{port}/test"
    with ConnectionPool(dsn, min_size=0, max_size=1, open=True, timeout=0.2) as pool:
        persister = PostgreSQLPersister(pool)
        with pytest.raises(PersistenceError, match=f"PostgreSQL at 127.0.0.1:{port}"):
            persister.load(None, "app")


@pytest.mark.parametrize("when", ["connect", "first-use"], ids=["connect", "first-use"])
def test_an_unreachable_server_fails_async_persisters_with_host_and_port(when: str) -> None:
    dsn = f"postgresql://postgres@127.0.0.1:{checks.closed_port()}/test"
    port = dsn.split(":")[-1].split("/")[0]

    async def attempt() -> object:
        if when == "connect":
            return await AsyncPostgreSQLPersister.connect(dsn)
        return await AsyncPostgreSQLPersister(dsn).load(None, "app")

    async def main() -> None:
        with pytest.raises(PersistenceError, match=f"PostgreSQL at 127.0.0.1:{port}"):
            await attempt()

    asyncio.run(main())


# -- racing writers and applications (tests/integrations/sql_backend_checks.py) ----------------


def _make(prefix: str) -> Callable[..., Any]:
    return lambda **kwargs: PostgreSQLPersister(DSN, prefix, **kwargs)


def test_a_second_persister_saving_a_taken_sequence_id_gets_concurrency_error(prefix: str) -> None:
    checks.a_second_persister_saving_a_taken_sequence_id_gets_concurrency_error(_make(prefix))


def test_racing_persisters_on_one_app_id_let_exactly_one_save_each_sequence_id(
    prefix: str,
) -> None:
    checks.racing_persisters_on_one_app_id_let_exactly_one_save_each_sequence_id(_make(prefix))


def test_racing_async_persisters_on_one_app_id_let_exactly_one_save(prefix: str) -> None:
    checks.racing_async_persisters_on_one_app_id_let_exactly_one_save(
        lambda: async_persister("connect", prefix)
    )


def test_an_application_saves_every_step_and_resumes_where_it_stopped(prefix: str) -> None:
    checks.an_application_saves_every_step_and_resumes_where_it_stopped(_make(prefix))


def test_an_async_application_saves_every_step_and_resumes_where_it_stopped(prefix: str) -> None:
    checks.an_async_application_saves_every_step_and_resumes_where_it_stopped(
        lambda: async_persister("connect", prefix)
    )


def test_two_applications_advancing_one_app_id_the_second_save_fails(prefix: str) -> None:
    checks.two_applications_advancing_one_app_id_the_second_save_fails(_make(prefix))
