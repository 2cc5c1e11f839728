"""Streaming actions: ``@streaming_action`` on sync and async generators, ``StreamingAction``
classes, ``stream_result``/``astream_result``, ``stream_iterate``/``astream_iterate``, exceptions
inside streams, stream hooks, invalid yields, routing and retries of streaming steps, and the
``ApplicationContext`` between items.

Every scenario is an ``async def`` taking a ``Streams`` object, run in both modes: the async mode
runs it with ``asyncio.run()`` and the async methods; the sync mode uses the sync methods and
drives the scenario coroutine itself (it never suspends, so no event loop is involved). The core
suite needs nothing but pytest.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

import pytest

from turnout import (
    ApplicationBuilder,
    ApplicationContext,
    RetryPolicy,
    State,
    StreamingAction,
    action,
    expr,
    on_exception,
    streaming_action,
)
from turnout.core.application import Application
from turnout.core.errors import (
    ActionDefinitionError,
    AsyncRequiredError,
    InvalidActionReturnError,
    MissingInputsError,
    MissingWriteError,
    UndeclaredWriteError,
    UndeclaredWriteWarning,
)

# -- helpers -------------------------------------------------------------------------------------

HOOK_METHODS = (
    "pre_run_execute_call",
    "post_run_execute_call",
    "pre_run_step",
    "post_run_step",
    "pre_start_stream",
    "post_stream_item",
    "post_end_stream",
)


class Recorder:
    """Implements the run-time hooks; records ``(hook name, payload, time.time())``."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any], float]] = []

    def named(self, *names: str) -> list[dict[str, Any]]:
        return [payload for name, payload, _ in self.calls if name in names]

    def names(self, *only: str) -> list[str]:
        return [name for name, _, _ in self.calls if not only or name in only]

    def count(self, name: str) -> int:
        return len(self.named(name))


def _hook(name: str) -> Callable[..., None]:
    def hook(self: Recorder, **payload: Any) -> None:
        self.calls.append((name, payload, time.time()))

    return hook


for _name in HOOK_METHODS:
    setattr(Recorder, _name, _hook(_name))


class Box:
    """A stream container, used the same way whatever the mode."""

    def __init__(self, container: Any, sync: bool) -> None:
        self.container = container
        self.sync = sync

    async def items(self) -> list[dict[str, Any]]:
        """Iterate to the end (raising what the stream raises)."""
        if self.sync:
            return list(self.container)
        return [item async for item in self.container]

    async def take(self, count: int) -> list[dict[str, Any]]:
        """Take ``count`` items, then break out of the iteration."""
        out: list[dict[str, Any]] = []
        if self.sync:
            for item in self.container:
                out.append(item)
                if len(out) == count:
                    break
            return out
        async with contextlib.aclosing(self.container.__aiter__()) as items:
            async for item in items:
                out.append(item)
                if len(out) == count:
                    break
        return out

    async def each(self, body: Callable[[dict[str, Any]], None]) -> None:
        """Run ``body`` on each item, in the caller's code between items."""
        if self.sync:
            for item in self.container:
                body(item)
        else:
            async for item in self.container:
                body(item)

    async def get(self) -> Any:
        if self.sync:
            return self.container.get()
        return await self.container.get()


class Streams:
    """The application methods of one mode, as coroutines."""

    def __init__(self, sync: bool) -> None:
        self.sync = sync
        self.prefix = "" if sync else "a"

    async def stream_result(self, app: Application, *args: Any, **kwargs: Any) -> tuple[Any, Box]:
        out: Any
        if self.sync:
            out = app.stream_result(*args, **kwargs)
        else:
            out = await app.astream_result(*args, **kwargs)
        return out[0], Box(out[1], self.sync)

    async def stream_iterate(self, app: Application, **kwargs: Any) -> Any:
        """An async iterator of ``(action, Box)`` (closed properly when abandoned)."""
        pair: Any
        if self.sync:
            for pair in app.stream_iterate(**kwargs):
                yield pair[0], Box(pair[1], True)
        else:
            async with contextlib.aclosing(app.astream_iterate(**kwargs)) as steps:
                async for pair in steps:
                    yield pair[0], Box(pair[1], False)

    async def step(self, app: Application, **kwargs: Any) -> Any:
        return app.step(**kwargs) if self.sync else await app.astep(**kwargs)

    async def run(self, app: Application, **kwargs: Any) -> Any:
        return app.run(**kwargs) if self.sync else await app.arun(**kwargs)


def _name_of(act: Any) -> str | None:
    return None if act is None else str(act.name)


def _next_name(app: Application) -> str | None:
    return _name_of(app.get_next_action())


def _run_sync(coro: Coroutine[Any, Any, Any]) -> Any:
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value
    coro.close()
    raise AssertionError("a sync-mode scenario suspended: it awaited something asynchronous")


def play(scenario: Callable[[Streams], Coroutine[Any, Any, Any]], driver: str) -> Any:
    """Run an ``async def scenario(streams)`` with the sync or the async methods."""
    if driver == "sync":
        return _run_sync(scenario(Streams(sync=True)))
    return asyncio.run(scenario(Streams(sync=False)))


