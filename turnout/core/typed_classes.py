"""Typed state with standard-library classes: a ``TypedDict`` or a dataclass.

Declare the state's shape as a class and hand it to the builder; no third-party package needed::

    class Counter(TypedDict):
        count: int
        history: list[str]

    app = (
        ApplicationBuilder()
        .with_actions(...)
        .with_typing(Counter)  # or TypedDictTypingSystem(Counter)
        .with_state(Counter(count=0, history=[]))
        ...
        .build()
    )
    app.state.data  # a Counter (a dict); with a dataclass, an instance of it

What this gives:

* ``build()`` checks that every action's ``reads`` and ``writes`` name fields of the class;
* each step checks the values the action wrote (only those, once per step) against the field
  annotations, raising ``StateValidationError`` naming the action, the field, the value's type
  and the declared type;
* ``state.data`` is typed for type checkers (``State[Counter]``) and at run time;
* ``graph.state_schema()`` is the class's JSON Schema.

Annotations are checked as ``turnout.core._annotations`` describes (the common cases; unknown
annotations accept every value; containers check their newest items only).
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Collection, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Generic, TypeVar, cast

from turnout.core._annotations import (
    Check,
    checker,
    class_hints,
    is_typed_dict,
    strip_qualifiers,
    type_name,
)
from turnout.core.errors import StateValidationError
from turnout.core.state import State
from turnout.core.typing import TypingSystem, load_typing_adapter

if TYPE_CHECKING:
    from turnout.core.action import Action
    from turnout.core.graph import Graph

__all__ = [
    "DataclassTypingSystem",
    "TypedDictTypingSystem",
    "close_match",
    "field_problems",
    "typing_system_for",
]

T = TypeVar("T")


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class _ClassTypingSystem(TypingSystem[T], Generic[T]):
    """What the TypedDict and dataclass systems share: fields, checks, errors, schema."""

    def __init__(self, state_class: type[T]) -> None:
        self.state_class = state_class
        hints = class_hints(state_class)
        self._annotations = {name: strip_qualifiers(hint) for name, hint in hints.items()}
        self._fields = frozenset(self._field_order())
        # One predicate per field, built now: a step calls one function per written field.
        self._checks: dict[str, Check] = {}
        for name in self._fields:
            check = checker(hints.get(name, Any))
            if check is not None:
                self._checks[name] = check

    def _field_order(self) -> list[str]:
        return list(self._annotations)

    def state_type(self) -> type[T]:
        return self.state_class

    def state_pre_action_run_type(self, action: Action, graph: Graph) -> type[T]:
        return self.state_class

    def state_post_action_run_type(self, action: Action, graph: Graph) -> type[T]:
        return self.state_class

    def field_names(self) -> frozenset[str]:
        return self._fields

    def state_json_schema(self) -> dict[str, Any]:
        from turnout.core.schemas import class_schema  # schemas imports this module's helpers

        return class_schema(self.state_class)

    def validate_state(self, state: State) -> None:
        """``StateValidationError`` naming the first field of ``state`` whose value does not fit
        its annotation (fields the state does not hold yet are not required). ``build()``
        calls it on the initial or loaded state."""
        checks = self._checks
        for key in state:
            check = checks.get(key)
            if check is not None and not check(state._peek(key)):
                raise self._error(key, state._peek(key), "the state holds")

    def validate_writes(self, state: State, keys: Collection[str], action: Action) -> None:
        """Check the fields ``action`` wrote, once per step, against their annotations."""
        checks = self._checks
        for key in keys:
            check = checks.get(key)
            if check is not None:
                value = state._peek(key)
                if not check(value):
                    raise self._error(key, value, f"action {action.name!r} wrote")

    def _error(self, key: str, value: Any, subject: str) -> StateValidationError:
        declared = type_name(self._annotations[key])
        owner = self.state_class.__name__
        return StateValidationError(
            f"{subject} {key!r} = {_short(value)} ({type(value).__name__}), but {owner} declares "
            f"{key}: {declared}. Write a value of type {declared}, or change the annotation "
            f"of {owner}.{key}."
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.state_class.__name__})"


class TypedDictTypingSystem(_ClassTypingSystem[T]):
    """The state typed as a ``TypedDict``: ``state.data`` is a dict holding the fields the state
    has, and ``with_state(MyDict(...))`` sets the initial state."""

    def __init__(self, state_class: type[T]) -> None:
        if not is_typed_dict(state_class):
            raise StateValidationError(
                f"TypedDictTypingSystem() takes a TypedDict class, got {state_class!r}; for a "
                f"dataclass use DataclassTypingSystem, or pass the class to with_typing()."
            )
        super().__init__(state_class)

    def construct_data(self, state: State) -> T:
        fields = self._fields
        return cast(T, {key: state[key] for key in state if key in fields})

    def construct_state(self, data: T) -> State:
        if not isinstance(data, Mapping):
            raise StateValidationError(
                f"{self!r} makes a state from a {self.state_class.__name__} (a dict), got "
                f"{type(data).__name__}: {_short(data)}."
            )
        return State(dict(data), typing_system=self)


class DataclassTypingSystem(_ClassTypingSystem[T]):
    """The state typed as a dataclass: ``state.data`` is an instance built from the state's
    values (fields the state lacks take their defaults), and ``with_state(MyClass(...))`` sets
    the initial state."""

    def __init__(self, state_class: type[T]) -> None:
        if not (isinstance(state_class, type) and dataclasses.is_dataclass(state_class)):
            raise StateValidationError(
                f"DataclassTypingSystem() takes a dataclass, got {state_class!r}; for a "
                f"TypedDict use TypedDictTypingSystem, or pass the class to with_typing()."
            )
        self._dataclass_fields = dataclasses.fields(state_class)
        super().__init__(state_class)

    def _field_order(self) -> list[str]:
        return [field.name for field in self._dataclass_fields]

    def construct_data(self, state: State) -> T:
        given: dict[str, Any] = {}
        late: dict[str, Any] = {}
        missing: list[str] = []
        for field in self._dataclass_fields:
            if field.name in state:
                (given if field.init else late)[field.name] = state[field.name]
            elif field.init and _required(field):
                missing.append(field.name)
        if missing:
            raise StateValidationError(
                f"state.data builds a {self.state_class.__name__}, which needs "
                f"{', '.join(map(repr, missing))} (no default), but the state does not hold "
                f"{'it' if len(missing) == 1 else 'them'} yet. Give a default in the dataclass "
                f"or set the value first: with_state({missing[0]}=...)."
            )
        instance = self.state_class(**given)
        for name, value in late.items():  # init=False fields: set as __post_init__ would
            object.__setattr__(instance, name, value)
        return instance

    def construct_state(self, data: T) -> State:
        if not isinstance(data, self.state_class):
            raise StateValidationError(
                f"{self!r} makes a state from a {self.state_class.__name__}, got "
                f"{type(data).__name__}: {_short(data)}."
            )
        values = {field.name: getattr(data, field.name) for field in self._dataclass_fields}
        return State(values, typing_system=self)


def _required(field: dataclasses.Field[Any]) -> bool:
    return field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING


def typing_system_for(state_class: type[T]) -> TypingSystem[T]:
    """The typing system for a class: ``TypedDictTypingSystem``, ``DataclassTypingSystem``, or
    for a pydantic model ``PydanticTypingSystem`` (loaded through the adapter seam: the core
    imports no pydantic); ``StateValidationError`` for any other class."""
    if any(
        klass.__name__ == "BaseModel" and klass.__module__.startswith("pydantic")
        for klass in getattr(state_class, "__mro__", ())
    ):  # recognised by name, so that the core never imports pydantic
        system: TypingSystem[T] = load_typing_adapter("pydantic").PydanticTypingSystem(state_class)
        return system
    if is_typed_dict(state_class):
        return TypedDictTypingSystem(state_class)
    if isinstance(state_class, type) and dataclasses.is_dataclass(state_class):
        return DataclassTypingSystem(state_class)
    raise StateValidationError(
        f"cannot type the state as {state_class!r}: with_typing() takes a TypedDict class, a "
        f"dataclass, a pydantic model class or a TypingSystem."
    )


def close_match(name: str, known: Collection[str]) -> str:
    """`` did you mean 'x'?`` when ``name`` looks like a typo of one of ``known``, else ``""``."""
    found = difflib.get_close_matches(name, sorted(known), n=1)
    return f" Did you mean {found[0]!r}?" if found else ""


def field_problems(typing_system: TypingSystem[Any] | None, actions: Iterable[Any]) -> list[str]:
    """One line per ``reads``/``writes`` key of an action that is not a field of the typed
    state (for ``build()``'s ``GraphSetupError``); none when the typing system does not know
    its fields. Keys starting with ``__`` are the engine's and Burr's own (parallel children's,
    control keys), never fields."""
    fields = None if typing_system is None else typing_system.field_names()
    if typing_system is None or fields is None:
        return []
    owner = getattr(typing_system.state_type(), "__name__", repr(typing_system))
    known = ", ".join(map(repr, sorted(fields))) or "none"
    problems = []
    for act in actions:
        for role in ("reads", "writes"):
            for key in getattr(act, role):
                if key in fields or key.startswith("__"):
                    continue
                problems.append(
                    f"action {act.name!r} {role} {key!r}, which is not a field of the state type "
                    f"{owner} (its fields: {known}).{close_match(key, fields)} Fix the "
                    f"action's {role}=[...] or add the field {key!r} to {owner}."
                )
    return problems
