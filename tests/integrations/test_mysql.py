"""The MySQL/MariaDB persisters against a real server: construction (connection arguments,
connection, pool; sync and async), closing, the missing-extra error, the schema created on first
use, exact key comparison, connections the caller configured differently, an unreachable server,
racing writers, and applications that save and resume through MySQL.

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

pytest.importorskip("pymysql")
pytest.importorskip("aiomysql")
import aiomysql  # type: ignore[import-untyped]
import pymysql  # type: ignore[import-untyped]
import pymysql.cursors  # type: ignore[import-untyped]

from tests.integrations import sql_backend_checks as checks
from turnout import State
from turnout.core.errors import PersistenceError
from turnout.core.sql import SCHEMA_VERSION
from turnout.integrations.mysql import AsyncMySQLPersister, MySQLPersister

SERVER: dict[str, Any] = {
    "host": os.environ.get("TURNOUT_MYSQL_HOST", "127.0.0.1"),
    "port": int(os.environ.get("TURNOUT_MYSQL_PORT", "3306")),
    "user": os.environ.get("TURNOUT_MYSQL_USER", "root"),
    "password": os.environ.get("TURNOUT_MYSQL_PASSWORD", ""),
    "database": os.environ.get("TURNOUT_MYSQL_DATABASE", "test"),
}
# aiomysql calls the database `db`.
AIO_SERVER = {("db" if key == "database" else key): value for key, value in SERVER.items()}
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


# -- fixtures ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server() -> Iterator[Any]:
    """An administration connection; skips (fails under CI=true) when MySQL is down."""
    try:
        admin = pymysql.connect(**SERVER, autocommit=True, connect_timeout=5)
    except pymysql.err.OperationalError as exc:
        reason = (
            f"MySQL/MariaDB is not reachable at {SERVER['host']}:{SERVER['port']} ({exc}); start "
            f"it with `start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd`"
        )
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    with admin:
        yield admin


def query(server: Any, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
    with server.cursor() as cursor:
        cursor.execute(sql, params)
        return list(cursor.fetchall())


@pytest.fixture
def prefix(server: Any) -> Iterator[str]:
    """A table prefix of this test alone; its tables are dropped afterwards."""
    name = f"t_{uuid.uuid4().hex[:16]}"
    yield name
    for table in ("steps", "apps", "meta", "journal"):
        query(server, f"DROP TABLE IF EXISTS {name}_{table}")


def tables(server: Any, prefix: str) -> list[str]:
    rows = query(
        server,
        "SELECT table_name FROM information_schema.tables WHERE table_schema = DATABASE() "
        "AND table_name LIKE %s ORDER BY table_name",
        [f"{prefix}%"],
    )
    return [row[0] for row in rows]


@contextmanager
def sync_source(kind: str) -> Iterator[Any]:
    """What a ``MySQLPersister`` is given, closed afterwards if the test opened it."""
    if kind == "kwargs":
        yield dict(SERVER)
    else:
        # PyMySQL's defaults: autocommit off, so the adapter must end what it starts.
        cursorclass = pymysql.cursors.DictCursor if kind == "dict-cursor" else None
        extra = {"cursorclass": cursorclass} if cursorclass else {}
        with pymysql.connect(**SERVER, **extra) as connection:
            yield connection


@asynccontextmanager
async def async_persister(kind: str, prefix: str) -> AsyncIterator[AsyncMySQLPersister]:
    """An ``AsyncMySQLPersister`` built the way ``kind`` names, closed afterwards."""
    if kind == "kwargs":
        async with AsyncMySQLPersister(dict(SERVER), prefix) as persister:
            yield persister
    elif kind == "connect":
        async with await AsyncMySQLPersister.connect(prefix, **SERVER) as persister:
            yield persister
    elif kind == "connection":
        connection = await aiomysql.connect(**AIO_SERVER)
        try:
            yield AsyncMySQLPersister(connection, prefix)
        finally:
            await connection.ensure_closed()
    else:
        pool = await aiomysql.create_pool(minsize=1, maxsize=2, **AIO_SERVER)
        try:
            yield AsyncMySQLPersister(pool, prefix)
        finally:
            pool.close()
            await pool.wait_closed()


SYNC_KINDS = ["kwargs", "connection", "dict-cursor"]
ASYNC_KINDS = ["kwargs", "connect", "connection", "pool"]


# -- construction and closing --------------------------------------------------------------------


@pytest.mark.parametrize("kind", SYNC_KINDS, ids=SYNC_KINDS)
def test_persister_saves_and_loads_over_each_kind_of_source(prefix: str, kind: str) -> None:
    with sync_source(kind) as source, MySQLPersister(source, prefix) as persister:
        checks.saves_and_loads(persister)


@pytest.mark.parametrize("kind", ASYNC_KINDS, ids=ASYNC_KINDS)
def test_async_persister_saves_and_loads_over_each_kind_of_source(prefix: str, kind: str) -> None:
    checks.async_saves_and_loads(lambda: async_persister(kind, prefix))


def test_close_closes_the_connection_opened_from_arguments(prefix: str) -> None:
    persister = MySQLPersister(SERVER, prefix)
    persister.save(None, "app", 0, "start", State({"count": 0}), "completed")
    persister.close()
    persister.close()  # closing twice is harmless
    with pytest.raises(PersistenceError, match="MySQL"):
        persister.load(None, "app")


def test_close_leaves_a_connection_the_caller_passed_open(prefix: str) -> None:
    with sync_source("connection") as connection:
        persister = MySQLPersister(connection, prefix)
        persister.save(None, "app", 0, "start", State({"count": 0}), "completed")
        persister.close()
        assert connection.open
        assert MySQLPersister(connection, prefix).load(None, "app") is not None


def test_async_close_closes_its_own_connection_and_leaves_a_passed_one_open(prefix: str) -> None:
    async def main() -> None:
        own = await AsyncMySQLPersister.connect(prefix, **SERVER)
        await own.save(None, "app", 0, "start", State({"count": 0}), "completed")
        await own.close()
        await own.close()
        with pytest.raises(PersistenceError, match="MySQL"):
            await own.load(None, "app")
        async with async_persister("connection", prefix) as passed:
            await passed.close()
            assert not passed.connection.source.closed
            assert await passed.load(None, "app") is not None

    asyncio.run(main())


def test_an_async_persister_never_used_closes_without_connecting(prefix: str) -> None:
    async def main() -> None:
        persister = AsyncMySQLPersister(SERVER, prefix)
        await persister.close()
        assert persister.connection.owned is None

    asyncio.run(main())


WRONG_SOURCES = {
    "sync-given-async-connection": ("sync", "async", "use AsyncMySQLPersister"),
    "async-given-sync-connection": ("async", "sync", "use MySQLPersister"),
    "sync-given-a-string": ("sync", "mysql://root@127.0.0.1/test", "got str"),
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
            given = await aiomysql.connect(**AIO_SERVER)
        elif source == "sync":
            given = pymysql.connect(**SERVER)
        try:
            cls: Any = MySQLPersister if persister == "sync" else AsyncMySQLPersister
            with pytest.raises(TypeError, match=message):
                cls(given)
        finally:
            if source == "async":
                await given.ensure_closed()
            elif source == "sync":
                given.close()

    asyncio.run(main())


def test_an_invalid_table_name_is_rejected_before_connecting() -> None:
    with pytest.raises(ValueError, match="bad-name"):
        MySQLPersister({**SERVER, "port": checks.closed_port()}, "bad-name")


@pytest.mark.parametrize("module", ["pymysql", "aiomysql"], ids=["pymysql", "aiomysql"])
def test_importing_without_the_driver_raises_missing_extra_naming_the_install(module: str) -> None:
    code = (
        "import sys\n"
        f"sys.modules[{module!r}] = None\n"
        "from turnout.core.errors import MissingExtraError\n"
        "try:\n"
        "    import turnout.integrations.mysql\n"
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
    assert 'pip install "turnout[mysql]"' in result.stdout
    assert repr(module) in result.stdout


# -- schema, keys, connections configured by the caller -------------------------------------------


FIRST_USES: dict[str, Callable[[MySQLPersister], object]] = {
    "load": lambda p: p.load("user", "app"),
    "list_app_ids": lambda p: p.list_app_ids("user"),
    "save": lambda p: p.save("user", "app", 0, "start", State({"n": 1}), "completed"),
}


@pytest.mark.parametrize("use", FIRST_USES.values(), ids=list(FIRST_USES))
def test_tables_are_created_on_first_use(
    server: Any, prefix: str, use: Callable[[MySQLPersister], object]
) -> None:
    with MySQLPersister(SERVER, prefix) as persister:
        assert tables(server, prefix) == []
        use(persister)
        assert tables(server, prefix) == [
            f"{prefix}_apps",
            f"{prefix}_journal",
            f"{prefix}_meta",
            f"{prefix}_steps",
        ]
    meta = query(server, f"SELECT name, value FROM {prefix}_meta")
    assert meta == [("schema", str(SCHEMA_VERSION))]


def test_persisters_using_new_tables_at_the_same_moment_all_succeed(
    server: Any, prefix: str
) -> None:
    """DDL commits implicitly in MySQL, so two first uses could both insert the schema row;
    setup is serialised by a named lock."""
    persisters = [MySQLPersister(SERVER, prefix) for _ in range(6)]
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
    assert query(server, f"SELECT COUNT(*) FROM {prefix}_meta") == [(1,)]
    assert query(server, f"SELECT COUNT(*) FROM {prefix}_steps") == [(6,)]


KEYS = {
    "case": [("user", "App"), ("user", "app"), ("User", "app")],
    "accents": [("user", "e"), ("user", "é"), ("user", "É")],
    "four-byte": [("😀", "app"), ("user", "😀"), ("user", "😁")],
}


@pytest.mark.parametrize("keys", KEYS.values(), ids=list(KEYS))
def test_keys_compare_exactly(prefix: str, keys: list[tuple[str, str]]) -> None:
    """The server's default collation is usually case- and accent-insensitive; ours is binary."""
    with MySQLPersister(SERVER, prefix) as persister:
        for index, (partition_key, app_id) in enumerate(keys):
            persister.save(partition_key, app_id, 0, "a", State({"i": index}), "completed")
        for index, (partition_key, app_id) in enumerate(keys):
            loaded = persister.load(partition_key, app_id)
            assert loaded is not None
            assert (loaded.partition_key, loaded.app_id, loaded.state["i"]) == (
                partition_key,
                app_id,
                index,
            )


