"""Lifecycle hooks: objects whose methods the application calls as it runs.

Pass hook objects to ``ApplicationBuilder.with_hooks``. A hook implements any of the methods
below, each keyword-only and ending in ``**future_kwargs`` so that new payload fields never break
it; subclassing the matching base class documents the signature and lets type checkers help::

    class Printer(PostRunStepHook):
        def post_run_step(self, *, action, sequence_id, changes, exception, **future_kwargs):
            print(sequence_id, action.name, changes, exception)

Every method exists in a sync and an async form (``PostRunStepHookAsync`` with
``async def post_run_step``); async ones need the async drivers (``astep``, ``arun``, ...).

Payloads are values the hook cannot use to alter the run: states are immutable, changes are
tuples, inputs and results are copies.

**Error policy.** A hook that raises never corrupts the run. Every hook is still called; then the
first error is raised as ``HookError`` (its ``__cause__`` is the original), except turnout's own
errors (a persister's ``ConcurrencyError`` or ``SerdeError``), which are raised as they are. A
failing ``pre_*`` hook stops the step before its action runs (nothing committed, the sequence id
not used); a failing ``post_*`` hook is raised after the step was committed, so the application
is consistent and the next call continues from there. When the step itself failed, a hook error
is logged and the step's exception propagates. Hooks that must never interrupt a run
(telemetry) should catch their own errors.
"""

from __future__ import annotations

import abc
import inspect
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from turnout.core.errors import HookError, TurnoutError

if TYPE_CHECKING:
    from turnout.core.context import StepScope

__all__ = [
    "DoLogAttributeHook",
    "DoLogAttributeHookAsync",
    "HookSet",
    "PostApplicationCreateHook",
    "PostApplicationExecuteCallHook",
    "PostApplicationExecuteCallHookAsync",
    "PostEndSpanHook",
    "PostEndSpanHookAsync",
    "PostEndStreamHook",
    "PostEndStreamHookAsync",
    "PostRunStepHook",
    "PostRunStepHookAsync",
    "PostStreamItemHook",
    "PostStreamItemHookAsync",
    "PreApplicationExecuteCallHook",
    "PreApplicationExecuteCallHookAsync",
    "PreRunStepHook",
    "PreRunStepHookAsync",
    "PreStartSpanHook",
    "PreStartSpanHookAsync",
    "PreStartStreamHook",
    "PreStartStreamHookAsync",
]


class PostApplicationCreateHook(abc.ABC):
    @abc.abstractmethod
    def post_application_create(
        self,
        *,
        app_id: str,
        partition_key: str | None,
        state: Any,
        application_graph: Any,
        **future_kwargs: Any,
    ) -> None:
        """Once, when ``build()`` created the application."""


class PreApplicationExecuteCallHook(abc.ABC):
    @abc.abstractmethod
    def pre_run_execute_call(
        self,
        *,
        app_id: str,
        partition_key: str | None,
        state: Any,
        method: str,
        **future_kwargs: Any,
    ) -> None:
        """Before a public call (``step``, ``run``, ``astream_result``, ...); ``method`` names it.
        Fired once per outermost call even when calls nest."""


class PreApplicationExecuteCallHookAsync(abc.ABC):
    @abc.abstractmethod
    async def pre_run_execute_call(
        self,
        *,
        app_id: str,
        partition_key: str | None,
        state: Any,
        method: str,
        **future_kwargs: Any,
    ) -> None:
        """Async form of ``PreApplicationExecuteCallHook.pre_run_execute_call``."""


class PostApplicationExecuteCallHook(abc.ABC):
    @abc.abstractmethod
    def post_run_execute_call(
        self,
        *,
        app_id: str,
        partition_key: str | None,
        state: Any,
        method: str,
        exception: BaseException | None,
        **future_kwargs: Any,
    ) -> None:
        """After a public call, with the exception it raised (or ``None``)."""


class PostApplicationExecuteCallHookAsync(abc.ABC):
    @abc.abstractmethod
    async def post_run_execute_call(
        self,
        *,
        app_id: str,
        partition_key: str | None,
        state: Any,
        method: str,
        exception: BaseException | None,
        **future_kwargs: Any,
    ) -> None:
        """Async form of ``PostApplicationExecuteCallHook.post_run_execute_call``."""


class PreRunStepHook(abc.ABC):
    @abc.abstractmethod
    def pre_run_step(
        self,
        *,
        app_id: str,
        partition_key: str | None,
        sequence_id: int,
        state: Any,
        action: Any,
        inputs: dict[str, Any],
        attempt: int,
        **future_kwargs: Any,
    ) -> None:
        """Before each attempt of a step (``attempt`` counts from 1 when retries happen)."""