def streamer(
    flavour: str, reads: list[str], writes: list[str], **options: Any
) -> Callable[[Callable[[State], Iterator[Any]]], Any]:
    """Make a ``@streaming_action`` of the given flavour (a sync or an async generator) from a
    sync generator body ``body(state)``."""

    def decorate(body: Callable[[State], Iterator[Any]]) -> Any:
        if flavour == "sync-generator":

            def stream(state: State) -> Iterator[Any]:
                yield from body(state)

        else:

            async def stream(state: State) -> Any:  # type: ignore[misc]
                for raw in body(state):
                    await asyncio.sleep(0)
                    yield raw

        stream.__name__ = body.__name__
        return streaming_action(reads=reads, writes=writes, **options)(stream)

    return decorate


# Which generators each driver can run: sync drivers only sync generators.
CASES = [
    ("sync-generator", "sync"),
    ("sync-generator", "async"),
    ("async-generator", "async"),
]
CASE_IDS = ["sync-gen/sync-driver", "sync-gen/async-driver", "async-gen/async-driver"]


@pytest.fixture(params=CASES, ids=CASE_IDS)
def case(request: pytest.FixtureRequest) -> tuple[str, str]:
    flavour, driver = request.param
    return flavour, driver


@pytest.fixture(params=["sync", "async"], ids=["sync", "async"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _words(flavour: str, **options: Any) -> Any:
    """Streams each word of ``prompt``, then writes the reply."""

    @streamer(flavour, reads=["prompt"], writes=["reply"], **options)
    def reply(state: State) -> Iterator[Any]:
        words = state["prompt"].split()
        for word in words:
            yield {"word": word}
        yield {"reply": " ".join(words).upper()}, state.update(reply=state["prompt"].upper())

    return reply


def _app(
    *actions: Any,
    transitions: tuple[Any, ...] = (),
    hooks: tuple[Any, ...] = (),
    strict: bool = False,
    **state: Any,
) -> Application:
    named = {getattr(a, "__name__", None) or a.name: a for a in actions}
    return (
        ApplicationBuilder()
        .with_actions(**named)
        .with_transitions(*transitions)
        .with_state(**state)
        .with_hooks(*hooks)
        .with_entrypoint(next(iter(named)))
        .build(strict=strict)
    )


@action(reads=["count"], writes=["count"])
def count(state: State) -> tuple[dict[str, Any], State]:
    return {"count": state["count"] + 1}, state.update(count=state["count"] + 1)


@action(reads=["reply"], writes=["done"])
def finish(state: State) -> tuple[dict[str, Any], State]:
    return {"final": state["reply"]}, state.update(done=True)


def _pipeline(flavour: str, *hooks: Any) -> Application:
    """count (3 times) -> reply (streams) -> finish; then the run ends."""
    return _app(
        count,
        _words(flavour),
        finish,
        transitions=(
            ("count", "count", expr("count < 3")),
            ("count", "reply"),
            ("reply", "finish"),
        ),
        hooks=hooks,
        count=0,
        prompt="hello big world",
    )


# -- @streaming_action and stream_result ---------------------------------------------------------


def test_stream_result_yields_the_items_and_get_returns_result_and_state(case):
    flavour, driver = case
    app = _app(_words(flavour), prompt="hello world")

    async def scenario(streams: Streams) -> Any:
        act, box = await streams.stream_result(app, halt_after=["reply"])
        return act.name, await box.items(), await box.get()

    name, items, (result, state) = play(scenario, driver)
    assert name == "reply"
    assert items == [{"word": "hello"}, {"word": "world"}]
    assert result == {"reply": "HELLO WORLD"}
    assert state == {"prompt": "hello world", "reply": "HELLO WORLD"}
    assert app.state is state
    assert app.sequence_id == 0
    assert app.prior_action == "reply"


@pytest.mark.parametrize(
    "shape",
    [lambda item: item, lambda item: (item, None)],
    ids=["dict", "dict-none-pair"],
)
def test_intermediate_items_may_be_dicts_or_dict_none_pairs(case, shape):
    flavour, driver = case

    @streamer(flavour, reads=[], writes=["n"])
    def pairs(state: State) -> Iterator[Any]:
        yield shape({"i": 0})
        yield shape({"i": 1})
        yield {"n": 2}, state.update(n=2)

    app = _app(pairs)

    async def scenario(streams: Streams) -> Any:
        _act, box = await streams.stream_result(app, halt_after=["pairs"])
        return await box.items(), await box.get()

    assert play(scenario, driver) == ([{"i": 0}, {"i": 1}], ({"n": 2}, {"n": 2}))


def test_get_without_iterating_drains_the_stream(case):
    flavour, driver = case
    recorder = Recorder()
    app = _app(_words(flavour), hooks=(recorder,), prompt="a b c")

    async def scenario(streams: Streams) -> Any:
        _act, box = await streams.stream_result(app, halt_after=["reply"])
        first = await box.get()
        return first, await box.get(), await box.items()

    first, again, items = play(scenario, driver)
    assert first == ({"reply": "A B C"}, {"prompt": "a b c", "reply": "A B C"})
    assert again == first
    assert items == []
    assert recorder.count("post_stream_item") == 3
    assert recorder.count("post_run_step") == 1


def test_breaking_out_of_the_iteration_then_get_finishes_the_stream(case):
    flavour, driver = case
    recorder = Recorder()
    app = _app(_words(flavour), hooks=(recorder,), prompt="one two three four")

    async def scenario(streams: Streams) -> Any:
        _act, box = await streams.stream_result(app, halt_after=["reply"])
        taken = await box.take(2)
        return taken, await box.get()

    taken, (result, state) = play(scenario, driver)
    assert taken == [{"word": "one"}, {"word": "two"}]
    assert result == {"reply": "ONE TWO THREE FOUR"}
    assert state["reply"] == "ONE TWO THREE FOUR"
    assert app.prior_action == "reply"
    assert [p["item_index"] for p in recorder.named("post_stream_item")] == [0, 1, 2, 3]
    (end,) = recorder.named("post_end_stream")
    assert (end["items_streamed"], end["exception"]) == (4, None)


def test_each_item_is_reported_to_the_hooks_before_the_caller_gets_it(case):
    """As on Burr: a caller that stopped after two items has had two post_stream_item calls."""
    flavour, driver = case
    recorder = Recorder()
    app = _app(_words(flavour), hooks=(recorder,), prompt="one two three four")

    async def scenario(streams: Streams) -> Any:
        _act, box = await streams.stream_result(app, halt_after=["reply"])
        taken = await box.take(2)
        reported = [p["item"] for p in recorder.named("post_stream_item")]
        await box.get()
        return taken, reported

    taken, reported = play(scenario, driver)
    assert reported == taken == [{"word": "one"}, {"word": "two"}]


def test_breaking_out_then_iterating_again_resumes_with_the_next_item(case):
    flavour, driver = case
    app = _app(_words(flavour), prompt="one two three")

    async def scenario(streams: Streams) -> Any:
        _act, box = await streams.stream_result(app, halt_after=["reply"])
        return await box.take(1), await box.items()

    assert play(scenario, driver) == ([{"word": "one"}], [{"word": "two"}, {"word": "three"}])


def test_streaming_action_inputs_and_context_are_passed(mode):
    @streaming_action(reads=[], writes=["said"])
    def speak(state: State, greeting: str, __context: ApplicationContext) -> Iterator[Any]:
        yield {"greeting": greeting}
        yield {}, state.update(said=(greeting, __context.action_name, __context.sequence_id))

    app = _app(speak)

    async def scenario(streams: Streams) -> Any:
        _act, box = await streams.stream_result(
            app, halt_after=["speak"], inputs={"greeting": "hi"}
        )
        return await box.items(), await box.get()

    items, (_result, state) = play(scenario, mode)
    assert items == [{"greeting": "hi"}]
    assert state == {"said": ("hi", "speak", 0)}


def test_stream_result_missing_inputs_raise_naming_the_call(mode):
    @streaming_action(reads=[], writes=[])
    def speak(state: State, greeting: str) -> Iterator[Any]:
        yield {}, state

    app = _app(speak)

    async def scenario(streams: Streams) -> Any:
        _act, box = await streams.stream_result(app, halt_after=["speak"])
        return await box.get()

    with pytest.raises(MissingInputsError) as info:
        play(scenario, mode)
    prefix = "" if mode == "sync" else "a"
    assert f"app.{prefix}stream_result(halt_after=['speak'], " in str(info.value)
    assert app.sequence_id is None


# -- class StreamingAction -----------------------------------------------------------------------


def _tokens_class(asynchronous: bool, seen: list[dict[str, Any]]) -> StreamingAction:
    class Tokens(StreamingAction):
        @property
        def reads(self) -> list[str]:
            return ["prompt"]

        @property
        def writes(self) -> list[str]:
            return ["reply"]

        def stream_run(self, state: State, **run_kwargs: Any) -> Iterator[dict[str, Any]]:  # type: ignore[override]
            seen.append(dict(state))
            for word in state["prompt"].split():
                yield {"token": word}
            yield {"reply": state["prompt"].upper()}

        def update(self, result: dict[str, Any], state: State) -> State:
            return state.update(reply=result["reply"])

    class AsyncTokens(Tokens):
        async def stream_run(self, state: State, **run_kwargs: Any) -> Any:
            for item in Tokens.stream_run(self, state, **run_kwargs):
                await asyncio.sleep(0)
                yield item

    return AsyncTokens() if asynchronous else Tokens()


@pytest.mark.parametrize(
    ("asynchronous", "driver"),
    [(False, "sync"), (False, "async"), (True, "async")],
    ids=["sync-stream_run/sync-driver", "sync-stream_run/async-driver", "async-stream_run"],
)
def test_a_class_streaming_action_streams_its_dicts_but_the_last_which_is_the_result(
    asynchronous, driver
):
    seen: list[dict[str, Any]] = []
    app = _app(_tokens_class(asynchronous, seen).with_name("tokens"), prompt="hi you", other=1)

    async def scenario(streams: Streams) -> Any:
        _act, box = await streams.stream_result(app, halt_after=["tokens"])
        return await box.items(), await box.get()

    items, (result, state) = play(scenario, driver)
    assert items == [{"token": "hi"}, {"token": "you"}]  # as in Burr: the last is the result
    assert result == {"reply": "HI YOU"}
    assert state == {"prompt": "hi you", "other": 1, "reply": "HI YOU"}
    assert seen == [{"prompt": "hi you"}]  # stream_run receives only its reads


def test_a_class_streaming_action_yielding_a_non_dict_fails_naming_it(mode):
    class Bad(StreamingAction):
        @property
        def reads(self) -> list[str]:
            return []

        @property
        def writes(self) -> list[str]:
            return []

        def stream_run(self, state: State, **run_kwargs: Any) -> Iterator[Any]:  # type: ignore[override]
            yield ({"a": 1}, state)

        def update(self, result: dict[str, Any], state: State) -> State:
            return state

    app = _app(Bad().with_name("bad"))

    async def scenario(streams: Streams) -> Any:
        return await streams.step(app)

    with pytest.raises(InvalidActionReturnError, match="streaming action 'bad' yielded tuple"):
        play(scenario, mode)


@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "async"])
def test_a_class_streaming_action_run_directly_returns_its_last_dict(asynchronous):
    """As on Burr: run() drains stream_run (awaitable when it is async); update() applies it."""
    act = _tokens_class(asynchronous, [])
    ran = act.run(State({"prompt": "a b"}))
    result = asyncio.run(ran) if asynchronous else ran
    assert result == {"reply": "A B"}
    assert act.update(result, State())["reply"] == "A B"


