"""Burr's internal step helpers (``burr.core.application._run_function`` and friends).

Burr code and Burr's own tests call these underscore functions of ``burr.core.application``
directly. Each one here keeps Burr's signature and does the work with turnout's machinery: the
whole-step helpers run the action as the one step of a throwaway one-action application (the
engine's step, with its checks and stream hooks); the halves of a two-step action (``run``,
``update``) use the same checks as the engine (``turnout.core.step``). Not public API: use an
``Application``.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncGenerator, Callable, Generator, Iterable, Mapping
from typing import Any

from turnout.core.action import Action, Function, Reducer, _injected_name
from turnout.core.application import Application
from turnout.core.engine import drive, drive_iteration
from turnout.core.errors import AsyncRequiredError, UnknownActionError
from turnout.core.graph import ApplicationGraph
from turnout.core.hooks import HookSet
from turnout.core.state import State
from turnout.core.step import (
    ActionSpec,
    _check_run_result,
    _split_single_step,
    check_writes_present,
    finish,
)
from turnout.core.streaming import StreamDone
from turnout.core.typing import ActionSchema, result_type_of

__all__: list[str] = []  # Burr's internal names, imported by name only

_INJECTED = ["__context", "__tracer"]
StreamPair = tuple[dict[str, Any], State | None]


def _remap_dunder_parameters(
    run_method: Callable[..., Any], inputs: dict[str, Any], vars_to_remap: list[str]
) -> dict[str, Any]:
    """``inputs`` with ``__context``/``__tracer`` renamed to the parameter names ``run_method``
    really has: inside a class Python mangles ``__context`` to ``_Cls__context``."""
    try:
        params = inspect.signature(run_method).parameters
    except (TypeError, ValueError):
        return inputs
    renamed = {
        injected: name
        for name, param in params.items()
        if param.kind is not inspect.Parameter.VAR_KEYWORD
        and (injected := _injected_name(name)) in vars_to_remap
        and name != injected
    }
    if not any(key in inputs for key in renamed):
        return inputs
    return {renamed.get(key, key): value for key, value in inputs.items()}


def _run_function(
    function: Function, state: State, inputs: dict[str, Any], name: str
) -> dict[str, Any]:
    """Run the ``run`` half of a two-step action on the keys it reads; return its result."""
    if inspect.iscoroutinefunction(function.run):
        raise AsyncRequiredError(
            f"action {name!r} is async and cannot run in a synchronous call; use the async "
            f"methods (await app.astep(), app.aiterate(), await app.arun())."
        )
    function.validate_inputs(inputs)
    kwargs = _remap_dunder_parameters(function.run, inputs, _INJECTED)
    result = function.run(state.subset(*function.reads), **kwargs)
    _check_run_result(name, result)
    return result


async def _arun_function(
    function: Function, state: State, inputs: dict[str, Any], name: str
) -> dict[str, Any]:
    """``_run_function`` for an async (or sync) ``run``."""
    function.validate_inputs(inputs)
    kwargs = _remap_dunder_parameters(function.run, inputs, _INJECTED)
    result = function.run(state.subset(*function.reads), **kwargs)
    if inspect.isawaitable(result):
        result = await result
    _check_run_result(name, result)
    return result


def _validate_reducer_writes(reducer: Reducer, state: State, name: str) -> None:
    """Raise ``MissingWriteError`` (a ``ValueError``) when a declared write is not in ``state``."""
    check_writes_present(name, reducer.writes, state)


def _run_reducer(reducer: Reducer, state: State, result: dict[str, Any], name: str) -> State:
    """Run the ``update`` half of a two-step action and check its writes as a step does."""
    action = reducer if isinstance(reducer, Action) else _ReducerOnly(reducer)
    spec = ActionSpec(action.with_name(name) if name else action)
    base = state._tracking_from_here()
    _result, new_state, _changes = finish(spec, base, (result, reducer.update(result, base)))
    return new_state


class _ReducerOnly(Action):
    """A bare ``Reducer`` seen as an action reading nothing, so ``finish`` can check it."""

    def __init__(self, reducer: Reducer) -> None:
        super().__init__()
        self._reducer = reducer

    @property
    def reads(self) -> list[str]:
        return []

    @property
    def writes(self) -> list[str]:
        return list(self._reducer.writes)

    def run(self, state: State, **run_kwargs: Any) -> dict[str, Any]:
        return {}

    def update(self, result: dict[str, Any], state: State) -> State:
        return self._reducer.update(result, state)


def _adjust_single_step_output(
    output: State | tuple[dict[str, Any], State],
    action_name: str,
    action_schema: ActionSchema[Any, Any, Any],
) -> tuple[dict[str, Any], State]:
    """``(result, state)`` from what a single-step action returned (a ``State`` alone gives
    ``{}`` as the result); raises ``InvalidActionReturnError`` (a ``ValueError``) otherwise."""
    schema: Any = action_schema
    return _split_single_step(action_name, output, result_type_of(schema))


def _validate_start(start: str | None, actions: Iterable[str]) -> None:
    """Raise ``UnknownActionError`` (a ``ValueError``) unless ``start`` is one of ``actions``."""
    names = set(actions)
    if start is None:
        raise UnknownActionError("no entrypoint: call .with_entrypoint(<action name>).")
    if start not in names:
        raise UnknownActionError(
            f"the entrypoint {start!r} was not found among the actions "
            f"({', '.join(map(repr, sorted(names))) or 'none'}); add it with "
            f"with_actions({start}=...) or pick another with with_entrypoint()."
        )


def _one_step_app(
    action: Action,
    state: State,
    inputs: Mapping[str, Any] | None,
    *,
    sequence_id: int = 0,
    app_id: str = "",
    partition_key: str | None = None,
    hooks: HookSet | None = None,
) -> tuple[Application, ActionSpec, dict[str, Any]]:
    """An application whose next step runs ``action`` as step ``sequence_id``."""
    action.validate_inputs(inputs)
    if action.name is None:  # Burr's helpers run unbound actions too: a throwaway name
        action = action.with_name(type(action).__name__)
    app = Application(
        graph=ApplicationGraph([action], [], action),
        state=state,
        app_id=app_id,
        partition_key=partition_key,
        sequence_id=sequence_id - 1 if sequence_id > 0 else None,
    )
    if hooks:  # given after creation: this throwaway application is no one's to announce
        app._hooks, app._has_hooks = hooks, True
    return app, app._spec_of[id(action)], dict(inputs or {})


def _run_single_step_action(
    action: Action, state: State, inputs: Mapping[str, Any] | None
) -> tuple[dict[str, Any], State]:
    """Run a single-step action as one step; return ``(result, new_state)``."""
    app, _spec, kwargs = _one_step_app(action, state, inputs)
    out = drive(app._step(kwargs, "app.step(", True))
    assert out is not None
    return out[1] or {}, out[2]


async def _arun_single_step_action(
    action: Action, state: State, inputs: Mapping[str, Any] | None
) -> tuple[dict[str, Any], State]:
    """``_run_single_step_action`` for an async (or sync) action."""
    app, _spec, kwargs = _one_step_app(action, state, inputs)
    out = await app._step(kwargs, "app.astep(", False)
    assert out is not None
    return out[1] or {}, out[2]


def _run_streaming(
    action: Action,
    state: State,
    inputs: Mapping[str, Any] | None,
    sequence_id: int,
    app_id: str,
    partition_key: str | None,
    lifecycle_adapters: HookSet | None = None,
) -> Generator[StreamPair, None, None]:
    """Stream a streaming action as one step: ``(item, None)`` per item, then
    ``(result, new_state)``; the set's ``post_stream_item`` hooks see every item."""
    app, spec, kwargs = _one_step_app(
        action, state, inputs, sequence_id=sequence_id, app_id=app_id,
        partition_key=partition_key, hooks=lifecycle_adapters,
    )  # fmt: skip
    stream: Any = app._stream(spec, action, kwargs, "app.stream_result(", True)
    for value in drive_iteration(stream):
        if isinstance(value, StreamDone):
            assert value.step is not None
            yield value.step[1] or {}, value.step[2]
            return
        yield value, None


async def _arun_streaming(
    action: Action,
    state: State,
    inputs: Mapping[str, Any] | None,
    sequence_id: int,
    app_id: str,
    partition_key: str | None,
    lifecycle_adapters: HookSet | None = None,
) -> AsyncGenerator[StreamPair, None]:
    """``_run_streaming`` for an async (or sync) streaming action."""
    app, spec, kwargs = _one_step_app(
        action, state, inputs, sequence_id=sequence_id, app_id=app_id,
        partition_key=partition_key, hooks=lifecycle_adapters,
    )  # fmt: skip
    stream: Any = app._stream(spec, action, kwargs, "app.astream_result(", False)
    async for value in stream:
        if isinstance(value, StreamDone):
            assert value.step is not None
            yield value.step[1] or {}, value.step[2]
            return
        yield value, None


# Burr has one function per kind of streaming action; the engine tells them apart itself.
_run_single_step_streaming_action = _run_streaming
_run_multi_step_streaming_action = _run_streaming
_arun_single_step_streaming_action = _arun_streaming
_arun_multi_step_streaming_action = _arun_streaming
