"""Spans of other instrumentation nest under turnout's step span: the OpenInference
instrumentors of openai and of LlamaIndex (LangChain's is in test_opentelemetry_bridge.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("opentelemetry.sdk")

from opentelemetry.sdk.trace import ReadableSpan

from turnout import ApplicationBuilder
from turnout.integrations.opentelemetry import OpenTelemetryHook


def _app(act: Any, name: str, provider: Any, **state: Any) -> Any:
    return (
        ApplicationBuilder()
        .with_actions(**{name: act})
        .with_transitions((name, name))
        .with_state(**state)
        .with_entrypoint(name)
        .with_hooks(OpenTelemetryHook(provider))
        .build()
    )


def _ancestors(span: ReadableSpan, spans: list[ReadableSpan]) -> list[str]:
    by_id = {s.context.span_id: s for s in spans}
    names = []
    parent = span.parent
    while parent is not None and parent.span_id in by_id:
        names.append(by_id[parent.span_id].name)
        parent = by_id[parent.span_id].parent
    return names


@pytest.fixture
def openai_instrumented(otel: Any) -> Iterator[Any]:
    pytest.importorskip("openai")
    instrumentation = pytest.importorskip("openinference.instrumentation.openai")
    instrumentor = instrumentation.OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=otel[0])
    yield otel
    instrumentor.uninstrument()


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_the_openai_instrumentors_llm_span_nests_under_the_step(
    openai_instrumented: Any, mode: str
) -> None:
    import openai

    from turnout.integrations.openai import chat_action
    from turnout.testing import FakeOpenAIServer

    provider, exporter = openai_instrumented
    with FakeOpenAIServer(lambda request: "tides turn") as server:
        kind = openai.OpenAI if mode == "sync" else openai.AsyncOpenAI
        client = kind(base_url=server.base_url, api_key="test", max_retries=0)
        app = _app(
            chat_action(client, model="fake-model"),
            "ask",
            provider,
            messages=[{"role": "user", "content": "why?"}],
        )
        if mode == "sync":
            app.step()
            client.close()
        else:

            async def run() -> None:
                await app.astep()
                await client.close()

            asyncio.run(run())
    spans = list(exporter.get_finished_spans())
    llm = [s for s in spans if (s.attributes or {}).get("openinference.span.kind") == "LLM"]
    instrumented = [s for s in llm if s.instrumentation_scope.name.startswith("openinference")]
    assert len(instrumented) == 1
    ancestors = _ancestors(instrumented[0], spans)
    assert "ask" in ancestors  # the step span (via the adapter's own `chat <model>` span)
    assert ancestors[-1] == f"turnout.{'step' if mode == 'sync' else 'astep'}"
    assert len({s.context.trace_id for s in spans}) == 1


@pytest.fixture
def llamaindex_instrumented(otel: Any) -> Iterator[Any]:
    pytest.importorskip("llama_index.core")
    instrumentation = pytest.importorskip("openinference.instrumentation.llama_index")
    instrumentor = instrumentation.LlamaIndexInstrumentor()
    instrumentor.instrument(tracer_provider=otel[0])
    yield otel
    instrumentor.uninstrument()


# The instrumentor (4.6.1) calls pydantic's deprecated `.json()` on LLM metadata; turned into an
# error by this suite's filterwarnings, it would make LlamaIndex drop the instrumentor's LLM span.
@pytest.mark.filterwarnings("ignore:The `json` method is deprecated")
def test_the_llamaindex_instrumentors_spans_nest_under_the_step(
    llamaindex_instrumented: Any,
) -> None:
    from llama_index.core import Document, VectorStoreIndex
    from llama_index.core.embeddings import MockEmbedding
    from llama_index.core.llms import MockLLM

    from turnout.integrations.llamaindex import query_action

    provider, exporter = llamaindex_instrumented
    index = VectorStoreIndex.from_documents(
        [Document(text="Cats purr."), Document(text="Stocks fell.")],
        embed_model=MockEmbedding(embed_dim=8),
    )
    engine = index.as_query_engine(llm=MockLLM(max_tokens=3), similarity_top_k=1)
    app = _app(query_action(engine), "answer", provider, query="what purrs?")
    exporter.clear()  # building the index made spans of its own, outside any step
    app.step()
    spans = list(exporter.get_finished_spans())
    foreign = [s for s in spans if s.instrumentation_scope.name.startswith("openinference")]
    kinds = {(s.attributes or {}).get("openinference.span.kind") for s in foreign}
    assert {"RETRIEVER", "LLM"} <= kinds
    for span in foreign:
        assert "answer" in _ancestors(span, spans), span.name
    assert len({s.context.trace_id for s in spans}) == 1


@pytest.fixture
def spans_setting() -> Iterator[None]:
    """Put the process-wide ``library_spans`` setting back after the test."""
    from turnout.integrations.opentelemetry import library_spans

    before = library_spans()
    yield
    library_spans(before)


@pytest.mark.parametrize("setting", [False, "auto"])
def test_library_spans_off_leaves_the_model_call_to_the_instrumentor(
    openai_instrumented: Any, spans_setting: None, setting: Any
) -> None:
    import openai

    from turnout.integrations.openai import chat_action
    from turnout.integrations.opentelemetry import library_spans
    from turnout.testing import FakeOpenAIServer

    provider, exporter = openai_instrumented
    library_spans(setting)
    with FakeOpenAIServer(lambda request: "tides turn") as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="test", max_retries=0)
        app = _app(
            chat_action(client, model="fake-model"),
            "ask",
            provider,
            messages=[{"role": "user", "content": "why?"}],
        )
        app.step()
        client.close()
    spans = list(exporter.get_finished_spans())
    llm = [s for s in spans if (s.attributes or {}).get("openinference.span.kind") == "LLM"]
    assert [s.instrumentation_scope.name.split(".")[0] for s in llm] == ["openinference"]
    assert not [s for s in spans if s.name == "chat fake-model"]  # the adapter's own span
    assert _ancestors(llm[0], spans)[0] == "ask"  # directly under the step now


def test_library_spans_auto_keeps_the_adapters_spans_without_an_instrumentor(
    otel: Any, spans_setting: None
) -> None:
    import openai

    from turnout.integrations.openai import chat_action
    from turnout.integrations.opentelemetry import library_spans
    from turnout.testing import FakeOpenAIServer

    provider, exporter = otel
    library_spans("auto")
    with FakeOpenAIServer(lambda request: "tides turn") as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="test", max_retries=0)
        app = _app(chat_action(client, model="m"), "ask", provider, messages=[])
        app.step()
        client.close()
    assert [s.name for s in exporter.get_finished_spans()].count("chat m") == 1
    with pytest.raises(ValueError, match="give True, False or 'auto'"):
        library_spans("sometimes")  # type: ignore[arg-type]
