"""Burr's OpenTelemetry tracker: ``OpenTelemetryTracker`` and ``BurrTrackingSpanProcessor``.

Burr's ``OpenTelemetryTracker(burr_tracker)`` wraps a tracker: it passes every hook on to it,
and mirrors each step and ``__tracer`` span as an OpenTelemetry span (current while it is open,
so instrumented libraries nest under it). The tracker then hears about spans only through
``BurrTrackingSpanProcessor``, which ``initialize_tracer()`` adds to the global tracer
provider: an OpenTelemetry span whose parent it knows (the step's span, a ``__tracer`` span, or
a span of an instrumented library under them) becomes a span of the step, sent to the tracker
with its attributes when it ends.

What the processor knows lives in ``span_map`` (OpenTelemetry span id -> ``FullSpanContext``),
removed when the span ends, whatever the tracker does. A span goes to the tracker of the step
running where it is reported (``tracker_context``), else to the tracker of the step it was
opened under: so spans ended on worker threads, or after their step, still reach it.

turnout's own design for the same job is ``with_tracker(..., use_otel_tracing=True)`` (an
``OpenTelemetryHook`` plus ``TurnoutSpanProcessor``). These classes keep Burr's behaviour for
programs that build them by hand, including two Burr quirks: the tracker gets a
``post_end_span`` for the step's own span (which it never got a ``pre_start_span`` for), and a
span's attributes are logged when it ends.

The module-level helpers (``cache_span``, ``get_cached_span``, ``uncache_span``,
``initialize_tracer``) are looked up through ``turnout.integrations.opentelemetry`` at call
time, as in Burr's single module, so a test that patches them there takes effect.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import sys
import threading
import time
import weakref
from collections.abc import Sequence
from contextvars import ContextVar
from types import ModuleType
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace import Span, SpanProcessor, TracerProvider

from turnout.core.serde import serialize
from turnout.core.tracing import ActionSpan
from turnout.integrations.opentelemetry._common import _BRIDGING, _KIND, global_provider_with
from turnout.tracking.base import SyncTrackingClient

__all__ = [
    "BurrTrackingSpanProcessor",
    "FullSpanContext",
    "OpenTelemetryTracker",
    "cache_span",
    "convert_to_otel_attribute",
    "get_cached_span",
    "initialize_tracer",
    "span_map",
    "token_stack",
    "tracker_context",
    "uncache_span",
]

logger = logging.getLogger("turnout.opentelemetry")


@dataclasses.dataclass
class FullSpanContext:
    """What the processor knows of an open OpenTelemetry span: the step span it stands for,
    its application, and the tracker of the step it was opened in (``None``: the one in
    ``tracker_context`` when it is reported)."""

    action_span: ActionSpan
    partition_key: str | None
    app_id: str
    tracker: Any = None


span_map: dict[int, FullSpanContext] = {}
"""Open OpenTelemetry spans the processor follows, by span id."""

tracker_context: ContextVar[Any] = ContextVar("tracker_context", default=None)
"""The tracker of the step running here (set by ``OpenTelemetryTracker.pre_run_step``)."""

# The OpenTelemetry spans this tracker entered and the context tokens to restore, innermost last.
token_stack: ContextVar[list[tuple[object, Any]] | None] = ContextVar("token_stack", default=None)

_children: dict[int, int] = {}  # span id -> how many child spans it has had (for their uids)
_lock = threading.Lock()


def cache_span(span: Any, context: FullSpanContext) -> Any:
    span_map[span.get_span_context().span_id] = context
    return span


def uncache_span(span: Any) -> Any:
    span_id = span.get_span_context().span_id
    span_map.pop(span_id, None)
    with _lock:
        _children.pop(span_id, None)
    return span


def get_cached_span(span_id: int) -> FullSpanContext | None:
    return span_map.get(span_id)


def _public() -> ModuleType:
    """``turnout.integrations.opentelemetry``, where these helpers are looked up (see above)."""
    return sys.modules[__name__.rsplit(".", 1)[0]]


def convert_to_otel_attribute(attr: Any) -> Any:
    """``attr`` as an OpenTelemetry attribute value: a primitive as is, a sequence of one
    primitive type as a list, anything else as the JSON of Burr's ``serialize`` (its ``str``
    when even that fails)."""
    if isinstance(attr, str | bool | float | int):
        return attr
    if isinstance(attr, Sequence) and not isinstance(attr, bytes | bytearray):
        kinds = {type(item) for item in attr}
        if len(kinds) <= 1 and kinds <= {str, bool, float, int}:
            return list(attr)
    try:
        return json.dumps(serialize(attr))
    except Exception as exc:
        logger.error("could not serialise the attribute %r: %s", attr, exc)
        return str(attr)


def _step_span(action: str, sequence_id: int) -> ActionSpan:
    """The step itself, as the root its spans are spawned from: its uid ``"<seq>:"`` is no
    span's, and spans spawned from it are the step's top-level spans (``"<seq>:<i>"``)."""
    return ActionSpan(
        name=action, uid=f"{sequence_id}:", parent=None, sequence_id=sequence_id,
        action=action, start_time=time.time(),
    )  # fmt: skip


def _spawn(parent: ActionSpan, parent_id: int, name: str) -> ActionSpan:
    with _lock:
        index = _children.get(parent_id, 0)
        _children[parent_id] = index + 1
    top = str(parent.uid).endswith(":")
    return ActionSpan(
        name=name, uid=f"{parent.uid}{index}" if top else f"{parent.uid}.{index}",
        parent=None if top else parent, sequence_id=parent.sequence_id, action=parent.action,
        start_time=time.time(),
    )  # fmt: skip


def _tracker_for(cached: Any) -> Any:
    tracker = tracker_context.get()
    return tracker if tracker is not None else getattr(cached, "tracker", None)


class BurrTrackingSpanProcessor(SpanProcessor):
    """Send OpenTelemetry spans opened under a step's span to the step's tracker (Burr's span
    processor; ``initialize_tracer()`` adds it to the global tracer provider)."""

    @property
    def tracker(self) -> Any:
        """The tracker of the step running in this context (Burr's property)."""
        return tracker_context.get()

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        parent = span.parent
        if parent is None:
            return
        public = _public()
        cached = public.get_cached_span(parent.span_id)
        if cached is None:
            return  # not under a step
        action_span = _spawn(cached.action_span, parent.span_id, span.name)
        tracker = _tracker_for(cached)
        public.cache_span(
            span, FullSpanContext(action_span, cached.partition_key, cached.app_id, tracker)
        )
        if tracker is not None:
            tracker.pre_start_span(
                action=action_span.action, action_sequence_id=action_span.sequence_id,
                span=action_span, span_dependencies=[], app_id=cached.app_id,
                partition_key=cached.partition_key,
            )  # fmt: skip

    def on_end(self, span: Any) -> None:
        public = _public()
        cached = public.get_cached_span(span.get_span_context().span_id)
        if cached is None:
            return
        try:
            tracker = _tracker_for(cached)
            if tracker is None:
                return
            step = cached.action_span
            where = {
                "action": step.action, "action_sequence_id": step.sequence_id, "span": step,
                "app_id": cached.app_id, "partition_key": cached.partition_key,
            }  # fmt: skip
            attributes = {k: v for k, v in dict(span.attributes or {}).items() if k != _KIND}
            if attributes:
                tracker.do_log_attributes(attributes=attributes, tags={}, **where)
            tracker.post_end_span(span_dependencies=[], **where)
        finally:
            public.uncache_span(span)  # even when the tracker raised

    def shutdown(self) -> None:
        return

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


_PROCESSED: weakref.WeakSet[TracerProvider] = weakref.WeakSet()


def initialize_tracer() -> None:
    """Make sure the global tracer provider is an SDK one (installing one if none is set, as
    Burr does) and sends spans to a ``BurrTrackingSpanProcessor`` (added once)."""
    global_provider_with(BurrTrackingSpanProcessor, _PROCESSED)


def _enter_span(name: str, tracer: trace.Tracer) -> Any:
    span = tracer.start_span(name=name, record_exception=False, set_status_on_exception=False)
    span.set_attribute(_KIND, "burr")  # turnout's own bridge leaves it alone
    token = otel_context.attach(trace.set_span_in_context(span))
    token_stack.set([*(token_stack.get() or []), (token, span)])
    return span


def _exit_span(exception: BaseException | None = None) -> Any:
    stack = list(token_stack.get() or [])
    if not stack:
        return None
    token, span = stack.pop()
    token_stack.set(stack)
    otel_context.detach(token)  # type: ignore[arg-type]
    if exception is not None:
        span.set_status(trace.Status(trace.StatusCode.ERROR, str(exception)))
    else:
        span.set_status(trace.Status(trace.StatusCode.OK))
    span.end()
    return span


class OpenTelemetryTracker(SyncTrackingClient):
    """Burr's tracker wrapper: every hook goes on to ``burr_tracker``, and steps and
    ``__tracer`` spans are mirrored as OpenTelemetry spans, which reach ``burr_tracker`` through
    ``BurrTrackingSpanProcessor`` (see the module docstring).

    Args:
        burr_tracker: the tracker to wrap, e.g. ``LocalTrackingClient("my-project")``.
    """

    def __init__(self, burr_tracker: Any) -> None:
        _public().initialize_tracer()
        self.tracer = trace.get_tracer("turnout.integrations.opentelemetry")
        self.burr_tracker = burr_tracker
        self._mirrored: set[tuple[str, str]] = set()  # (app id, span uid) of spans entered

    def copy(self) -> OpenTelemetryTracker:
        return OpenTelemetryTracker(burr_tracker=self.burr_tracker.copy())

    def post_application_create(self, **kwargs: Any) -> None:
        self.burr_tracker.post_application_create(**kwargs)

    def pre_run_step(
        self, *, app_id: str, partition_key: str | None, sequence_id: int, action: Any,
        **future_kwargs: Any,
    ) -> None:  # fmt: skip
        self.burr_tracker.pre_run_step(
            app_id=app_id, partition_key=partition_key, sequence_id=sequence_id, action=action,
            **future_kwargs,
        )  # fmt: skip
        tracker_context.set(self.burr_tracker)
        span = _enter_span(action.name, self.tracer)
        _public().cache_span(
            span,
            FullSpanContext(
                _step_span(action.name, sequence_id), partition_key, app_id, self.burr_tracker
            ),
        )

    def post_run_step(self, *, exception: BaseException | None = None, **kwargs: Any) -> None:
        self.burr_tracker.post_run_step(exception=exception, **kwargs)
        _exit_span(exception)
        tracker_context.set(None)

    def pre_start_span(self, *, app_id: str, span: Any, **future_kwargs: Any) -> None:
        if _BRIDGING.get(False):
            return  # turnout's bridge recording an OpenTelemetry span: it is one already
        self._mirrored.add((app_id, span.uid))
        _enter_span(span.name, self.tracer)

    def post_end_span(self, *, app_id: str, span: Any, **future_kwargs: Any) -> None:
        key = (app_id, span.uid)
        if key in self._mirrored:
            self._mirrored.discard(key)
            _exit_span()

    def do_log_attributes(self, *, attributes: dict[str, Any], **future_kwargs: Any) -> None:
        current = trace.get_current_span()
        current.set_attributes({k: convert_to_otel_attribute(v) for k, v in attributes.items()})

    def pre_start_stream(self, **kwargs: Any) -> None:
        self.burr_tracker.pre_start_stream(**kwargs)

    def post_stream_item(self, **kwargs: Any) -> None:
        self.burr_tracker.post_stream_item(**kwargs)

    def post_end_stream(self, **kwargs: Any) -> None:
        self.burr_tracker.post_end_stream(**kwargs)
