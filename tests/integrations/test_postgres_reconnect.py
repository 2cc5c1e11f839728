"""The PostgreSQL persisters and lost connections, against a real server: the test ends the
persister's server session with ``pg_terminate_backend`` and checks that a connection the
persister opened is reopened between transactions (sync and async), that a transaction cut in
the middle is never replayed but fails with a ``PersistenceError`` saying whether it was
applied, and that a connection the caller passed fails with an error naming the fix.

Skips when the server is not reachable, except under ``CI=true`` (the ``server`` fixture of
test_postgres).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
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

    given = r"psycopg\.Connection passed to"
    given_fixes = ("psycopg_pool.ConnectionPool", "connection string")
    given_async = "AsyncConnection passed to"
    given_async_fix = "psycopg_pool.AsyncConnectionPool"

    @pytest.fixture
    def end(self, server: psycopg.Connection[Any]) -> checks.End:
        return lambda connection: kill(server, connection)

    def relayed(self, port: int) -> str:
        return make_conninfo(DSN, host="127.0.0.1", port=port)

    def connected(self) -> psycopg.Connection[Any]:
        return psycopg.connect(DSN, autocommit=True)

    @contextlib.asynccontextmanager
    async def aconnected(self) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        async with await psycopg.AsyncConnection.connect(DSN, autocommit=True) as connection:
            yield connection
