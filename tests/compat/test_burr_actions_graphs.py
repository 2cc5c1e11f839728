"""Burr's action, condition, streaming and graph behaviour, through Burr's import paths.

Each test pins one behaviour a Burr program (or a Burr-style test helper) relies on: an unbound
action's ``name``, ``Function.is_async``, ``type_eraser``, ``derive_inputs_from_fn``,
``DEFAULT_SCHEMA``, the check of undeclared state reads, ``safe_expr``'s grammar and errors,
Burr's result-container constructor, and the graph helpers.
"""

from __future__ import annotations

import ast
import asyncio
import inspect
import json
import pickle
from collections.abc import AsyncGenerator, Generator
from typing import Any

import pytest

from turnout.core import ApplicationBuilder, Condition, State
from turnout.core.action import (
    DEFAULT_SCHEMA,
    Action,
    AsyncStreamingResultContainer,
    Function,
    Result,
    SingleStepStreamingAction,
    StreamingAction,
    StreamingResultContainer,
    _SafeExprInterpreter,
    action,
    bound_name,
    default,
    derive_inputs_from_fn,
    expr,
    safe_expr,
    streaming_action,
    type_eraser,
    when,
)
from turnout.core.application import ApplicationGraph
from turnout.core.errors import (
    ActionDefinitionError,
    ConditionError,
    ConditionKeyError,
    ConditionSyntaxError,
    GraphSetupError,
    UnknownActionError,
)
from turnout.core.graph import GraphBuilder, _validate_actions, _validate_transitions
from turnout.core.typing import ActionSchema

# -- actions ---------------------------------------------------------------------------------------


class Copy(Action):
    @property
    def reads(self) -> list[str]:
        return ["src"]

    @property
    def writes(self) -> list[str]:
        return ["dst"]

    def run(self, state: State, **run_kwargs: Any) -> dict[str, Any]:
        return {"dst": state["src"]}

    def update(self, result: dict[str, Any], state: State) -> State:
        return state.update(**result)


def test_a_class_action_has_no_name_until_the_builder_or_with_name_gives_one():
    unbound = Copy()
    assert unbound.name is None
    assert unbound.with_name("copy").name == "copy"
    app = (
        ApplicationBuilder()
        .with_actions(copy=unbound)
        .with_state(src=1)
        .with_entrypoint("copy")
        .build()
    )
    assert app.graph.get_action("copy").name == "copy"  # the builder named a copy
    assert unbound.name is None


def test_bound_name_raises_for_an_unnamed_action_naming_the_fix():
    with pytest.raises(ActionDefinitionError, match=r"with_name\('my_name'\)"):
        bound_name(Copy())
    assert bound_name(Copy().with_name("c")) == "c"


@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "async"])
def test_a_function_knows_whether_its_run_is_async(asynchronous):
    class Sync(Function):
        @property
        def reads(self) -> list[str]:
            return []

        def run(self, state: State, **run_kwargs: Any) -> dict[str, Any]:
            return {}

    class Async(Sync):
        async def run(self, state: State, **run_kwargs: Any) -> dict[str, Any]:  # type: ignore[override]
            return {}

    assert (Async() if asynchronous else Sync()).is_async() is asynchronous


def _plain(self: Any, state: State, n: int) -> dict[str, Any]:
    return {"n": n}


async def _coroutine(self: Any, state: State, n: int) -> dict[str, Any]:
    return {"n": n}


def _generator(self: Any, state: State, n: int) -> Generator[dict[str, Any], None, None]:
    yield {"n": n}


async def _async_generator(self: Any, state: State, n: int) -> AsyncGenerator[dict[str, Any]]:
    yield {"n": n}


@pytest.mark.parametrize(
    ("func", "kind"),
    [
        (_plain, inspect.isfunction),
        (_coroutine, inspect.iscoroutinefunction),
        (_generator, inspect.isgeneratorfunction),
        (_async_generator, inspect.isasyncgenfunction),
    ],
    ids=["function", "coroutine", "generator", "async-generator"],
)
def test_type_eraser_wraps_keeping_kind_name_and_signature(func, kind):
    erased = type_eraser(func)
    assert erased is not func
    assert erased.__wrapped__ is func
    assert erased.__name__ == func.__name__
    assert kind(erased)
    assert list(inspect.signature(erased).parameters) == ["self", "state", "n"]


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_type_erased_run_with_named_inputs_runs_in_an_application(mode):
    class Add(Copy):
        @property
        def inputs(self) -> list[str]:
            return ["n"]

        @type_eraser
        def run(self, state: State, n: int) -> dict[str, Any]:  # type: ignore[override]
            return {"dst": state["src"] + n}

    app = (
        ApplicationBuilder()
        .with_actions(add=Add())
        .with_state(src=1)
        .with_entrypoint("add")
        .build()
    )
    step = app.step(inputs={"n": 2}) if mode == "sync" else asyncio.run(app.astep(inputs={"n": 2}))
    assert step is not None
    assert step[2]["dst"] == 3


