"""Burr programs keep Burr's semantics on turnout (issue 13, "Semantics that differ today").

Each test is a small Burr-style program, written from Burr's documentation and importing only
Burr's module paths under ``turnout.``, that pins what Burr does with it: undeclared writes and
deletions applied (warned, or an error in strict mode), ``__context`` in a class action's ``run``,
a failing child of a map action caught as its own exception type.
"""

from __future__ import annotations

import asyncio
import pickle
import subprocess
import sys
import warnings
from collections.abc import Iterable, Iterator
from typing import Any

import pytest

from turnout.core import ApplicationBuilder, Result, State, action, default, when
from turnout.core.action import Action, SingleStepAction
from turnout.core.application import ApplicationContext
from turnout.core.errors import (
    ChildApplicationError,
    GraphWarning,
    MissingWriteError,
    TurnoutError,
    UndeclaredWriteError,
    UndeclaredWriteWarning,
)
from turnout.core.parallelism import MapActions, MapStates
from turnout.core.streaming import StreamingAction, streaming_action

# -- 1. undeclared writes and deletions ----------------------------------------------------------


@action(reads=[], writes=["chat_history", "prompt"])
def process_prompt(state: State, prompt: str) -> State:
    """The chatbot examples' first action: start each turn from a wiped state."""
    return (
        state.wipe(keep=["prompt", "chat_history"])
        .append(chat_history={"role": "user", "content": prompt})
        .update(prompt=prompt)
    )


@action(reads=["prompt"], writes=["response", "mode"])
def respond(state: State) -> State:
    return state.update(response=f"echo: {state['prompt']}", mode="text", scratch=len("x"))


def _chatbot(*, strict: bool = False) -> Any:
    return (
        ApplicationBuilder()
        .with_actions(process_prompt, respond)
        .with_transitions(("process_prompt", "respond"), ("respond", "process_prompt", default))
        .with_state(chat_history=[])
        .with_entrypoint("process_prompt")
        .build(strict=strict)
    )


def test_a_chatbot_that_wipes_undeclared_keys_runs_as_on_burr_with_one_warning_per_key():
    app = _chatbot()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for prompt in ("hi", "again", "third"):
            app.run(halt_after=["respond"], inputs={"prompt": prompt})
    # Burr's result: the wipe dropped last turn's response/mode/scratch before they were rewritten.
    assert app.state == {
        "chat_history": [
            {"role": "user", "content": "hi"},
            {"role": "user", "content": "again"},
            {"role": "user", "content": "third"},
        ],
        "prompt": "third",
        "response": "echo: third",
        "mode": "text",
        "scratch": 1,
    }
    messages = sorted(str(w.message) for w in caught)
    assert all(w.category is UndeclaredWriteWarning for w in caught)
    assert len(messages) == 2  # (process_prompt: the wiped keys), (respond: scratch), once each
    wiped, scratch = messages
    assert wiped.startswith("action 'process_prompt' changed 'response', 'mode', 'scratch'")
    assert "(delete 'response', delete 'mode', delete 'scratch')" in wiped
    assert "writes=['chat_history', 'mode', 'prompt', 'response', 'scratch']" in wiped
    assert scratch.startswith("action 'respond' changed 'scratch' (set 'scratch')")
    assert "writes=['mode', 'response', 'scratch']" in scratch


def test_strict_mode_keeps_the_undeclared_write_error_and_commits_nothing():
    app = _chatbot(strict=True)
    app.step(inputs={"prompt": "hi"})
    before = app.state
    with pytest.raises(UndeclaredWriteError, match=r"action 'respond' changed 'scratch'"):
        app.step()
    assert app.state == before


def test_an_undeclared_write_error_is_still_a_value_error_as_burrs_was():
    app = _chatbot(strict=True)
    app.step(inputs={"prompt": "hi"})
    with pytest.raises(ValueError, match="scratch"):
        app.step()


@pytest.mark.parametrize("strict", [False, True], ids=["default", "strict"])
def test_deleting_a_declared_write_is_not_a_missing_write(strict):
    @action(reads=["draft"], writes=["draft", "sent"])
    def send(state: State) -> State:
        return state.update(sent=state["draft"]).wipe(delete=["draft"])

    app = (
        ApplicationBuilder()
        .with_actions(send)
        .with_state(draft="hello")
        .with_entrypoint("send")
        .build(strict=strict)
    )
    _act, _result, state = app.step()
    assert state == {"sent": "hello"}


