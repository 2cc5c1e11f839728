"""Actions: the nodes of the state machine.

Two ways to write one, both declaring which state keys they read and write:

* a function, ``@action(reads=[...], writes=[...])`` on ``fn(state, **inputs)`` returning a
  ``State`` or ``(result, State)``; parameters after ``state`` are the action's inputs (no default:
  required; a default: optional), and ``fn.bind(**kw)`` fixes some of them;
* a class: ``Action`` (``run`` computes a result from the state, ``update`` folds it into the state)
  or ``SingleStepAction`` (``run_and_update`` does both).

``Result(*keys)`` and ``Input(*keys)`` are ready-made actions. The engine checks every step of
every kind of action: see ``turnout.core.step``.
"""

from __future__ import annotations

import abc
import copy
import functools
import inspect
import textwrap
from collections.abc import AsyncGenerator as AsyncGenerator  # Burr's tests import it from here
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

from turnout.core import schemas
from turnout.core._action_checks import INJECTED_INPUTS as INJECTED_INPUTS
from turnout.core._action_checks import _check_declared_reads as _check_declared_reads
from turnout.core._action_checks import _check_retry as _check_retry
from turnout.core._action_checks import _check_timeout as _check_timeout
from turnout.core._action_checks import _derive_inputs as _derive_inputs
from turnout.core._action_checks import _injected_name as _injected_name
from turnout.core._action_checks import _label as _label
from turnout.core._action_checks import _names as _names
from turnout.core._action_checks import derive_inputs_from_fn as derive_inputs_from_fn
from turnout.core._burr_names import lazy_names
from turnout.core.errors import ActionDefinitionError, InvalidInputsError, MissingInputsError
from turnout.core.retry import RetryPolicy
from turnout.core.state import State
from turnout.core.typing import DEFAULT_SCHEMA, ActionSchema, DefaultSchema

__all__ = [
    "DEFAULT_SCHEMA",
    "Action",
    "ActionFunction",
    "DefaultSchema",
    "Function",
    "FunctionBasedAction",
    "Input",
    "Reducer",
    "Result",
    "SingleStepAction",
    "action",
    "bound_name",
    "derive_inputs_from_fn",
    "type_eraser",
]

# Burr's names for the @action decorator, the streaming actions and conditions, which live in
# modules importing this one.
__getattr__ = lazy_names(__name__)
if TYPE_CHECKING:  # the same names, for type checkers (``X as X``: re-exported)
    from turnout.core._action_decorator import ActionFunction as ActionFunction
    from turnout.core._action_decorator import _attach as _attach
    from turnout.core._action_decorator import action as action
    from turnout.core.condition import Condition as Condition
    from turnout.core.condition import default as default
    from turnout.core.condition import expr as expr
    from turnout.core.condition import when as when
    from turnout.core.streaming import SingleStepStreamingAction as SingleStepStreamingAction
    from turnout.core.streaming import StreamingAction as StreamingAction
    from turnout.core.streaming import streaming_action as streaming_action

    AsyncStreamingAction = StreamingAction


def type_eraser(func: Callable[..., Any]) -> Callable[..., Any]:
    """Mark a ``run``/``stream_run``/``run_and_update`` override that names its inputs
    (``def run(self, state, n: int)``) so type checkers accept it in place of ``**run_kwargs``
    (Burr's decorator). It returns a wrapper of the same kind (function, coroutine function,
    generator or async generator function) whose ``__wrapped__`` is ``func``, so its name and
    signature read through, as on Burr."""
    if inspect.iscoroutinefunction(func):

        async def erased_coroutine(*args: Any, **kwargs: Any) -> Any:
            return await func(*args, **kwargs)

        return functools.update_wrapper(erased_coroutine, func)
    if inspect.isasyncgenfunction(func):

        async def erased_async_generator(*args: Any, **kwargs: Any) -> Any:
            async for item in func(*args, **kwargs):
                yield item

        return functools.update_wrapper(erased_async_generator, func)
    if inspect.isgeneratorfunction(func):

        def erased_generator(*args: Any, **kwargs: Any) -> Any:
            return (yield from func(*args, **kwargs))

        return functools.update_wrapper(erased_generator, func)

    def erased(*args: Any, **kwargs: Any) -> Any:
        return func(*args, **kwargs)

    return functools.update_wrapper(erased, func)


