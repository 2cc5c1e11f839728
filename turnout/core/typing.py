"""Typing systems under Burr's module name (``burr.core.typing``).

A typing system converts between ``State`` and a typed object (a dict here; pydantic models in
the ``pydantic`` adapter) and names the type of the state before and after each action. This
module holds the interface and the dict-based system that untyped applications use.
"""

from __future__ import annotations

import abc
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from turnout.core.state import State

if TYPE_CHECKING:
    from turnout.core.action import Action
    from turnout.core.graph import Graph

__all__ = [
    "DEFAULT_SCHEMA",
    "ActionSchema",
    "DefaultSchema",
    "DictBasedTypingSystem",
    "TypingSystem",
]

BaseType = TypeVar("BaseType")
StateInputType = TypeVar("StateInputType")
StateOutputType = TypeVar("StateOutputType")
IntermediateResultType = TypeVar("IntermediateResultType")


class TypingSystem(abc.ABC, Generic[BaseType]):
    """Converts state to and from ``BaseType`` objects."""

    @abc.abstractmethod
    def state_type(self) -> type[BaseType]:
        """The type of the whole state."""

    @abc.abstractmethod
    def state_pre_action_run_type(self, action: Action, graph: Graph) -> type[BaseType]:
        """The type of the state ``action`` receives."""

    @abc.abstractmethod
    def state_post_action_run_type(self, action: Action, graph: Graph) -> type[BaseType]:
        """The type of the state after ``action``."""

    def validate_state(self, state: State) -> None:
        """Raise when ``state`` does not fit ``state_type()``; accepts everything by default."""

    @abc.abstractmethod
    def construct_data(self, state: State) -> BaseType:
        """``state`` as a ``BaseType`` object."""

    @abc.abstractmethod
    def construct_state(self, data: BaseType) -> State:
        """A ``State`` holding ``data``."""


class ActionSchema(abc.ABC, Generic[StateInputType, StateOutputType, IntermediateResultType]):
    """The types an action reads, writes and returns as its intermediate result."""

    @abc.abstractmethod
    def state_input_type(self) -> type[StateInputType]: ...

    @abc.abstractmethod
    def state_output_type(self) -> type[StateOutputType]: ...

    @abc.abstractmethod
    def intermediate_result_type(self) -> type[IntermediateResultType]: ...


class DefaultSchema(ActionSchema[State, State, dict[str, Any]]):
    """The schema of an untyped action: its intermediate result is a ``dict``; its state types
    are not known (they raise ``NotImplementedError``, as Burr's do)."""

    def state_input_type(self) -> type[State]:
        raise NotImplementedError("an untyped action declares no state input type")

    def state_output_type(self) -> type[State]:
        raise NotImplementedError("an untyped action declares no state output type")

    def intermediate_result_type(self) -> type[dict[str, Any]]:
        return dict


DEFAULT_SCHEMA = DefaultSchema()
"""The schema of every action that declares none (Burr's ``burr.core.action.DEFAULT_SCHEMA``)."""


class DictBasedTypingSystem(TypingSystem[dict[str, Any]]):
    """The untyped system: the state is a plain ``dict`` before and after every action."""

    def state_type(self) -> type[dict[str, Any]]:
        return dict

    def state_pre_action_run_type(self, action: Action, graph: Graph) -> type[dict[str, Any]]:
        return dict

    def state_post_action_run_type(self, action: Action, graph: Graph) -> type[dict[str, Any]]:
        return dict

    def construct_data(self, state: State) -> dict[str, Any]:
        return state.get_all()

    def construct_state(self, data: dict[str, Any]) -> State:
        return State(data)