def test_streaming_action_refuses_a_plain_function():
    def not_a_generator(state: State) -> State:
        return state

    with pytest.raises(ActionDefinitionError, match="must be a generator"):
        streaming_action(reads=[], writes=[])(not_a_generator)


# -- where stream_result stops -------------------------------------------------------------------


def test_stream_result_runs_the_steps_before_the_streaming_action_like_run(case):
    flavour, driver = case
    recorder = Recorder()
    app = _pipeline(flavour, recorder)

    async def scenario(streams: Streams) -> Any:
        act, box = await streams.stream_result(app, halt_after=["reply"])
        return act.name, await box.items(), await box.get()

    name, items, (result, state) = play(scenario, driver)
    assert name == "reply"
    assert items == [{"word": "hello"}, {"word": "big"}, {"word": "world"}]
    assert result == {"reply": "HELLO BIG WORLD"}
    assert state["count"] == 3
    assert app.sequence_id == 3
    assert [p["action"].name for p in recorder.named("pre_run_step")] == [
        "count",
        "count",
        "count",
        "reply",
    ]
    assert _next_name(app) == "finish"


def test_a_non_streaming_halt_action_gives_a_finished_container(case):
    flavour, driver = case
    app = _pipeline(flavour)

    async def scenario(streams: Streams) -> Any:
        act, box = await streams.stream_result(app, halt_after=["count"])
        return act.name, await box.items(), await box.get()

    name, items, (result, state) = play(scenario, driver)
    assert (name, items, result) == ("count", [], {"count": 1})
    assert state["count"] == 1
    assert app.sequence_id == 0


