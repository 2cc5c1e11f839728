"""Checks of action declarations, shared by every kind of action.

``reads``/``writes``/``tags`` as lists of strings, ``retry=``/``timeout=``, the state keys a
function's source reads, and the inputs a function's signature gives (``derive_inputs_from_fn``,
Burr's helper). Re-exported from ``turnout.core.action``, where Burr keeps them; the adapters
use them from there.
"""

from __future__ import annotations

import ast
import inspect
import textwrap
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from turnout.core.errors import ActionDefinitionError
from turnout.core.retry import RetryPolicy
from turnout.core.state import State

__all__ = ["derive_inputs_from_fn"]

INJECTED_INPUTS = frozenset({"__context", "__tracer"})


def _injected_name(name: str) -> str | None:
    """``__context`` for ``__context`` and for its name-mangled form ``_Cls__context``."""
    if name in INJECTED_INPUTS:
        return name
    for injected in INJECTED_INPUTS:
        if name.endswith(injected) and name.startswith("_") and not name.startswith("__"):
            return injected
    return None


def _names(value: Any, what: str, owner: str) -> tuple[str, ...]:
    """Validate a ``reads``/``writes``/``tags`` declaration into a tuple of strings."""
    if isinstance(value, str):
        raise ActionDefinitionError(
            f"{owner}: {what} must be a list of strings, got the string {value!r}; "
            f"write {what}=[{value!r}]."
        )
    if not isinstance(value, Iterable):
        raise ActionDefinitionError(
            f"{owner}: {what} must be a list of strings, got {type(value).__name__}: {value!r}."
        )
    out = tuple(value)
    bad = [v for v in out if not isinstance(v, str)]
    if bad:
        raise ActionDefinitionError(
            f"{owner}: every entry of {what} must be a string, got {bad!r}."
        )
    return out


def _check_declared_reads(fn: Callable[..., Any], reads: Sequence[str], owner: str) -> None:
    """Raise ``ActionDefinitionError`` when the function's source reads ``state["key"]`` for a
    key missing from a non-empty ``reads`` (Burr's check when an action is declared, applied
    when, as there, the state parameter is annotated ``State``)."""
    if not reads:
        return
    try:
        parameters = inspect.signature(fn).parameters
        state_name = next((n for n, p in parameters.items() if p.annotation is State), None)
        if state_name is None:
            return
        tree = ast.parse(textwrap.dedent(inspect.getsource(fn)))
    except (OSError, TypeError, ValueError, SyntaxError):  # no source or signature to read
        return
    declared = set(reads)
    undeclared = [
        node.slice.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Subscript)
        and isinstance(node.value, ast.Name)
        and node.value.id == state_name
        and isinstance(node.slice, ast.Constant)
        and isinstance(node.slice.value, str)
        and node.slice.value not in declared
    ]
    if undeclared:
        missing = list(dict.fromkeys(undeclared))
        raise ActionDefinitionError(
            f"{owner}: the function reads undeclared state keys {missing} "
            f"({state_name}[...]) but declares reads={list(reads)}; add them, e.g. "
            f"@action(reads={sorted({*reads, *missing})}, ...)."
        )


def _check_retry(retry: Any, owner: str) -> RetryPolicy | None:
    if retry is not None and not isinstance(retry, RetryPolicy):
        raise ActionDefinitionError(
            f"{owner}: retry= takes a RetryPolicy(max_attempts=..., ...), got {retry!r}"
        )
    return retry


def _check_timeout(timeout: Any, owner: str) -> float | None:
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
        raise ActionDefinitionError(f"{owner}: timeout= takes seconds > 0, got {timeout!r}")
    return float(timeout)


def derive_inputs_from_fn(
    bound_params: Mapping[str, Any], fn: Callable[..., Any]
) -> tuple[list[str], list[str]]:
    """``(required, optional)`` input names of an action function: its parameters after the
    state, without those in ``bound_params`` (Burr's helper; ``@action`` uses the same rule)."""
    return _derive_inputs(fn, bound_params, f"derive_inputs_from_fn(..., {_label(fn)})")


def _label(fn: Callable[..., Any]) -> str:
    return str(getattr(fn, "__qualname__", fn))


def _derive_inputs(
    fn: Callable[..., Any], bound: Mapping[str, Any], owner: str
) -> tuple[list[str], list[str]]:
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError) as exc:
        raise ActionDefinitionError(
            f"{owner}: cannot read the function's signature ({exc})"
        ) from exc
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    if not params or params[0].kind not in positional:
        raise ActionDefinitionError(
            f"{owner}: the function must take the state as its first positional parameter, "
            f"e.g. def {getattr(fn, '__name__', 'fn')}(state: State, ...) -> State."
        )
    required: list[str] = []
    optional: list[str] = []
    for param in params[1:]:
        if param.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
            continue
        if param.kind is inspect.Parameter.POSITIONAL_ONLY:
            raise ActionDefinitionError(
                f"{owner}: parameter {param.name!r} is positional-only; inputs are passed by "
                f"keyword, so remove the '/' from the signature."
            )
        if param.name in bound:
            continue
        (required if param.default is inspect.Parameter.empty else optional).append(param.name)
    return required, optional


class Declaration:
    """What ``@action(...)`` and ``@streaming_action(...)`` declare, checked when the decorator
    is written: ``reads``, ``writes`` and ``tags`` as lists of strings, ``retry`` and
    ``timeout``. Errors name the decorator (``_owner``)."""

    _owner = "@action(...)"

    def __init__(
        self,
        reads: Sequence[str],
        writes: Sequence[str],
        tags: Sequence[str] | None = None,
        *,
        retry: RetryPolicy | None = None,
        timeout: float | None = None,
    ) -> None:
        owner = self._owner
        self.reads = list(_names(reads, "reads", owner))
        self.writes = list(_names(writes, "writes", owner))
        self.tags = list(_names(tags or (), "tags", owner))
        self.retry = _check_retry(retry, owner)
        self.timeout = _check_timeout(timeout, owner)