def test_a_declared_write_never_written_is_still_a_missing_write():
    @action(reads=[], writes=["answer"])
    def forgetful(state: State) -> State:
        return state

    app = ApplicationBuilder().with_actions(forgetful).with_entrypoint("forgetful").build()
    with pytest.raises(MissingWriteError, match=r"\['answer'\] is not in the state"):
        app.step()


def test_an_undeclared_write_of_an_async_action_is_applied_and_warned():
    @action(reads=[], writes=["a"])
    async def sloppy(state: State) -> State:
        return state.update(a=1, b=2)

    app = ApplicationBuilder().with_actions(sloppy).with_entrypoint("sloppy").build()
    with pytest.warns(UndeclaredWriteWarning, match=r"action 'sloppy' changed 'b'"):
        asyncio.run(app.astep())
    assert app.state == {"a": 1, "b": 2}


# -- 2. ``__context`` in a class action's run (Python mangles it to ``_Cls__context``) -----------


class CountWithContext(Action):
    @property
    def reads(self) -> list[str]:
        return ["count"]

    @property
    def writes(self) -> list[str]:
        return ["count", "seen"]

    @property
    def inputs(self) -> list[str]:
        return ["__context"]

    def run(self, state: State, __context: ApplicationContext) -> dict[str, Any]:
        return {"count": state["count"] + 1, "seen": (__context.app_id, __context.sequence_id)}

    def update(self, result: dict[str, Any], state: State) -> State:
        return state.update(**result)


class CountWithContextUndeclared(CountWithContext):
    """The same, without listing ``__context`` in ``inputs`` (Burr would fail here)."""

    @property
    def inputs(self) -> list[str]:
        return []


class OneStepWithContext(SingleStepAction):
    @property
    def reads(self) -> list[str]:
        return ["count"]

    @property
    def writes(self) -> list[str]:
        return ["count", "seen"]

    @property
    def inputs(self) -> tuple[list[str], list[str]]:
        return ["__context"], ["step"]

    def run_and_update(
        self, state: State, __context: ApplicationContext, step: int = 1
    ) -> tuple[dict[str, Any], State]:
        seen = (__context.app_id, __context.sequence_id)
        return {}, state.update(count=state["count"] + step, seen=seen)


class AsyncWithContext(CountWithContext):
    async def run(  # type: ignore[override]
        self, state: State, __context: ApplicationContext
    ) -> dict[str, Any]:
        return {"count": state["count"] + 1, "seen": (__context.app_id, __context.sequence_id)}


class StreamWithContext(StreamingAction):
    @property
    def reads(self) -> list[str]:
        return ["count"]

    @property
    def writes(self) -> list[str]:
        return ["count", "seen"]

    @property
    def inputs(self) -> list[str]:
        return ["__context", "__tracer"]

    def stream_run(  # type: ignore[override]
        self, state: State, __context: ApplicationContext, __tracer: Any
    ) -> Iterator[dict[str, Any]]:
        with __tracer("counting"):
            yield {"partial": True}
        yield {"count": state["count"] + 1, "seen": (__context.app_id, __context.sequence_id)}

    def update(self, result: dict[str, Any], state: State) -> State:
        return state.update(count=result["count"], seen=result["seen"])


def _counting(act: Action) -> Any:
    return (
        ApplicationBuilder()
        .with_actions(count=act)
        .with_transitions(("count", "count"))
        .with_state(count=0)
        .with_identifiers(app_id="ctx-app")
        .with_entrypoint("count")
        .build()
    )


@pytest.mark.parametrize(
    "act",
    [CountWithContext(), CountWithContextUndeclared(), OneStepWithContext()],
    ids=["action", "action-inputs-not-listed", "single-step"],
)
def test_a_class_action_receives_dunder_context_despite_name_mangling(act):
    app = _counting(act)
    app.step()
    _act, _result, state = app.step()
    assert state["count"] == 2
    assert state["seen"] == ("ctx-app", 1)


def test_an_async_class_action_receives_dunder_context_despite_name_mangling():
    app = _counting(AsyncWithContext())
    asyncio.run(app.astep())
    assert app.state["seen"] == ("ctx-app", 0)


def test_a_streaming_class_action_receives_dunder_context_and_tracer_despite_name_mangling():
    app = _counting(StreamWithContext())
    _act, container = app.stream_result(halt_after=["count"])
    items = list(container)
    _result, state = container.get()
    assert items[0] == {"partial": True}
    assert state["seen"] == ("ctx-app", 0)


# -- 3. a failing child of a map action is caught as its own exception type ----------------------


class ShippingError(Exception):
    """A user's exception with its own attribute and constructor."""

    def __init__(self, order: int, reason: str) -> None:
        super().__init__(f"order {order}: {reason}")
        self.order = order


