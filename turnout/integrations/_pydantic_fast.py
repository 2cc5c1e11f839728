"""Which written values pydantic would keep exactly as they are, so their check is a type test.

A typed step validates the fields it wrote. For the common fields (``int``, ``float``, ``str``,
``bool``, ``bytes``, optionally ``None``, with no constraints and no validators) pydantic's
validation of a value of exactly the declared type returns that value unchanged, so testing the
value's type gives the same answer at a fraction of the cost. Any other value (a subclass, an
``int`` for a ``float`` field that pydantic would convert, a field with constraints, a model
configured to transform strings) goes through pydantic as before.
"""

from __future__ import annotations

import types
import typing
from typing import Any, Union

import pydantic

__all__ = ["construct", "constructible", "exact_types"]

_PLAIN = (int, float, str, bool, bytes)
# Model settings under which pydantic changes or refuses a value of exactly the declared type.
_TRANSFORMING = (
    "str_strip_whitespace",
    "str_to_lower",
    "str_to_upper",
    "str_max_length",
    "str_min_length",
)


def _has_validators(model: type[pydantic.BaseModel]) -> bool:
    decorators = model.__pydantic_decorators__
    return bool(
        decorators.validators
        or decorators.field_validators
        or decorators.root_validators
        or decorators.model_validators
    )


def _plain_types(annotation: Any, config: Any) -> tuple[type, ...] | None:
    """The exact types a value of a field annotated ``annotation`` may have to skip validation,
    or ``None`` when every value must be validated."""
    if typing.get_origin(annotation) in (Union, types.UnionType):
        members = typing.get_args(annotation)
        found: list[type] = []
        for member in members:
            if member is type(None):
                found.append(type(None))
                continue
            plain = _plain_types(member, config)
            if plain is None:
                return None
            found.extend(plain)
        return tuple(found)
    if annotation not in _PLAIN:
        return None
    if annotation is str and any(config.get(name) for name in _TRANSFORMING):
        return None
    if annotation is float and config.get("allow_inf_nan") is False:
        return None  # an infinite float must still be refused
    return (annotation,)


def exact_types(model: type[pydantic.BaseModel]) -> dict[str, tuple[type, ...]] | None:
    """For each field of ``model``, the exact value types its validation keeps unchanged, or
    ``None`` when some field (or the model) needs pydantic for every value."""
    if _has_validators(model):
        return None
    config = model.model_config
    found: dict[str, tuple[type, ...]] = {}
    for name, info in model.model_fields.items():
        if info.metadata:  # constraints (gt=, max_length=, Annotated validators, ...)
            return None
        plain = _plain_types(info.annotation, config)
        if plain is None:
            return None
        found[name] = plain
    return found


def constructible(model: type[pydantic.BaseModel]) -> bool:
    """Whether ``model`` can be built by ``construct`` from already validated values: its fields
    are all plain (see ``exact_types``), so those values are immutable and validating them again
    would give them back unchanged; it keeps no extra fields and no private attributes."""
    return (
        exact_types(model) is not None
        and model.model_config.get("extra") != "allow"
        and not model.__private_attributes__
    )


_new = object.__new__
_set = object.__setattr__


def construct(model: type[pydantic.BaseModel], values: dict[str, Any]) -> Any:
    """A ``model`` holding ``values`` (one for every field), without running its validator:
    what ``model_construct`` builds, without its per-field default handling."""
    built = _new(model)
    _set(built, "__dict__", values)
    _set(built, "__pydantic_fields_set__", set(values))
    _set(built, "__pydantic_extra__", None)
    _set(built, "__pydantic_private__", None)
    return built
