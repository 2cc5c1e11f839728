"""Spans and attributes inside a step: the injected ``__tracer`` and ``@trace``.

An action that declares a ``__tracer`` parameter receives a ``TracerFactory``. Calling it opens a
span, usable as a sync or async context manager; spans nest, and both spans and the tracer take
attributes (the tracer's go to the innermost span open, as on Burr, else to the step)::

    @action(reads=["query"], writes=["answer"])
    def answer(state: State, __tracer: TracerFactory) -> State:
        with __tracer("retrieve") as span:
            docs = retrieve(state["query"])
            span.log_attributes(documents=len(docs))
        __tracer.log_attribute("gen_ai.request.model", "stand-in")
        return state.update(answer=docs[0])

``@trace()`` wraps any function called inside an action in a span of its own, recording its
arguments and return value. Span and attribute events go to the hooks (``pre_start_span``,
``post_end_span``, ``do_log_attributes``). A ``with`` block calls async hook methods by
scheduling them; an ``async with`` block awaits them.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import threading
import time
from collections.abc import Callable, Sequence
from contextvars import ContextVar, Token
from dataclasses import dataclass, field
from typing import Any, ParamSpec, TypeVar

from turnout.core.context import StepScope, current_scope

__all__ = ["ActionSpan", "OpenSpan", "SpanContext", "TracerFactory", "trace"]

_SPAN: ContextVar[ActionSpan | None] = ContextVar("turnout_span", default=None)


@dataclass(frozen=True, kw_only=True, slots=True)
class ActionSpan:
    """One span of a step.

    Attributes:
        name: what the span measures.
        uid: ``"<sequence_id>:<i>.<j>..."``: the step, then the position among siblings at each
            level (``"3:0"`` is the first top-level span of step 3, ``"3:0.1"`` its second child).
        parent: the enclosing span, ``None`` at the top level.
        sequence_id: the step's sequence id.
        action: the step's action name.
        start_time: ``time.time()`` when it opened.
        dependencies: names of spans it depends on (free-form, for display).
    """

    name: str
    uid: str
    parent: ActionSpan | None
    sequence_id: int
    action: str
    start_time: float
    dependencies: tuple[str, ...] = field(default=())
    # id() of the StepScope that opened it: a child application's step run in a copied context
    # sees the parent's span as current, with possibly the same sequence id and action name.
    _step: int = field(default=0, repr=False, compare=False)


class TracerFactory:
    """What an action receives as ``__tracer``: opens spans and logs step-level attributes."""

    __slots__ = ("_scope",)

    def __init__(self, scope: StepScope) -> None:
        self._scope = scope

    @staticmethod
    def current() -> TracerFactory | None:
        """The tracer of the step running in this thread or task, or ``None`` outside a step.

        For code that cannot declare ``__tracer`` (an adapter's callback, a library hook)."""
        scope = current_scope()
        return None if scope is None else scope.tracer()

    @staticmethod
    def current_span() -> ActionSpan | None:
        """The innermost ``with`` span open in this thread or task, or ``None``. Spans from
        ``start_span`` never become current."""
        return _SPAN.get()

    def start_span(
        self,
        span_name: str,
        *,
        parent: OpenSpan | SpanContext | ActionSpan | None = None,
        span_dependencies: Sequence[str] | None = None,
    ) -> OpenSpan:
        """Open a span now and return it; ``end()`` closes it later, from anywhere.

        For spans whose start and end arrive as separate events (a library's callbacks), where a
        ``with`` block cannot enclose the work. ``parent`` nests it explicitly; by default it nests
        under the innermost ``with`` span open here, if any. It does not become the current span:
        ``with`` spans opened meanwhile do not nest under it. It may be called from worker threads
        the action starts: async hook methods then run on the step's event loop.
        """
        if isinstance(parent, OpenSpan | SpanContext):
            parent_span = parent.span
        elif parent is None:
            parent_span = _SPAN.get()
        else:
            parent_span = parent
        span = OpenSpan(self._scope, span_name, tuple(span_dependencies or ()), parent_span)
        hooks = self._scope.app._hooks
        if hooks.implements("pre_start_span"):
            hooks.fire_now("pre_start_span", self._scope, **span._payload())
        return span

    def __call__(
        self, span_name: str, span_dependencies: Sequence[str] | None = None
    ) -> SpanContext:
        """A span named ``span_name``; enter it with ``with`` or ``async with``."""
        return SpanContext(self._scope, span_name, tuple(span_dependencies or ()))

    def log_attribute(self, key: str, value: Any) -> None:
        """Attach one attribute to the innermost ``with`` span open in this step (as Burr
        does), or to the step when none is open."""
        _log(self._scope, self._innermost(), {key: value})

    def log_attributes(self, **attributes: Any) -> None:
        """Attach attributes to the innermost ``with`` span open in this step (as Burr does),
        or to the step when none is open."""
        _log(self._scope, self._innermost(), attributes)

    def log_step_attribute(self, key: str, value: Any) -> None:
        """Attach one attribute to the step itself, even inside a span."""
        _log(self._scope, None, {key: value})

    def log_step_attributes(self, **attributes: Any) -> None:
        """Attach attributes to the step itself, even inside a span."""
        _log(self._scope, None, attributes)

    def _innermost(self) -> ActionSpan | None:
        span = _SPAN.get()
        if span is not None and span._step != id(self._scope):
            return None  # a parent application's span, seen by a child run in a copied context
        return span


class _SpanAttributes:
    """``log_attribute(s)`` for the two kinds of span below."""

    __slots__ = ()
    _scope: StepScope
    span: ActionSpan | None

    def log_attribute(self, key: str, value: Any) -> None:
        """Attach one attribute to this span."""
        _log(self._scope, self.span, {key: value})

    def log_attributes(self, **attributes: Any) -> None:
        """Attach attributes to this span."""
        _log(self._scope, self.span, attributes)


class SpanContext(_SpanAttributes):
    """An open (or about-to-open) span; see ``TracerFactory``."""

    __slots__ = ("_dependencies", "_name", "_scope", "_token", "span")

    def __init__(self, scope: StepScope, name: str, dependencies: tuple[str, ...]) -> None:
        self._scope = scope
        self._name = name
        self._dependencies = dependencies
        self._token: Token[ActionSpan | None] | None = None
        self.span: ActionSpan | None = None

    def _open(self) -> dict[str, Any]:
        self.span = _new_span(self._scope, self._name, self._dependencies, _SPAN.get())
        self._token = _SPAN.set(self.span)
        return self._payload()

    def _close(self) -> None:
        if self._token is not None:
            _SPAN.reset(self._token)
            self._token = None

    def _payload(self) -> dict[str, Any]:
        return _span_payload(self._scope, self.span)

    def __enter__(self) -> SpanContext:
        payload = self._open()
        hooks = self._scope.app._hooks
        if hooks.implements("pre_start_span"):
            hooks.fire_now("pre_start_span", self._scope, **payload)
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        self._close()
        hooks = self._scope.app._hooks
        if hooks.implements("post_end_span"):
            hooks.fire_now(
                "post_end_span",
                self._scope,
                **self._payload(),
                exception=exc,
                end_time=time.time(),
            )

    async def __aenter__(self) -> SpanContext:
        payload = self._open()
        hooks = self._scope.app._hooks
        if hooks.implements("pre_start_span"):
            await hooks.fire("pre_start_span", **payload)
        return self

    async def __aexit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        await self._scope.flush()  # attributes logged inside the span reach hooks before its end
        self._close()
        hooks = self._scope.app._hooks
        if hooks.implements("post_end_span"):
            await hooks.fire(
                "post_end_span", **self._payload(), exception=exc, end_time=time.time()
            )


class OpenSpan(_SpanAttributes):
    """A span opened by ``TracerFactory.start_span``, closed by ``end()``."""

    __slots__ = ("_scope", "ended", "span")

    def __init__(
        self,
        scope: StepScope,
        name: str,
        dependencies: tuple[str, ...],
        parent: ActionSpan | None,
    ) -> None:
        self._scope = scope
        self.span = _new_span(scope, name, dependencies, parent)
        self.ended = False

    def _payload(self) -> dict[str, Any]:
        return _span_payload(self._scope, self.span)

    def end(self, exception: BaseException | None = None) -> None:
        """Close the span (``exception``: what made it fail). A second call does nothing."""
        if self.ended:
            return
        self.ended = True
        hooks = self._scope.app._hooks
        if hooks.implements("post_end_span"):
            hooks.fire_now(
                "post_end_span",
                self._scope,
                **self._payload(),
                exception=exception,
                end_time=time.time(),
            )


_UID_LOCK = threading.Lock()


def _new_span(
    scope: StepScope, name: str, dependencies: tuple[str, ...], parent: ActionSpan | None
) -> ActionSpan:
    if parent is not None and parent._step != id(scope):
        parent = None  # a span of another step (or of a parent application) never adopts it
    prefix = parent.uid if parent is not None else f"{scope.sequence_id}:"
    with _UID_LOCK:  # callbacks may open sibling spans from several threads
        counts = scope.span_counts
        index = counts.get(prefix, 0)
        counts[prefix] = index + 1
    return ActionSpan(
        name=name,
        uid=f"{prefix}.{index}" if parent is not None else f"{prefix}{index}",
        parent=parent,
        sequence_id=scope.sequence_id,
        action=scope.action_name,
        start_time=time.time(),
        dependencies=dependencies,
        _step=id(scope),
    )


def _span_payload(scope: StepScope, span: ActionSpan | None) -> dict[str, Any]:
    """The keyword arguments of ``pre_start_span`` / ``post_end_span``."""
    app = scope.app
    return {
        "action": scope.action_name,
        "action_sequence_id": scope.sequence_id,
        "span": span,
        "span_dependencies": list(span.dependencies) if span is not None else [],
        "app_id": app.app_id,
        "partition_key": app.partition_key,
    }


def _log(scope: StepScope, span: ActionSpan | None, attributes: dict[str, Any]) -> None:
    hooks = scope.app._hooks
    if not hooks.implements("do_log_attributes"):
        return
    hooks.fire_now(
        "do_log_attributes",
        scope,
        attributes=dict(attributes),
        action=scope.action_name,
        action_sequence_id=scope.sequence_id,
        span=span,
        tags={},
        app_id=scope.app.app_id,
        partition_key=scope.app.partition_key,
    )


P = ParamSpec("P")
R = TypeVar("R")


def trace(
    _fn: Callable[P, R] | None = None,
    *,
    capture_inputs: bool = True,
    capture_outputs: bool = True,
    input_filterlist: Sequence[str] = (),
    span_name: str | None = None,
) -> Any:
    """Wrap a function (sync or async) in a span whenever it is called inside a step.

    The span is named after the function (or ``span_name``); its arguments (except those in
    ``input_filterlist``) and return value are logged as attributes unless told not to, along
    with ``turnout.function`` (qualified name) and ``turnout.function_hash`` (of its source).
    Outside a step the function runs untraced. Use as ``@trace`` or ``@trace(...)``.
    """

    def decorate(fn: Callable[P, R]) -> Callable[P, R]:
        name = span_name or fn.__qualname__
        signature = inspect.signature(fn)
        try:
            source_hash = hashlib.sha256(inspect.getsource(fn).encode()).hexdigest()
        except (OSError, TypeError):
            source_hash = ""
        skipped = set(input_filterlist)

        def record_inputs(span: SpanContext, args: Any, kwargs: Any) -> None:
            attributes: dict[str, Any] = {
                "turnout.function": fn.__qualname__,
                "turnout.function_hash": source_hash,
            }
            if capture_inputs:
                bound = signature.bind_partial(*args, **kwargs)
                attributes.update((k, v) for k, v in bound.arguments.items() if k not in skipped)
            span.log_attributes(**attributes)

        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def traced_async(*args: Any, **kwargs: Any) -> Any:
                scope = current_scope()
                if scope is None:
                    return await fn(*args, **kwargs)
                async with scope.tracer()(name) as span:
                    record_inputs(span, args, kwargs)
                    result = await fn(*args, **kwargs)
                    if capture_outputs:
                        span.log_attribute("return", result)
                    return result

            return traced_async  # type: ignore[return-value]

        @functools.wraps(fn)
        def traced(*args: P.args, **kwargs: P.kwargs) -> R:
            scope = current_scope()
            if scope is None:
                return fn(*args, **kwargs)
            with scope.tracer()(name) as span:
                record_inputs(span, args, kwargs)
                result = fn(*args, **kwargs)
                if capture_outputs:
                    span.log_attribute("return", result)
                return result

        return traced

    return decorate(_fn) if _fn is not None else decorate
