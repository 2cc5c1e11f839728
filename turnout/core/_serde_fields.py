"""Burr's field serde (``register_field_serde``) in persisters and trackers.

A state key with a registered pair is stored as ``{"__turnout__": "field", "key": <key>, "v":
<what the serializer returned>}``; loading hands the stored dict to the deserializer the loading
process registered for that key. Stored data selects one of the registered functions by key, as
Burr's ``"__burr_serde__"`` does, never code of its own; a key with no pair registered is a
``MissingCodeError`` naming the ``register_field_serde`` call.

The serializer is written for the key's whole value, so a step that appends to, extends or
increments such a key is stored as a ``"set"`` of the value after the step.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from turnout.core._burr_serde import field_serde
from turnout.core._serde_types import MissingCodeError
from turnout.core._serde_walk import call, safe_repr
from turnout.core.errors import SerdeError

__all__ = ["FIELD_TAG", "field_deserializer", "serialize_field", "whole_values"]

FIELD_TAG = "field"


def serialize_field(key: str, value: Any, kwargs: dict[str, Any]) -> dict[str, Any] | None:
    """What the field serializer registered for ``key`` makes of ``value`` (a dict), or ``None``
    when ``key`` has none."""
    pair = field_serde.get(key)
    if pair is None:
        return None
    path = f"$.{key}"
    serializer = pair[0]
    what = f"the field serializer registered for {key!r}"
    data = call(lambda v: serializer(v, **kwargs), value, path, what, loading=False)
    if not isinstance(data, dict):
        raise SerdeError(
            path, value, f"{what} returned {type(data).__name__}, but it must return a dict "
            f"(e.g. {{'value': ...}}) that its deserializer reads back",
        )  # fmt: skip
    return data


def field_deserializer(key: Any, path: str) -> Callable[..., Any]:
    """The deserializer registered for the stored field ``key``, or ``MissingCodeError``."""
    pair = field_serde.get(key) if type(key) is str else None
    if pair is None:
        raise MissingCodeError(
            path, f"this value was saved by the field serializer registered for "
            f"{safe_repr(key, 100)}; call register_field_serde({safe_repr(key, 100)}, "
            f"serializer, deserializer) before loading",
        )  # fmt: skip
    return pair[1]


def whole_values(
    changes: Iterable[tuple[str, str, Any]], current: Callable[[str], Any]
) -> list[tuple[str, str, Any]]:
    """``changes`` with every append, extend or increment of a key that has a field serde turned
    into a ``"set"`` of its value after the step (``current(key)``)."""
    if not field_serde:
        return list(changes)
    return [
        ("set", key, current(key)) if key in field_serde and op not in ("set", "delete") else
        (op, key, value)
        for op, key, value in changes
    ]  # fmt: skip