class Function(abc.ABC):
    """The computing half of an ``Action`` (Burr's interface): ``reads``, ``run``, ``inputs``."""

    @property
    @abc.abstractmethod
    def reads(self) -> list[str]:
        """State keys the action reads."""

    @abc.abstractmethod
    def run(self, state: State, **run_kwargs: Any) -> dict[str, Any]:
        """Compute the step's result from the state (restricted to ``reads``) and inputs."""

    @property
    def inputs(self) -> list[str] | tuple[list[str], list[str]]:
        """Input names: a list (all required) or a ``(required, optional)`` pair."""
        return []

    @property
    def optional_and_required_inputs(self) -> tuple[set[str], set[str]]:
        """``(required, optional)`` input names, without the injected ``__context``/``__tracer``
        (Burr's name; the order is Burr's too, despite the name)."""
        required, optional = _split_inputs(self)
        return set(required), set(optional)

    def validate_inputs(self, inputs: Mapping[str, Any] | None) -> None:
        """Raise ``MissingInputsError`` when a required input is absent from ``inputs``, and
        ``InvalidInputsError`` (both ``ValueError``) when one is not an input of the action."""
        given = set(inputs or {})
        required, optional = self.optional_and_required_inputs
        missing, extra = sorted(required - given), sorted(given - required - optional)
        owner = getattr(self, "_name", None) or type(self).__name__
        if missing:
            raise MissingInputsError(
                f"action {owner!r} needs the inputs {missing}, which were not passed (missing "
                f"required inputs; given: {sorted(given)}); pass them: "
                f"app.step(inputs={{{missing[0]!r}: ...}})."
            )
        if extra:
            raise InvalidInputsError(
                f"action {owner!r} takes no inputs named {extra} (its inputs: "
                f"{sorted(required | optional)}); remove them from inputs=."
            )

    def input_schema(self) -> Any:
        """The JSON Schema (draft 2020-12, a dict) of the action's inputs: one property per
        input with the type and default its parameter declares, the required ones listed,
        bound and injected ones left out. Burr returns ``None`` here and lets a subclass return
        a type to validate inputs with; such an override still works, and
        ``inputs_json_schema()`` turns a returned pydantic model into its JSON Schema."""
        return self._generated_inputs_schema()

    def inputs_json_schema(self) -> dict[str, Any]:
        """``input_schema()`` as a JSON Schema dict, whatever an override of it returns (a
        dict, or a pydantic model class); generated from the signature otherwise. The UI and
        the HTTP server read this one."""
        if type(self).input_schema is not Function.input_schema:
            declared = self.input_schema()
            if isinstance(declared, dict):
                return declared
            model_schema = getattr(declared, "model_json_schema", None)
            if callable(model_schema):
                return {"$schema": schemas.DIALECT, **model_schema()}
        return self._generated_inputs_schema()

    def _generated_inputs_schema(self) -> dict[str, Any]:
        required, optional = self.optional_and_required_inputs
        functions = [getattr(self, "originating_fn", None)]
        functions += [getattr(self, name, None) for name in ("run_and_update", "stream_run", "run")]
        origin = getattr(self, "originating_fn", None)
        name = str(getattr(self, "name", None) or getattr(origin, "__name__", type(self).__name__))
        return schemas.inputs_schema(
            name, required, optional, [fn for fn in functions if callable(fn)]
        )

    def is_async(self) -> bool:
        """Whether ``run`` must be awaited (it is a coroutine function)."""
        return inspect.iscoroutinefunction(self.run)


class Reducer(abc.ABC):
    """The updating half of an ``Action`` (Burr's interface): ``writes`` and ``update``."""

    @property
    @abc.abstractmethod
    def writes(self) -> list[str]:
        """State keys the action may change."""

    @abc.abstractmethod
    def update(self, result: dict[str, Any], state: State) -> State:
        """Fold the result into the state and return the new state."""