@pytest.mark.parametrize(
    ("bound", "expected"),
    [
        ({}, (["a"], ["b"])),
        ({"a": 1}, ([], ["b"])),
        ({"a": 1, "b": 2, "unrelated": 3}, ([], [])),
    ],
    ids=["nothing-bound", "required-bound", "all-bound-and-an-unknown"],
)
def test_derive_inputs_from_fn_splits_the_parameters_after_the_state(bound, expected):
    def fn(state: State, a: int, b: int = 2) -> State:
        return state

    assert derive_inputs_from_fn(bound, fn) == expected


def test_untyped_actions_have_burrs_default_schema():
    assert isinstance(DEFAULT_SCHEMA, ActionSchema)
    assert DEFAULT_SCHEMA.intermediate_result_type() is dict
    for missing in (DEFAULT_SCHEMA.state_input_type, DEFAULT_SCHEMA.state_output_type):
        with pytest.raises(NotImplementedError):
            missing()
    assert Copy().schema is DEFAULT_SCHEMA
    assert Result("x").schema is DEFAULT_SCHEMA


def _annotated(fn: Any) -> Any:
    """``fn`` with its ``state`` annotated by the class ``State`` itself, as in a module without
    ``from __future__ import annotations`` (this one has it: its annotations are strings)."""
    fn.__annotations__["state"] = State
    return fn


def test_a_function_reading_an_undeclared_key_is_refused_when_declared():
    def reads_more(state: State) -> State:
        return state.update(x=state["a"] + state["b"] + state["c"] + state["b"])

    with pytest.raises(ActionDefinitionError, match=r"undeclared state keys \['b', 'c'\]") as info:
        action(reads=["a"], writes=[])(_annotated(reads_more))
    assert isinstance(info.value, ValueError)  # what Burr raises
    assert "reads=['a', 'b', 'c']" in str(info.value)


@pytest.mark.parametrize("decorator", [action, streaming_action], ids=["action", "streaming"])
def test_the_undeclared_read_check_covers_streaming_functions_too(decorator):
    def reads_more(state: State) -> Generator[Any, None, None]:
        yield {}, state.update(x=state["b"])

    def plain(state: State) -> State:
        return state.update(x=state["b"])

    with pytest.raises(ActionDefinitionError, match="undeclared"):
        decorator(reads=["a"], writes=[])(
            _annotated(reads_more if decorator is not action else plain)
        )


def test_the_undeclared_read_check_applies_only_where_burrs_does():
    """Not when no reads are declared, nor when the state parameter's annotation is not the
    class ``State`` (a string under ``from __future__ import annotations``, or none)."""

    def nothing_declared(state: State) -> State:
        return state.update(x=state["b"])

    def string_annotation(state: State) -> State:
        return state.update(x=state["b"])

    def not_annotated(state):  # type: ignore[no-untyped-def]
        return state.update(x=state["b"])

    action(reads=[], writes=["x"])(_annotated(nothing_declared))
    for fn in (string_annotation, not_annotated):
        assert action(reads=["a"], writes=["x"])(fn).action_function.reads == ["a"]


# -- conditions ------------------------------------------------------------------------------------


def test_when_without_a_key_before_the_operator_names_the_problem():
    with pytest.raises(ConditionError, match=r"no state key before '__gte'") as info:
        when(__gte=18)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    ("condition", "name"),
    [
        (~Condition(["foo"], lambda s: s["foo"] == "bar", name="foo == 'bar'"), "~foo == 'bar'"),
        (~expr("count > 1"), "~count > 1"),
        (~when(a=1, b=2), "~a=1, b=2"),
        (~(when(a=1) | when(b=2)), "~(a=1 | b=2)"),
        (~(when(a=1) & when(b=2)), "~(a=1 & b=2)"),
    ],
    ids=["custom", "expr", "when-pairs", "or", "and"],
)
def test_inverted_names_read_as_burrs_except_for_combinations(condition, name):
    assert condition.name == name


