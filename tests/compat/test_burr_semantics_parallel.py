"""Burr's parallel actions on turnout (issue 13, items 3 and 4): a failing child of a map action
is caught as its own exception type, ``MapActions`` needs no ``state()``, and children follow the
parent's strict mode."""

from __future__ import annotations

import asyncio
import pickle
from collections.abc import Iterable, Iterator
from typing import Any

import pytest

from turnout.core import ApplicationBuilder, State, action
from turnout.core.application import ApplicationContext
from turnout.core.errors import (
    ChildApplicationError,
    UndeclaredWriteError,
    UndeclaredWriteWarning,
)
from turnout.core.parallelism import MapActions, MapStates

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


# -- 4. MapActions without state(); strict children ---------------------------------------------


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
