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
- ``OpenTelemetryTracker`` and ``BurrTrackingSpanProcessor`` are Burr's tracker wrapper and span
  processor, with Burr's behaviour, for programs that build them by hand (``_burr_tracker``).
- ``library_spans(False)`` (or ``"auto"``) stops the LangChain, LlamaIndex and OpenAI adapters
  from recording their library's runs as spans where an OpenInference instrumentor exports
  them already, so a trace shows each model call once.
- ``capture_content(True)`` (or ``OpenTelemetryHook(capture_content=True)``, or
  ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true``) records the prompts and
  completions of those adapters' model calls on their LLM spans (GenAI and OpenInference
  names), bounded and optionally redacted (``ContentCapture``). Off by default.
- ``export_tracked`` (the ``turnout export-otel`` command) replays applications recorded by the
  ``LocalTracker`` to an OTLP/HTTP endpoint, with their original times, tree and attributes.

The tracer provider is passed in (default: the global one). Only Burr's switches
(``use_otel_tracing=True``, ``OpenTelemetryTracker``) install an SDK one when none is set, as
Burr does.
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

from typing import Any

from turnout.integrations._content import ContentCapture, capture_content
from turnout.integrations._spans import library_spans
from turnout.integrations.opentelemetry import _burr_tracker
from turnout.integrations.opentelemetry._bridge import ForeignSpanError, TurnoutSpanProcessor
from turnout.integrations.opentelemetry._burr import OpenTelemetryBridge, init_instruments
from turnout.integrations.opentelemetry._burr_tracker import (
    BurrTrackingSpanProcessor,
    FullSpanContext,
    OpenTelemetryTracker,
    convert_to_otel_attribute,
    span_map,
    token_stack,
    tracker_context,
)
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

# Burr's span-cache helpers, which its processor and tracker look up here at call time: served
# by __getattr__, so `mock.patch("turnout.integrations.opentelemetry.get_cached_span")` shadows
# one for a while and leaves the real one in place afterwards, whatever the patcher restores.
_PATCHABLE = frozenset({"cache_span", "get_cached_span", "initialize_tracer", "uncache_span"})


def __getattr__(name: str) -> Any:
    if name in _PATCHABLE:
        return getattr(_burr_tracker, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "DEFAULT_ENDPOINT",
    "BurrTrackingSpanProcessor",
    "ContentCapture",
    "ExportSummary",
    "ForeignSpanError",
    "FullSpanContext",
    "OpenTelemetryBridge",
    "OpenTelemetryHook",
    "OpenTelemetryTracker",
    "TurnoutSpanProcessor",
    "cache_span",
    "capture_content",
    "convert_to_otel_attribute",
    "default_endpoint",
    "export_tracked",
    "get_cached_span",
    "init_instruments",
    "initialize_tracer",
    "library_spans",
    "otel_value",
    "span_map",
    "to_json",
    "token_stack",
    "tracker_context",
    "uncache_span",
]
