"""Helpers shared by the expr test modules: evaluate an expression, catch its refusal."""

from __future__ import annotations

from typing import Any

import pytest

from turnout.core.errors import ConditionError
from turnout.core.expressions import compile_expression


def evaluate(source: str, **values: Any) -> Any:
    """The raw value of ``source`` over ``values``."""
    return compile_expression(source)(values)


def refusal(source: str, **values: Any) -> str:
    """The message of the ConditionError that evaluating ``source`` raises; it names ``source``."""
    with pytest.raises(ConditionError) as info:
        evaluate(source, **values)
    message = str(info.value)
    quoted = repr(source) if len(source) <= 200 else repr(source[:200])[:-1]  # long: cut short
    assert message.startswith(f"expr({quoted}"), message
    return message
