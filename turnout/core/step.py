"""The pieces of a step that do not depend on how it is driven.

``prepare`` resolves an action's inputs and the state it starts from; ``run_action`` calls it
(returning a coroutine for an async action); ``finish`` checks what it returned and what it
changed. ``turnout.core.engine`` sequences them, with hooks, retries and routing, in the one
step algorithm that both the sync and the async drivers run.
"""

from __future__ import annotations

import functools
import inspect
import warnings
from collections.abc import Container, Iterable, Mapping
from typing import Any

from turnout.core._serde_walk import safe_repr
from turnout.core.action import Action, FunctionBasedAction, _injected_name, bound_name
from turnout.core.context import StepScope
from turnout.core.errors import (
    InvalidActionReturnError,
    InvalidInputsError,
    MissingInputsError,
    MissingWriteError,
    UndeclaredWriteError,
    UndeclaredWriteWarning,
)
from turnout.core.state import RawChange, State
from turnout.core.typing import result_type_of, run_input, update_input, update_output

__all__ = [
    "ActionSpec",
    "StepOutcome",
    "check_inputs",
    "check_writes_present",
    "finish",
    "prepare",
    "run_action",
]


class ActionSpec:
    """What the engine needs to know about an action, computed once per graph."""

    __slots__ = (
        "accepted",
        "action",
        "fn",
        "injected",
        "is_async",
        "name",
        "optional",
        "prepare",
        "reads",
        "required",
        "result_type",
        "retry",
        "single_step",
        "streaming",
        "strict",
        "takes_inputs",
        "timeout",
        "validated_as",
        "warned",
        "writes",
    )

    def __init__(self, action: Action, *, strict: bool = False) -> None:
        self.action = action
        # strict: an undeclared write raises UndeclaredWriteError; otherwise it is applied, as
        # Burr does, with one UndeclaredWriteWarning per key (``warned``) of this application.
        self.strict = strict
        self.warned: set[str] = set()
        self.name = bound_name(action)
        self.reads = tuple(action.reads)
        self.writes = frozenset(action.writes)
        self.single_step = action.single_step
        declared = action.inputs
        if isinstance(declared, tuple) and len(declared) == 2 and not isinstance(declared[0], str):
            required, optional = declared
        else:
            required, optional = list(declared), []
        self.injected = {
            name: injected
            for name in (*required, *optional)
            if (injected := _injected_name(name)) is not None
        }
        self.required = tuple(n for n in required if n not in self.injected)
        self.optional = tuple(n for n in optional if n not in self.injected)
        if not isinstance(action, FunctionBasedAction):
            self.injected = _class_injections(action, self.injected)
        self.accepted = (*self.required, *self.optional)
        self.takes_inputs = bool(self.accepted or self.injected)
        self.streaming = action.streaming
        self.result_type = result_type_of(action.schema)
        # The state type the action checks its own writes against (``@action.pydantic``):
        # under that type's typing system, the engine does not check them a second time.
        self.validated_as = getattr(action.schema, "writes_validated_as", None)
        self.is_async = action.is_async()
        self.retry = action.retry
        self.timeout = action.timeout
        # An async step of its own before the action runs, in the driver's mode (sync drivers
        # drive it, async drivers await it): parallel actions look up stored records there.
        self.prepare = getattr(action, "_prepare_step", None)
        # Fast path: call an @action function directly instead of through run_and_update.
        self.fn = (
            action.fn if type(action) is FunctionBasedAction and not action.bound_params else None
        )


def _class_injections(action: Action, declared: dict[str, str]) -> dict[str, str]:
    """The keyword names under which a class action's method takes ``__context``/``__tracer``.

    Inside a class body Python mangles ``def run(self, state, __context)`` to a parameter named
    ``_Cls__context``, so passing ``__context=`` would fail: pass it under the name the method's
    signature really has. Such a parameter is injected even when ``inputs`` does not list it.
    """
    if action.streaming:
        method_name = "stream_run_and_update" if action.single_step else "stream_run"
    else:
        method_name = "run_and_update" if action.single_step else "run"
    found = _injected_parameters(getattr(type(action), method_name, None))
    out = {found.get(kind, name): kind for name, kind in declared.items()}
    for kind, name in found.items():
        out.setdefault(name, kind)
    return out


