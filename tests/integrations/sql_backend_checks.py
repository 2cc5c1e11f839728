"""Checks every SQL persister must pass, written once; test_postgres and test_mysql run them
against their own server with their own constructors.

``make(prefix, **kwargs)`` builds a sync persister (a context manager); ``open_async()`` opens an
async persister as an async context manager.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import pytest

from turnout import ApplicationBuilder, State, action, expr
from turnout.core.errors import ConcurrencyError

MakePersister = Callable[..., Any]
OpenAsync = Callable[[], AbstractAsyncContextManager[Any]]


def closed_port() -> int:
    """A local port nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def saves_and_loads(persister: Any) -> None:
    """Two steps (one a delta) saved and the latest loaded back, non-ASCII text included."""
    persister.save("user", "app", 0, "start", State({"count": 0, "text": "é😀"}), "completed")
    persister.save(
        "user", "app", 1, "count", State({"count": 1, "text": "é😀"}), "completed",
        changes=[("set", "count", 1)], previous_sequence_id=0,
    )  # fmt: skip
    loaded = persister.load("user", "app")
    assert loaded is not None
    assert (loaded.sequence_id, loaded.position) == (1, "count")
    assert loaded.state.get_all() == {"count": 1, "text": "é😀"}
    assert persister.list_app_ids("user") == ["app"]


def async_saves_and_loads(open_async: OpenAsync) -> None:
    """``saves_and_loads`` for an async persister."""

    async def main() -> None:
        async with open_async() as persister:
            await persister.save("user", "app", 0, "start", State({"count": 0}), "completed")
            await persister.save(
                "user", "app", 1, "count", State({"count": 1}), "completed",
                changes=[("set", "count", 1)], previous_sequence_id=0,
            )  # fmt: skip
            loaded = await persister.load("user", "app")
            assert loaded is not None
            assert (loaded.sequence_id, loaded.state["count"]) == (1, 1)
            assert await persister.list_app_ids("user") == ["app"]

    asyncio.run(main())


def a_second_persister_saving_a_taken_sequence_id_gets_concurrency_error(
    make: MakePersister,
) -> None:
    with make() as first, make() as second:
        first.save("user", "app", 0, "a", State({"n": 0}), "completed")
        first.save("user", "app", 1, "a", State({"n": 1}), "completed")
        with pytest.raises(ConcurrencyError) as info:
            second.save("user", "app", 1, "b", State({"n": 9}), "completed")
        assert (info.value.partition_key, info.value.app_id, info.value.sequence_id) == (
            "user",
            "app",
            1,
        )
        with pytest.raises(ConcurrencyError):
            second.save(
                "user", "app", 2, "b", State({"n": 9}), "completed",
                changes=[("set", "n", 9)], previous_sequence_id=0,
            )  # fmt: skip
        loaded = first.load("user", "app")
        assert loaded is not None
        assert (loaded.sequence_id, loaded.state["n"]) == (1, 1)


def racing_persisters_on_one_app_id_let_exactly_one_save_each_sequence_id(
    make: MakePersister,
) -> None:
    persisters = [make() for _ in range(4)]
    persisters[0].save("user", "app", 0, "a", State({"n": 0}), "completed")
    outcomes: list[str] = []
    try:
        for sequence_id in range(1, 6):
            barrier = threading.Barrier(len(persisters))

            def save(index: int, sequence_id: int = sequence_id, barrier: Any = barrier) -> None:
                persister = persisters[index]
                barrier.wait()
                try:
                    persister.save(
                        "user", "app", sequence_id, "a", State({"n": index}), "completed",
                        changes=[("set", "n", index)], previous_sequence_id=sequence_id - 1,
                    )  # fmt: skip
                    outcomes.append("saved")
                except ConcurrencyError:
                    outcomes.append("conflict")

            threads = [threading.Thread(target=save, args=(i,)) for i in range(len(persisters))]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        loaded = persisters[0].load("user", "app")
        assert loaded is not None
        assert loaded.sequence_id == 5
    finally:
        for persister in persisters:
            persister.close()
    assert sorted(outcomes) == ["conflict"] * 15 + ["saved"] * 5


def racing_async_persisters_on_one_app_id_let_exactly_one_save(open_async: OpenAsync) -> None:
    async def save(persister: Any, n: int) -> str:
        try:
            await persister.save("user", "app", 0, "a", State({"n": n}), "completed")
        except ConcurrencyError:
            return "conflict"
        return "saved"

    async def main() -> list[str]:
        async with open_async() as first, open_async() as second:
            await first.list_app_ids("user")  # create the tables first
            return list(await asyncio.gather(save(first, 1), save(second, 2)))

    assert sorted(asyncio.run(main())) == ["conflict", "saved"]


@action(reads=["count"], writes=["count"])
def increment(state: State) -> State:
    return state.update(count=state["count"] + 1)


@action(reads=["count"], writes=[])
def done(state: State) -> tuple[dict[str, Any], State]:
    return {"count": state["count"]}, state


def builder(persister: Any, app_id: str) -> ApplicationBuilder:
    return (
        ApplicationBuilder()
        .with_actions(increment, done)
        .with_transitions(("increment", "increment", expr("count < 5")), ("increment", "done"))
        .initialize_from(
            persister,
            resume_at_next_action=True,
            default_state={"count": 0},
            default_entrypoint="increment",
        )
        .with_state_persister(persister)
        .with_identifiers(app_id=app_id, partition_key="user")
    )


def an_application_saves_every_step_and_resumes_where_it_stopped(make: MakePersister) -> None:
    with make(snapshot_every=4) as persister:
        first = builder(persister, "app").build()
        for _ in range(3):
            first.step()
        resumed = builder(persister, "app").build()
        assert (resumed.state["count"], resumed.sequence_id) == (3, 2)
        _action, result, _state = resumed.run(halt_after=["done"])
        assert result == {"count": 5}
        loaded = persister.load("user", "app")
        assert loaded is not None
        assert (loaded.sequence_id, loaded.position, loaded.state["count"]) == (5, "done", 5)
        counts = [persister.load("user", "app", i) for i in range(6)]
        assert [c.state["count"] if c else None for c in counts] == [1, 2, 3, 4, 5, 5]


def an_async_application_saves_every_step_and_resumes_where_it_stopped(
    open_async: OpenAsync,
) -> None:
    async def main() -> None:
        async with open_async() as persister:
            first = await builder(persister, "app").abuild()
            for _ in range(3):
                await first.astep()
            resumed = await builder(persister, "app").abuild()
            assert (resumed.state["count"], resumed.sequence_id) == (3, 2)
            _action, result, _state = await resumed.arun(halt_after=["done"])
            assert result == {"count": 5}
            loaded = await persister.load("user", "app")
            assert loaded is not None
            assert (loaded.sequence_id, loaded.position, loaded.state["count"]) == (5, "done", 5)

    asyncio.run(main())


def two_applications_advancing_one_app_id_the_second_save_fails(make: MakePersister) -> None:
    with make() as persister:
        builder(persister, "app").build().step()
        one, two = builder(persister, "app").build(), builder(persister, "app").build()
        one.step()
        with pytest.raises(ConcurrencyError):
            two.step()