@action(reads=["item"], writes=["out"])
def square(state: State) -> State:
    if state["item"] == 3:
        raise ValueError("no threes")
    if state["item"] == 4:
        raise ShippingError(4, "lost")
    if state["item"] == 5:
        raise KeyError("five")
    if state["item"] == 6:
        raise ConnectionError("network down")
    return state.update(out=state["item"] ** 2)


class SquareAll(MapStates):
    @property
    def reads(self) -> list[str]:
        return ["items"]

    @property
    def writes(self) -> list[str]:
        return ["total"]

    def action(self, state: State, inputs: dict[str, Any]) -> Any:
        return square

    def states(
        self, state: State, context: ApplicationContext, inputs: dict[str, Any]
    ) -> Iterator[State]:
        for item in state["items"]:
            yield state.update(item=item)

    def reduce(self, state: State, states: Iterable[State]) -> State:
        return state.update(total=sum(s["out"] for s in states))


def _fan(*items: int) -> Any:
    return (
        ApplicationBuilder()
        .with_actions(fan=SquareAll())
        .with_state(items=list(items))
        .with_entrypoint("fan")
        .build()
    )


def test_a_child_raising_value_error_is_caught_by_except_value_error_as_on_burr():
    app = _fan(1, 2, 3)
    with pytest.raises(ValueError, match="no threes") as info:
        app.step()
    error = info.value
    assert isinstance(error, ChildApplicationError)  # the richer error stays reachable
    assert [(index, type(exc)) for index, _app_id, exc in error.failures] == [(2, ValueError)]
    assert isinstance(error.__cause__, ValueError)
    assert "parallel action 'fan': child 2" in str(error)
    assert app.state == {"items": [1, 2, 3]}


def test_a_child_raising_value_error_is_caught_by_except_value_error_in_async_mode():
    app = _fan(3, 1)
    with pytest.raises(ValueError, match="no threes"):
        asyncio.run(app.astep())


def test_a_childs_own_exception_class_catches_it_with_its_attributes():
    app = _fan(4)
    with pytest.raises(ShippingError) as info:
        app.step()
    assert info.value.order == 4
    assert isinstance(info.value, ChildApplicationError)
    assert str(info.value).startswith("parallel action 'fan': child 0")


def test_a_child_key_error_keeps_the_readable_message():
    app = _fan(5)
    with pytest.raises(KeyError) as info:
        app.step()
    assert str(info.value).startswith("parallel action 'fan'")  # not KeyError's repr()


def test_the_first_failed_child_decides_the_type_and_every_failure_is_listed():
    app = _fan(1, 4, 3)
    with pytest.raises(ShippingError) as info:
        app.step()
    failures = info.value.failures
    assert [(index, type(exc).__name__) for index, _id, exc in failures] == [
        (1, "ShippingError"),
        (2, "ValueError"),
    ]
    assert "(2 of 3 children failed)" in str(info.value)


def test_a_child_type_that_cannot_be_combined_gives_a_plain_child_application_error():
    app = _fan(6)
    with pytest.raises(ChildApplicationError) as info:
        app.step()
    assert type(info.value) is ChildApplicationError
    assert isinstance(info.value.failures[0][2], ConnectionError)


def test_the_combined_error_pickles_as_the_same_combination():
    app = _fan(3)
    with pytest.raises(ValueError, match="no threes") as info:
        app.step()
    again = pickle.loads(pickle.dumps(info.value))
    assert type(again) is type(info.value)
    assert again.failures[0][0] == 0
    assert str(again) == str(info.value)


# -- 4. smaller differences ----------------------------------------------------------------------


class BothWays(MapActions):
    """A Burr ``MapActions`` without ``state()``: the children start from the parent's state."""

    @property
    def reads(self) -> list[str]:
        return ["item"]

    @property
    def writes(self) -> list[str]:
        return ["outs"]

    def actions(
        self, state: State, context: ApplicationContext, inputs: dict[str, Any]
    ) -> Iterator[Any]:
        yield square
        yield square.bind()

    def reduce(self, state: State, states: Iterable[State]) -> State:
        return state.update(outs=[s["out"] for s in states])


def test_a_map_actions_subclass_needs_no_state_override():
    app = (
        ApplicationBuilder()
        .with_actions(both=BothWays())
        .with_state(item=2)
        .with_entrypoint("both")
        .build()
    )
    _act, _result, state = app.step()
    assert state == {"item": 2, "outs": [4, 4]}


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
    with pytest.warns(GraphWarning, match="'missing'"):  # nothing provides it: build() says so
        built = app.build()
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


# -- 5. ``__SEQUENCE_ID`` / ``__PRIOR_STEP``: computed on read inside a step, never stored -------


