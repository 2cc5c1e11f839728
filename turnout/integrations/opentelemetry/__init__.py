"""OpenTelemetry for turnout: export runs as spans, record foreign spans, replay tracked apps.

- ``OpenTelemetryHook`` (a hook for ``ApplicationBuilder.with_hooks``) exports every application
  call (``run``, ``step``, ``iterate``...), every step attempt and every ``__tracer`` span as
  OpenTelemetry spans, nested call > step > span, with ``turnout.*``, ``session.id``, the GenAI
  (``gen_ai.*``) attributes the step logged and OpenInference span kinds. While a step's action
  runs its span is the current OpenTelemetry span, so instrumented libraries nest under it.
- ``TurnoutSpanProcessor`` is the reverse bridge: added to a ``TracerProvider``, it records the
  spans other instrumentation creates during a step as turnout spans, so the local tracker (and
  the UI) shows them too.
- ``OpenTelemetryBridge`` and ``init_instruments`` are Burr's names: the hook with Burr's
  arguments, and switching on installed OpenTelemetry instrumentors (openai, requests...) by name.
- ``export_tracked`` (the ``turnout export-otel`` command) replays applications recorded by the
  ``LocalTracker`` to an OTLP/HTTP endpoint, with their original times, tree and attributes.

The tracer provider is always passed in (default: the global one); nothing here installs one.
"""

from __future__ import annotations

from turnout.core.builder import register_otel_tracing
from turnout.integrations._guard import missing_extra

try:
    import opentelemetry.exporter.otlp.proto.http.trace_exporter
    import opentelemetry.sdk.trace
    import opentelemetry.trace  # noqa: F401
except ImportError as _error:  # pragma: no cover - exercised in a subprocess
    raise missing_extra(
        "turnout.integrations.opentelemetry", 'pip install "turnout[opentelemetry]"', _error
    ) from _error

from turnout.integrations.opentelemetry._bridge import ForeignSpanError, TurnoutSpanProcessor
from turnout.integrations.opentelemetry._burr import OpenTelemetryBridge, init_instruments
from turnout.integrations.opentelemetry._common import otel_value, to_json
from turnout.integrations.opentelemetry._hook import OpenTelemetryHook
from turnout.integrations.opentelemetry._replay import (
    DEFAULT_ENDPOINT,
    ExportSummary,
    default_endpoint,
    export_tracked,
)
from turnout.integrations.opentelemetry._switch import otel_tracing_hooks

register_otel_tracing(otel_tracing_hooks)  # for with_tracker(..., use_otel_tracing=True)

__all__ = [
    "DEFAULT_ENDPOINT",
    "ExportSummary",
    "ForeignSpanError",
    "OpenTelemetryBridge",
    "OpenTelemetryHook",
    "TurnoutSpanProcessor",
    "default_endpoint",
    "export_tracked",
    "init_instruments",
    "otel_value",
    "to_json",
]