class PreRunStepHookAsync(abc.ABC):
    @abc.abstractmethod
    async def pre_run_step(
        self,
        *,
        app_id: str,
        partition_key: str | None,
        sequence_id: int,
        state: Any,
        action: Any,
        inputs: dict[str, Any],
        attempt: int,
        **future_kwargs: Any,
    ) -> None:
        """Async form of ``PreRunStepHook.pre_run_step``."""


class PostRunStepHook(abc.ABC):
    @abc.abstractmethod
    def post_run_step(
        self,
        *,
        app_id: str,
        partition_key: str | None,
        sequence_id: int,
        state: Any,
        action: Any,
        inputs: dict[str, Any],
        result: dict[str, Any] | None,
        exception: BaseException | None,
        changes: tuple[Any, ...],
        attempt: int,
        will_retry: bool,
        **future_kwargs: Any,
    ) -> None:
        """After each attempt. ``state`` is the state after the step (unchanged on failure),
        ``changes`` its delta, ``will_retry`` whether another attempt follows."""


class PostRunStepHookAsync(abc.ABC):
    @abc.abstractmethod
    async def post_run_step(
        self,
        *,
        app_id: str,
        partition_key: str | None,
        sequence_id: int,
        state: Any,
        action: Any,
        inputs: dict[str, Any],
        result: dict[str, Any] | None,
        exception: BaseException | None,
        changes: tuple[Any, ...],
        attempt: int,
        will_retry: bool,
        **future_kwargs: Any,
    ) -> None:
        """Async form of ``PostRunStepHook.post_run_step``."""


class PreStartSpanHook(abc.ABC):
    @abc.abstractmethod
    def pre_start_span(
        self,
        *,
        action: str,
        action_sequence_id: int,
        span: Any,
        span_dependencies: list[str],
        app_id: str,
        partition_key: str | None,
        **future_kwargs: Any,
    ) -> None:
        """When a ``__tracer`` span (or ``@trace``) opens."""


class PreStartSpanHookAsync(abc.ABC):
    @abc.abstractmethod
    async def pre_start_span(
        self,
        *,
        action: str,
        action_sequence_id: int,
        span: Any,
        span_dependencies: list[str],
        app_id: str,
        partition_key: str | None,
        **future_kwargs: Any,
    ) -> None:
        """Async form of ``PreStartSpanHook.pre_start_span``."""


class PostEndSpanHook(abc.ABC):
    @abc.abstractmethod
    def post_end_span(
        self,
        *,
        action: str,
        action_sequence_id: int,
        span: Any,
        span_dependencies: list[str],
        app_id: str,
        partition_key: str | None,
        exception: BaseException | None,
        end_time: float,
        **future_kwargs: Any,
    ) -> None:
        """When a span closes, with the exception that left it (or ``None``)."""


class PostEndSpanHookAsync(abc.ABC):
    @abc.abstractmethod
    async def post_end_span(
        self,
        *,
        action: str,
        action_sequence_id: int,
        span: Any,
        span_dependencies: list[str],
        app_id: str,
        partition_key: str | None,
        exception: BaseException | None,
        end_time: float,
        **future_kwargs: Any,
    ) -> None:
        """Async form of ``PostEndSpanHook.post_end_span``."""


class DoLogAttributeHook(abc.ABC):
    @abc.abstractmethod
    def do_log_attributes(
        self,
        *,
        attributes: dict[str, Any],
        action: str,
        action_sequence_id: int,
        span: Any | None,
        tags: dict[str, str],
        app_id: str,
        partition_key: str | None,
        **future_kwargs: Any,
    ) -> None:
        """When ``log_attribute(s)`` is called; ``span`` is ``None`` for step-level attributes."""


class DoLogAttributeHookAsync(abc.ABC):
    @abc.abstractmethod
    async def do_log_attributes(
        self,
        *,
        attributes: dict[str, Any],
        action: str,
        action_sequence_id: int,
        span: Any | None,
        tags: dict[str, str],
        app_id: str,
        partition_key: str | None,
        **future_kwargs: Any,
    ) -> None:
        """Async form of ``DoLogAttributeHook.do_log_attributes``."""


class PreStartStreamHook(abc.ABC):
    @abc.abstractmethod
    def pre_start_stream(
        self,
        *,
        action: str,
        sequence_id: int,
        app_id: str,
        partition_key: str | None,
        **future_kwargs: Any,
    ) -> None:
        """Before a streaming action yields its first item."""


class PreStartStreamHookAsync(abc.ABC):
    @abc.abstractmethod
    async def pre_start_stream(
        self,
        *,
        action: str,
        sequence_id: int,
        app_id: str,
        partition_key: str | None,
        **future_kwargs: Any,
    ) -> None:
        """Async form of ``PreStartStreamHook.pre_start_stream``."""


class PostStreamItemHook(abc.ABC):
    @abc.abstractmethod
    def post_stream_item(
        self,
        *,
        item: Any,
        item_index: int,
        stream_initialize_time: float,
        first_stream_item_start_time: float,
        action: str,
        sequence_id: int,
        app_id: str,
        partition_key: str | None,
        **future_kwargs: Any,
    ) -> None:
        """After each intermediate item of a stream (times are ``time.time()`` values)."""


