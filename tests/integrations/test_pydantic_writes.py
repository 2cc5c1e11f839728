"""What a typed step stores for each written value: exactly what pydantic's validation gives.

Writes of exactly the declared plain type skip pydantic's run; these cases pin that every other
value still goes through it (converted, constrained, transformed or refused) and that what an
action does to the model it received never reaches the state it was given.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

pytest.importorskip("pydantic")

import pydantic

from turnout import ApplicationBuilder, action
from turnout.core.errors import StateValidationError
from turnout.integrations.pydantic import PydanticTypingSystem


class Fields(pydantic.BaseModel):
    count: int = 0
    ratio: float = 0.0
    name: str = ""
    flag: bool = False
    maybe: int | None = None
    blob: bytes = b""
    positive: int = pydantic.Field(default=1, gt=0)
    tags: list[str] = []


class Stripped(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(str_strip_whitespace=True)
    name: str = ""


class NoInfinity(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(allow_inf_nan=False)
    ratio: float = 0.0


def _run(model: type[pydantic.BaseModel], field: str, value: Any, mode: str) -> Any:
    """The value stored at ``field`` after one step whose action writes ``value`` there."""
    if mode == "sync":

        @action.pydantic(reads=[], writes=[field], state_input_type=model, state_output_type=model)
        def write(state: Any) -> Any:
            setattr(state, field, value)
            return state

    else:

        @action.pydantic(reads=[], writes=[field], state_input_type=model, state_output_type=model)
        async def write(state: Any) -> Any:
            setattr(state, field, value)
            return state

    app = (
        ApplicationBuilder()
        .with_actions(write)
        .with_transitions(("write", "write"))
        .with_typing(PydanticTypingSystem(model))
        .with_state(model())
        .with_entrypoint("write")
        .build()
    )
    if mode == "sync":
        app.step()
    else:
        asyncio.run(app.astep())
    return app.state[field]


STORED = [
    ("count-int", Fields, "count", 7, 7),
    ("count-from-str", Fields, "count", "7", 7),
    ("count-from-whole-float", Fields, "count", 2.0, 2),
    ("ratio-float", Fields, "ratio", 2.5, 2.5),
    ("ratio-from-int", Fields, "ratio", 3, 3.0),
    ("flag-from-int", Fields, "flag", 1, True),
    ("maybe-none", Fields, "maybe", None, None),
    ("maybe-int", Fields, "maybe", 4, 4),
    ("blob-bytes", Fields, "blob", b"\x00", b"\x00"),
    ("blob-from-str", Fields, "blob", "ab", b"ab"),
    ("positive-ok", Fields, "positive", 3, 3),
    ("tags-from-tuple", Fields, "tags", ("a", "b"), ["a", "b"]),
    ("stripped", Stripped, "name", "  padded  ", "padded"),
]


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize(
    ("model", "field", "value", "expected"),
    [case[1:] for case in STORED],
    ids=[case[0] for case in STORED],
)
def test_the_state_holds_what_pydantic_makes_of_a_written_value(
    model: type[pydantic.BaseModel], field: str, value: Any, expected: Any, mode: str
) -> None:
    stored = _run(model, field, value, mode)
    assert stored == expected
    assert type(stored) is type(expected)


REFUSED = [
    ("count-from-text", Fields, "count", "seven"),
    ("count-from-fraction", Fields, "count", 2.5),
    ("positive-zero", Fields, "positive", 0),
    ("name-from-int", Fields, "name", 5),
    ("ratio-infinite", NoInfinity, "ratio", float("inf")),
    ("maybe-from-list", Fields, "maybe", [1]),
]


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize(
    ("model", "field", "value"),
    [case[1:] for case in REFUSED],
    ids=[case[0] for case in REFUSED],
)
def test_a_written_value_pydantic_refuses_fails_the_step_naming_the_field(
    model: type[pydantic.BaseModel], field: str, value: Any, mode: str
) -> None:
    with pytest.raises(StateValidationError, match=rf"action 'write' wrote[\s\S]*{field}"):
        _run(model, field, value, mode)


def test_changing_a_list_in_the_received_model_leaves_the_given_state_unchanged() -> None:
    @action.pydantic(reads=["tags"], writes=["count"])
    def peek(state: Fields) -> Fields:
        state.tags.append("changed")
        state.count += 1
        return state

    app = (
        ApplicationBuilder()
        .with_actions(peek)
        .with_transitions(("peek", "peek"))
        .with_typing(PydanticTypingSystem(Fields))
        .with_state(Fields(tags=["kept"]))
        .with_entrypoint("peek")
        .build()
    )
    before = app.state
    app.step()
    assert before["tags"] == ["kept"]
    assert app.state["tags"] == ["kept"]
    assert app.state["count"] == 1


def test_a_returned_whole_state_model_is_merged_by_its_writes_only() -> None:
    @action.pydantic(reads=["count"], writes=["count"])
    def rebuild(state: Fields) -> Fields:
        return Fields(count=state.count + 1, name="not written")

    app = (
        ApplicationBuilder()
        .with_actions(rebuild)
        .with_transitions(("rebuild", "rebuild"))
        .with_typing(PydanticTypingSystem(Fields))
        .with_state(Fields(name="kept"))
        .with_entrypoint("rebuild")
        .build()
    )
    app.step()
    assert (app.state["count"], app.state["name"]) == (1, "kept")


class Other(pydantic.BaseModel):
    count: int | str = 0


def test_a_function_checking_writes_against_another_model_is_still_checked_by_the_state_model() -> (
    None
):
    @action.pydantic(reads=[], writes=["count"], state_input_type=Other, state_output_type=Other)
    def stringly(state: Other) -> Other:
        state.count = "not a number"
        return state

    app = (
        ApplicationBuilder()
        .with_actions(stringly)
        .with_transitions(("stringly", "stringly"))
        .with_typing(PydanticTypingSystem(Fields))
        .with_state(Fields())
        .with_entrypoint("stringly")
        .build()
    )
    with pytest.raises(StateValidationError, match=r"action 'stringly' wrote[\s\S]*count"):
        app.step()
    assert app.state["count"] == 0


def test_update_state_in_a_typed_application_is_checked_and_keeps_the_typing() -> None:
    @action.pydantic(reads=["count"], writes=["count"])
    def bump(state: Fields) -> Fields:
        state.count += 1
        return state

    app = (
        ApplicationBuilder()
        .with_actions(bump)
        .with_transitions(("bump", "bump"))
        .with_typing(PydanticTypingSystem(Fields))
        .with_state(Fields())
        .with_entrypoint("bump")
        .build()
    )
    with pytest.raises(StateValidationError, match="count"):
        app.update_state({"count": "many"})
    assert app.state["count"] == 0
    app.update_state({"count": 41})
    app.step()
    assert app.state.data.count == 42
    assert isinstance(app.state.data, Fields)
