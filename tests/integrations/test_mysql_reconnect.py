"""The MySQL/MariaDB persisters and lost connections, against a real server: the test ends the
persister's server session with ``KILL`` and checks that a connection the persister opened is
reopened between transactions (sync and async), that a transaction cut in the middle is never
replayed but fails with a ``PersistenceError`` saying whether it was applied, that a connection
the caller passed fails with an error naming the fix, and that a statement over the server's
``max_allowed_packet`` is refused with the limit and the fix, leaving the connection usable.

Skips when the server is not reachable, except under ``CI=true`` (the ``server`` fixture of
test_mysql).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

pytest.importorskip("pymysql")
pytest.importorskip("aiomysql")
import aiomysql  # type: ignore[import-untyped]
import pymysql  # type: ignore[import-untyped]

from tests.integrations import reconnect_checks as checks
from tests.integrations.test_mysql import AIO_SERVER, SERVER, prefix, query, server
from turnout import State
from turnout.core.errors import PersistenceError
from turnout.integrations.mysql import AsyncMySQLPersister, MySQLPersister

__all__ = ["prefix", "server"]  # fixtures, shared with test_mysql

MIB = 1024 * 1024


def over_the_limit(server: Any) -> tuple[int, int]:
    """The server's max_allowed_packet and a state size over it: 20 MiB (the save of the bug
    report, over MariaDB's default of 16 MiB), or more where the server accepts that."""
    (limit,) = query(server, "SELECT @@global.max_allowed_packet")[0]
    return int(limit), max(20 * MIB, int(limit) + MIB)


def kill(server: Any, connection: Any) -> None:
    """End ``connection``'s server session, as an administrator or a restart would, and wait
    until the server no longer lists it."""
    session = int(connection.thread_id())
    query(server, f"KILL {session}")
    for _ in range(10_000):
        if not query(
            server, "SELECT 1 FROM information_schema.PROCESSLIST WHERE ID = %s", [session]
        ):
            return
    pytest.fail(f"MySQL session {session} did not end after KILL")


def test_a_closed_persister_does_not_reconnect(prefix: str) -> None:
    persister = MySQLPersister(SERVER, prefix)
    persister.save("user", "app", 0, "count", State({"count": 0}), "completed")
    persister.close()
    with pytest.raises(PersistenceError, match=r"was closed \(close\(\) was called\)"):
        persister.load("user", "app")
    assert not persister.connection.owned.open


def test_a_save_over_max_allowed_packet_is_refused_with_the_limit_and_the_connection_stays(
    server: Any, prefix: str
) -> None:
    limit, big = over_the_limit(server)
    with MySQLPersister(SERVER, prefix) as persister:
        persister.save("user", "app", 0, "count", State({"count": 0}), "completed")
        session = persister.connection.owned.thread_id()
        with pytest.raises(PersistenceError, match="max_allowed_packet") as info:
            persister.save("user", "app", 1, "big", State({"blob": "x" * big}), "completed")
        message = str(info.value)
        assert f"max_allowed_packet of {limit:,} bytes" in message
        assert "SET GLOBAL max_allowed_packet = " in message
        assert "nothing was saved" in message
        assert persister.connection.owned.thread_id() == session  # the same, usable connection
        checks.save(persister, 1, 1)
        assert checks.counts(persister, 1) == [0, 1]


def test_an_async_save_over_max_allowed_packet_is_refused_and_the_next_save_works(
    server: Any, prefix: str
) -> None:
    limit, big = over_the_limit(server)

    async def main() -> None:
        async with AsyncMySQLPersister(SERVER, prefix) as persister:
            await persister.save("user", "app", 0, "count", State({"count": 0}), "completed")
            with pytest.raises(PersistenceError, match=f"max_allowed_packet of {limit:,} bytes"):
                await persister.save(
                    "user", "app", 1, "big", State({"blob": "x" * big}), "completed"
                )
            await checks.asave(persister, 1, 1)
            assert await checks.acounts(persister, 1) == [0, 1]

    asyncio.run(main())


def test_an_aiomysql_pool_whose_connection_was_dropped_recovers_by_the_next_call(
    server: Any, prefix: str
) -> None:
    async def main() -> None:
        pool = await aiomysql.create_pool(minsize=1, maxsize=1, **AIO_SERVER)
        try:
            persister = AsyncMySQLPersister(pool, prefix)
            await persister.save("user", "app", 0, "count", State({"count": 0}), "completed")
            async with pool.acquire() as lent:
                kill(server, lent)
            # aiomysql's pool notices a connection whose server hung up when it lends it; one it
            # could not notice fails that call, saying the next one gets a new connection.
            said = ""
            try:
                await checks.asave(persister, 1, 1)
            except PersistenceError as exc:
                said = str(exc)
            if said:
                assert "The pool replaces the broken connection on the next call" in said
                await checks.asave(persister, 1, 1)
            assert await checks.acounts(persister, 1) == [0, 1]
        finally:
            pool.close()
            await pool.wait_closed()

    asyncio.run(main())


class TestMySQLReconnect(checks.ReconnectTests):
    Persister = MySQLPersister
    AsyncPersister = AsyncMySQLPersister
    database = "MySQL"
    source = SERVER
    host = SERVER["host"]
    port = SERVER["port"]

    given = "pymysql connection passed to"
    given_fixes = ("Pass the connection arguments instead",)
    given_async = "aiomysql connection passed to"
    given_async_fix = "aiomysql pool"

    @pytest.fixture
    def end(self, server: Any) -> checks.End:
        return lambda connection: kill(server, connection)

    def relayed(self, port: int) -> dict[str, Any]:
        return {**SERVER, "host": "127.0.0.1", "port": port}

    @contextlib.contextmanager
    def connected(self) -> Iterator[Any]:
        connection = pymysql.connect(**SERVER, autocommit=True)
        try:
            yield connection
        finally:
            if connection.open:
                connection.close()

    @contextlib.asynccontextmanager
    async def aconnected(self) -> AsyncIterator[Any]:
        connection = await aiomysql.connect(**AIO_SERVER, autocommit=True)
        try:
            yield connection
        finally:
            connection.close()
