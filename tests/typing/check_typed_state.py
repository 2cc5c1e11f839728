"""Typed state for type checkers: ``with_typing(<class>)`` types ``app.state.data``. Checked by
mypy (``mypy --strict turnout tests/typing``), never executed."""

from __future__ import annotations

import dataclasses
from typing import Any, TypedDict, assert_type

import pydantic

from turnout import Application, ApplicationBuilder, State, action
from turnout.core.typing import DataclassTypingSystem, TypedDictTypingSystem
from turnout.integrations.pydantic import PydanticTypingSystem


class Chat(TypedDict):
    count: int
    prompt: str


@dataclasses.dataclass
class Counter:
    count: int = 0


class Model(pydantic.BaseModel):
    count: int = 0


@action(reads=["count"], writes=["count"])
def count(state: State) -> State:  # a bare State still means State[Any] under --strict
    return state.update(count=state["count"] + 1)


def typed_state() -> None:
    app = ApplicationBuilder().with_actions(count).with_typing(Chat).build()
    assert_type(app, Application[Chat])
    assert_type(app.state, State[Chat])
    assert_type(app.state.data, Chat)
    assert_type(app.state.data["count"], int)
    assert_type(app.state.update(count=2).data, Chat)  # operations keep the type

    counter = ApplicationBuilder().with_typing(Counter).with_state(Counter()).build()
    assert_type(counter.state.data, Counter)
    assert_type(counter.state.data.count, int)

    model = ApplicationBuilder().with_typing(Model).build()
    assert_type(model.state.data, Model)

    # A typing system object types the builder the same way.
    assert_type(
        ApplicationBuilder().with_typing(PydanticTypingSystem(Model)).build().state.data, Model
    )
    assert_type(
        ApplicationBuilder().with_typing(TypedDictTypingSystem(Chat)).build().state.data, Chat
    )
    assert_type(
        ApplicationBuilder().with_typing(DataclassTypingSystem(Counter)).build().state.data, Counter
    )

    # Untyped: Any, as before; a typed state goes where a bare State is expected.
    untyped = ApplicationBuilder().with_actions(count).build()
    assert_type(untyped.state.data, Any)
    assert_type(count(app.state), State)
    assert_type(State({"count": 1}).with_typing_system(TypedDictTypingSystem(Chat)).data, Chat)
    app.state.data["cont"]  # type: ignore[typeddict-item]