def test_a_key_longer_than_its_column_is_an_error_not_cut(prefix: str) -> None:
    with MySQLPersister(SERVER, prefix) as persister:
        with pytest.raises(PersistenceError, match="too long"):
            persister.save("user", "a" * 256, 0, "a", State({}), "completed")
        assert persister.list_app_ids("user") == []


def test_a_caller_connection_without_autocommit_sees_saves_by_others(prefix: str) -> None:
    """Under REPEATABLE READ an implicit transaction left open would freeze what it reads."""
    with sync_source("connection") as connection:
        persister = MySQLPersister(connection, prefix)
        persister.save("user", "app", 0, "start", State({"count": 0}), "completed")
        assert persister.load("user", "app") is not None
        with MySQLPersister(SERVER, prefix) as other:
            other.save(
                "user", "app", 1, "count", State({"count": 1}), "completed",
                changes=[("set", "count", 1)], previous_sequence_id=0,
            )  # fmt: skip
        loaded = persister.load("user", "app")
        assert loaded is not None
        assert (loaded.sequence_id, loaded.state["count"]) == (1, 1)
        assert connection.get_autocommit() is False


@pytest.mark.parametrize("kind", ["kwargs"], ids=["kwargs"])
def test_one_persister_serves_concurrent_threads(prefix: str, kind: str) -> None:
    with sync_source(kind) as source, MySQLPersister(source, prefix) as persister:
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


