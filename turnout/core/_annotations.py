"""Runtime checks of values against type annotations, for the stdlib typing systems.

``checker(annotation)`` turns an annotation into a predicate, once, when the typing system is
built; a step then pays one call per written field. The common cases are checked (``int``,
``float``, ``str``, ``bool``, ``None``, unions, ``Literal``, ``list``/``set``/``tuple``/``dict``
element types, nested ``TypedDict`` and dataclasses, ``Any``); an annotation it does not
understand accepts every value, so a typed state never rejects what a type checker would allow.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import enum
import itertools
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any

__all__ = [
    "ELEMENTS_CHECKED",
    "Check",
    "checker",
    "class_hints",
    "is_typed_dict",
    "required_keys",
    "strip_qualifiers",
    "type_name",
]

Check = Callable[[Any], bool]
"""A predicate: whether a value fits an annotation."""

ELEMENTS_CHECKED = 64
"""How many items of a container are checked: the newest ones (appends land at the end), so a
step costs the same however long a list in the state grows."""

_QUALIFIERS = {typing.Required, typing.NotRequired, typing.ClassVar, typing.Final}
_UNIONS = (typing.Union, types.UnionType)


def _accept(value: Any) -> bool:
    return True


def is_typed_dict(cls: Any) -> bool:
    """Whether ``cls`` is a ``TypedDict`` class."""
    return isinstance(cls, type) and issubclass(cls, dict) and hasattr(cls, "__required_keys__")


def required_keys(cls: type[Any]) -> frozenset[str]:
    """A TypedDict's required keys. ``__required_keys__`` alone is wrong when the annotations
    are strings (``from __future__ import annotations``): before Python 3.14 the class cannot
    see a ``NotRequired[...]`` inside a string, so the resolved hints decide."""
    required = set(getattr(cls, "__required_keys__", ()))
    for key, hint in class_hints(cls).items():
        origin = typing.get_origin(hint)
        if origin is typing.NotRequired:
            required.discard(key)
        elif origin is typing.Required:
            required.add(key)
    return frozenset(required)


def strip_qualifiers(annotation: Any) -> Any:
    """``annotation`` without ``Required``/``NotRequired``/``Annotated``/... wrappers."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation = annotation.__origin__
        elif origin in _QUALIFIERS:
            annotation = typing.get_args(annotation)[0]
        else:
            return annotation


def class_hints(cls: type[Any]) -> dict[str, Any]:
    """The resolved annotations of a TypedDict or dataclass, ``Annotated`` kept; a name that
    cannot be resolved (a forward reference to a local class) is kept as its string, which the
    checks accept."""
    try:
        return typing.get_type_hints(cls, include_extras=True)
    except (NameError, TypeError, AttributeError):
        hints: dict[str, Any] = {}
        for klass in reversed(cls.__mro__):
            hints.update(getattr(klass, "__annotations__", {}))
        return hints


def type_name(annotation: Any) -> str:
    """How an annotation reads in an error message: ``int``, ``list[str]``, ``Chat | None``."""
    annotation = strip_qualifiers(annotation)
    if annotation is type(None) or annotation is None:
        return "None"
    if isinstance(annotation, type) and not typing.get_args(annotation):
        return annotation.__name__
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in _UNIONS:
        return " | ".join(type_name(arg) for arg in args)
    if origin is typing.Literal:
        return f"Literal[{', '.join(map(repr, args))}]"
    if origin is not None and args:
        base = getattr(origin, "__name__", str(origin))
        return f"{base}[{', '.join('...' if a is Ellipsis else type_name(a) for a in args)}]"
    return str(annotation).replace("typing.", "")


def checker(annotation: Any) -> Check | None:
    """A predicate for ``annotation``; ``None`` when every value fits (``Any``, unknown)."""
    return _Checkers().of(annotation)


