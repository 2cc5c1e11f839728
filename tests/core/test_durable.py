"""``ApplicationContext.durable`` / ``adurable`` in the core: streaming actions, retried streams,
the refusals (no journaling persister, a sync call on an async persister, an awaitable from a
sync call, a bad key, outside a step) and ``DeterminismError`` as a value. The journal on every
backend is tested in tests/persistence/test_journal.py."""

from __future__ import annotations

import asyncio
import pickle
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from turnout import ApplicationBuilder, State, action, streaming_action
from turnout.core.context import ApplicationContext
from turnout.core.errors import AsyncRequiredError, DeterminismError, UnsupportedOperationError
from turnout.core.memory import AsyncInMemoryPersister, InMemoryPersister
from turnout.core.retry import RetryPolicy

RETRY = RetryPolicy(max_attempts=3, initial_delay=0, jitter=0)


def builder(step: Any, persister: Any = None) -> ApplicationBuilder:
    made = (
        ApplicationBuilder()
        .with_actions(step=step)
        .with_transitions(("step", "step"))
        .with_entrypoint("step")
        .with_state({"n": 0})
    )
    return made if persister is None else made.with_state_persister(persister)


def test_a_retried_sync_stream_replays_its_durable_call() -> None:
    sent: list[int] = []
    failures = [ValueError("before the first item")]

    @streaming_action(reads=["n"], writes=["n"], retry=RETRY)
    def stream(state: State, __context: ApplicationContext) -> Iterator[Any]:
        receipt = __context.durable("send", lambda: sent.append(1) or len(sent))
        if failures:
            raise failures.pop()
        yield {"receipt": receipt}, None
        yield {"receipt": receipt}, state.update(n=receipt)

    app = builder(stream, persister=InMemoryPersister()).build()
    _, streamed = app.stream_result(halt_after=["step"])
    assert [item["receipt"] for item in streamed] == [1]
    assert streamed.get()[1]["n"] == 1
    assert sent == [1]


def test_an_async_stream_replays_its_adurable_call_on_retry() -> None:
    sent: list[int] = []
    failures = [ValueError("before the first item")]

    async def send() -> int:
        sent.append(1)
        return len(sent)

    @streaming_action(reads=["n"], writes=["n"], retry=RETRY)
    async def stream(state: State, __context: ApplicationContext) -> AsyncIterator[Any]:
        receipt = await __context.adurable("send", send)
        if failures:
            raise failures.pop()
        yield {"receipt": receipt}, state.update(n=receipt)

    async def scenario() -> int:
        app = await builder(stream, persister=AsyncInMemoryPersister()).abuild()
        _, streamed = await app.astream_result(halt_after=["step"])
        async for _ in streamed:
            pass
        _, state = await streamed.get()
        assert state is not None
        n: int = state["n"]
        return n

    assert asyncio.run(scenario()) == 1
    assert sent == [1]


def test_adurable_accepts_a_plain_function() -> None:
    @action(reads=["n"], writes=["n"])
    async def step(state: State, __context: ApplicationContext) -> State:
        return state.update(n=await __context.adurable("double", lambda x: 2 * x, 21))

    async def scenario() -> Any:
        app = await builder(step, persister=AsyncInMemoryPersister()).abuild()
        await app.astep()
        return app.state["n"]

    assert asyncio.run(scenario()) == 42


def test_durable_without_a_persister_is_refused_naming_the_ones_that_journal() -> None:
    @action(reads=["n"], writes=["n"])
    def step(state: State, __context: ApplicationContext) -> State:
        return state.update(n=__context.durable("send", lambda: 1))

    app = builder(step).build()
    with pytest.raises(UnsupportedOperationError) as caught:
        app.step()
    message = str(caught.value)
    assert "the application has no persister" in message
    assert "SQLitePersister" in message
    assert "with_state_persister" in message


def test_durable_with_a_persister_that_keeps_no_journal_is_refused() -> None:
    class Notes:
        def load(self, *args: Any, **kwargs: Any) -> None:
            return None

        def save(self, *args: Any, **kwargs: Any) -> None:
            pass

        def list_app_ids(self, *args: Any, **kwargs: Any) -> list[str]:
            return []

    @action(reads=["n"], writes=["n"])
    def step(state: State, __context: ApplicationContext) -> State:
        return state.update(n=__context.durable("send", lambda: 1))

    app = builder(step, persister=Notes()).build()
    with pytest.raises(UnsupportedOperationError, match="Notes, keeps no journal"):
        app.step()


def test_sync_durable_on_an_async_persister_asks_for_adurable() -> None:
    @action(reads=["n"], writes=["n"])
    def step(state: State, __context: ApplicationContext) -> State:
        return state.update(n=__context.durable("send", lambda: 1))

    async def scenario() -> None:
        app = await builder(step, persister=AsyncInMemoryPersister()).abuild()
        await app.astep()

    with pytest.raises(AsyncRequiredError, match="adurable"):
        asyncio.run(scenario())


def test_sync_durable_of_a_coroutine_function_asks_for_adurable() -> None:
    async def send() -> int:
        return 1

    @action(reads=["n"], writes=["n"])
    def step(state: State, __context: ApplicationContext) -> State:
        return state.update(n=__context.durable("send", send))

    with pytest.raises(AsyncRequiredError, match="adurable"):
        builder(step, persister=InMemoryPersister()).build().step()


@pytest.mark.parametrize("key", ["", 3, None], ids=["empty", "int", "none"])
def test_durable_takes_a_non_empty_str_key(key: Any) -> None:
    called: list[int] = []

    @action(reads=["n"], writes=["n"])
    def step(state: State, __context: ApplicationContext) -> State:
        return state.update(n=__context.durable(key, called.append, 1))

    with pytest.raises(TypeError, match="non-empty str key"):
        builder(step, persister=InMemoryPersister()).build().step()
    assert called == []


def test_durable_outside_a_step_says_where_it_works() -> None:
    context = ApplicationContext(app_id="a", partition_key=None, sequence_id=0, action_name="x")
    with pytest.raises(RuntimeError, match="inside a running step"):
        context.durable("send", lambda: 1)


def test_determinism_error_names_both_calls_and_survives_pickling() -> None:
    error = DeterminismError(
        app_id="mail",
        partition_key=None,
        sequence_id=4,
        index=1,
        key="charge",
        journaled_key="send",
    )
    text = str(error)
    assert "durable('charge')" in text
    assert "durable('send')" in text
    assert "#1" in text
    assert "fork_from_sequence_id=3" in text
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.key, copy.journaled_key, copy.index, copy.sequence_id) == ("charge", "send", 1, 4)
    assert isinstance(error, RuntimeError)