def test_a_pool_of_one_connection_saves_without_waiting_on_itself(prefix: str) -> None:
    """A transaction holds its connection; the statements inside it reuse that connection."""

    async def main() -> None:
        pool = await aiomysql.create_pool(minsize=1, maxsize=1, **AIO_SERVER)
        try:
            persister = AsyncMySQLPersister(pool, prefix)
            for sequence_id in range(3):
                await persister.save(
                    None, "app", sequence_id, "a", State({"n": sequence_id}), "completed"
                )
            assert await persister.delete("app") == 3
        finally:
            pool.close()
            await pool.wait_closed()

    asyncio.run(main())


# -- an unreachable server -----------------------------------------------------------------------


def test_an_unreachable_server_is_a_persistence_error_naming_host_and_port() -> None:
    port = checks.closed_port()
    with pytest.raises(PersistenceError, match=f"MySQL at 127.0.0.1:{port}"):
        MySQLPersister({**SERVER, "host": "127.0.0.1", "port": port})


def test_an_unreachable_server_behind_a_pool_is_a_persistence_error_naming_the_host() -> None:
    arguments = {**AIO_SERVER, "host": "127.0.0.1", "port": checks.closed_port()}

    async def main() -> None:
        pool = await aiomysql.create_pool(minsize=0, maxsize=1, **arguments)
        try:
            with pytest.raises(PersistenceError, match=r"pool.*127\.0\.0\.1"):
                await AsyncMySQLPersister(pool).load(None, "app")
        finally:
            pool.close()
            await pool.wait_closed()

    asyncio.run(main())


@pytest.mark.parametrize("when", ["connect", "first-use"], ids=["connect", "first-use"])
def test_an_unreachable_server_fails_async_persisters_with_host_and_port(when: str) -> None:
    arguments = {**SERVER, "host": "127.0.0.1", "port": checks.closed_port()}

    async def attempt() -> object:
        if when == "connect":
            return await AsyncMySQLPersister.connect(**arguments)
        return await AsyncMySQLPersister(arguments).load(None, "app")

    async def main() -> None:
        with pytest.raises(PersistenceError, match=f"MySQL at 127.0.0.1:{arguments['port']}"):
            await attempt()

    asyncio.run(main())


# -- racing writers and applications (tests/integrations/sql_backend_checks.py) ----------------


def _make(prefix: str) -> Callable[..., Any]:
    return lambda **kwargs: MySQLPersister(SERVER, prefix, **kwargs)


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
        lambda: async_persister("pool", prefix)
    )


def test_two_applications_advancing_one_app_id_the_second_save_fails(prefix: str) -> None:
    checks.two_applications_advancing_one_app_id_the_second_save_fails(_make(prefix))
