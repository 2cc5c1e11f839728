"""The ``@action`` decorator: a function becomes a ``FunctionBasedAction`` and stays callable.

``action`` and ``ActionFunction`` are Burr's names in ``turnout.core.action``, which resolves
them from here on first use (this module imports that one; see ``turnout.core._burr_names``).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, ParamSpec, Protocol, TypeVar, cast, runtime_checkable

from turnout.core._action_checks import Declaration
from turnout.core.action import FunctionBasedAction
from turnout.core.errors import ActionDefinitionError
from turnout.core.typing import load_typing_adapter

__all__ = ["ActionFunction", "action"]

P = ParamSpec("P")
R_co = TypeVar("R_co", covariant=True)


@runtime_checkable
class ActionFunction(Protocol[P, R_co]):
    """An ``@action`` function: still callable with its own signature, plus the action behind
    it (``action_function``) and ``bind``."""

    action_function: FunctionBasedAction

    def bind(self, **kwargs: Any) -> ActionFunction[..., R_co]:
        """A copy with some parameters fixed; they are no longer inputs."""
        ...

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R_co: ...


def _attach(target: Any, spec: FunctionBasedAction) -> None:
    target.action_function = spec

    def bind(**kwargs: Any) -> Any:
        origin = spec.originating_fn
        bound = functools.partial(origin, **{**spec.bound_params, **kwargs})
        functools.update_wrapper(bound, origin)
        _attach(bound, spec.with_params(**kwargs))
        return bound

    target.bind = bind


class action(Declaration):  # a decorator, named like Burr's
    """Turn a function into an action.

    Args:
        reads: state keys the function reads.
        writes: state keys the returned state may change.
        tags: labels, usable as ``halt_after=["@tag:label"]``.
        retry: a ``RetryPolicy`` for failed attempts.
        timeout: seconds an ``async def`` action may run before ``ActionTimeoutError``.

    The function takes the state first and returns a ``State`` or ``(result_dict, State)``::

        @action(reads=["count"], writes=["count"])
        def count(state: State, step: int = 1) -> State:
            return state.update(count=state["count"] + step)

    The decorated function stays callable as before. ``count.bind(step=2)`` returns a copy with
    ``step`` fixed.
    """

    _owner = "@action(...)"

    @staticmethod
    def pydantic(
        reads: list[str],
        writes: list[str],
        state_input_type: type[Any] | None = None,
        state_output_type: type[Any] | None = None,
        tags: list[str] | None = None,
    ) -> Callable[[Callable[..., Any]], Any]:
        """An action whose function takes and returns pydantic models (Burr's decorator; see
        ``turnout.integrations.pydantic.pydantic_action``, which it calls). The model types come
        from the function's annotations unless both are given."""
        adapter = load_typing_adapter("pydantic")
        decorator: Callable[[Callable[..., Any]], Any] = adapter.pydantic_action(
            reads=reads,
            writes=writes,
            state_input_type=state_input_type,
            state_output_type=state_output_type,
            tags=tags,
        )
        return decorator

    def __call__(self, fn: Callable[P, R_co]) -> ActionFunction[P, R_co]:
        if not callable(fn):
            raise ActionDefinitionError(
                f"@action(...) decorates a function, got {type(fn).__name__}: {fn!r}"
            )
        if inspect.isasyncgenfunction(fn) or inspect.isgeneratorfunction(fn):
            raise ActionDefinitionError(
                f"@action on {fn.__qualname__!r}: a generator is a streaming action; "
                f"decorate it with @streaming_action(reads=..., writes=...)."
            )
        spec = FunctionBasedAction(
            fn, self.reads, self.writes, tags=self.tags, retry=self.retry, timeout=self.timeout
        )
        _attach(fn, spec)
        return cast("ActionFunction[P, R_co]", fn)
