"""Spans and tracing under Burr's module name (``burr.visibility.tracing``).

Everything here is defined in ``turnout.core.tracing``. ``ActionSpanTracer`` is Burr's name for
what ``__tracer("name")`` returns (``SpanContext`` here): a context manager around one span.
"""

from turnout.core.tracing import ActionSpan, OpenSpan, SpanContext, TracerFactory, trace

ActionSpanTracer = SpanContext

__all__ = ["ActionSpan", "ActionSpanTracer", "OpenSpan", "SpanContext", "TracerFactory", "trace"]