@functools.lru_cache(maxsize=1024)
def _injected_parameters(method: Any) -> dict[str, str]:
    """``{"__context": <its parameter name>, ...}`` of a class's method, read once per method
    (applications, parallel children included, are built many times from the same classes)."""
    try:
        params = inspect.signature(method).parameters if method is not None else {}
    except (TypeError, ValueError):  # a builtin or a C callable: nothing to learn from it
        return {}
    return {
        injected: name
        for name in params
        if (injected := _injected_name(name)) is not None
        and params[name].kind is not inspect.Parameter.VAR_KEYWORD
    }


def check_inputs(inputs: Mapping[str, Any] | None) -> dict[str, Any]:
    """Validate the ``inputs`` of an application call once per call."""
    if inputs is None:
        return {}
    if not isinstance(inputs, Mapping):
        raise InvalidInputsError(
            f"inputs must be a dict of input name to value, got {type(inputs).__name__}: "
            f"{inputs!r}."
        )
    reserved = sorted(k for k in inputs if isinstance(k, str) and k.startswith("__"))
    if reserved:
        raise InvalidInputsError(
            f"input names starting with '__' (a double underscore) are reserved for values "
            f"turnout injects "
            f"(__context, __tracer); rename {', '.join(map(repr, reserved))}."
        )
    return dict(inputs)


StepOutcome = tuple[dict[str, Any], State, tuple[RawChange, ...]]
"""``(result, new_state, changes)`` of a step that passed every check."""


def prepare(
    spec: ActionSpec, inputs: Mapping[str, Any], scope: StepScope, call: str
) -> dict[str, Any]:
    """The action's keyword arguments: its inputs, and ``__context``/``__tracer`` if it asks.

    Raises ``MissingInputsError`` when a required input is absent, showing how to pass it:
    ``call`` is the caller's call up to its inputs, e.g. ``"app.run(halt_after=['x'], "``.
    """
    if spec.required:
        for key in spec.required:
            if key not in inputs:
                raise _missing_inputs(spec, inputs, call)
    kwargs = {k: inputs[k] for k in spec.accepted if k in inputs} if inputs else {}
    if spec.injected:
        for param, injected in spec.injected.items():
            kwargs[param] = scope.context() if injected == "__context" else scope.tracer()
    return kwargs


def finish(spec: ActionSpec, base: State, returned: Any) -> StepOutcome:
    """Check what the action returned and what it changed; return ``(result, state, changes)``.

    Raises ``InvalidActionReturnError``, ``UndeclaredWriteError`` (strict mode; otherwise the
    undeclared change is applied with an ``UndeclaredWriteWarning``) or ``MissingWriteError``
    naming the action, the key and the fix. A declared write that the action deleted is not
    missing: deleting is writing.
    """
    if not spec.single_step:
        result, new_state = _split_two_step(spec.name, returned, spec.result_type)
    elif type(returned) is State:
        result, new_state = {}, returned
    else:
        result, new_state = _split_single_step(spec.name, returned, spec.result_type)
    changes = (
        new_state._changes if new_state._origin is base._origin else new_state._changes_since(base)
    )
    writes, warned, strict = spec.writes, spec.warned, spec.strict
    for change in changes:
        if change[1] not in writes and (strict or change[1] not in warned):
            _undeclared(spec, changes)
            break
    data = new_state._data
    for key in writes:
        if key not in data:
            _check_missing_writes(spec, new_state, changes)
            break
    if changes:
        typing_system = new_state._typing
        if typing_system is not None and (
            spec.validated_as is None or spec.validated_as is not typing_system.state_type()
        ):
            keys = {key for op, key, _value in changes if op != "delete"}
            typing_system.validate_writes(new_state, keys, spec.action)
    return result, new_state, changes