def test_an_inverted_combination_survives_pickling_with_its_name():
    inverted = ~(when(a=1) | when(b=2))
    assert pickle.loads(pickle.dumps(inverted)).name == "~(a=1 | b=2)"


def test_condition_validate_names_the_missing_keys_as_a_value_error():
    condition = when(foo="bar", baz=1)
    condition._validate(State({"foo": "x", "baz": 2}))
    with pytest.raises(ConditionKeyError, match="'baz'") as info:
        condition._validate(State({"foo": "x"}))
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    ("source", "why"),
    [
        ("1 if a else 2", "construct: a conditional expression"),
        ("...", "constant of type ellipsis"),
        ("b'x' == y", "constant of type bytes"),
        ("round(x, ndigits=1) > 0", "keyword arguments"),
        ("sorted(items) == items", "call to the function 'sorted'"),
    ],
    ids=["conditional", "ellipsis", "bytes", "keyword", "sorted"],
)
def test_safe_expr_refuses_what_burrs_grammar_refuses_and_expr_accepts(source, why):
    with pytest.raises(ConditionError, match=f"disallowed {why}"):
        safe_expr(source)
    assert expr(source).name == source


@pytest.mark.parametrize(
    ("source", "why"),
    [
        ("__import__('os').system('x')", "only calls to the allowed built-in functions"),
        ("(0).__class__", "a dunder"),
        ("open('/etc/passwd').read()", "only calls to the allowed built-in functions"),
    ],
    ids=["import", "dunder", "open"],
)
def test_unsafe_expressions_are_disallowed_value_errors(source, why):
    for make in (expr, safe_expr):
        with pytest.raises(ValueError, match=r"disallowed .*" + why):
            make(source)


def test_an_expression_that_does_not_parse_is_a_syntax_error_too():
    with pytest.raises(ConditionSyntaxError) as info:
        safe_expr("foo == ")
    assert isinstance(info.value, SyntaxError)
    assert isinstance(info.value, ValueError)
    assert str(info.value).startswith("expr('foo == ') is not a valid expression")
    assert info.value.lineno == 1


def test_safe_expr_is_a_condition_that_pickles_as_itself():
    condition = safe_expr("count > 1")
    assert condition.evaluate(State({"count": 2}))
    assert Condition.safe_expr("count > 1").name == "count > 1"
    again = pickle.loads(pickle.dumps(condition))
    assert again.name == "count > 1"
    assert again.evaluate(State({"count": 2}))


@pytest.mark.parametrize(
    ("source", "names", "value"),
    [
        ("(a + b) * 2 - c // 2", {"a": 1, "b": 2, "c": 5}, 4),
        ("items[1:3]", {"items": [0, 1, 2, 3]}, [1, 2]),
        ("{'k': x}", {"x": 1}, {"k": 1}),
        ("len(items)", {"items": "abc"}, 3),
    ],
    ids=["arithmetic", "slice", "dict", "call"],
)
def test_burrs_safe_expr_interpreter_returns_the_raw_value(source, names, value):
    assert _SafeExprInterpreter(names).eval(ast.parse(source, mode="eval")) == value