def test_a_halt_before_gives_the_next_action_and_a_finished_container_without_running_it(case):
    flavour, driver = case
    recorder = Recorder()
    app = _pipeline(flavour, recorder)

    async def scenario(streams: Streams) -> Any:
        act, box = await streams.stream_result(app, halt_after=["finish"], halt_before=["reply"])
        return act.name, await box.items(), await box.get()

    name, items, (result, state) = play(scenario, driver)
    assert (name, items, result) == ("reply", [], None)
    assert state["count"] == 3
    assert "reply" not in state
    assert recorder.count("pre_start_stream") == 0
    assert _next_name(app) == "reply"


def test_the_end_of_the_graph_gives_a_finished_container(case):
    flavour, driver = case
    app = _pipeline(flavour)

    async def scenario(streams: Streams) -> Any:
        first = await streams.stream_result(app, halt_after=["reply"])
        await first[1].get()
        act, box = await streams.stream_result(app, halt_after=["reply"])
        return act.name, await box.items(), await box.get()

    name, items, (result, state) = play(scenario, driver)
    assert (name, items, result) == ("finish", [], {"final": "HELLO BIG WORLD"})
    assert state["done"] is True
    assert app.get_next_action() is None


# -- stream_iterate ------------------------------------------------------------------------------


def test_stream_iterate_gives_a_container_for_every_step(case):
    flavour, driver = case
    app = _pipeline(flavour)

    async def scenario(streams: Streams) -> Any:
        out = []
        async for act, box in streams.stream_iterate(app, halt_after=["finish"]):
            items = await box.items()
            result, state = await box.get()
            out.append((act.name, items, result, state.get("count")))
        return out

    assert play(scenario, driver) == [
        ("count", [], {"count": 1}, 1),
        ("count", [], {"count": 2}, 2),
        ("count", [], {"count": 3}, 3),
        (
            "reply",
            [{"word": "hello"}, {"word": "big"}, {"word": "world"}],
            {"reply": "HELLO BIG WORLD"},
            3,
        ),
        ("finish", [], {"final": "HELLO BIG WORLD"}, 3),
    ]
    assert app.sequence_id == 4


@pytest.mark.parametrize(
    ("halts", "names"),
    [
        ({"halt_after": ["reply"]}, ["count", "count", "count", "reply"]),
        ({"halt_before": ["reply"]}, ["count", "count", "count"]),
        ({"halt_after": ["finish"]}, ["count", "count", "count", "reply", "finish"]),
    ],
    ids=["halt-after", "halt-before", "end"],
)
def test_stream_iterate_halts_like_iterate(case, halts, names):
    flavour, driver = case
    app = _pipeline(flavour)

    async def scenario(streams: Streams) -> Any:
        return [act.name async for act, _box in streams.stream_iterate(app, **halts)]

    assert play(scenario, driver) == names
    assert app.sequence_id == len(names) - 1