@action(reads=["__SEQUENCE_ID", "__PRIOR_STEP"], writes=["seen"])
def where_a(state: State) -> State:
    return state.update(seen=(state.get("__SEQUENCE_ID"), state.get("__PRIOR_STEP")))


@action(reads=["seen", "__SEQUENCE_ID", "__PRIOR_STEP"], writes=["seen"])
def where_b(state: State) -> State:
    return state.update(seen=(state["__SEQUENCE_ID"], state["__PRIOR_STEP"]))


class WhereClass(Action):
    @property
    def reads(self) -> list[str]:
        return ["__SEQUENCE_ID", "__PRIOR_STEP"]

    @property
    def writes(self) -> list[str]:
        return ["seen"]

    def run(self, state: State, **run_kwargs: Any) -> dict[str, Any]:
        return {"seen": (state["__SEQUENCE_ID"], state["__PRIOR_STEP"])}

    def update(self, result: dict[str, Any], state: State) -> State:
        return state.update(seen=result["seen"])


def test_actions_read_sequence_id_and_prior_step_from_state_as_in_burr():
    app = (
        ApplicationBuilder()
        .with_actions(a=where_a, b=where_b, c=WhereClass())
        .with_transitions(("a", "b"), ("b", "c"), ("c", "a"))
        .with_entrypoint("a")
        .build(strict=True)  # reading them is no suspicious read
    )
    seen = [app.step()[2]["seen"] for _ in range(4)]
    # What Burr 0.43 gives the same program.
    assert seen == [(0, None), (1, "a"), (2, "b"), (3, "c")]
    assert app.state.get_all() == {"seen": (3, "c")}  # never stored
    assert "__SEQUENCE_ID" not in app.state


def test_an_async_action_reads_the_sequence_id_from_state():
    @action(reads=["__SEQUENCE_ID"], writes=["seen"])
    async def where(state: State) -> State:
        return state.update(seen=state["__SEQUENCE_ID"])

    app = (
        ApplicationBuilder()
        .with_actions(where)
        .with_transitions(("where", "where"))
        .with_entrypoint("where")
        .build()
    )
    asyncio.run(app.astep())
    assert asyncio.run(app.astep())[2]["seen"] == 1


def test_outside_a_step_the_control_keys_are_absent_and_the_error_names_the_replacement():
    app = (
        ApplicationBuilder()
        .with_actions(a=where_a)
        .with_transitions(("a", "a"))
        .with_entrypoint("a")
        .build()
    )
    app.step()
    assert app.state.get("__SEQUENCE_ID") is None
    with pytest.raises(KeyError, match=r"app\.sequence_id / app\.prior_action"):
        app.state["__SEQUENCE_ID"]
    assert app.state["seen"] == (0, None)  # the first step has no prior step


def test_use_otel_tracing_without_the_adapter_imported_names_the_import(tmp_path):
    """The core never imports the adapter: without it, build() says which import to add."""
    program = (
        "from turnout.core import ApplicationBuilder, State, action\n"
        "from turnout.core.errors import GraphSetupError\n"
        "from turnout.core.tracking import LocalTracker\n"
        "@action(reads=[], writes=[])\n"
        "def a(state: State) -> State:\n"
        "    return state\n"
        "builder = ApplicationBuilder().with_actions(a).with_entrypoint('a')\n"
        f"builder.with_tracker(LocalTracker('p', {str(tmp_path)!r}), use_otel_tracing=True)\n"
        "try:\n"
        "    builder.build()\n"
        "except GraphSetupError as error:\n"
        "    print(error)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, check=True, timeout=60
    )
    assert "import turnout.integrations.opentelemetry" in done.stdout


@action(reads=["item"], writes=["out"])
def sloppy_square(state: State) -> State:
    return state.update(out=state["item"] ** 2, scratch=True)


class SloppySquares(SquareAll):
    def action(self, state: State, inputs: dict[str, Any]) -> Any:
        return sloppy_square


@pytest.mark.parametrize("strict", [False, True], ids=["default", "strict"])
def test_children_of_a_parallel_step_follow_the_parents_strict_mode(strict):
    app = (
        ApplicationBuilder()
        .with_actions(fan=SloppySquares())
        .with_state(items=[1, 2])
        .with_entrypoint("fan")
        .build(strict=strict)
    )
    if strict:
        with pytest.raises(UndeclaredWriteError, match="'scratch'"):
            app.step()
        return
    with pytest.warns(UndeclaredWriteWarning, match="'scratch'"):
        _act, _result, state = app.step()
    assert state["total"] == 5
