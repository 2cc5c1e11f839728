"""Burr's ``with_tracker(..., use_otel_tracing=True)``: the hooks this adapter gives the core.

Importing the adapter registers ``otel_tracing_hooks`` with the builder
(``turnout.core.builder.register_otel_tracing``); the core never imports the adapter itself.
"""

from __future__ import annotations

import weakref
from typing import Any

from opentelemetry.sdk.trace import TracerProvider

from turnout.integrations.opentelemetry._bridge import TurnoutSpanProcessor
from turnout.integrations.opentelemetry._common import global_provider_with
from turnout.integrations.opentelemetry._hook import OpenTelemetryHook

__all__ = ["otel_tracing_hooks"]

_BRIDGED: weakref.WeakSet[TracerProvider] = weakref.WeakSet()


def otel_tracing_hooks() -> list[Any]:
    """What ``use_otel_tracing=True`` adds, both ways, as Burr's switch does: an
    ``OpenTelemetryHook`` exporting the application's calls, steps and spans to the global
    tracer provider, and (once per provider) a ``TurnoutSpanProcessor`` on it recording the
    spans of instrumented libraries in the tracker. Like Burr, it installs an SDK
    ``TracerProvider`` as the global one when none is set."""
    provider = global_provider_with(TurnoutSpanProcessor, _BRIDGED)
    return [OpenTelemetryHook(provider)]
