"""The checks behind ``turnout.integrations.pydantic``: the annotations of a pydantic action
function (its state and return models, its stream type, its reads/writes against the model) and
the ``StateValidationError`` made from pydantic's ``ValidationError``."""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Callable, Sequence
from typing import Any, Union

import pydantic

from turnout.core.errors import ActionDefinitionError, StateValidationError

Model = type[pydantic.BaseModel]


def _type_name(annotation: Any) -> str:
    if isinstance(annotation, type) and not typing.get_args(annotation):
        return annotation.__name__
    return str(annotation).replace("typing.", "")


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _validation_error(
    exc: pydantic.ValidationError, model: Model, shown: str, subject: str
) -> StateValidationError:
    """``StateValidationError`` listing each field pydantic rejected: its value and type, the
    type ``model`` declares for it, and pydantic's reason."""
    lines = []
    for error in exc.errors(include_url=False):
        location = error.get("loc", ())
        field = ".".join(str(part) for part in location) or "(the model)"
        declared = model.model_fields.get(str(location[0])) if location else None
        expected = _type_name(declared.annotation) if declared is not None else "?"
        if error.get("type") == "missing":
            got = "nothing (the field is missing)"
        else:
            value = error.get("input")
            got = f"{type(value).__name__} {_short(value)}"
        lines.append(f"  {field}: got {got}, expected {expected} ({error.get('msg')})")
    return StateValidationError(
        f"{subject} values that do not fit {shown}:\n"
        + "\n".join(lines)
        + f"\nGive each field a value of its declared type, or change the type in {shown}."
    )


def _is_model(candidate: Any) -> bool:
    try:
        return isinstance(candidate, type) and issubclass(candidate, pydantic.BaseModel)
    except TypeError:  # a generic alias such as list[int] passes isinstance(..., type)
        return False


def _validate_and_extract_signature_types(fn: Callable[..., Any]) -> tuple[Model, Model]:
    """The input and output model types of a pydantic action function, from its ``state``
    parameter's annotation and its return annotation; ``ActionDefinitionError`` (a
    ``ValueError``) when either is missing or not a model."""
    name = getattr(fn, "__qualname__", fn)
    if "state" not in inspect.signature(fn).parameters:
        raise ActionDefinitionError(
            f"@action.pydantic on {name!r}: the function must take the state as a parameter "
            f"named 'state', e.g. def {getattr(fn, '__name__', 'fn')}(state: MyState) -> MyState."
        )
    try:
        hints = typing.get_type_hints(fn)
    except (NameError, TypeError) as exc:
        raise ActionDefinitionError(
            f"@action.pydantic on {name!r}: its annotations cannot be resolved ({exc}); pass "
            f"state_input_type= and state_output_type= instead."
        ) from exc
    state_model = hints.get("state")
    if not _is_model(state_model):
        raise ActionDefinitionError(
            f"@action.pydantic on {name!r}: the 'state' parameter must be annotated with a "
            f"pydantic.BaseModel subclass, got {state_model!r}; or pass state_input_type=."
        )
    returned = hints.get("return")
    if not _is_model(returned):
        raise ActionDefinitionError(
            f"@action.pydantic on {name!r}: the return type must be annotated with a "
            f"pydantic.BaseModel subclass, got {returned!r}; or pass state_output_type=."
        )
    assert state_model is not None
    assert returned is not None
    return state_model, returned


def _validate_keys(model: Model, keys: Sequence[str], fn: Callable[..., Any]) -> None:
    """``ActionDefinitionError`` (a ``ValueError``) when ``keys`` name fields ``model`` lacks."""
    missing = [key for key in keys if key not in model.model_fields]
    if missing:
        raise ActionDefinitionError(
            f"@action.pydantic on {getattr(fn, '__qualname__', fn)!r}: the keys {missing} are "
            f"not present in the model {model.__qualname__} (its fields: "
            f"{list(model.model_fields)}); add them to the model or fix reads=/writes=."
        )


def _check_stream_type(stream_type: Any, fn: Callable[..., Any]) -> Any:
    """``stream_type`` if it is ``dict``, a model, or a union of models (``A | B``,
    ``Union[A, B]``); ``ActionDefinitionError`` (a ``ValueError``) otherwise."""
    name = getattr(fn, "__qualname__", fn)
    if stream_type is None:
        raise ActionDefinitionError(
            f"stream_type is required for function: {name}; pass the items' model, a union of "
            f"models, or dict."
        )
    if stream_type is dict or _is_model(stream_type):
        return stream_type
    is_union = typing.get_origin(stream_type) in (Union, types.UnionType)
    members = typing.get_args(stream_type) if is_union else ()
    if members and all(_is_model(member) or member is dict for member in members):
        return stream_type
    raise ActionDefinitionError(
        f"@streaming_action.pydantic on {name!r}: stream_type must be a pydantic model, a union "
        f"of pydantic models (A | B) or dict, got {stream_type!r}."
    )