def _check_missing_writes(
    spec: ActionSpec, new_state: State, changes: tuple[RawChange, ...]
) -> None:
    deleted = {key for op, key, _value in changes if op == "delete"}
    check_writes_present(spec.name, spec.writes, new_state, deleted)


def check_writes_present(
    name: str | None, writes: Iterable[str], state: State, deleted: Container[str] = ()
) -> None:
    """Raise ``MissingWriteError`` when a key of ``writes`` is neither in ``state`` after the
    action ran nor among the keys it ``deleted``."""
    missing = sorted(k for k in writes if k not in state and k not in deleted)
    if not missing:
        return
    one = len(missing) == 1
    raise MissingWriteError(
        f"action {name!r} declares writes {sorted(writes)!r} but {missing!r} "
        f"{'is' if one else 'are'} not in the state after it ran. Write "
        f"{'it' if one else 'them'} (state.update({missing[0]}=...)) or remove "
        f"{'it' if one else 'them'} from writes=[...]."
    )


def run_action(spec: ActionSpec, base: State, kwargs: dict[str, Any]) -> Any:
    """Call a (non-streaming) action: what ``finish`` expects, or for an async action a
    coroutine producing it."""
    if spec.fn is not None:
        return spec.fn(base, **kwargs)
    act = spec.action
    if spec.single_step:
        return act.run_and_update(base, **kwargs)  # type: ignore[attr-defined]
    if spec.is_async:
        return _run_two_step_async(spec, base, kwargs)
    result = act.run(run_input(act, base.subset(*spec.reads)), **kwargs)
    _check_run_result(spec.name, result, spec.result_type)
    return result, update_output(act, act.update(result, update_input(act, base)), base)


async def _run_two_step_async(
    spec: ActionSpec, base: State, kwargs: dict[str, Any]
) -> tuple[Any, Any]:
    act = spec.action
    result = await act.run(run_input(act, base.subset(*spec.reads)), **kwargs)  # type: ignore[misc]
    _check_run_result(spec.name, result, spec.result_type)
    return result, update_output(act, act.update(result, update_input(act, base)), base)


ResultType = type[Any] | tuple[type[Any], ...]


def _type_label(result_type: ResultType) -> str:
    if isinstance(result_type, tuple):
        return " | ".join(t.__name__ for t in result_type)
    return result_type.__name__


def _check_run_result(name: str, result: Any, result_type: ResultType = dict) -> None:
    if not isinstance(result, result_type):
        label = _type_label(result_type)
        raise InvalidActionReturnError(
            f"action {name!r}: run() must return a {label}; it returned a non-{label} result, "
            f"{type(result).__name__}: {_short(result)}."
        )


def _split_two_step(
    name: str, returned: tuple[Any, Any], result_type: ResultType = dict
) -> tuple[dict[str, Any], State]:
    result, new_state = returned
    _check_run_result(name, result, result_type)
    if not isinstance(new_state, State):
        raise InvalidActionReturnError(
            f"action {name!r}: update() must return a State, got "
            f"{type(new_state).__name__}: {_short(new_state)}. Return state.update(...) or the "
            f"state itself."
        )
    return result, new_state


def _split_single_step(
    name: str, returned: Any, result_type: ResultType = dict
) -> tuple[dict[str, Any], State]:
    """``(result, state)`` from what a single-step action returned: a ``State`` alone (the
    result is then ``{}``) or a ``(result, State)`` pair whose result is a ``result_type``."""
    if isinstance(returned, State):
        return {}, returned
    if isinstance(returned, tuple) and len(returned) == 2:
        result = returned[0]
        if not isinstance(result, result_type):
            label = _type_label(result_type)
            raise InvalidActionReturnError(
                f"action {name!r} returned a non-{label} result of type "
                f"{type(result).__name__} ({_short(result)}); the result must be a "
                f"{label}, e.g. return {{'answer': ...}}, state. Return the state "
                f"alone when there is no result."
            )
        if isinstance(returned[1], State):
            return result, returned[1]
    raise InvalidActionReturnError(
        f"action {name!r} must return either a State or a (result_dict, State) tuple, got "
        f"{type(returned).__name__}: {_short(returned)}. End it with `return state.update(...)` "
        f"or `return {{...}}, state.update(...)`."
    )


