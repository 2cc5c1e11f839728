"""Typed state with a TypedDict or a dataclass: ``state.data``, step-time validation of written
fields, the build-time check of reads/writes, and ``with_typing(<class>)``."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any, Literal, NotRequired, TypedDict

import pytest

from turnout import Action, ApplicationBuilder, State, action
from turnout.core._annotations import ELEMENTS_CHECKED, checker
from turnout.core.errors import GraphSetupError, StateValidationError
from turnout.core.typing import (
    DataclassTypingSystem,
    TypedDictTypingSystem,
    TypingSystem,
    typing_system_for,
)


class Post(TypedDict):
    title: str
    words: int


class Chat(TypedDict):
    count: int
    prompt: str
    history: list[str]
    post: NotRequired[Post | None]
    mode: NotRequired[Literal["draft", "final"]]


@dataclasses.dataclass
class Counter:
    count: int = 0
    ratio: float = 0.0
    tags: set[str] = dataclasses.field(default_factory=set)
    label: str | None = None


@action(reads=["count"], writes=["count", "history"])
def count(state: State, step: int = 1) -> State:
    return state.update(count=state["count"] + step).append(history=f"+{step}")


@action(reads=["count"], writes=["count", "history"])
async def acount(state: State, step: int = 1) -> State:
    return state.update(count=state["count"] + step).append(history=f"+{step}")


@action(reads=[], writes=["count"])
def miscount(state: State) -> State:
    return state.update(count="three")


@action(reads=[], writes=["count"])
async def amiscount(state: State) -> State:
    return state.update(count="three")


def _chat_app(*actions: Any, typing: Any = Chat) -> Any:
    return (
        ApplicationBuilder()
        .with_actions(*actions)
        .with_transitions(*[(a.__name__, a.__name__) for a in actions])
        .with_typing(typing)
        .with_state(Chat(count=0, prompt="hi", history=[]))
        .with_entrypoint(actions[0].__name__)
        .build()
    )


@pytest.fixture(params=["sync", "async"], ids=["sync", "async"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _step(app: Any, mode: str, **inputs: Any) -> Any:
    if mode == "sync":
        return app.step(inputs=inputs)
    return asyncio.run(app.astep(inputs=inputs))


# -- state.data ----------------------------------------------------------------------------------


def test_typed_dict_state_data_is_a_dict_of_the_fields(mode: str) -> None:
    app = _chat_app(count if mode == "sync" else acount)
    _, _, state = _step(app, mode, step=2)
    assert state.data == {"count": 2, "prompt": "hi", "history": ["+2"]}
    assert app.state.data["count"] == 2


def test_typed_dict_state_data_leaves_out_keys_that_are_not_fields() -> None:
    system = TypedDictTypingSystem(Chat)
    state = State({"count": 1, "other": "x"}, typing_system=system)
    assert state.data == {"count": 1}


def test_dataclass_state_data_is_an_instance_and_with_state_takes_one() -> None:
    @action(reads=["count"], writes=["count"])
    def bump(state: State) -> State:
        return state.update(count=state["count"] + 1)

    app = (
        ApplicationBuilder()
        .with_actions(bump)
        .with_transitions(("bump", "bump"))
        .with_typing(Counter)
        .with_state(Counter(count=5, tags={"a"}))
        .with_entrypoint("bump")
        .build()
    )
    app.step()
    assert app.state.data == Counter(count=6, tags={"a"})
    assert app.state["label"] is None


def test_dataclass_state_data_names_required_fields_the_state_lacks() -> None:
    @dataclasses.dataclass
    class Needs:
        name: str
        size: int = 0

    state = State({"size": 1}, typing_system=DataclassTypingSystem(Needs))
    with pytest.raises(StateValidationError, match=r"needs 'name' \(no default\).*with_state"):
        _ = state.data


def test_dataclass_state_data_sets_init_false_fields_from_the_state() -> None:
    @dataclasses.dataclass
    class Derived:
        base: int = 1
        total: int = dataclasses.field(init=False, default=0)

    state = State({"base": 2, "total": 7}, typing_system=DataclassTypingSystem(Derived))
    assert (state.data.base, state.data.total) == (2, 7)


def test_construct_state_rejects_an_object_of_another_type() -> None:
    with pytest.raises(StateValidationError, match="makes a state from a Counter, got dict"):
        DataclassTypingSystem(Counter).construct_state({"count": 1})  # type: ignore[arg-type]


# -- validation of writes ------------------------------------------------------------------------


def test_a_wrong_write_names_the_action_field_value_type_and_declared_type(mode: str) -> None:
    app = _chat_app(miscount if mode == "sync" else amiscount)
    with pytest.raises(StateValidationError) as caught:
        _step(app, mode)
    message = str(caught.value)
    assert "action 'miscount' wrote 'count'" in message or "action 'amiscount' wrote" in message
    assert "'three' (str)" in message
    assert "Chat declares count: int" in message
    assert app.state["count"] == 0  # the step was not applied


def test_validation_checks_only_the_fields_written_this_step() -> None:
    @action(reads=[], writes=["prompt"])
    def prompt(state: State) -> State:
        return state.update(prompt="ok")

    system = TypedDictTypingSystem(Chat)
    app = (
        ApplicationBuilder()
        .with_actions(prompt)
        .with_transitions(("prompt", "prompt"))
        .with_typing(system)
        .with_state(count=0, prompt="", history=[])
        .with_entrypoint("prompt")
        .build()
    )
    calls: list[frozenset[str]] = []
    original = system.validate_writes

    def spy(state: State, keys: Any, act: Any) -> None:
        calls.append(frozenset(keys))
        original(state, keys, act)

    system.validate_writes = spy  # type: ignore[method-assign]
    app.step()
    app.step()
    assert calls == [frozenset({"prompt"}), frozenset({"prompt"})]


def test_a_class_action_writing_a_wrong_type_is_rejected() -> None:
    class Titles(Action):
        @property
        def reads(self) -> list[str]:
            return []

        @property
        def writes(self) -> list[str]:
            return ["post"]

        def run(self, state: State, **run_kwargs: Any) -> dict[str, Any]:
            return {"post": {"title": "t", "words": "many"}}

        def update(self, result: dict[str, Any], state: State) -> State:
            return state.update(post=result["post"])

    app = (
        ApplicationBuilder()
        .with_actions(titles=Titles())
        .with_transitions(("titles", "titles"))
        .with_typing(Chat)
        .with_entrypoint("titles")
        .build()
    )
    with pytest.raises(StateValidationError, match=r"'post' .*declares post: Post \| None"):
        app.step()


def test_the_initial_state_is_checked_at_build() -> None:
    with pytest.raises(StateValidationError, match="the state holds 'count' = 'x'"):
        _chat_app(count).builder.with_state(count="x").build()


VALUES = [
    (int, 3, True),
    (int, True, False),
    (int, 3.0, False),
    (float, 3, True),
    (float, 3.5, True),
    (bool, False, True),
    (str, "s", True),
    (type(None), None, True),
    (int | None, None, True),
    (int | str, "s", True),
    (int | str, 1.5, False),
    (Literal["a", "b"], "a", True),
    (Literal["a", "b"], "c", False),
    (Literal[1], True, False),
    (list[int], [1, 2], True),
    (list[int], [1, "2"], False),
    (list[int], (1, 2), False),
    (dict[str, int], {"a": 1}, True),
    (dict[str, int], {"a": "1"}, False),
    (tuple[int, str], (1, "a"), True),
    (tuple[int, str], (1, 2), False),
    (tuple[int, ...], (1, 2, 3), True),
    (set[str], {"a"}, True),
    (set[str], {1}, False),
    (Post, {"title": "t", "words": 1}, True),
    (Post, {"title": "t"}, False),
    (Post, {"title": "t", "words": 1, "extra": 0}, False),
    (list[Post], [{"title": "t", "words": "x"}], False),
    (Counter, Counter(), True),
    (Counter, {"count": 1}, False),
    (Any, object(), True),
    ("Undefined", object(), True),
]


@pytest.mark.parametrize(
    ("annotation", "value", "fits"), VALUES, ids=[f"{a}-{v!r}" for a, v, _ in VALUES]
)
def test_annotation_checks(annotation: Any, value: Any, fits: bool) -> None:
    check = checker(annotation)
    assert (check is None or check(value)) is fits


def test_a_long_list_is_checked_on_its_newest_items_only() -> None:
    check = checker(list[int])
    assert check is not None
    old_bad = ["bad", *range(ELEMENTS_CHECKED)]
    assert check(old_bad)  # beyond the window: accepted, the cost stays constant
    assert not check([*range(ELEMENTS_CHECKED), "bad"])


def test_a_recursive_typed_dict_is_checked() -> None:
    tree = Tree(name="a", children=[Tree(name="b", children=[])])
    check = checker(Tree)
    assert check is not None
    assert check(tree)
    assert not check({"name": "a", "children": [{"name": 1, "children": []}]})


class Tree(TypedDict):
    name: str
    children: list[Tree]


# -- build-time check of reads and writes --------------------------------------------------------


def test_build_reports_reads_and_writes_that_are_not_fields_with_a_suggestion() -> None:
    @action(reads=["cont"], writes=["histroy"])
    def typo(state: State) -> State:
        return state

    with pytest.raises(GraphSetupError) as caught:
        _chat_app(typo, count)
    problems = caught.value.problems
    assert any(
        "action 'typo' reads 'cont', which is not a field of the state type Chat" in p
        and "Did you mean 'count'?" in p
        and "'count', 'history', 'mode', 'post', 'prompt'" in p
        for p in problems
    )
    assert any("writes 'histroy'" in p and "Did you mean 'history'?" in p for p in problems)


def test_build_check_ignores_internal_double_underscore_keys() -> None:
    @action(reads=["count"], writes=["count", "__internal"])
    def internal(state: State) -> State:
        return state.update(count=1, __internal=True)

    _chat_app(internal)


def test_build_check_is_skipped_for_typing_systems_without_field_names() -> None:
    class Loose(TypingSystem[dict[str, Any]]):
        def state_type(self) -> type[dict[str, Any]]:
            return dict

        def state_pre_action_run_type(self, action: Any, graph: Any) -> type[dict[str, Any]]:
            return dict

        def state_post_action_run_type(self, action: Any, graph: Any) -> type[dict[str, Any]]:
            return dict

        def construct_data(self, state: State) -> dict[str, Any]:
            return state.get_all()

        def construct_state(self, data: dict[str, Any]) -> State:
            return State(data, typing_system=self)

    @action(reads=[], writes=["anything"])
    def anything(state: State) -> State:
        return state.update(anything=1)

    app = _chat_app(anything, typing=Loose())
    app.step()
    assert app.state["anything"] == 1


# -- with_typing(<class>) ------------------------------------------------------------------------


def test_with_typing_takes_a_typed_dict_or_dataclass_class() -> None:
    assert isinstance(typing_system_for(Chat), TypedDictTypingSystem)
    assert isinstance(typing_system_for(Counter), DataclassTypingSystem)
    app = _chat_app(count)
    assert isinstance(app.state.typing_system, TypedDictTypingSystem)
    assert app.graph.typing_system is app.state.typing_system


def test_with_typing_rejects_another_class_at_build() -> None:
    class Plain:
        pass

    with pytest.raises(GraphSetupError, match=r"with_typing\(Plain\).*a TypedDict class"):
        _chat_app(count, typing=Plain)


def test_the_typing_system_constructors_reject_the_other_kind() -> None:
    with pytest.raises(StateValidationError, match="takes a TypedDict class"):
        TypedDictTypingSystem(Counter)
    with pytest.raises(StateValidationError, match="takes a dataclass"):
        DataclassTypingSystem(Chat)


def test_with_state_before_with_typing_names_the_call_to_add() -> None:
    with pytest.raises(GraphSetupError, match=r"\.with_typing\(Counter\)\.with_state\(\.\.\.\)"):
        ApplicationBuilder().with_actions(count).with_state(Counter()).with_entrypoint(
            "count"
        ).build()


def test_update_state_checks_a_typed_state_and_keeps_the_old_one_on_a_bad_value() -> None:
    @action(reads=[], writes=["prompt"])
    def prompt(state: State) -> State:
        return state.update(prompt="ok")

    app = (
        ApplicationBuilder()
        .with_actions(prompt)
        .with_transitions(("prompt", "prompt"))
        .with_typing(TypedDictTypingSystem(Chat))
        .with_state(count=0, prompt="", history=[])
        .with_entrypoint("prompt")
        .build()
    )
    with pytest.raises(StateValidationError, match="count"):
        app.update_state({"count": "bad", "prompt": "", "history": []})
    assert app.state["count"] == 0