class Action(Function, Reducer, abc.ABC):
    """A two-step class action: ``run`` computes a result, ``update`` applies it to the state.

    Subclass it and implement ``reads``, ``writes`` (properties returning lists of keys), ``run``
    and ``update``; override ``inputs`` when ``run`` takes keyword inputs::

        class Count(Action):
            @property
            def reads(self) -> list[str]:
                return ["count"]

            @property
            def writes(self) -> list[str]:
                return ["count"]

            def run(self, state: State, **inputs) -> dict:
                return {"count": state["count"] + 1}

            def update(self, result: dict, state: State) -> State:
                return state.update(count=result["count"])

    ``run`` receives only the keys in ``reads``; ``update`` receives the whole state.
    """

    single_step: bool = False
    streaming: bool = False
    retry: RetryPolicy | None = None
    """Retry failed attempts of this action's steps (see ``turnout.core.retry``)."""
    timeout: float | None = None
    """Seconds an async action may run before ``ActionTimeoutError``; ``None`` for no limit."""

    def __init__(self) -> None:
        self._name: str | None = None

    @property
    def tags(self) -> list[str]:
        """Labels for ``halt_before=["@tag:x"]`` and ``Graph.get_actions_by_tag``."""
        return []

    @property
    def name(self) -> str | None:
        """The action's name in its graph, set by the builder (``with_actions(name=...)``) or
        ``with_name``; ``None`` until then, as in Burr. Actions in a graph always have one."""
        name: str | None = getattr(self, "_name", None)
        return name

    @property
    def schema(self) -> ActionSchema[Any, Any, Any]:
        """The types the action reads, writes and returns (Burr's ``ActionSchema``):
        ``DEFAULT_SCHEMA`` for an untyped action."""
        return DEFAULT_SCHEMA

    @property
    def has_name(self) -> bool:
        return getattr(self, "_name", None) is not None

    def with_name(self, name: str) -> Action:
        """A copy of this action under ``name``."""
        if not isinstance(name, str) or not name:
            raise ActionDefinitionError(f"an action name must be a non-empty string, got {name!r}")
        named = copy.copy(self)
        named._name = name
        return named

    @property
    def required_inputs(self) -> tuple[str, ...]:
        """Inputs the caller must pass, without the injected ``__context``/``__tracer``."""
        return _split_inputs(self)[0]

    @property
    def optional_inputs(self) -> tuple[str, ...]:
        """Inputs the caller may pass."""
        return _split_inputs(self)[1]

    def _unnamed_label(self) -> str:
        return type(self).__name__

    def get_source(self) -> str:
        """Source code of the action, for display."""
        try:
            return textwrap.dedent(inspect.getsource(type(self)))
        except (OSError, TypeError):
            return ""

    def is_async(self) -> bool:
        """Whether running this action must be awaited (its ``run`` is a coroutine function)."""
        method = self.run_and_update if self.single_step else self.run  # type: ignore[attr-defined]
        return inspect.iscoroutinefunction(method)

    def __repr__(self) -> str:
        name = getattr(self, "_name", None) or self._unnamed_label()
        reads = ", ".join(self.reads) or "{}"
        writes = ", ".join(self.writes) or "{}"
        return f"{name}: {reads} -> {writes}"


def bound_name(act: Action) -> str:
    """The name of ``act``, which must have one: actions in a graph always do. Raises
    ``ActionDefinitionError`` naming the fix for an action not given a name yet."""
    name = act.name
    if name is None:
        raise ActionDefinitionError(
            f"{type(act).__name__} has no name yet; add it with "
            f"ApplicationBuilder().with_actions(my_name=action) or action.with_name('my_name')."
        )
    return name


def _split_inputs(act: Function) -> tuple[tuple[str, ...], tuple[str, ...]]:
    declared = act.inputs
    if isinstance(declared, tuple) and len(declared) == 2 and not isinstance(declared[0], str):
        required, optional = declared
    else:
        required, optional = declared, []
    strip = [n for n in (*required, *optional) if _injected_name(n)]
    return (
        tuple(n for n in required if n not in strip),
        tuple(n for n in optional if n not in strip),
    )