def test_stream_iterate_drains_each_container_before_the_next_step(case):
    """A caller that ignores the containers still gets every step run, in order."""
    flavour, driver = case
    recorder = Recorder()
    app = _pipeline(flavour, recorder)

    async def scenario(streams: Streams) -> Any:
        boxes = [box async for _act, box in streams.stream_iterate(app, halt_after=["finish"])]
        return [await box.get() for box in boxes]

    outcomes = play(scenario, driver)
    assert [result for result, _ in outcomes] == [
        {"count": 1},
        {"count": 2},
        {"count": 3},
        {"reply": "HELLO BIG WORLD"},
        {"final": "HELLO BIG WORLD"},
    ]
    assert [p["item_index"] for p in recorder.named("post_stream_item")] == [0, 1, 2]
    assert recorder.names("post_stream_item", "post_end_stream", "pre_run_step")[-6:] == [
        "pre_run_step",
        "post_stream_item",
        "post_stream_item",
        "post_stream_item",
        "post_end_stream",
        "pre_run_step",
    ]


def test_stream_iterate_return_value_equals_what_run_returns():
    app = _pipeline("sync-generator")
    steps = app.stream_iterate(halt_before=["finish"])
    while True:
        try:
            next(steps)
        except StopIteration as stop:
            returned = stop.value
            break
    other = _pipeline("sync-generator")
    expected = other.run(halt_before=["finish"])
    assert (_name_of(returned[0]), returned[1], returned[2]) == (
        _name_of(expected[0]),
        expected[1],
        expected[2],
    )


# -- step() and run() on streaming actions -------------------------------------------------------


def test_step_and_run_drain_streaming_actions(case):
    flavour, driver = case
    recorder = Recorder()
    app = _pipeline(flavour, recorder)

    async def scenario(streams: Streams) -> Any:
        await streams.run(app, halt_after=["count"])
        await streams.run(app, halt_before=["reply"])
        streamed = await streams.step(app)
        last = await streams.run(app, halt_after=["finish"])
        return streamed, last

    (act, result, state), last = play(scenario, driver)
    assert act.name == "reply"
    assert result == {"reply": "HELLO BIG WORLD"}
    assert state["reply"] == "HELLO BIG WORLD"
    assert last[0].name == "finish"
    # As in Burr, only streamed steps fire stream hooks: step() and run() drain the stream.
    assert recorder.count("post_stream_item") == 0
    assert recorder.count("post_end_stream") == 0


# -- exceptions inside streams -------------------------------------------------------------------


def _failing(flavour: str, *, after: int) -> Any:
    @streamer(flavour, reads=["n"], writes=["n"])
    def fragile(state: State) -> Iterator[Any]:
        for i in range(after):
            yield {"i": i}
        raise ValueError("the stream broke")
        yield {}, state  # pragma: no cover - the generator's final yield

    return fragile


@pytest.mark.parametrize("after", [0, 2], ids=["before-any-item", "after-two-items"])
def test_an_exception_in_a_stream_is_raised_once_by_iteration(case, after):
    flavour, driver = case
    recorder = Recorder()
    app = _app(_failing(flavour, after=after), hooks=(recorder,), n=0)
    seen: list[dict[str, Any]] = []

    async def scenario(streams: Streams) -> Any:
        _act, box = await streams.stream_result(app, halt_after=["fragile"])
        with pytest.raises(ValueError, match="the stream broke"):
            await box.each(seen.append)
        return await box.get(), await box.get(), await box.items()

    first, second, rest = play(scenario, driver)
    assert seen == [{"i": i} for i in range(after)]
    assert first == second == (None, {"n": 0})
    assert rest == []
    assert app.state == {"n": 0}
    assert app.prior_action is None
    assert app.sequence_id == 0
    assert recorder.count("post_run_step") == 1
    (end,) = recorder.named("post_end_stream")
    assert end["items_streamed"] == after
    assert isinstance(end["exception"], ValueError)
    assert isinstance(recorder.named("post_run_step")[0]["exception"], ValueError)


def test_an_exception_in_a_stream_is_raised_by_get_when_it_is_the_first_consumer(case):
    flavour, driver = case
    recorder = Recorder()
    app = _app(_failing(flavour, after=1), hooks=(recorder,), n=0)

    async def scenario(streams: Streams) -> Any:
        _act, box = await streams.stream_result(app, halt_after=["fragile"])
        with pytest.raises(ValueError, match="the stream broke"):
            await box.get()
        return await box.get(), await box.items()

    assert play(scenario, driver) == ((None, {"n": 0}), [])
    assert recorder.count("post_run_step") == 1
    assert recorder.count("post_end_stream") == 1


