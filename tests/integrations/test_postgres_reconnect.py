"""The PostgreSQL persisters and lost connections, against a real server: the test kills the
persister's server-side session with ``pg_terminate_backend`` and checks that a connection the
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
from psycopg_pool import ConnectionPool

from tests.integrations import sql_backend_checks as checks
from tests.integrations.test_postgres import DSN, prefix, server
from turnout import State
from turnout.core.errors import PersistenceError
from turnout.core.hooks import PreRunStepHook, PreRunStepHookAsync
from turnout.integrations.postgres import AsyncPostgreSQLPersister, PostgreSQLPersister

__all__ = ["prefix", "server"]  # fixtures, shared with test_postgres


def kill(server: psycopg.Connection[Any], connection: Any) -> None:
    """End ``connection``'s server session, as an administrator or a restart would, and wait
    until it has ended."""
    pid = connection.info.backend_pid
    row = server.execute("SELECT pg_terminate_backend(%s, 10000)", [pid]).fetchone()
    assert row == (True,), f"backend {pid} did not end"


def save(persister: Any, sequence_id: int, count: int) -> None:
    persister.save(
        "user", "app", sequence_id, "count", State({"count": count}), "completed",
        changes=[("set", "count", count)], previous_sequence_id=sequence_id - 1,
    )  # fmt: skip


def counts(persister: Any, last: int) -> list[int | None]:
    """The count saved at each sequence id up to ``last``, each rebuilt from the store."""
    loaded = [persister.load("user", "app", i) for i in range(last + 1)]
    return [None if record is None else record.state["count"] for record in loaded]


class KillBeforeEachStep(PreRunStepHook):
    def __init__(self, server: psycopg.Connection[Any], persister: PostgreSQLPersister) -> None:
        self.server, self.persister, self.kills = server, persister, 0

    def pre_run_step(self, **future_kwargs: Any) -> None:
        kill(self.server, self.persister.connection.owned)
        self.kills += 1


class AsyncKillBeforeEachStep(PreRunStepHookAsync):
    def __init__(self, server: psycopg.Connection[Any], persister: Any) -> None:
        self.server, self.persister, self.kills = server, persister, 0

    async def pre_run_step(self, **future_kwargs: Any) -> None:
        kill(self.server, self.persister.connection.owned)
        self.kills += 1


def test_an_application_keeps_saving_when_the_server_drops_the_connection_before_each_step(
    server: psycopg.Connection[Any], prefix: str
) -> None:
    with PostgreSQLPersister(DSN, prefix, snapshot_every=3) as persister:
        hook = KillBeforeEachStep(server, persister)
        app = checks.builder(persister, "app").with_hooks(hook).build()
        app.run(halt_after=["done"])
        assert hook.kills == 6
        kill(server, persister.connection.owned)
        resumed = checks.builder(persister, "app").build()  # loads on a dropped connection
        assert (resumed.sequence_id, resumed.state["count"]) == (5, 5)
        assert counts(persister, 5) == [1, 2, 3, 4, 5, 5]


def test_an_async_application_keeps_saving_when_the_server_drops_the_connection_before_each_step(
    server: psycopg.Connection[Any], prefix: str
) -> None:
    async def main() -> None:
        async with await AsyncPostgreSQLPersister.connect(DSN, prefix) as persister:
            hook = AsyncKillBeforeEachStep(server, persister)
            app = await checks.builder(persister, "app").with_hooks(hook).abuild()
            await app.arun(halt_after=["done"])
            assert hook.kills == 6
            kill(server, persister.connection.owned)
            resumed = await checks.builder(persister, "app").abuild()
            assert (resumed.sequence_id, resumed.state["count"]) == (5, 5)
            loaded = [await persister.load("user", "app", i) for i in range(6)]
            assert [r.state["count"] if r else None for r in loaded] == [1, 2, 3, 4, 5, 5]

    asyncio.run(main())


def cut_transactions(
    persister: Any, prefix: str, server: psycopg.Connection[Any], *, after: bool
) -> Callable[[], int]:
    """Make ``persister`` lose its connection around its next insert of a step (just ``after``
    it ran, or just before); returns a counter of the kills."""
    execute = persister.connection.execute
    kills = 0

    async def cutting(sql: str, params: Any = ()) -> Any:
        nonlocal kills
        inserting = sql.startswith(f"INSERT INTO {prefix}_steps") and kills == 0
        if inserting and not after:
            kills += 1
            kill(server, persister.connection.owned)
        rows = await execute(sql, params)
        if inserting and after:
            kills += 1
            kill(server, persister.connection.owned)
        return rows

    persister.connection.execute = cutting
    return lambda: kills


def test_a_save_cut_in_the_middle_is_not_replayed_and_the_next_save_reconnects(
    server: psycopg.Connection[Any], prefix: str
) -> None:
    with PostgreSQLPersister(DSN, prefix) as persister:
        persister.save("user", "app", 0, "count", State({"count": 0}), "completed")
        cut = cut_transactions(persister, prefix, server, after=False)
        with pytest.raises(PersistenceError, match="middle of a transaction") as info:
            save(persister, 1, 1)
        assert cut() == 1
        assert "was not applied" in str(info.value)
        assert "reconnects on its next call" in str(info.value)
        assert counts(persister, 1) == [0, None]
        save(persister, 1, 1)
        save(persister, 2, 2)
        assert counts(persister, 2) == [0, 1, 2]


def test_a_connection_lost_while_committing_says_the_save_may_have_been_applied(
    server: psycopg.Connection[Any], prefix: str
) -> None:
    with PostgreSQLPersister(DSN, prefix) as persister:
        persister.save("user", "app", 0, "count", State({"count": 0}), "completed")
        cut = cut_transactions(persister, prefix, server, after=True)
        with pytest.raises(PersistenceError, match="while committing") as info:
            save(persister, 1, 1)
        assert cut() == 1
        assert "may or may not have been applied" in str(info.value)
        assert "initialize_from" in str(info.value)
        assert counts(persister, 1) == [0, None]  # the session ended before COMMIT reached it
        save(persister, 1, 1)
        assert counts(persister, 1) == [0, 1]


def test_an_async_save_cut_in_the_middle_is_not_replayed_and_the_next_save_reconnects(
    server: psycopg.Connection[Any], prefix: str
) -> None:
    async def main() -> None:
        async with await AsyncPostgreSQLPersister.connect(DSN, prefix) as persister:
            await persister.save("user", "app", 0, "count", State({"count": 0}), "completed")
            cut = cut_transactions(persister, prefix, server, after=False)
            with pytest.raises(PersistenceError, match="was not applied"):
                await persister.save(
                    "user", "app", 1, "count", State({"count": 1}), "completed",
                    changes=[("set", "count", 1)], previous_sequence_id=0,
                )  # fmt: skip
            assert cut() == 1
            before = await persister.load("user", "app")
            assert before is not None
            assert before.state["count"] == 0
            await persister.save(
                "user", "app", 1, "count", State({"count": 1}), "completed",
                changes=[("set", "count", 1)], previous_sequence_id=0,
            )  # fmt: skip
            loaded = await persister.load("user", "app")
            assert loaded is not None
            assert (loaded.sequence_id, loaded.state["count"]) == (1, 1)

    asyncio.run(main())


def test_a_dropped_connection_the_caller_passed_fails_with_an_error_naming_the_fix(
    server: psycopg.Connection[Any], prefix: str
) -> None:
    with psycopg.connect(DSN, autocommit=True) as connection:
        persister = PostgreSQLPersister(connection, prefix)
        persister.save("user", "app", 0, "count", State({"count": 0}), "completed")
        kill(server, connection)
        attempts: list[Callable[[], object]] = [
            lambda: persister.load("user", "app"),
            lambda: save(persister, 1, 1),
        ]
        for attempt in attempts:
            with pytest.raises(PersistenceError, match=r"psycopg\.Connection passed to") as info:
                attempt()
            assert "does not reopen a connection it was given" in str(info.value)
            assert "psycopg_pool.ConnectionPool" in str(info.value)
            assert "connection string" in str(info.value)
    with PostgreSQLPersister(DSN, prefix) as fresh:
        assert counts(fresh, 0) == [0]


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


def test_a_pool_whose_connection_was_dropped_recovers_on_the_next_call(
    server: psycopg.Connection[Any], prefix: str
) -> None:
    with ConnectionPool(DSN, min_size=1, max_size=1, open=True) as pool:
        persister = PostgreSQLPersister(pool, prefix)
        persister.save("user", "app", 0, "count", State({"count": 0}), "completed")
        with pool.connection() as lent:
            kill(server, lent)
        with pytest.raises(PersistenceError, match="pool replaces"):
            save(persister, 1, 1)
        save(persister, 1, 1)
        assert counts(persister, 1) == [0, 1]


def test_a_closed_persister_does_not_reconnect(prefix: str) -> None:
    persister = PostgreSQLPersister(DSN, prefix)
    persister.save("user", "app", 0, "count", State({"count": 0}), "completed")
    persister.close()
    with pytest.raises(PersistenceError, match=r"was closed \(close\(\) was called\)"):
        persister.load("user", "app")
    assert persister.connection.owned.closed