class SingleStepAction(Action):
    """A class action that computes its result and its new state in one method.

    Implement ``reads``, ``writes`` and ``run_and_update(state, **inputs) -> (result, State)``.
    It receives the whole state.
    """

    single_step = True

    @abc.abstractmethod
    def run_and_update(self, state: State, **run_kwargs: Any) -> tuple[dict[str, Any], State]:
        """Return ``(result, new_state)``."""

    def run(self, state: State, **run_kwargs: Any) -> dict[str, Any]:
        raise ActionDefinitionError(
            f"{type(self).__name__} is a SingleStepAction: call run_and_update(), not run()."
        )

    def update(self, result: dict[str, Any], state: State) -> State:
        raise ActionDefinitionError(
            f"{type(self).__name__} is a SingleStepAction: call run_and_update(), not update()."
        )


class FunctionBasedAction(SingleStepAction):
    """The action behind an ``@action``-decorated function.

    ``fn`` is what runs; ``originating_fn`` (default: ``fn``) is the user's function, whose
    signature gives the inputs (unless ``input_spec`` names them) and whose source is shown. An
    adapter that wraps the user's function (``@action.pydantic``) passes both, and its
    ``schema``, as Burr's adapters do.
    """

    ACTION_FUNCTION = "action_function"
    """The attribute of a decorated function holding its action (Burr's constant)."""

    def __init__(
        self,
        fn: Callable[..., Any],
        reads: Sequence[str],
        writes: Sequence[str],
        *,
        bound_params: Mapping[str, Any] | None = None,
        input_spec: tuple[Sequence[str], Sequence[str]] | None = None,
        originating_fn: Callable[..., Any] | None = None,
        schema: ActionSchema[Any, Any, Any] = DEFAULT_SCHEMA,
        tags: Sequence[str] | None = (),
        retry: RetryPolicy | None = None,
        timeout: float | None = None,
    ) -> None:
        super().__init__()
        origin = fn if originating_fn is None else originating_fn
        owner = f"@action on {getattr(origin, '__qualname__', origin)!r}"
        self.retry = _check_retry(retry, owner)
        self.timeout = _check_timeout(timeout, owner)
        self._fn = fn
        self._originating_fn = origin
        self._schema = schema
        self._reads = list(_names(reads, "reads", owner))
        self._writes = list(_names(writes, "writes", owner))
        self._tags = list(_names(tags or (), "tags", owner))
        self._bound = dict(bound_params or {})
        self._input_spec = (
            None if input_spec is None else (list(input_spec[0]), list(input_spec[1]))
        )
        self._inputs = self._derived_inputs(owner)
        _check_declared_reads(origin, self._reads, owner)

    def _derived_inputs(self, owner: str) -> tuple[list[str], list[str]]:
        if self._input_spec is None:
            return _derive_inputs(self._originating_fn, self._bound, owner)
        required, optional = self._input_spec
        return (
            [n for n in required if n not in self._bound],
            [n for n in optional if n not in self._bound],
        )

    @property
    def fn(self) -> Callable[..., Any]:
        """The function that runs (the decorated function, or an adapter's wrapper of it)."""
        return self._fn

    @property
    def originating_fn(self) -> Callable[..., Any]:
        """The user's function (``fn`` unless an adapter wrapped it)."""
        return self._originating_fn

    @property
    def schema(self) -> ActionSchema[Any, Any, Any]:
        return self._schema

    @property
    def reads(self) -> list[str]:
        return self._reads

    @property
    def writes(self) -> list[str]:
        return self._writes

    @property
    def tags(self) -> list[str]:
        return self._tags

    @property
    def inputs(self) -> tuple[list[str], list[str]]:
        return self._inputs

    @property
    def bound_params(self) -> dict[str, Any]:
        return dict(self._bound)

    def with_params(self, **bound: Any) -> FunctionBasedAction:
        """A copy with more parameters fixed (what ``fn.bind(**kw)`` builds)."""
        origin = self._originating_fn
        owner = f"{getattr(origin, '__qualname__', origin)}.bind()"
        signature = list(inspect.signature(origin).parameters.values())
        params = [p.name for p in signature[1:]]  # the first parameter is the state
        accepts_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in signature)
        unknown = [k for k in bound if k not in params and not accepts_any]
        if unknown:
            raise ActionDefinitionError(
                f"{owner}: the function has no parameter(s) {', '.join(map(repr, unknown))}; "
                f"its parameters after the state are {', '.join(map(repr, params)) or 'none'}."
            )
        new = copy.copy(self)
        new._bound = {**self._bound, **bound}
        new._inputs = new._derived_inputs(owner)
        return new

    def run_and_update(self, state: State, **run_kwargs: Any) -> tuple[dict[str, Any], State]:
        # The engine normalises and checks the return value; see turnout.core.step.
        return cast("tuple[dict[str, Any], State]", self._fn(state, **self._bound, **run_kwargs))

    def _unnamed_label(self) -> str:
        return getattr(self._originating_fn, "__name__", type(self).__name__)

    def get_source(self) -> str:
        try:
            return textwrap.dedent(inspect.getsource(self._originating_fn))
        except (OSError, TypeError):
            return ""

    def is_async(self) -> bool:
        return inspect.iscoroutinefunction(self._fn)