class PostStreamItemHookAsync(abc.ABC):
    @abc.abstractmethod
    async def post_stream_item(
        self,
        *,
        item: Any,
        item_index: int,
        stream_initialize_time: float,
        first_stream_item_start_time: float,
        action: str,
        sequence_id: int,
        app_id: str,
        partition_key: str | None,
        **future_kwargs: Any,
    ) -> None:
        """Async form of ``PostStreamItemHook.post_stream_item``."""


class PostEndStreamHook(abc.ABC):
    @abc.abstractmethod
    def post_end_stream(
        self,
        *,
        action: str,
        sequence_id: int,
        app_id: str,
        partition_key: str | None,
        items_streamed: int,
        exception: BaseException | None,
        **future_kwargs: Any,
    ) -> None:
        """When a stream ends, with the number of items and the exception (or ``None``)."""


class PostEndStreamHookAsync(abc.ABC):
    @abc.abstractmethod
    async def post_end_stream(
        self,
        *,
        action: str,
        sequence_id: int,
        app_id: str,
        partition_key: str | None,
        items_streamed: int,
        exception: BaseException | None,
        **future_kwargs: Any,
    ) -> None:
        """Async form of ``PostEndStreamHook.post_end_stream``."""


HookFailure = tuple[Any, str, BaseException]
"""A failed hook call: the hook object, the method name and the exception."""

HOOK_NAMES = (
    "post_application_create",
    "pre_run_execute_call",
    "post_run_execute_call",
    "pre_run_step",
    "post_run_step",
    "pre_start_span",
    "post_end_span",
    "do_log_attributes",
    "pre_start_stream",
    "post_stream_item",
    "post_end_stream",
)


class HookSet:
    """The hook methods of a list of hook objects, indexed by hook name once."""

    __slots__ = ("_by_name", "async_methods", "hooks")

    def __init__(self, hooks: Sequence[Any]) -> None:
        self.hooks = tuple(hooks)
        self._by_name: dict[str, tuple[tuple[Any, Callable[..., Any], bool], ...]] = {}
        async_methods: list[str] = []
        for name in HOOK_NAMES:
            methods = []
            for hook in self.hooks:
                method = getattr(hook, name, None)
                if callable(method):
                    is_async = inspect.iscoroutinefunction(method)
                    methods.append((hook, method, is_async))
                    if is_async:
                        async_methods.append(f"{type(hook).__name__}.{name}")
            if methods:
                self._by_name[name] = tuple(methods)
        self.async_methods = tuple(async_methods)

    def __bool__(self) -> bool:
        return bool(self._by_name)

    def implements(self, name: str) -> bool:
        return name in self._by_name

    async def fire(self, name: str, **payload: Any) -> None:
        """Call every ``name`` method in order, awaiting async ones; then raise the first error
        as ``HookError``. Completes without suspending when no async method awaits something."""
        errors = await self.collect(name, **payload)
        if errors:
            raise hook_error(errors)

    async def collect(self, name: str, **payload: Any) -> list[HookFailure]:
        """Like ``fire``, but return the ``(hook, method name, error)`` of each failure."""
        errors: list[HookFailure] = []
        for hook, method, is_async in self._by_name.get(name, ()):
            try:
                if is_async:
                    await method(**payload)
                else:
                    method(**payload)
            except Exception as exc:
                errors.append((hook, name, exc))
        return errors

    def fire_now(self, name: str, scope: StepScope, **payload: Any) -> None:
        """Fire from synchronous code (a ``with`` span, ``log_attribute``): sync methods run
        now; async ones are scheduled on the step's event loop (``StepScope.schedule``), which
        the step awaits before it ends."""
        errors: list[HookFailure] = []
        for hook, method, is_async in self._by_name.get(name, ()):
            try:
                if is_async:
                    scope.schedule(hook, name, method(**payload))
                else:
                    method(**payload)
            except Exception as exc:
                errors.append((hook, name, exc))
        if errors:
            raise hook_error(errors)


def hook_error(errors: Sequence[HookFailure]) -> BaseException:
    """The error to raise for hooks that failed: the first one's, as ``HookError`` unless it is
    already one of turnout's own."""
    hook, name, first = errors[0]
    if isinstance(first, TurnoutError):
        return first  # turnout's own errors (a ConcurrencyError from saving) already explain it
    others = f" ({len(errors) - 1} more hook(s) also failed)" if len(errors) > 1 else ""
    error = HookError(
        f"hook {type(hook).__name__}.{name} raised "
        f"{type(first).__name__}: {first}{others}. "
        f"The application is consistent; see turnout.core.hooks for the error policy.",
        hook=hook,
        method=name,
    )
    error.__cause__ = first
    return error
