"""Typing systems under Burr's module name (``burr.core.typing``).

A typing system converts between ``State`` and a typed object (a dict here; pydantic models in
the ``pydantic`` adapter) and names the type of the state before and after each action. This
module holds the interface and the dict-based system that untyped applications use.
"""

from __future__ import annotations

import abc
import typing
from collections.abc import Callable, Collection
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from turnout.core.errors import MissingExtraError
from turnout.core.state import State

if TYPE_CHECKING:
    from turnout.core.action import Action
    from turnout.core.graph import Graph

__all__ = [
    "DEFAULT_SCHEMA",
    "ActionSchema",
    "DataclassTypingSystem",
    "DefaultSchema",
    "DictBasedTypingSystem",
    "TypedDictTypingSystem",
    "TypingSystem",
    "load_typing_adapter",
    "register_typing_adapter",
    "result_type_of",
    "run_input",
    "typing_system_for",
    "update_input",
    "update_output",
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
        """Raise when ``state`` does not fit ``state_type()``; accepts everything by default.
        ``build()`` calls it on the initial (or loaded) state."""

    def validate_writes(self, state: State, keys: Collection[str], action: Action) -> None:
        """Raise when a value ``action`` just wrote at ``keys`` does not fit ``state_type()``
        (``state`` is the state after the step). The engine calls it once per step that changed
        keys, before the step is applied; accepts everything by default."""

    def field_names(self) -> frozenset[str] | None:
        """The names of the state type's fields, when the system knows them; ``build()`` then
        checks that every action's ``reads`` and ``writes`` name one. ``None`` (the default):
        any key."""
        return None

    def state_json_schema(self) -> dict[str, Any] | None:
        """The JSON Schema of ``state_type()``, when the system can describe it
        (``graph.state_schema()`` uses it); ``None`` (the default): unknown."""
        return None

    @abc.abstractmethod
    def construct_data(self, state: State) -> BaseType:
        """``state`` as a ``BaseType`` object."""

    @abc.abstractmethod
    def construct_state(self, data: BaseType) -> State:
        """A ``State`` holding ``data``."""


class ActionSchema(abc.ABC, Generic[StateInputType, StateOutputType, IntermediateResultType]):
    """The types an action reads, writes and returns as its intermediate result.

    Beyond Burr's three methods, a schema may convert the state for a *class* action (``Action``
    with ``run``/``update``, ``StreamingAction``): the engine hands ``run`` (or ``stream_run``)
    ``for_run(state)``, hands ``update`` ``for_update(state)``, and turns what ``update``
    returned back into a ``State`` with ``merge_update``. The defaults pass ``State`` through,
    so a schema that does not override them changes nothing; the pydantic adapter's
    ``PydanticActionSchema`` overrides them so class actions receive and return models.
    """

    converts_state: bool = False
    """Whether the engine calls ``for_run``/``for_update``/``merge_update`` (set by schemas
    that override them; the untyped path then costs nothing)."""

    writes_validated_as: Any = None
    """The state type whose field declarations the action checks its own writes against (an
    ``@action.pydantic`` function does, when it returns its model): in an application whose
    typing system's ``state_type()`` is this very type, the engine skips ``validate_writes``
    for the action's steps, so each write is validated once."""

    @abc.abstractmethod
    def state_input_type(self) -> type[StateInputType]: ...

    @abc.abstractmethod
    def state_output_type(self) -> type[StateOutputType]: ...

    @abc.abstractmethod
    def intermediate_result_type(self) -> type[IntermediateResultType]: ...

    def for_run(self, state: State, action: Action) -> Any:
        """What ``action.run`` receives (``state`` holds the keys it reads)."""
        return state

    def for_update(self, state: State, action: Action) -> Any:
        """What ``action.update`` receives (``state`` is the whole state)."""
        return state

    def merge_update(self, returned: Any, state: State, action: Action) -> Any:
        """What ``action.update`` returned, as the new ``State`` (``state`` is the state before
        it); anything else is handed on unchanged, for the engine to reject."""
        return returned


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


_ADAPTERS: dict[str, tuple[Callable[[], Any], str]] = {}


def register_typing_adapter(name: str, load: Callable[[], Any], *, install: str) -> None:
    """Let ``@action.<name>`` and ``@streaming_action.<name>`` load the adapter that implements
    them (``"pydantic"``): set by the ``turnout`` package, so the core imports no adapter.
    ``install`` is the command to show when the adapter's library is missing."""
    _ADAPTERS[name] = (load, install)


def load_typing_adapter(name: str) -> Any:
    """The adapter module registered under ``name``; ``MissingExtraError`` naming the install
    command when its library is missing."""
    try:
        load, install = _ADAPTERS[name]
    except KeyError:
        raise MissingExtraError(
            f"no typing adapter named {name!r} is registered; import turnout (or "
            f"turnout.integrations.{name}) before using @action.{name}."
        ) from None
    try:
        return load()
    except MissingExtraError:
        raise
    except ImportError as exc:
        raise MissingExtraError(
            f"@action.{name} needs {name}, which could not be imported ({exc}): {install}"
        ) from exc


def result_type_of(schema: ActionSchema[Any, Any, Any]) -> type[Any] | tuple[type[Any], ...]:
    """What ``isinstance`` checks an action's results (and streamed items) against: the
    schema's ``intermediate_result_type()``, a union of types as a tuple; ``dict`` when the
    schema names none."""
    try:
        declared: Any = schema.intermediate_result_type()
    except NotImplementedError:
        return dict
    if isinstance(declared, type):
        return declared
    members = typing.get_args(declared)
    if members and all(isinstance(member, type) for member in members):
        return tuple(members)
    return dict


def run_input(action: Action, state: State) -> Any:
    """What a class action's ``run``/``stream_run`` receives: ``state`` (its reads), or the
    typed object its schema builds from it."""
    schema = action.schema
    return schema.for_run(state, action) if schema.converts_state else state


def update_input(action: Action, state: State) -> Any:
    """What a class action's ``update`` receives: ``state``, or its schema's typed object."""
    schema = action.schema
    return schema.for_update(state, action) if schema.converts_state else state


def update_output(action: Action, returned: Any, state: State) -> Any:
    """What ``update`` returned, as a ``State`` when its schema converts typed objects."""
    schema = action.schema
    return schema.merge_update(returned, state, action) if schema.converts_state else returned


# The stdlib typing systems live in their own module, which subclasses TypingSystem: imported
# last, once this module's names exist.
from turnout.core.typed_classes import (  # noqa: E402
    DataclassTypingSystem as DataclassTypingSystem,
)
from turnout.core.typed_classes import (  # noqa: E402
    TypedDictTypingSystem as TypedDictTypingSystem,
)
from turnout.core.typed_classes import typing_system_for as typing_system_for  # noqa: E402
