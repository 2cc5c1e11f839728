"""Burr's ``with_tracker(..., use_otel_tracing=True)`` on turnout: the steps go to OpenTelemetry
and the spans of instrumented libraries go to the tracker (issue 13, item 4)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("opentelemetry.sdk")

from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import turnout.integrations.opentelemetry  # noqa: F401 - provides use_otel_tracing, as Burr's import would
from turnout.core import ApplicationBuilder, State, action
from turnout.core.tracking import LocalTracker, read_log


@action(reads=[], writes=["answer"])
def ask(state: State) -> State:
    library = trace.get_tracer_provider().get_tracer("some.llm.library")
    with library.start_as_current_span("llm.call"):
        pass
    return state.update(answer=42)


def test_use_otel_tracing_sends_steps_to_otel_and_library_spans_to_the_tracker(
    otel_exporter: InMemorySpanExporter, tmp_path: Path
) -> None:
    tracker = LocalTracker("otel-switch", tmp_path)
    app = (
        ApplicationBuilder()
        .with_actions(ask)
        .with_entrypoint("ask")
        .with_identifiers(app_id="otel-switch-app")
        .with_tracker(tracker, use_otel_tracing=True)
        .build()
    )
    app.run(halt_after=["ask"])
    exported = {span.name: span for span in otel_exporter.get_finished_spans()}
    assert {"ask", "llm.call"} <= set(exported)
    step = exported["ask"]
    assert exported["llm.call"].parent is not None
    assert exported["llm.call"].parent.span_id == step.context.span_id  # nested under the step
    records = list(read_log(tracker.log_path("otel-switch-app")))
    recorded = [r["name"] for r in records if r["t"] == "span_start"]
    assert recorded == ["llm.call"]


def test_the_span_processor_is_added_once_per_provider(
    otel_exporter: InMemorySpanExporter, tmp_path: Path
) -> None:
    def build(app_id: str) -> Any:
        return (
            ApplicationBuilder()
            .with_actions(ask)
            .with_entrypoint("ask")
            .with_identifiers(app_id=app_id)
            .with_tracker(LocalTracker("otel-switch", tmp_path), use_otel_tracing=True)
            .build()
        )

    build("first").run(halt_after=["ask"])
    build("second").run(halt_after=["ask"])
    records = list(read_log(LocalTracker("otel-switch", tmp_path).log_path("second")))
    assert [r["name"] for r in records if r["t"] == "span_start"] == ["llm.call"]
