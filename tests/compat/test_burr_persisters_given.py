"""Burr's ways of making SQLite persisters that turnout's own constructors did not cover:
``AsyncSQLitePersister`` over an ``aiosqlite`` connection the caller opened (by keyword, or
first, as Burr's constructor takes it), ``copy()`` for child applications, and
``from_values(...)`` results that open one persister only (Burr's
``_AsyncPersisterContextManager`` included)."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from turnout.common.async_utils import _AsyncPersisterContextManager
from turnout.core import ApplicationBuilder, State, action
from turnout.core.errors import PersistenceError
from turnout.core.serde import KEY, deserializer, serialize
from turnout.core.sqlite import AsyncSQLitePersister, SQLitePersister

aiosqlite = pytest.importorskip("aiosqlite")


@action(reads=["n"], writes=["n"])
async def bump(state: State) -> State:
    return state.update(n=state["n"] + 1)


async def _app(persister: Any, app_id: str = "a1") -> Any:
    return await (
        ApplicationBuilder()
        .with_actions(bump)
        .with_transitions(("bump", "bump"))
        .initialize_from(
            persister, resume_at_next_action=True, default_state={"n": 0}, default_entrypoint="bump"
        )
        .with_state_persister(persister)
        .with_identifiers(app_id=app_id)
        .abuild()
    )


@pytest.mark.parametrize("by_keyword", [True, False], ids=["connection=", "first-argument"])
def test_an_app_saves_and_resumes_through_a_given_aiosqlite_connection(
    tmp_path: Path, by_keyword: bool
) -> None:
    async def main() -> tuple[int, int, list[tuple[Any, ...]]]:
        connection = await aiosqlite.connect(str(tmp_path / "given.db"))
        persister = (
            AsyncSQLitePersister(connection=connection, table_name="burr_state")
            if by_keyword
            else AsyncSQLitePersister(connection, "burr_state")
        )
        assert persister.connection is connection
        await persister.initialize()
        app = await _app(persister)
        await app.astep()
        await app.astep()
        resumed = await _app(persister)
        with pytest.raises(ValueError, match="abuild"):  # as on Burr: a ValueError
            resumed.run(halt_after=["bump"])
        tables = await connection.execute_fetchall(
            "SELECT name FROM sqlite_master WHERE name = 'burr_state_steps'"
        )
        await persister.cleanup()
        return resumed.state["n"], resumed.sequence_id, list(tables)

    n, sequence_id, tables = asyncio.run(main())
    assert (n, sequence_id) == (2, 1)
    assert tables == [("burr_state_steps",)]


def test_closing_the_persister_closes_the_given_connection() -> None:
    async def main() -> None:
        connection = await aiosqlite.connect(":memory:")
        persister = AsyncSQLitePersister(connection=connection, table_name="t")
        await persister.close()
        with pytest.raises(ValueError, match="no active connection"):
            await connection.execute("SELECT 1")

    asyncio.run(main())


def test_saves_from_concurrent_tasks_on_one_given_connection_all_land() -> None:
    async def main() -> list[str]:
        connection = await aiosqlite.connect(":memory:")
        persister = AsyncSQLitePersister(connection=connection, table_name="t")
        await asyncio.gather(
            *(
                persister.save("pk", f"app{i}", 0, "bump", State({"n": i}), "completed")
                for i in range(8)
            )
        )
        ids = await persister.list_app_ids("pk")
        await persister.cleanup()
        return sorted(ids)

    assert asyncio.run(main()) == [f"app{i}" for i in range(8)]


def test_a_path_and_a_connection_together_are_refused() -> None:
    async def main() -> None:
        connection = await aiosqlite.connect(":memory:")
        try:
            with pytest.raises(PersistenceError, match="give one of them"):
                AsyncSQLitePersister("app.db", connection=connection)
        finally:
            await connection.close()

    asyncio.run(main())


def test_a_sync_copy_of_a_file_persister_has_its_own_connection(tmp_path: Path) -> None:
    persister = SQLitePersister(tmp_path / "app.db", "t")
    persister.save("pk", "a", 0, "bump", State({"n": 1}), "completed")
    copied = persister.copy()
    assert copied.connection is not persister.connection
    assert copied.table_name == "t"
    persister.close()
    loaded = copied.load("pk", "a")
    assert loaded is not None
    assert loaded.state["n"] == 1
    copied.close()


def test_a_copy_of_an_in_memory_persister_shares_it_and_leaves_it_open() -> None:
    persister = SQLitePersister(":memory:", "t")
    copied = persister.copy()
    copied.save("pk", "a", 0, "bump", State({"n": 1}), "completed")
    copied.close()
    assert persister.list_app_ids("pk") == ["a"]
    persister.close()


def test_an_async_copy_shares_a_given_connection() -> None:
    async def main() -> list[str]:
        connection = await aiosqlite.connect(":memory:")
        persister = AsyncSQLitePersister(connection=connection, table_name="t")
        copied = persister.copy()
        assert copied.connection is connection
        await copied.save("pk", "a", 0, "bump", State({"n": 1}), "completed")
        await copied.close()  # leaves the connection to the original
        ids = await persister.list_app_ids("pk")
        await persister.close()
        return ids

    assert asyncio.run(main()) == ["a"]


def test_an_async_copy_of_a_file_persister_opens_its_own_connection(tmp_path: Path) -> None:
    async def main() -> list[str]:
        persister = AsyncSQLitePersister(tmp_path / "app.db", "t")
        copied = persister.copy()
        assert copied.connection is not persister.connection
        await copied.save("pk", "a", 0, "bump", State({"n": 1}), "completed")
        await copied.close()
        ids = await persister.list_app_ids("pk")
        await persister.close()
        return ids

    assert asyncio.run(main()) == ["a"]


def test_a_from_values_result_opens_one_persister_only() -> None:
    async def main() -> None:
        opening = AsyncSQLitePersister.from_values(":memory:")
        persister = await opening
        with pytest.raises(RuntimeError, match="already been consumed"):
            await opening
        with pytest.raises(PersistenceError, match="already been consumed"):
            async with opening:
                pass
        await persister.cleanup()

    asyncio.run(main())


def test_burrs_context_manager_wrapper_opens_and_closes_and_lets_failures_through() -> None:
    async def opened() -> AsyncSQLitePersister:
        return AsyncSQLitePersister(":memory:", "t")

    async def failing() -> AsyncSQLitePersister:
        raise ConnectionError("no database")

    async def main() -> None:
        async with _AsyncPersisterContextManager(opened()) as persister:
            await persister.save("pk", "a", 0, "bump", State({}), "completed")
        with pytest.raises(sqlite3.ProgrammingError, match="closed"):
            persister.connection._connection.execute("SELECT 1")
        with pytest.raises(ConnectionError, match="no database"):
            async with _AsyncPersisterContextManager(failing()):
                pass

    asyncio.run(main())


class Tagged:
    """A type whose Burr-style codec needs ``tag_kwargs``, as the pandas one needs a path."""

    def __init__(self, value: int) -> None:
        self.value = value


@serialize.register(Tagged)
def _serialize_tagged(
    value: Tagged, tag_kwargs: dict[str, Any] | None = None, **kwargs: Any
) -> dict[str, Any]:
    if not tag_kwargs:
        raise ValueError("serialising a Tagged needs tag_kwargs")
    return {KEY: "tests.tagged", "value": value.value, "tag": tag_kwargs["tag"]}


@deserializer.register("tests.tagged")
def _deserialize_tagged(
    value: dict[str, Any], tag_kwargs: dict[str, Any] | None = None, **kwargs: Any
) -> Tagged:
    if not tag_kwargs:
        raise ValueError("deserialising a Tagged needs tag_kwargs")
    return Tagged(value["value"])


def test_a_sync_copy_of_a_file_persister_keeps_its_serde_kwargs(tmp_path: Path) -> None:
    """A child application's persister passes the parent's serde_kwargs to the codecs too
    (Burr's pandas plugin needs its path there)."""
    persister = SQLitePersister(tmp_path / "app.db", "t", serde_kwargs={"tag_kwargs": {"tag": 1}})
    copied = persister.copy()
    assert copied.serde_kwargs == {"tag_kwargs": {"tag": 1}}
    copied.save("pk", "a", 0, "bump", State({"x": Tagged(5)}), "completed")
    loaded = copied.load("pk", "a")
    assert loaded is not None
    assert loaded.state["x"].value == 5
    copied.close()
    persister.close()


def test_an_async_copy_of_a_file_persister_keeps_its_serde_kwargs(tmp_path: Path) -> None:
    async def main() -> int:
        persister = AsyncSQLitePersister(
            tmp_path / "app.db", "t", serde_kwargs={"tag_kwargs": {"tag": 1}}
        )
        copied = persister.copy()
        await copied.save("pk", "a", 0, "bump", State({"x": Tagged(6)}), "completed")
        loaded = await copied.load("pk", "a")
        await copied.close()
        await persister.close()
        assert loaded is not None
        value: int = loaded.state["x"].value
        return value

    assert asyncio.run(main()) == 6