def test_an_application_resumes_after_a_failed_stream_by_rerunning_it(case):
    flavour, driver = case
    attempts: list[int] = []

    @streamer(flavour, reads=["n"], writes=["n"])
    def flaky(state: State) -> Iterator[Any]:
        attempts.append(1)
        yield {"i": 0}
        if len(attempts) == 1:
            raise ConnectionError("first time")
        yield {}, state.update(n=1)

    app = _app(flaky, n=0)

    async def scenario(streams: Streams) -> Any:
        _act, box = await streams.stream_result(app, halt_after=["flaky"])
        with pytest.raises(ConnectionError):
            await box.get()
        _act, box = await streams.stream_result(app, halt_after=["flaky"])
        return await box.items(), await box.get()

    assert play(scenario, driver) == ([{"i": 0}], ({}, {"n": 1}))
    assert app.sequence_id == 1  # the failed step used up id 0


def test_an_exception_in_a_stream_reaches_step_and_run(case):
    flavour, driver = case
    app = _app(_failing(flavour, after=1), n=0)

    async def scenario(streams: Streams) -> Any:
        with pytest.raises(ValueError, match="the stream broke"):
            await streams.step(app)
        with pytest.raises(ValueError, match="the stream broke"):
            await streams.run(app, halt_after=["fragile"])

    play(scenario, driver)
    assert app.state == {"n": 0}
    assert app.sequence_id == 1


def test_stream_iterate_ends_after_a_stream_whose_exception_the_caller_caught(case):
    """The failure reached the caller once; the iteration must not go on as if the step had
    succeeded (re-running the failed action)."""
    flavour, driver = case
    runs: list[int] = []

    @streamer(flavour, reads=[], writes=[])
    def broken(state: State) -> Iterator[Any]:
        runs.append(1)
        yield {"i": 0}
        raise ValueError("broken")
        yield {}, state  # pragma: no cover - the generator's final yield

    app = _app(count, broken, transitions=(("count", "broken"), ("broken", "count")), count=0)

    async def scenario(streams: Streams) -> list[str]:
        seen: list[str] = []
        with contextlib.suppress(ValueError):
            async for act, box in streams.stream_iterate(app, halt_after=None):
                seen.append(act.name)
                if len(seen) > 5:
                    break
                with contextlib.suppress(ValueError):
                    await box.items()
        return seen

    seen = play(scenario, driver)
    assert seen == ["count", "broken"]
    assert len(runs) == 1


# -- stream hooks --------------------------------------------------------------------------------


def test_stream_hooks_fire_in_order_with_their_payloads(case):
    flavour, driver = case
    recorder = Recorder()
    app = _app(_words(flavour), hooks=(recorder,), prompt="x y z")
    before = time.time()

    async def scenario(streams: Streams) -> Any:
        _act, box = await streams.stream_result(app, halt_after=["reply"])
        return await box.get()

    play(scenario, driver)
    assert recorder.names("pre_run_step", "post_run_step", *HOOK_METHODS[4:]) == [
        "pre_run_step",
        "pre_start_stream",
        "post_stream_item",
        "post_stream_item",
        "post_stream_item",
        "post_run_step",  # Burr's order: the step's end, then the stream's
        "post_end_stream",
    ]
    (start,) = recorder.named("pre_start_stream")
    assert start["action"] == "reply"
    assert start["sequence_id"] == 0
    assert start["app_id"] == app.uid
    items = recorder.named("post_stream_item")
    assert [p["item"] for p in items] == [{"word": "x"}, {"word": "y"}, {"word": "z"}]
    assert [p["item_index"] for p in items] == [0, 1, 2]
    assert {p["action"] for p in items} == {"reply"}
    assert {p["sequence_id"] for p in items} == {0}
    init_times = {p["stream_initialize_time"] for p in items}
    first_times = {p["first_stream_item_start_time"] for p in items}
    assert len(init_times) == len(first_times) == 1
    (init,), (first,) = init_times, first_times
    item_calls = [t for name, _, t in recorder.calls if name == "post_stream_item"]
    assert before <= init <= first <= item_calls[0] <= item_calls[-1]
    (end,) = recorder.named("post_end_stream")
    assert (end["action"], end["sequence_id"], end["items_streamed"], end["exception"]) == (
        "reply",
        0,
        3,
        None,
    )
    (post,) = recorder.named("post_run_step")
    assert post["result"] == {"reply": "X Y Z"}
    assert post["exception"] is None


def test_stream_result_fires_the_execute_call_hooks(case):
    flavour, driver = case
    recorder = Recorder()
    app = _pipeline(flavour, recorder)

    async def scenario(streams: Streams) -> Any:
        _act, box = await streams.stream_result(app, halt_after=["reply"])
        return await box.get()

    play(scenario, driver)
    method = "stream_result" if driver == "sync" else "astream_result"
    assert [p["method"] for p in recorder.named("pre_run_execute_call")] == [method]
    assert [p["method"] for p in recorder.named("post_run_execute_call")] == [method]
    assert recorder.named("post_run_execute_call")[0]["exception"] is None


def test_stream_iterate_fires_the_execute_call_hooks_once(case):
    flavour, driver = case
    recorder = Recorder()
    app = _pipeline(flavour, recorder)

    async def scenario(streams: Streams) -> Any:
        steps = streams.stream_iterate(app, halt_after=["reply"])
        return [await box.get() async for _act, box in steps]

    play(scenario, driver)
    method = "stream_iterate" if driver == "sync" else "astream_iterate"
    assert [p["method"] for p in recorder.named("pre_run_execute_call")] == [method]
    assert [p["method"] for p in recorder.named("post_run_execute_call")] == [method]


