"""Burr's names in its OpenTelemetry integration: ``OpenTelemetryBridge`` (the hook, with Burr's
arguments) and ``init_instruments`` (switch on installed OpenTelemetry instrumentors by name)."""

from __future__ import annotations

import importlib.metadata
import warnings
from typing import Any

from opentelemetry import trace

from turnout.core.errors import TrackingWarning
from turnout.integrations.opentelemetry._hook import OpenTelemetryHook

__all__ = ["OpenTelemetryBridge", "init_instruments"]

# Instrumentation packages announce their instrumentor under this entry-point group.
_GROUP = "opentelemetry_instrumentor"


class OpenTelemetryBridge(OpenTelemetryHook):
    """Burr's name for ``OpenTelemetryHook``, taking Burr's arguments: ``tracer_name`` (the
    instrumentation scope, default ``"turnout"``) or a ready ``tracer``; spans go to the global
    tracer provider otherwise."""

    def __init__(self, tracer_name: str | None = None, tracer: trace.Tracer | None = None) -> None:
        super().__init__(tracer_name=tracer_name or "turnout")
        if tracer is not None:
            self._tracer = tracer


def _key(name: str) -> str:
    return name.lower().replace("-", "").replace("_", "")


def _installed() -> dict[str, importlib.metadata.EntryPoint]:
    """Installed instrumentors by normalised name (the entry point's and its module's last part)."""
    found: dict[str, importlib.metadata.EntryPoint] = {}
    for point in importlib.metadata.entry_points(group=_GROUP):
        found.setdefault(_key(point.name), point)
        found.setdefault(_key(point.value.split(":")[0].rsplit(".", 1)[-1]), point)
    return found


def _find(name: str, installed: dict[str, importlib.metadata.EntryPoint]) -> Any:
    key = _key(name)
    if key in installed:
        return installed[key]
    # Burr's short names ("chroma", "mistral") for packages named longer ("chromadb", "mistralai").
    longer = {point.name: point for k, point in installed.items() if k.startswith(key)}
    return next(iter(longer.values())) if len(longer) == 1 else None


def init_instruments(*instruments: str, init_all: bool = False) -> None:
    """Switch on OpenTelemetry instrumentation of libraries by name (``"openai"``,
    ``"requests"``, ...), or of every installed one with ``init_all=True``, so their calls are
    spans nested under the step that makes them.

    An instrumentor is found through the ``opentelemetry_instrumentor`` entry points that
    instrumentation packages install (``pip install opentelemetry-instrumentation-<name>``);
    a named one that is not installed is skipped with a ``TrackingWarning`` naming the package,
    as Burr skips it. Instrumenting twice is harmless.
    """
    installed = _installed()
    points = list({p.name: p for p in installed.values()}.values()) if init_all else []
    for name in instruments:
        point = _find(name, installed)
        if point is None:
            warnings.warn(
                f"init_instruments({name!r}): no OpenTelemetry instrumentor for {name!r} is "
                f"installed, so its calls are not traced; install it, e.g. pip install "
                f"opentelemetry-instrumentation-{name.replace('_', '-')}.",
                TrackingWarning,
                stacklevel=2,
            )
            continue
        points.append(point)
    for point in points:
        instrumentor = point.load()()
        if not getattr(instrumentor, "is_instrumented_by_opentelemetry", False):
            instrumentor.instrument()
