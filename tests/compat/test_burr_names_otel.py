"""Burr's names in its OpenTelemetry integration: ``OpenTelemetryBridge``, ``init_instruments``."""

from __future__ import annotations

import importlib.metadata
from typing import Any, ClassVar

import pytest

pytest.importorskip("opentelemetry.sdk")

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from turnout.core.application import ApplicationBuilder
from turnout.core.errors import TrackingWarning
from turnout.core.state import State
from turnout.integrations.opentelemetry import (
    OpenTelemetryBridge,
    OpenTelemetryHook,
    init_instruments,
)

from turnout.core import action  # isort: skip


class FakeInstrumentor:
    """Stands for an installed instrumentation package's instrumentor."""

    calls: ClassVar[list[str]] = []
    done: ClassVar[bool] = False

    @property
    def is_instrumented_by_opentelemetry(self) -> bool:
        return FakeInstrumentor.done

    def instrument(self, **kwargs: Any) -> None:
        FakeInstrumentor.calls.append("instrument")
        FakeInstrumentor.done = True


@pytest.fixture
def installed(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """One instrumentor installed, announced as ``chromadb`` (Burr calls it ``chroma``)."""
    FakeInstrumentor.calls = []
    FakeInstrumentor.done = False
    point = importlib.metadata.EntryPoint(
        name="chromadb",
        value=f"{__name__}:FakeInstrumentor",
        group="opentelemetry_instrumentor",
    )

    def entry_points(**selection: Any) -> Any:
        return [point] if selection.get("group") == "opentelemetry_instrumentor" else []

    monkeypatch.setattr(importlib.metadata, "entry_points", entry_points)
    return FakeInstrumentor.calls


@action(reads=["count"], writes=["count"])
def counter(state: State) -> State:
    return state.update(count=state["count"] + 1)


def test_opentelemetry_bridge_exports_steps_through_the_tracer_it_is_given() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    bridge = OpenTelemetryBridge(tracer=provider.get_tracer("burr-app"))
    app = (
        ApplicationBuilder()
        .with_actions(counter=counter)
        .with_transitions()
        .with_state(count=0)
        .with_entrypoint("counter")
        .with_hooks(bridge)
        .build()
    )
    app.step()
    spans = exporter.get_finished_spans()
    assert "counter" in [s.name for s in spans]
    assert {s.instrumentation_scope.name for s in spans if s.instrumentation_scope} == {"burr-app"}


def test_opentelemetry_bridge_is_the_hook() -> None:
    assert isinstance(OpenTelemetryBridge(), OpenTelemetryHook)


def test_init_instruments_instruments_a_named_library_once(installed: list[str]) -> None:
    init_instruments("chromadb")
    init_instruments("chromadb")
    assert installed == ["instrument"]


def test_init_instruments_finds_burrs_short_name(installed: list[str]) -> None:
    init_instruments("chroma")
    assert installed == ["instrument"]


def test_init_instruments_with_init_all_instruments_every_installed_one(
    installed: list[str],
) -> None:
    init_instruments(init_all=True)
    assert installed == ["instrument"]


def test_init_instruments_warns_about_a_library_that_is_not_installed(
    installed: list[str],
) -> None:
    with pytest.warns(TrackingWarning, match="opentelemetry-instrumentation-openai"):
        init_instruments("openai")
    assert installed == []