# -- invalid yields and checks -------------------------------------------------------------------


def _bad_yields(kind: str) -> Callable[[State], Iterator[Any]]:
    def body(state: State) -> Iterator[Any]:
        if kind == "string":
            yield "token"
        elif kind == "after-final":
            yield {"done": 1}, state
            yield {"late": 1}
        elif kind == "bare-tuple":
            yield (1, 2, 3)
        yield {}, state

    body.__name__ = "bad"
    return body


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("string", "streaming action 'bad' yielded str: 'token'"),
        ("after-final", "streaming action 'bad' yielded {'late': 1} after its final"),
        ("no-final", "streaming action 'bad' ended without yielding (result, state) last"),
        ("bare-tuple", "streaming action 'bad' yielded tuple: (1, 2, 3)"),
    ],
    ids=["string", "yield-after-final", "no-final", "three-tuple"],
)
def test_invalid_yields_raise_naming_the_action(case, kind, message):
    flavour, driver = case
    if kind == "no-final":

        @streamer(flavour, reads=[], writes=[])
        def bad(state: State) -> Iterator[Any]:
            yield {"only": 1}

    else:
        bad = streamer(flavour, reads=[], writes=[])(_bad_yields(kind))
    recorder = Recorder()
    app = _app(bad, hooks=(recorder,), n=0)

    async def scenario(streams: Streams) -> Any:
        _act, box = await streams.stream_result(app, halt_after=["bad"])
        with pytest.raises(InvalidActionReturnError) as info:
            await box.items()
        return str(info.value), await box.get()

    text, after = play(scenario, driver)
    assert message in text
    assert after == (None, {"n": 0})
    assert recorder.count("post_run_step") == 1


@pytest.mark.parametrize(
    ("writes", "error", "message"),
    [
        (["n"], UndeclaredWriteError, "action 'writer' changed 'sneaky'"),
        (["n", "sneaky", "absent"], MissingWriteError, "['absent'] is not in the state"),
    ],
    ids=["undeclared", "missing"],
)
def test_the_writes_of_a_streaming_action_are_checked_in_strict_mode(case, writes, error, message):
    flavour, driver = case

    @streamer(flavour, reads=[], writes=writes)
    def writer(state: State) -> Iterator[Any]:
        yield {"i": 0}
        yield {}, state.update(n=1, sneaky=True)

    app = _app(writer, strict=True, n=0)

    async def scenario(streams: Streams) -> Any:
        _act, box = await streams.stream_result(app, halt_after=["writer"])
        with pytest.raises(error) as info:
            await box.items()
        return str(info.value)

    assert message in play(scenario, driver)
    assert app.state == {"n": 0}


def test_an_undeclared_write_of_a_streaming_action_is_applied_with_a_warning(case):
    flavour, driver = case

    @streamer(flavour, reads=[], writes=["n"])
    def writer(state: State) -> Iterator[Any]:
        yield {"i": 0}
        yield {}, state.update(n=1, sneaky=True)

    app = _app(writer, n=0)

    async def scenario(streams: Streams) -> Any:
        _act, box = await streams.stream_result(app, halt_after=["writer"])
        await box.items()
        return await box.get()

    with pytest.warns(UndeclaredWriteWarning, match="action 'writer' changed 'sneaky'"):
        play(scenario, driver)
    assert app.state == {"n": 1, "sneaky": True}


# -- routing and retries -------------------------------------------------------------------------


@action(reads=["error"], writes=["handled"])
def handler(state: State) -> State:
    return state.update(handled=state["error"]["message"])


def test_on_exception_routes_a_failed_stream_to_its_handler(case):
    flavour, driver = case
    recorder = Recorder()
    app = _app(
        _failing(flavour, after=1),
        handler,
        transitions=(("fragile", "handler", on_exception(ValueError)),),
        hooks=(recorder,),
        n=0,
    )

    async def scenario(streams: Streams) -> Any:
        act, box = await streams.stream_result(app, halt_after=["fragile"])
        items, outcome = await box.items(), await box.get()
        last = await streams.run(app, halt_after=["handler"])
        return act.name, items, outcome, last

    name, items, (result, state), (last_act, _r, last_state) = play(scenario, driver)
    assert (name, items, result) == ("fragile", [{"i": 0}], None)
    assert state["error"]["type"] == "ValueError"
    assert state["error"]["action"] == "fragile"
    assert state["n"] == 0
    assert last_act.name == "handler"
    assert last_state["handled"] == "the stream broke"
    (post,) = [p for p in recorder.named("post_run_step") if p["action"].name == "fragile"]
    assert isinstance(post["exception"], ValueError)


def test_a_stream_failing_before_its_first_item_is_retried(case):
    flavour, driver = case
    recorder = Recorder()
    attempts: list[int] = []

    @streamer(flavour, reads=[], writes=["n"], retry=RetryPolicy(max_attempts=3, initial_delay=0))
    def shaky(state: State) -> Iterator[Any]:
        attempts.append(1)
        if len(attempts) < 3:
            raise ConnectionError("not yet")
        yield {"i": 0}
        yield {}, state.update(n=1)

    app = _app(shaky, hooks=(recorder,), n=0)

    async def scenario(streams: Streams) -> Any:
        _act, box = await streams.stream_result(app, halt_after=["shaky"])
        return await box.items(), await box.get()

    assert play(scenario, driver) == ([{"i": 0}], ({}, {"n": 1}))
    assert len(attempts) == 3
    posts = recorder.named("post_run_step")
    assert [(p["attempt"], p["will_retry"]) for p in posts] == [(1, True), (2, True), (3, False)]
    assert {p["sequence_id"] for p in posts} == {0}
    assert recorder.count("pre_start_stream") == 3
    assert app.sequence_id == 0


