"""Burr's ``OpenTelemetryTracker`` and ``BurrTrackingSpanProcessor`` on turnout applications:
every hook reaches the wrapped tracker, steps and ``__tracer`` spans become OpenTelemetry spans,
and spans opened under them (an instrumented library's) reach the tracker with their
attributes, nested where they were opened."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("opentelemetry.sdk")

from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from turnout.core import ApplicationBuilder, State, action
from turnout.core.tracking import LocalTracker, read_log
from turnout.integrations.opentelemetry import (
    BurrTrackingSpanProcessor,
    OpenTelemetryTracker,
    convert_to_otel_attribute,
    span_map,
)
from turnout.visibility import TracerFactory


@action(reads=["n"], writes=["n"])
def work(state: State, __tracer: TracerFactory) -> State:
    library = trace.get_tracer_provider().get_tracer("some.llm.library")
    with __tracer("prepare"), library.start_as_current_span("llm.call") as span:
        span.set_attribute("gen_ai.usage.input_tokens", 12)
    return state.update(n=state["n"] + 1)


def _app(tracker: Any, app_id: str) -> Any:
    return (
        ApplicationBuilder()
        .with_actions(work)
        .with_transitions(("work", "work"))
        .with_state(n=0)
        .with_entrypoint("work")
        .with_identifiers(app_id=app_id)
        .with_tracker(tracker)
        .build()
    )


def test_steps_and_spans_reach_otel_and_the_wrapped_tracker(
    otel_exporter: InMemorySpanExporter, tmp_path: Path
) -> None:
    local = LocalTracker("burr-otel", tmp_path)
    app = _app(OpenTelemetryTracker(burr_tracker=local), "app-1")
    app.step()
    app.step()

    exported = [s for s in otel_exporter.get_finished_spans() if s.name == "work"]
    assert len(exported) == 2
    calls = {s.name: s for s in otel_exporter.get_finished_spans() if s.name == "llm.call"}
    prepare = {
        s.context.span_id: s for s in otel_exporter.get_finished_spans() if s.name == "prepare"
    }
    assert calls["llm.call"].parent is not None
    assert calls["llm.call"].parent.span_id in prepare  # nested where it was opened

    records = list(read_log(local.log_path("app-1")))
    assert [r["t"] for r in records].count("end") == 2  # both steps, through the wrapper
    starts = [
        (r["seq"], r["span"], r["parent"], r["name"]) for r in records if r["t"] == "span_start"
    ]
    assert starts == [
        (0, "0:0", None, "prepare"),
        (0, "0:0.0", "0:0", "llm.call"),
        (1, "1:0", None, "prepare"),
        (1, "1:0.0", "1:0", "llm.call"),
    ]
    tokens = [r for r in records if r["t"] == "attr" and r["key"] == "gen_ai.usage.input_tokens"]
    assert [(r["span"], r["value"]) for r in tokens] == [("0:0.0", 12), ("1:0.0", 12)]
    assert not span_map  # every span left the cache when it ended


def test_a_failed_step_ends_its_span_with_an_error(
    otel_exporter: InMemorySpanExporter, tmp_path: Path
) -> None:
    @action(reads=[], writes=[])
    def broken(state: State) -> State:
        raise ValueError("no")

    app = (
        ApplicationBuilder()
        .with_actions(broken)
        .with_entrypoint("broken")
        .with_tracker(OpenTelemetryTracker(burr_tracker=LocalTracker("burr-otel", tmp_path)))
        .build()
    )
    with pytest.raises(ValueError, match="no"):
        app.step()
    (span,) = otel_exporter.get_finished_spans()
    assert span.status.status_code is trace.StatusCode.ERROR
    assert not span_map


def test_the_tracker_copies_for_children_with_a_copy_of_the_wrapped_one(
    otel_exporter: InMemorySpanExporter, tmp_path: Path
) -> None:
    local = LocalTracker("burr-otel", tmp_path)
    copied = OpenTelemetryTracker(burr_tracker=local).copy()
    assert isinstance(copied, OpenTelemetryTracker)
    assert isinstance(copied.burr_tracker, LocalTracker)
    assert copied.burr_tracker is not local


def test_the_processor_is_added_to_the_provider_once(
    otel_exporter: InMemorySpanExporter, tmp_path: Path
) -> None:
    OpenTelemetryTracker(burr_tracker=LocalTracker("burr-otel", tmp_path))
    OpenTelemetryTracker(burr_tracker=LocalTracker("burr-otel", tmp_path))
    sdk = trace.get_tracer_provider()
    processors = sdk._active_span_processor._span_processors  # type: ignore[attr-defined]
    assert sum(isinstance(p, BurrTrackingSpanProcessor) for p in processors) == 1


class _Model:
    def __str__(self) -> str:
        return "model-text"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("text", "text"),
        (3, 3),
        ((1, 2), [1, 2]),
        (["a", "b"], ["a", "b"]),
        ([1, "a"], json.dumps([1, "a"])),
        ({"k": 1}, json.dumps({"k": 1})),
        (_Model(), json.dumps("model-text")),
    ],
    ids=["str", "int", "int-tuple", "str-list", "mixed-list", "dict", "object"],
)
def test_convert_to_otel_attribute(value: Any, expected: Any) -> None:
    assert convert_to_otel_attribute(value) == expected


@action(reads=["n"], writes=["n"])
async def work_async(state: State, __tracer: TracerFactory) -> State:
    library = trace.get_tracer_provider().get_tracer("some.llm.library")
    async with __tracer("prepare"):
        with library.start_as_current_span("llm.call"):
            await asyncio.sleep(0)
    return state.update(n=state["n"] + 1)


def test_async_steps_and_spans_reach_otel_and_the_wrapped_tracker(
    otel_exporter: InMemorySpanExporter, tmp_path: Path
) -> None:
    local = LocalTracker("burr-otel", tmp_path)

    async def main() -> None:
        app = await (
            ApplicationBuilder()
            .with_actions(work_async)
            .with_transitions(("work_async", "work_async"))
            .with_state(n=0)
            .with_entrypoint("work_async")
            .with_identifiers(app_id="async-1")
            .with_tracker(OpenTelemetryTracker(burr_tracker=local))
            .abuild()
        )
        await app.astep()

    asyncio.run(main())
    assert sorted(s.name for s in otel_exporter.get_finished_spans()) == [
        "llm.call",
        "prepare",
        "work_async",
    ]
    records = list(read_log(local.log_path("async-1")))
    starts = [(r["span"], r["parent"], r["name"]) for r in records if r["t"] == "span_start"]
    assert starts == [("0:0", None, "prepare"), ("0:0.0", "0:0", "llm.call")]
    assert not span_map
