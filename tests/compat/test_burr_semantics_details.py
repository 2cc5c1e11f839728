"""Smaller Burr differences on turnout (issue 13, item 4): ``with_spawning_parent(None)``, ``when``
names, ``app.context.sequence_id``, ``Result`` of a missing key, ``ValueError`` where Burr raises
one, the number of items ``stream_result`` yields, and ``use_otel_tracing`` loading the adapter."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import warnings
from collections.abc import Iterator
from typing import Any

import pytest

from turnout.core import ApplicationBuilder, Result, State, action, when
from turnout.core.errors import GraphWarning, TurnoutError
from turnout.core.streaming import StreamingAction, streaming_action


def test_with_spawning_parent_none_is_accepted_and_means_no_parent():
    @action(reads=[], writes=["n"])
    def one(state: State) -> State:
        return state.update(n=1)

    app = (
        ApplicationBuilder()
        .with_actions(one)
        .with_entrypoint("one")
        .with_spawning_parent(app_id=None, sequence_id=None)
        .build()
    )
    assert app.step()[2] == {"n": 1}


@pytest.mark.parametrize(
    ("condition", "name"),
    [
        (when(foo="bar"), "foo=bar"),
        (when(count__gte=3), "count>=3"),
        (when(status__in=["a", "b"]), "status in ['a', 'b']"),
        (when(value__isnot=None), "value is not None"),
        (when(b=1, a__lt=2), "a<2, b=1"),
        (~when(foo="bar"), "~foo=bar"),
    ],
    ids=["plain", "symbol", "word", "identity", "sorted-by-key", "inverted"],
)
def test_when_names_read_as_in_burr(condition, name):
    assert condition.name == name


def test_app_context_sequence_id_inside_and_between_steps_matches_burr():
    holder: dict[str, Any] = {}

    @action(reads=[], writes=["seen"])
    def first(state: State) -> State:
        context = holder["app"].context
        return state.update(seen=(context.sequence_id, context.action_name))

    @action(reads=[], writes=["seen"])
    def second(state: State) -> State:
        context = holder["app"].context
        return state.update(seen=(context.sequence_id, context.action_name))

    app = (
        ApplicationBuilder()
        .with_actions(first, second)
        .with_transitions(("first", "second"), ("second", "first"))
        .with_entrypoint("first")
        .build()
    )
    holder["app"] = app
    observed = [(app.context.sequence_id, app.context.action_name)]
    for _ in range(3):
        _act, _result, state = app.step()
        observed.append(state["seen"])
        observed.append((app.context.sequence_id, app.context.action_name))
    # What Burr 0.43 prints for the same program.
    assert observed == [
        (None, "first"),
        (0, "first"),
        (0, "second"),
        (1, "second"),
        (1, "first"),
        (2, "first"),
        (2, "second"),
    ]


def test_result_leaves_out_a_key_the_state_lacks_as_burr_does():
    @action(reads=["count"], writes=["count"])
    def counter(state: State) -> State:
        return state.update(count=state["count"] + 1)

    app = (
        ApplicationBuilder()
        .with_actions(counter, result=Result("count", "missing"))
        .with_transitions(("counter", "result"))
        .with_state(count=0)
        .with_entrypoint("counter")
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a Result's keys may be absent: build() does not warn
        built = app.build(strict=True)
    _act, result, _state = built.run(halt_after=["result"])
    assert result == {"count": 1}


@action(reads=[], writes=["n"])
def returns_a_dict(state: State) -> Any:
    return {"n": 1}


@action(reads=[], writes=["n"])
def sets_n(state: State) -> State:
    return state.update(n=1)


@action(reads=[], writes=["n"])
def returns_a_list_result(state: State) -> Any:
    return [1], state.update(n=1)


@pytest.mark.parametrize(
    "run",
    [
        lambda: State({"a": "x"}).increment(a=1),
        lambda: State({"a": 1}).append(a=2),
        lambda: State({"a": 1}).extend(a=[2]),
        lambda: _one(returns_a_dict).step(),
        lambda: _one(returns_a_list_result).step(),
        lambda: _one(sets_n, transitions=[("x", "x", when(absent=1))]).run(),
        lambda: _one(returns_a_dict).run(halt_after=["nope"]),
        lambda: when(absent=1).run(State({})),
        lambda: action(reads="count", writes=[]),
    ],
    ids=[
        "increment-str",
        "append-int",
        "extend-int",
        "action-returns-dict",
        "result-not-dict",
        "condition-missing-key",
        "unknown-halt",
        "condition-run-missing-key",
        "action-declared-wrongly",
    ],
)
def test_errors_burr_raises_as_value_error_are_value_errors(run):
    with pytest.raises(ValueError) as info:  # noqa: PT011 - the point is the bare ValueError
        run()
    assert isinstance(info.value, TurnoutError)


def _one(fn: Any, transitions: list[Any] | None = None, **state: Any) -> Any:
    builder = ApplicationBuilder().with_actions(x=fn).with_state(**state).with_entrypoint("x")
    if transitions:
        builder = builder.with_transitions(*transitions)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GraphWarning)
        return builder.build()


class CountTo(StreamingAction):
    """A Burr ``StreamingAction``: its last dict is the result."""

    @property
    def reads(self) -> list[str]:
        return []

    @property
    def writes(self) -> list[str]:
        return ["n"]

    def stream_run(self, state: State, **run_kwargs: Any) -> Iterator[dict[str, Any]]:  # type: ignore[override]
        for i in range(3):
            yield {"i": i}

    def update(self, result: dict[str, Any], state: State) -> State:
        return state.update(n=result["i"])


class ACountTo(CountTo):
    async def stream_run(self, state: State, **run_kwargs: Any) -> Any:  # type: ignore[override]
        for i in range(3):
            yield {"i": i}


@streaming_action(reads=[], writes=["n"])
def count_to(state: State) -> Iterator[Any]:
    for i in range(3):
        yield {"i": i}, None
    yield {"i": 9}, state.update(n=9)


def _streamer(act: Any) -> Any:
    return ApplicationBuilder().with_actions(x=act).with_entrypoint("x").build()


def test_stream_result_yields_as_many_items_as_burr_for_a_streaming_action_class():
    _act, container = _streamer(CountTo()).stream_result(halt_after=["x"])
    assert list(container) == [{"i": 0}, {"i": 1}]  # Burr 0.43: the last dict is the result
    assert container.get()[0] == {"i": 2}


def test_astream_result_yields_as_many_items_as_burr_for_an_async_streaming_action_class():
    async def scenario() -> Any:
        _act, container = await _streamer(ACountTo()).astream_result(halt_after=["x"])
        return [item async for item in container], await container.get()

    items, (result, state) = asyncio.run(scenario())
    assert items == [{"i": 0}, {"i": 1}]
    assert result == {"i": 2}
    assert state["n"] == 2


def test_stream_result_yields_every_intermediate_item_of_a_streaming_function():
    _act, container = _streamer(count_to).stream_result(halt_after=["x"])
    assert list(container) == [{"i": 0}, {"i": 1}, {"i": 2}]
    assert container.get()[0] == {"i": 9}


def test_use_otel_tracing_loads_the_adapter_only_when_asked(tmp_path):
    """Importing turnout loads no adapter; use_otel_tracing=True loads OpenTelemetry's, as Burr's
    switch does, so a Burr program needs no extra import (the streaming FastAPI example)."""
    program = (
        "import sys\n"
        "from turnout.core import ApplicationBuilder, State, action\n"
        "from turnout.core.tracking import LocalTracker\n"
        "@action(reads=[], writes=[])\n"
        "def a(state: State) -> State:\n"
        "    return state\n"
        "adapter = 'turnout.integrations.opentelemetry'\n"
        "print(adapter in sys.modules)\n"
        "builder = ApplicationBuilder().with_actions(a).with_entrypoint('a')\n"
        f"builder.with_tracker(LocalTracker('p', {str(tmp_path)!r}), use_otel_tracing=True)\n"
        "builder.build()\n"
        "print(adapter in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.split() == ["False", "True"]
