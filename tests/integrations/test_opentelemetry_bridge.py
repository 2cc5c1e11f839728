"""The OpenTelemetry reverse bridge: foreign spans in the local tracker; a real instrumentor."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("opentelemetry.sdk")

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tests.integrations.otel_spans import by_name, parent_of, sid
from turnout import ApplicationBuilder, State, TracerFactory, action
from turnout.core.tracking import LocalTracker, read_log
from turnout.integrations.opentelemetry import OpenTelemetryHook, TurnoutSpanProcessor


def _library_call(provider: TracerProvider, name: str) -> None:
    """What an instrumented library does: a span under whatever span is current."""
    with provider.get_tracer("some.library").start_as_current_span(name):
        pass


def _tracked_app(act: Any, name: str, app_id: str, tracker: LocalTracker, *hooks: Any) -> Any:
    """An application of the one action ``act``, called ``name``, logged by ``tracker``."""
    return (
        ApplicationBuilder()
        .with_actions(**{name: act})
        .with_transitions()
        .with_entrypoint(name)
        .with_identifiers(app_id=app_id)
        .with_tracker(tracker)
        .with_hooks(*hooks)
        .build()
    )


# -- the reverse bridge ---------------------------------------------------------------------------


def test_foreign_spans_in_a_step_are_recorded_in_the_local_tracker(
    otel: Any, tmp_path: Path
) -> None:
    provider, exporter = otel
    provider.add_span_processor(TurnoutSpanProcessor())
    library = provider.get_tracer("some.library")

    @action(reads=[], writes=["x"])
    def act(state: State, __tracer: TracerFactory) -> State:
        with (
            library.start_as_current_span("chain", attributes={"k": "v"}),
            library.start_as_current_span("llm") as llm,
        ):
            llm.set_attribute("gen_ai.usage.input_tokens", 5)
            llm.set_attribute("tags", ["x", "y"])
        with __tracer("mine"):
            try:
                with library.start_as_current_span("tool"):
                    raise OSError("disk full")
            except OSError:
                pass
        return state.update(x=1)

    library.start_span("outside any step").end()
    tracker = LocalTracker("bridge", tmp_path)
    app = _tracked_app(act, "act", "bridged", tracker, OpenTelemetryHook(provider))
    app.run()
    records = list(read_log(tracker.log_path("bridged")))
    starts = {r["span"]: r for r in records if r["t"] == "span_start"}
    names = {r["name"]: uid for uid, r in starts.items()}
    assert sorted(names) == ["chain", "llm", "mine", "tool"]
    assert starts[names["llm"]]["parent"] == names["chain"]
    assert starts[names["tool"]]["parent"] == names["mine"]
    assert starts[names["chain"]]["parent"] is None
    attrs = {(r["span"], r["key"]): r["value"] for r in records if r["t"] == "attr"}
    assert attrs[(names["llm"], "gen_ai.usage.input_tokens")] == 5
    assert attrs[(names["llm"], "tags")] == ["x", "y"]
    assert attrs[(names["chain"], "k")] == "v"
    exported = {s.name: s for s in exporter.get_finished_spans()}
    assert attrs[(names["llm"], "otel.span_id")] == f"{sid(exported['llm']):016x}"
    ends = {r["span"]: r for r in records if r["t"] == "span_end"}
    assert ends[names["tool"]]["error"] == "ForeignSpanError: OSError: disk full"
    assert ends[names["llm"]]["error"] is None
    # Each span is exported once: the bridged copies are not exported again.
    spans = exporter.get_finished_spans()
    assert sorted(s.name for s in spans) == sorted(
        ["turnout.run", "act", "chain", "llm", "mine", "tool", "outside any step"]
    )
    assert parent_of(exported["chain"]) == sid(exported["act"])
    assert parent_of(exported["tool"]) == sid(exported["mine"])


def test_the_bridge_records_foreign_spans_without_the_export_hook(
    otel: Any, tmp_path: Path
) -> None:
    provider, _ = otel
    provider.add_span_processor(TurnoutSpanProcessor())

    @action(reads=[], writes=["x"])
    async def act(state: State) -> State:
        await asyncio.to_thread(_library_call, provider, "threaded")
        return state.update(x=1)

    tracker = LocalTracker("bridge", tmp_path)
    app = _tracked_app(act, "act", "alone", tracker)
    asyncio.run(app.arun())
    records = list(read_log(tracker.log_path("alone")))
    assert [(r["t"], r.get("name")) for r in records if r["t"].startswith("span")] == [
        ("span_start", "threaded"),
        ("span_end", None),
    ]


# -- a real instrumentor --------------------------------------------------------------------------


@pytest.fixture
def langchain_instrumented(otel: Any) -> Iterator[tuple[TracerProvider, InMemorySpanExporter]]:
    """The OpenInference LangChain instrumentor on the test provider, removed afterwards."""
    pytest.importorskip("langchain_core")
    instrumentation = pytest.importorskip("openinference.instrumentation.langchain")
    instrumentor = instrumentation.LangChainInstrumentor()
    instrumentor.instrument(tracer_provider=otel[0])
    yield otel
    instrumentor.uninstrument()


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_an_instrumented_langchain_model_nests_under_the_step_and_is_tracked(
    langchain_instrumented: Any, tmp_path: Path, mode: str
) -> None:
    from langchain_core.language_models.fake_chat_models import GenericFakeChatModel

    provider, exporter = langchain_instrumented
    provider.add_span_processor(TurnoutSpanProcessor())
    model = GenericFakeChatModel(messages=iter(["hello there"]))

    @action(reads=[], writes=["reply"])
    def chat(state: State) -> State:
        return state.update(reply=model.invoke("hi").content)

    @action(reads=[], writes=["reply"])
    async def achat(state: State) -> State:
        return state.update(reply=(await model.ainvoke("hi")).content)

    tracker = LocalTracker("lc", tmp_path)
    app = _tracked_app(
        chat if mode == "sync" else achat, "chat", "lc-app", tracker, OpenTelemetryHook(provider)
    )
    if mode == "sync":
        app.step()
    else:
        asyncio.run(app.astep())
    assert app.state["reply"] == "hello there"
    spans = exporter.get_finished_spans()
    llm, step = by_name(spans, "GenericFakeChatModel"), by_name(spans, "chat")
    assert parent_of(llm) == sid(step)
    assert llm.attributes is not None
    assert llm.attributes["openinference.span.kind"] == "LLM"
    records = list(read_log(tracker.log_path("lc-app")))
    (start,) = [r for r in records if r["t"] == "span_start"]
    assert start["name"] == "GenericFakeChatModel"
    kinds = [r["value"] for r in records if r.get("key") == "openinference.span.kind"]
    assert kinds == ["LLM"]