def _short(value: Any, limit: int = 120) -> str:
    # The value is what a faulty action returned: its __repr__ may raise too, and must not hide
    # the error that names the fix.
    return safe_repr(value, limit)


def _undeclared(spec: ActionSpec, changes: tuple[RawChange, ...]) -> None:
    """Raise ``UndeclaredWriteError`` in strict mode; else warn once per new (action, key)."""
    keys = list(dict.fromkeys(key for _op, key, _value in changes if key not in spec.writes))
    if not spec.strict:
        keys = [key for key in keys if key not in spec.warned]
        if not keys:
            return
        spec.warned.update(keys)
    ops = ", ".join(f"{op} {key!r}" for op, key, _value in changes if key in keys)
    declared = sorted(spec.writes)
    them = "it" if len(keys) == 1 else "them"
    message = (
        f"action {spec.name!r} changed {', '.join(map(repr, keys))} ({ops}) but declares "
        f"writes={declared!r}. Add {them} to writes, e.g. "
        f"@action(reads=[...], writes={sorted([*declared, *keys])!r})"
    )
    if spec.strict:
        raise UndeclaredWriteError(f"{message}.")
    text = (
        f"{message}; the change was applied (as Burr does). build(strict=True) makes this an "
        f"UndeclaredWriteError."
    )
    where = _defined_at(spec.action)
    if where is None:
        warnings.warn(text, UndeclaredWriteWarning, stacklevel=2)
        return
    filename, lineno, module = where
    # Reported at the action's own code, so the warning shows (and filters by) the user's module
    # and line rather than this one; one registry keeps the usual once-per-place display.
    warnings.warn_explicit(
        text, UndeclaredWriteWarning, filename, lineno, module=module, registry=_WARNED_AT
    )


_WARNED_AT: dict[Any, Any] = {}
_ACTION_METHODS = ("stream_run_and_update", "stream_run", "run_and_update", "run", "update")


def _defined_at(action: Action) -> tuple[str, int, str | None] | None:
    """``(file, line, module)`` of an action's code: its function, or for a class its method
    (outside turnout) that computes; ``None`` if there is no Python code to point at."""
    target: Any = action.fn if isinstance(action, FunctionBasedAction) else None
    if target is None:
        for name in _ACTION_METHODS:
            method = getattr(type(action), name, None)
            module = getattr(method, "__module__", None)
            if isinstance(module, str) and not module.startswith("turnout."):
                target = method
                break
    while isinstance(target, functools.partial):
        target = target.func
    try:
        target = inspect.unwrap(target) if target is not None else None
    except ValueError:  # a cycle of __wrapped__
        return None
    code = getattr(target, "__code__", None)
    if code is None:
        return None
    module = getattr(target, "__module__", None)
    return code.co_filename, code.co_firstlineno, module if isinstance(module, str) else None


def _missing_inputs(spec: ActionSpec, inputs: Mapping[str, Any], call: str) -> MissingInputsError:
    missing = [k for k in spec.required if k not in inputs]
    given = sorted(inputs) or "none"
    example = ", ".join(f'"{k}": ...' for k in missing)
    call = f"{call}inputs={{{example}}})"
    return MissingInputsError(
        f"action {spec.name!r} needs the input{'s' if len(missing) > 1 else ''} "
        f"{', '.join(map(repr, missing))}, which {'were' if len(missing) > 1 else 'was'} not "
        f"passed: missing required inputs (inputs given: {given}). "
        f"Pass {'them' if len(missing) > 1 else 'it'}:\n"
        f"    {call}\n"
        f"or fix {'them' if len(missing) > 1 else 'it'} when adding the action: "
        f"{spec.name}.bind({', '.join(f'{k}=...' for k in missing)})"
    )
