"""Answers to a suspension whose schema is a pydantic model (``__context.suspend(channel,
schema=Model)``): checked by the model, handed to the resumed action as a model instance."""

from __future__ import annotations

from typing import Any

import pydantic

from turnout.core.errors import AnswerValidationError

__all__ = ["validate_answer"]


def _path(location: tuple[int | str, ...]) -> str:
    """``("items", 2, "name")`` as ``$.items[2].name``."""
    parts = ["$"]
    for part in location:
        parts.append(f"[{part}]" if isinstance(part, int) else f".{part}")
    return "".join(parts)


def validate_answer(model: type[pydantic.BaseModel], value: Any) -> pydantic.BaseModel:
    """``value`` as a ``model`` instance; ``AnswerValidationError`` naming the first field that
    does not fit (its path, what was given, what the model expects) otherwise."""
    if isinstance(value, model):
        return value
    try:
        return model.model_validate(value)
    except pydantic.ValidationError as exc:
        errors = exc.errors()  # never empty: pydantic raises only with at least one error
        first = errors[0]
        path = _path(tuple(first["loc"]))
        given = first.get("input")
        shown = repr(given) if len(repr(given)) <= 80 else repr(given)[:77] + "..."
        others = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise AnswerValidationError(
            f"the answer does not fit {model.__name__} at {path}: {first.get('msg')}, got "
            f"{type(given).__name__} {shown}{others}",
            path=path,
        ) from exc
