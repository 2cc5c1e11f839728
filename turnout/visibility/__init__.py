"""Spans and tracing under Burr's module names (``burr.visibility``,
``burr.visibility.tracing``); everything is defined in ``turnout.core.tracing``."""

from turnout.visibility.tracing import (
    ActionSpan,
    ActionSpanTracer,
    OpenSpan,
    SpanContext,
    TracerFactory,
    trace,
)

__all__ = ["ActionSpan", "ActionSpanTracer", "OpenSpan", "SpanContext", "TracerFactory", "trace"]