def test_a_stream_failing_after_an_item_is_not_retried(case):
    flavour, driver = case
    recorder = Recorder()
    attempts: list[int] = []

    @streamer(flavour, reads=[], writes=["n"], retry=RetryPolicy(max_attempts=3, initial_delay=0))
    def shaky(state: State) -> Iterator[Any]:
        attempts.append(1)
        yield {"i": 0}
        raise ConnectionError("mid-stream")
        yield {}, state  # pragma: no cover - the generator's final yield

    app = _app(shaky, hooks=(recorder,), n=0)

    async def scenario(streams: Streams) -> Any:
        _act, box = await streams.stream_result(app, halt_after=["shaky"])
        with pytest.raises(ConnectionError):
            await box.items()

    play(scenario, driver)
    assert len(attempts) == 1
    (post,) = recorder.named("post_run_step")
    assert (post["attempt"], post["will_retry"]) == (1, False)


# -- ApplicationContext between items ------------------------------------------------------------


def test_the_step_context_does_not_leak_into_the_callers_code_between_items(case):
    flavour, driver = case
    inside: list[Any] = []
    outside: list[Any] = []

    @streamer(flavour, reads=[], writes=[])
    def chatty(state: State) -> Iterator[Any]:
        for i in range(3):
            ctx = ApplicationContext.get()
            inside.append(ctx and (ctx.action_name, ctx.sequence_id))
            yield {"i": i}
        inside.append(ApplicationContext.get() is not None)
        yield {}, state

    app = _app(chatty)

    async def scenario(streams: Streams) -> Any:
        outside.append(ApplicationContext.get())
        _act, box = await streams.stream_result(app, halt_after=["chatty"])
        await box.each(lambda _item: outside.append(ApplicationContext.get()))
        outside.append(ApplicationContext.get())

    play(scenario, driver)
    assert inside == [("chatty", 0), ("chatty", 0), ("chatty", 0), True]
    assert outside == [None, None, None, None, None]


# -- sync methods and async streaming actions ----------------------------------------------------


def _async_words() -> Any:
    return _words("async-generator")


@pytest.mark.parametrize(
    "call",
    [
        lambda app: app.stream_result(halt_after=["reply"])[1].get(),
        lambda app: [c.get() for _a, c in app.stream_iterate(halt_after=["reply"])],
    ],
    ids=["stream_result", "stream_iterate"],
)
def test_sync_streaming_methods_refuse_an_async_streaming_action(call):
    recorder = Recorder()
    app = _app(_async_words(), hooks=(recorder,), prompt="a b")
    with pytest.raises(AsyncRequiredError, match="action 'reply' is async"):
        call(app)
    assert recorder.names("pre_run_step", "pre_start_stream", "post_run_step") == []
    assert app.state == {"prompt": "a b"}
    assert app.sequence_id is None


def test_closing_a_container_ends_the_step_now_not_at_garbage_collection() -> None:
    events: list[str] = []

    @streaming_action(reads=[], writes=["text"])
    def talk(state: State) -> Iterator[Any]:
        try:
            for word in ("a", "b", "c"):
                yield {"delta": word}
        finally:
            events.append("action closed")
        yield {"text": "abc"}, state.update(text="abc")

    class StepEnd:
        def post_run_step(self, *, exception: BaseException | None = None, **kw: Any) -> None:
            events.append(f"step ended: {type(exception).__name__}")

    app = (
        ApplicationBuilder()
        .with_actions(talk=talk)
        .with_transitions()
        .with_entrypoint("talk")
        .with_hooks(StepEnd())
        .build()
    )
    _act, container = app.stream_result(halt_after=["talk"])
    kept = container  # the container stays alive: only close() can end the step
    with container:
        assert next(iter(container)) == {"delta": "a"}
        assert events == []
    assert events == ["action closed", "step ended: GeneratorExit"]
    assert kept.get() == (None, app.state)
    assert "text" not in app.state
    container.close()  # a second close does nothing
    assert len(events) == 2


def test_closing_an_async_container_ends_the_step() -> None:
    events: list[str] = []

    @streaming_action(reads=[], writes=["text"])
    async def talk(state: State) -> Any:
        try:
            for word in ("a", "b", "c"):
                yield {"delta": word}
        finally:
            events.append("action closed")
        yield {"text": "abc"}, state.update(text="abc")

    app = ApplicationBuilder().with_actions(talk=talk).with_transitions().with_entrypoint("talk")

    async def main() -> None:
        built = app.build()
        _act, container = await built.astream_result(halt_after=["talk"])
        async with container:
            async for _item in container:
                break
        assert events == ["action closed"]
        assert await container.get() == (None, built.state)
        await container.close()  # the alias of aclose(); nothing left to close

    asyncio.run(main())
