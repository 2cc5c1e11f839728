"""Spans and tracing under the module name Burr users import them from (``burr.visibility``).

Everything here is defined in ``turnout.core.tracing``.
"""

from turnout.core.tracing import ActionSpan, OpenSpan, SpanContext, TracerFactory, trace

__all__ = ["ActionSpan", "OpenSpan", "SpanContext", "TracerFactory", "trace"]