def to_action(candidate: Any, name: str | None = None) -> Action:
    """The ``Action`` behind an ``@action`` function or an ``Action``; a clear error if none."""
    if isinstance(candidate, Action):
        found: Action = candidate
    elif hasattr(candidate, "action_function") and isinstance(candidate.action_function, Action):
        found = candidate.action_function
    else:
        label = repr(name or getattr(candidate, "__name__", None) or candidate)
        hint = (
            " Decorate it with @action(reads=[...], writes=[...])." if callable(candidate) else ""
        )
        raise ActionDefinitionError(
            f"{label} is not a valid action (got {type(candidate).__name__}).{hint}"
        )
    if name is None:
        if found.has_name:
            return found
        name = getattr(candidate, "__name__", None)
        if name is None:
            raise ActionDefinitionError(
                f"{found!r} has no name: pass it by keyword, with_actions(my_name=action)."
            )
    return found.with_name(name)


create_action = to_action  # Burr's name for it (burr.core.action.create_action)


def check_declarations(act: Action) -> None:
    """Raise ``ActionDefinitionError`` if a (class) action's reads, writes, tags or inputs are
    not lists of strings."""
    owner = f"action {act.name!r} ({type(act).__name__})"
    _names(act.reads, "reads", owner)
    _names(act.writes, "writes", owner)
    _names(act.tags, "tags", owner)
    declared = act.inputs
    if isinstance(declared, tuple) and len(declared) == 2 and not isinstance(declared[0], str):
        _names(declared[0], "inputs (required)", owner)
        _names(declared[1], "inputs (optional)", owner)
    else:
        _names(declared, "inputs", owner)


class Result(Action):
    """An action that returns some state keys as its result and changes nothing. A key the
    state lacks is left out of the result, as in Burr (so ``build()`` does not warn that
    nothing provides it)."""

    _reads_may_be_missing = True

    def __init__(self, *fields: str) -> None:
        super().__init__()
        self._fields = list(_names(fields, "fields", "Result(...)"))

    @property
    def reads(self) -> list[str]:
        return self._fields

    @property
    def writes(self) -> list[str]:
        return []

    def run(self, state: State, **run_kwargs: Any) -> dict[str, Any]:
        return {key: state[key] for key in self._fields if key in state}

    def update(self, result: dict[str, Any], state: State) -> State:
        return state


class Input(Action):
    """An action that copies inputs of the same names into the state."""

    def __init__(self, *fields: str) -> None:
        super().__init__()
        self._fields = list(_names(fields, "fields", "Input(...)"))

    @property
    def reads(self) -> list[str]:
        return []

    @property
    def writes(self) -> list[str]:
        return self._fields

    @property
    def inputs(self) -> list[str]:
        return self._fields

    def run(self, state: State, **run_kwargs: Any) -> dict[str, Any]:
        return {key: run_kwargs[key] for key in self._fields}

    def update(self, result: dict[str, Any], state: State) -> State:
        return state.update(**result)