@pytest.mark.parametrize(
    "source",
    [
        "__import__('os').system('touch pwned')",
        "x.__class__.__mro__",
        "'%0999999999d' % 1",
        "[0] * 10 ** 9",
    ],
    ids=["import", "dunder", "huge-format", "huge-list"],
)
def test_burrs_safe_expr_interpreter_refuses_what_expr_refuses(source, tmp_path, monkeypatch):
    """The tree is evaluated by expr's checked interpreter: no builtins beyond its own, no
    dunders, and the same size limits before anything is built."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConditionError):
        _SafeExprInterpreter({"x": 1}).eval(ast.parse(source, mode="eval"))
    assert not (tmp_path / "pwned").exists()


def test_an_evaluation_error_is_also_of_the_raised_type():
    condition = safe_expr("1 / x > 0")
    with pytest.raises(ZeroDivisionError) as info:
        condition.run(State({"x": 0}))
    assert isinstance(info.value, ConditionError)
    assert "expr('1 / x > 0') failed: ZeroDivisionError" in str(info.value)
    again = pickle.loads(pickle.dumps(info.value))
    assert isinstance(again, ZeroDivisionError)
    assert str(again) == str(info.value)


def test_a_failed_subscript_is_not_taken_for_a_missing_state_key():
    with pytest.raises(ConditionError) as info:
        expr("d['absent'] > 1").evaluate(State({"d": {}}))
    assert not isinstance(info.value, KeyError)


# -- streaming -------------------------------------------------------------------------------------


def _pairs(text: str) -> Generator[tuple[dict[str, Any], State | None], None, None]:
    for char in text:
        yield {"c": char}, None
    yield {"text": text}, State({"text": text})


async def _apairs(text: str) -> AsyncGenerator[tuple[dict[str, Any], State | None]]:
    for pair in _pairs(text):
        await asyncio.sleep(0)
        yield pair


def _container(mode: str, text: str, calls: list[Any], initial: State) -> Any:
    def process(result: dict[str, Any], state: State) -> tuple[dict[str, Any], State]:
        return {**result, "processed": True}, state

    def callback(result: Any, state: State, error: BaseException | None) -> None:
        calls.append((result, state, error))

    async def acallback(result: Any, state: State, error: BaseException | None) -> None:
        callback(result, state, error)

    if mode == "sync":
        return StreamingResultContainer(_pairs(text), initial, process, callback)
    return AsyncStreamingResultContainer(_apairs(text), initial, process, acallback)


async def _drain(mode: str, container: Any) -> tuple[list[Any], Any]:
    if mode == "sync":
        return list(container), container.get()
    return [item async for item in container], await container.get()


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_container_built_with_burrs_arguments_streams_then_gives_the_processed_result(mode):
    calls: list[Any] = []
    container = _container(mode, "ab", calls, State({"start": 1}))
    items, (result, state) = asyncio.run(_drain(mode, container))
    assert items == [{"c": "a"}, {"c": "b"}]
    assert result == {"text": "ab", "processed": True}
    assert state["text"] == "ab"
    assert [(r, s.get_all(), e) for r, s, e in calls] == [(result, {"text": "ab"}, None)]


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_container_built_with_burrs_arguments_reports_a_stopped_stream_once(mode):
    calls: list[Any] = []

    async def stop_early() -> None:
        container = _container(mode, "abc", calls, State({"start": 1}))
        if mode == "sync":
            iterator = iter(container)
            next(iterator)
            iterator.close()
        else:
            iterator = container.__aiter__()
            await iterator.__anext__()
            await iterator.aclose()

    asyncio.run(stop_early())
    ((result, state, error),) = calls
    assert result is None
    assert state.get_all() == {"start": 1}
    assert isinstance(error, GeneratorExit)


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_pass_through_holds_a_finished_result(mode):
    kind = StreamingResultContainer if mode == "sync" else AsyncStreamingResultContainer
    container = kind.pass_through({"x": 1}, State({"x": 1}))
    items, (result, state) = asyncio.run(_drain(mode, container))
    assert (items, result, state.get_all()) == ([], {"x": 1}, {"x": 1})


@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "async"])
def test_a_streaming_function_is_a_single_step_streaming_action_that_runs_through(asynchronous):
    if asynchronous:

        @streaming_action(reads=["prefix"], writes=["out"])
        async def shout(state: State, word: str) -> AsyncGenerator[Any]:
            for char in word:
                yield {"c": char}, None
            out = state["prefix"] + word.upper()
            yield {"out": out}, state.update(out=out)

    else:

        @streaming_action(reads=["prefix"], writes=["out"])
        def shout(state: State, word: str) -> Generator[Any, None, None]:  # type: ignore[misc]
            for char in word:
                yield {"c": char}, None
            out = state["prefix"] + word.upper()
            yield {"out": out}, state.update(out=out)

    act = shout.bind(word="hi").action_function
    assert isinstance(act, SingleStepStreamingAction)
    assert act.is_async() is asynchronous
    ran = act.run_and_update(State({"prefix": ">"}))
    result, state = asyncio.run(ran) if asynchronous else ran
    assert (result, state["out"]) == ({"out": ">HI"}, ">HI")


def test_a_streaming_class_run_directly_returns_its_last_dict():
    class Echo(StreamingAction):
        @property
        def reads(self) -> list[str]:
            return ["text"]

        @property
        def writes(self) -> list[str]:
            return ["text"]

        def stream_run(self, state: State, **run_kwargs: Any) -> Generator[dict[str, Any]]:
            yield from ({"c": c} for c in state["text"])
            yield {"text": state["text"] * 2}

        def update(self, result: dict[str, Any], state: State) -> State:
            return state.update(**result)

    assert Echo().run(State({"text": "ab"})) == {"text": "abab"}


# -- graphs ----------------------------------------------------------------------------------------


def _named(name: str) -> Action:
    return Copy().with_name(name)


def test_burrs_action_list_check_wants_one_action_and_unique_names():
    _validate_actions([_named("a"), _named("b")])
    with pytest.raises(GraphSetupError, match="at least one"):
        _validate_actions([])
    with pytest.raises(GraphSetupError, match=r"'a' \(duplicated\)"):
        _validate_actions([_named("a"), _named("a")])


@pytest.mark.parametrize(
    ("transitions", "message"),
    [
        ([("a", "ghost", default)], "not found in the graph: 'ghost'"),
        ([("a", "b", default), ("a", "a", default)], "redundant"),
        ([("a", "b", "x > 1")], "must be a Condition"),
    ],
    ids=["unknown", "two-defaults", "not-a-condition"],
)
def test_burrs_transition_check_names_each_problem(transitions, message):
    assert _validate_transitions([("a", "b", expr("x > 1")), ("a", "a", default)], {"a", "b"})
    with pytest.raises(GraphSetupError, match=message) as info:
        _validate_transitions(transitions, {"a", "b"})
    assert isinstance(info.value, ValueError)


def test_a_graph_builder_lists_its_transitions_before_build():
    first = GraphBuilder().with_actions(a=Copy()).with_transitions(("a", "a", expr("x < 1")))
    builder = (
        GraphBuilder()
        .with_graph(first.build())
        .with_actions(b=Copy())
        .with_transitions((["a", "b"], "b"))
    )
    assert [(s, t, c.name) for s, t, c in builder.transitions] == [
        ("a", "a", "x < 1"),
        ("a", "b", "default"),
        ("b", "b", "default"),
    ]


def test_an_unknown_tag_is_not_found():
    graph = GraphBuilder().with_actions(a=Copy()).build()
    with pytest.raises(UnknownActionError, match="tag 'x' not found"):
        graph.get_actions_by_tag("x")


def test_a_graph_exports_plain_sorted_data():
    class Tagged(Copy):
        @property
        def tags(self) -> list[str]:
            return ["z", "a"]

        @property
        def inputs(self) -> tuple[list[str], list[str]]:
            return ["r2", "r1"], ["o1", "__context"]

    graph = (
        GraphBuilder()
        .with_actions(t=Tagged(), r=Result("dst"))
        .with_transitions(("t", "r", expr("dst > 1")), ("r", "t"))
        .build()
    )
    exported = graph.to_dict()
    assert exported["type"] == "graph"
    assert exported["actions"][0] == {
        "name": "t",
        "reads": ["src"],
        "writes": ["dst"],
        "inputs": ["r1", "r2"],
        "optional_inputs": ["o1"],
        "tags": ["a", "z"],
    }
    assert exported["transitions"] == [
        {"from": "t", "to": "r", "condition": "dst > 1"},
        {"from": "r", "to": "t", "condition": "default"},
    ]
    assert json.loads(json.dumps(exported)) == exported
    app_graph = ApplicationGraph(graph.actions, graph.transitions, graph.actions[1])
    assert app_graph.to_dict() == {**exported, "type": "application_graph", "entrypoint": "r"}


def test_a_result_container_is_an_iterator_as_on_burr() -> None:
    from turnout.core.action import AsyncStreamingResultContainer, StreamingResultContainer

    def gen() -> Any:
        yield {"i": 1}, None
        yield {"i": 2}, None
        yield {"done": True}, State({"n": 1})

    container = StreamingResultContainer(gen(), State({}), lambda r, s: (r, s), lambda *a: None)
    assert next(container) == {"i": 1}
    assert next(container) == {"i": 2}
    with pytest.raises(StopIteration):
        next(container)
    assert container.get() == ({"done": True}, State({"n": 1}))

    async def agen() -> Any:
        yield {"i": 1}, None
        yield {"done": True}, State({"n": 2})

    async def drive() -> Any:
        async def on_end(*args: Any) -> None:
            return None

        acontainer = AsyncStreamingResultContainer(agen(), State({}), lambda r, s: (r, s), on_end)
        first = await anext(acontainer)
        with pytest.raises(StopAsyncIteration):
            await anext(acontainer)
        return first, await acontainer.get()

    assert asyncio.run(drive()) == ({"i": 1}, ({"done": True}, State({"n": 2})))
