"""The reverse bridge: foreign OpenTelemetry spans recorded as turnout spans."""

from __future__ import annotations

import threading
from typing import Any

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
from opentelemetry.trace import Span, StatusCode

from turnout.core.tracing import OpenSpan, TracerFactory
from turnout.integrations.opentelemetry._common import _BRIDGING, _KIND, logger

__all__ = ["ForeignSpanError", "TurnoutSpanProcessor"]


class ForeignSpanError(Exception):
    """How a failed foreign OpenTelemetry span shows in turnout: its status or exception text."""


class TurnoutSpanProcessor(SpanProcessor):
    """Record spans that other OpenTelemetry instrumentation creates during a step as turnout
    spans (so the local tracker and the UI show them), keeping their nesting.

    Add it to the provider the instrumentation uses
    (``provider.add_span_processor(TurnoutSpanProcessor())``). A span started while a step runs
    (in its thread or task, or where its context was copied) opens a turnout span through
    ``TracerFactory.current().start_span``; when it ends, its attributes, ids and status are
    logged on it. Spans started outside steps, and the spans ``OpenTelemetryHook`` exports, are
    left alone, and the hook does not export the recorded copies again.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open: dict[int, OpenSpan] = {}

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        try:
            self._start(span)
        except Exception:
            logger.exception("could not record the OpenTelemetry span %r in turnout", span)

    def _start(self, span: Any) -> None:
        if _KIND in (span.attributes or {}):
            return  # one of ours
        tracer = TracerFactory.current()
        if tracer is None:
            return  # not inside a step
        parent = None
        if span.parent is not None:
            with self._lock:
                parent = self._open.get(span.parent.span_id)
        token = _BRIDGING.set(True)
        try:
            opened = tracer.start_span(span.name, parent=parent)
        finally:
            _BRIDGING.reset(token)
        with self._lock:
            self._open[span.context.span_id] = opened

    def on_end(self, span: ReadableSpan) -> None:
        try:
            self._end(span)
        except Exception:
            logger.exception("could not record the end of the OpenTelemetry span %r", span)

    def _end(self, span: ReadableSpan) -> None:
        context = span.context
        if context is None:
            return
        with self._lock:
            opened = self._open.pop(context.span_id, None)
        if opened is None:
            return
        attributes: dict[str, Any] = {
            key: list(value) if isinstance(value, tuple) else value
            for key, value in (span.attributes or {}).items()
        }
        attributes["otel.trace_id"] = f"{context.trace_id:032x}"
        attributes["otel.span_id"] = f"{context.span_id:016x}"
        attributes["otel.span_kind"] = span.kind.name
        opened.log_attributes(**attributes)
        opened.end(exception=_foreign_error(span))

    def shutdown(self) -> None:
        with self._lock:
            self._open.clear()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


def _foreign_error(span: ReadableSpan) -> ForeignSpanError | None:
    if span.status.status_code is not StatusCode.ERROR:
        return None
    for event in span.events:
        if event.name == "exception" and event.attributes:
            kind = event.attributes.get("exception.type", "")
            return ForeignSpanError(f"{kind}: {event.attributes.get('exception.message', '')}")
    return ForeignSpanError(span.status.description or "the span's status is ERROR")
