"""The PostgreSQL persisters and lost connections, against a real server: the test ends the
persister's server session with ``pg_terminate_backend`` and checks that a connection the
persister opened is reopened between transactions (sync and async), that a transaction cut in
the middle is never replayed but fails with a ``PersistenceError`` saying whether it was
applied, and that a connection the caller passed fails with an error naming the fix.

Skips when the server is not reachable, except under ``CI=true`` (the ``server`` fixture of
test_postgres).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

pytest.importorskip("psycopg")
pytest.importorskip("psycopg_pool")
import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg_pool import ConnectionPool

from tests.integrations import reconnect_checks as checks
from tests.integrations.test_postgres import DSN, prefix, server
from turnout import State
from turnout.core.errors import PersistenceError
from turnout.integrations.postgres import AsyncPostgreSQLPersister, PostgreSQLPersister

__all__ = ["prefix", "server"]  # fixtures, shared with test_postgres


def kill(server: psycopg.Connection[Any], connection: Any) -> None:
    """End ``connection``'s server session, as an administrator or a restart would, and wait
    until it has ended."""
    pid = connection.info.backend_pid
    row = server.execute("SELECT pg_terminate_backend(%s, 10000)", [pid]).fetchone()
    assert row == (True,), f"backend {pid} did not end"


def killer(server: psycopg.Connection[Any]) -> checks.Kill:
    """Ends the session of the connection a persister opened, whichever it is by then."""
    return lambda persister: kill(server, persister.connection.owned)


def test_a_dropped_connection_the_caller_passed_fails_with_an_error_naming_the_fix(
    server: psycopg.Connection[Any], prefix: str
) -> None:
    with psycopg.connect(DSN, autocommit=True) as connection:
        persister = PostgreSQLPersister(connection, prefix)
        persister.save("user", "app", 0, "count", State({"count": 0}), "completed")
        kill(server, connection)
        attempts: list[Callable[[], object]] = [
            lambda: persister.load("user", "app"),
            lambda: checks.save(persister, 1, 1),
        ]
        for attempt in attempts:
            with pytest.raises(PersistenceError, match=r"psycopg\.Connection passed to") as info:
                attempt()
            assert "does not reopen a connection it was given" in str(info.value)
            assert "psycopg_pool.ConnectionPool" in str(info.value)
            assert "connection string" in str(info.value)
    with PostgreSQLPersister(DSN, prefix) as fresh:
        assert checks.counts(fresh, 0) == [0]


def test_a_dropped_async_connection_the_caller_passed_fails_with_an_error_naming_the_fix(
    server: psycopg.Connection[Any], prefix: str
) -> None:
    async def main() -> None:
        async with await psycopg.AsyncConnection.connect(DSN, autocommit=True) as connection:
            persister = AsyncPostgreSQLPersister(connection, prefix)
            await persister.save("user", "app", 0, "count", State({"count": 0}), "completed")
            kill(server, connection)
            with pytest.raises(PersistenceError, match="AsyncConnection passed to") as info:
                await persister.load("user", "app")
            assert "psycopg_pool.AsyncConnectionPool" in str(info.value)

    asyncio.run(main())


def test_a_pool_whose_connection_was_dropped_says_so_and_recovers_on_the_next_call(
    server: psycopg.Connection[Any], prefix: str
) -> None:
    with ConnectionPool(DSN, min_size=1, max_size=1, open=True) as pool:
        persister = PostgreSQLPersister(pool, prefix)
        persister.save("user", "app", 0, "count", State({"count": 0}), "completed")
        with pool.connection() as lent:
            kill(server, lent)
        with pytest.raises(PersistenceError, match=r"nothing was written\. The pool replaces"):
            checks.save(persister, 1, 1)
        checks.save(persister, 1, 1)
        assert checks.counts(persister, 1) == [0, 1]


def test_a_closed_persister_does_not_reconnect(prefix: str) -> None:
    persister = PostgreSQLPersister(DSN, prefix)
    persister.save("user", "app", 0, "count", State({"count": 0}), "completed")
    persister.close()
    with pytest.raises(PersistenceError, match=r"was closed \(close\(\) was called\)"):
        persister.load("user", "app")
    owned = persister.connection.owned
    assert owned is not None
    assert owned.closed


class TestPostgreSQLReconnect(checks.ReconnectTests):
    Persister = PostgreSQLPersister
    AsyncPersister = AsyncPostgreSQLPersister
    database = "PostgreSQL"
    source = DSN
    host = str(conninfo_to_dict(DSN).get("host") or "127.0.0.1")
    port = int(str(conninfo_to_dict(DSN).get("port") or 5432))

    @pytest.fixture
    def kill(self, server: psycopg.Connection[Any]) -> checks.Kill:
        return killer(server)

    def relayed(self, port: int) -> str:
        return make_conninfo(DSN, host="127.0.0.1", port=port)