class _Checkers:
    """Builds predicates, sharing one per nested class so recursive types terminate."""

    def __init__(self) -> None:
        self._classes: dict[type[Any], Check] = {}

    def of(self, annotation: Any) -> Check | None:
        annotation = strip_qualifiers(annotation)
        if annotation is Any or annotation is object or isinstance(annotation, str):
            return None
        if annotation is None or annotation is type(None):
            return _is_none
        if isinstance(annotation, typing.TypeVar | typing.ForwardRef):
            return None
        if isinstance(annotation, typing.NewType):
            return self.of(annotation.__supertype__)
        origin = typing.get_origin(annotation)
        if origin is None:
            return self._of_class(annotation) if isinstance(annotation, type) else None
        args = typing.get_args(annotation)
        if origin in _UNIONS:
            return self._union(args)
        if origin is typing.Literal:
            return _literal(args)
        if origin is type:
            return _instance_of(type)
        if origin is tuple:
            return self._tuple(args)
        if not isinstance(origin, type):
            return None
        if issubclass(origin, Mapping) and len(args) == 2:
            return self._mapping(origin, args)
        if issubclass(origin, collections.abc.Iterable) and len(args) == 1:
            return self._iterable(origin, args[0])
        return _instance_of(origin)

    def _of_class(self, cls: type[Any]) -> Check | None:
        if cls is bool:
            return _instance_of(bool)
        if cls is int:
            return _is_int
        if cls is float:
            return _is_float
        if cls is complex:
            return _is_complex
        if is_typed_dict(cls):
            return self._typed_dict(cls)
        if issubclass(cls, enum.Enum) or dataclasses.is_dataclass(cls):
            return _instance_of(cls)
        if getattr(cls, "_is_protocol", False) and not getattr(cls, "_is_runtime_protocol", False):
            return None  # a static Protocol: isinstance() would raise
        return _instance_of(cls)

    def _union(self, args: tuple[Any, ...]) -> Check | None:
        members = [self.of(arg) for arg in args]
        if any(member is None for member in members):
            return None
        checks = tuple(member for member in members if member is not None)

        def check(value: Any) -> bool:
            return any(member(value) for member in checks)

        return check

    def _tuple(self, args: tuple[Any, ...]) -> Check:
        if not args or args == ((),):
            return _instance_of(tuple)
        if len(args) == 2 and args[1] is Ellipsis:
            return self._iterable(tuple, args[0])
        items = tuple(self.of(arg) or _accept for arg in args)

        def check(value: Any) -> bool:
            return (
                isinstance(value, tuple)
                and len(value) == len(items)
                and all(item(element) for item, element in zip(items, value, strict=True))
            )

        return check

    def _iterable(self, origin: type[Any], item: Any) -> Check:
        element = self.of(item)
        if element is None:
            return _instance_of(origin)
        sequence = issubclass(origin, collections.abc.Sequence)

        def check(value: Any) -> bool:
            if not isinstance(value, origin):
                return False
            if sequence:
                tail = value[-ELEMENTS_CHECKED:] if len(value) > ELEMENTS_CHECKED else value
                return all(element(x) for x in tail)
            return all(element(x) for x in itertools.islice(value, ELEMENTS_CHECKED))

        return check

    def _mapping(self, origin: type[Any], args: tuple[Any, ...]) -> Check:
        keys, values = self.of(args[0]) or _accept, self.of(args[1]) or _accept

        def check(value: Any) -> bool:
            if not isinstance(value, origin):
                return False
            newest = reversed(value) if isinstance(value, dict) else iter(value)
            return all(
                keys(key) and values(value[key])
                for key in itertools.islice(newest, ELEMENTS_CHECKED)
            )

        return check

    def _typed_dict(self, cls: type[Any]) -> Check:
        known = self._classes.get(cls)
        if known is not None:
            return known
        fields: dict[str, Check] = {}
        required = required_keys(cls)
        names = frozenset(class_hints(cls))

        def check(value: Any) -> bool:
            if not isinstance(value, dict) or not required <= value.keys() <= names:
                return False
            return all(field(value[key]) for key, field in fields.items() if key in value)

        self._classes[cls] = check  # before the fields: a field may name ``cls`` again
        for key, annotation in class_hints(cls).items():
            field = self.of(annotation)
            if field is not None:
                fields[key] = field
        return check


def _is_none(value: Any) -> bool:
    return value is None


def _is_int(value: Any) -> bool:
    # bool is an int subclass, but True where a count belongs is almost always a bug.
    return isinstance(value, int) and value.__class__ is not bool


def _is_float(value: Any) -> bool:
    # PEP 484's numeric tower: an int is accepted where a float is declared.
    return isinstance(value, float | int) and value.__class__ is not bool


def _is_complex(value: Any) -> bool:
    return isinstance(value, complex | float | int) and value.__class__ is not bool


def _instance_of(cls: type[Any]) -> Check:
    def check(value: Any) -> bool:
        return isinstance(value, cls)

    return check


def _literal(options: tuple[Any, ...]) -> Check:
    allowed = tuple((type(option), option) for option in options)

    def check(value: Any) -> bool:
        return any(type(value) is kind and value == option for kind, option in allowed)

    return check
