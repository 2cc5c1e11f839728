"""Opt-in prompt and completion content on the adapters' LLM spans, end to end: each adapter's
model call exported over OTLP/HTTP to the test receiver (and recorded by the local tracker)."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("opentelemetry.exporter.otlp.proto.http")

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from tests.integrations.otlp_sink import OTLPSink, SinkSpan, otlp_sink
from turnout import ApplicationBuilder
from turnout.core.tracking import LocalTracker, read_log
from turnout.integrations.opentelemetry import (
    ContentCapture,
    OpenTelemetryHook,
    capture_content,
)

__all__ = ["otlp_sink"]  # a fixture used by the tests below

ENV = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
CONVERSATION = [
    {"role": "user", "content": "What is the weather in Paris?"},
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "weather", "arguments": '{"city": "Paris"}'},
            }
        ],
    },
    {"role": "tool", "tool_call_id": "call_1", "content": "rainy, 14C"},
    {"role": "user", "content": "And should I take an umbrella?"},
]


@pytest.fixture(autouse=True)
def follow_the_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test starts with the variable unset and capture following it, and leaves it so."""
    monkeypatch.delenv(ENV, raising=False)
    capture_content("environment")
    yield
    capture_content("environment")


@pytest.fixture
def provider(otlp_sink: OTLPSink) -> Iterator[TracerProvider]:
    """A tracer provider exporting every span to the OTLP receiver as it ends."""
    made = TracerProvider()
    made.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=otlp_sink.endpoint)))
    yield made
    made.shutdown()


def _app(act: Any, hook: OpenTelemetryHook, tracker: Any = None, **state: Any) -> Any:
    builder = (
        ApplicationBuilder()
        .with_actions(ask=act)
        .with_transitions(("ask", "ask"))
        .with_state(**state)
        .with_entrypoint("ask")
        .with_hooks(hook)
        .with_identifiers(app_id="content-app")
    )
    if tracker is not None:
        builder = builder.with_tracker(tracker)
    return builder.build()


def _llm_spans(sink: OTLPSink) -> list[SinkSpan]:
    return [s for s in sink.spans if s.attributes.get("openinference.span.kind") == "LLM"]


CONTENT_PREFIXES = (
    "gen_ai.input.",
    "gen_ai.output.messages",
    "llm.input_messages",
    "llm.output_messages",
    "input.",
    "output.",
)


def _content_keys(span: SinkSpan) -> set[str]:
    return {key for key in span.attributes if key.startswith(CONTENT_PREFIXES)}


# -- OpenAI, against the fake OpenAI server ------------------------------------------------------


def _openai_call(
    provider: TracerProvider,
    sink: OTLPSink,
    *,
    mode: str = "sync",
    stream: bool = False,
    hook: OpenTelemetryHook | None = None,
    reply: Any = "Yes, take one.",
    tracker: Any = None,
    messages: list[dict[str, Any]] | None = None,
    api: str = "chat",
) -> SinkSpan:
    """One ``chat_action`` (or ``responses_action``) step with ``system=`` and
    ``CONVERSATION``; its exported LLM span."""
    openai = pytest.importorskip("openai")
    from turnout.integrations.openai import chat_action, responses_action
    from turnout.testing import FakeOpenAIServer

    make = chat_action if api == "chat" else responses_action

    hook = hook or OpenTelemetryHook(provider)
    with FakeOpenAIServer(lambda request: reply) as server:
        kind = openai.AsyncOpenAI if mode == "async" else openai.OpenAI
        client = kind(base_url=server.base_url, api_key="test", max_retries=0)
        act = make(client, model="m", system="Be brief.", stream=stream)
        app = _app(act, hook, tracker, messages=messages or CONVERSATION)

        async def astep() -> None:
            if stream:
                _action, container = await app.astream_result(halt_after=["ask"])
                async for _item in container:
                    pass
                await container.get()
            else:
                await app.astep()
            await client.close()

        if mode == "async":
            asyncio.run(astep())
        else:
            if stream:
                _action, container = app.stream_result(halt_after=["ask"])
                list(container)
                container.get()
            else:
                app.step()
            client.close()
    (span,) = _llm_spans(sink)
    assert span.name == "chat m"
    return span


def test_no_content_is_exported_by_default(provider: TracerProvider, otlp_sink: OTLPSink) -> None:
    span = _openai_call(provider, otlp_sink)
    assert span.attributes["gen_ai.usage.output_tokens"] > 0  # the span is there, with usage
    assert _content_keys(span) == set()


@pytest.mark.parametrize(
    ("api", "mode", "stream"),
    [
        ("chat", "sync", False),
        ("chat", "sync", True),
        ("chat", "async", True),
        ("responses", "sync", False),
        ("responses", "async", True),
    ],
)
def test_the_environment_variable_exports_genai_and_openinference_content(
    provider: TracerProvider,
    otlp_sink: OTLPSink,
    monkeypatch: pytest.MonkeyPatch,
    api: str,
    mode: str,
    stream: bool,
) -> None:
    monkeypatch.setenv(ENV, "True")
    attributes = _openai_call(provider, otlp_sink, mode=mode, stream=stream, api=api).attributes
    assert json.loads(attributes["gen_ai.input.messages"]) == [
        {"role": "system", "parts": [{"type": "text", "content": "Be brief."}]},
        {"role": "user", "parts": [{"type": "text", "content": "What is the weather in Paris?"}]},
        {
            "role": "assistant",
            "parts": [
                {
                    "type": "tool_call",
                    "id": "call_1",
                    "name": "weather",
                    "arguments": {"city": "Paris"},
                }
            ],
        },
        {
            "role": "tool",
            "parts": [{"type": "tool_call_response", "id": "call_1", "result": "rainy, 14C"}],
        },
        {
            "role": "user",
            "parts": [{"type": "text", "content": "And should I take an umbrella?"}],
        },
    ]
    assert json.loads(attributes["gen_ai.output.messages"]) == [
        {
            "role": "assistant",
            "parts": [{"type": "text", "content": "Yes, take one."}],
            "finish_reason": "stop",
        }
    ]
    # the OpenInference copies Phoenix's LLM panel reads
    assert attributes["llm.input_messages.0.message.role"] == "system"
    assert attributes["llm.input_messages.1.message.content"] == "What is the weather in Paris?"
    call = "llm.input_messages.2.message.tool_calls.0.tool_call"
    assert attributes[f"{call}.function.name"] == "weather"
    assert json.loads(attributes[f"{call}.function.arguments"]) == {"city": "Paris"}
    assert attributes["llm.input_messages.3.message.role"] == "tool"
    assert attributes["llm.input_messages.3.message.content"] == "rainy, 14C"
    assert attributes["llm.output_messages.0.message.role"] == "assistant"
    assert attributes["llm.output_messages.0.message.content"] == "Yes, take one."
    assert attributes["input.mime_type"] == "application/json"
    assert json.loads(attributes["input.value"]) == json.loads(attributes["gen_ai.input.messages"])
    assert (attributes["output.value"], attributes["output.mime_type"]) == (
        "Yes, take one.",
        "text/plain",
    )


def test_the_model_s_tool_calls_are_exported_as_output_parts(
    provider: TracerProvider, otlp_sink: OTLPSink
) -> None:
    from turnout.testing import FakeReply, FakeToolCall

    reply = FakeReply(tool_calls=(FakeToolCall(name="weather", arguments={"city": "Oslo"}),))
    hook = OpenTelemetryHook(provider, capture_content=True)
    attributes = _openai_call(provider, otlp_sink, hook=hook, reply=reply).attributes
    (message,) = json.loads(attributes["gen_ai.output.messages"])
    assert message["finish_reason"] == "tool_calls"
    assert [(p["type"], p["name"], p["arguments"]) for p in message["parts"]] == [
        ("tool_call", "weather", {"city": "Oslo"})
    ]
    call = "llm.output_messages.0.message.tool_calls.0.tool_call"
    assert attributes[f"{call}.function.name"] == "weather"
    assert attributes["output.mime_type"] == "application/json"


@pytest.mark.parametrize(
    ("variable", "argument", "captured"),
    [
        (None, True, True),
        (None, ContentCapture(), True),
        ("true", False, False),  # the hook's False beats the process-wide setting
        ("true", None, True),
        ("false", None, False),
        ("not-a-word", None, False),  # not understood: stays off (and says so in the log)
    ],
    ids=["hook-on", "hook-policy", "hook-off-beats-env", "env-on", "env-off", "env-unknown"],
)
def test_the_hook_argument_and_the_variable_decide(
    provider: TracerProvider,
    otlp_sink: OTLPSink,
    monkeypatch: pytest.MonkeyPatch,
    variable: str | None,
    argument: Any,
    captured: bool,
) -> None:
    if variable is not None:
        monkeypatch.setenv(ENV, variable)
    hook = OpenTelemetryHook(provider, capture_content=argument)
    span = _openai_call(provider, otlp_sink, hook=hook)
    assert ("gen_ai.input.messages" in span.attributes) is captured
    assert ("llm.output_messages.0.message.content" in span.attributes) is captured


def test_the_process_wide_switch_turns_capture_on_and_off(
    provider: TracerProvider, otlp_sink: OTLPSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert capture_content().enabled is False
    monkeypatch.setenv(ENV, "true")
    assert capture_content().enabled is True  # followed until set
    assert capture_content(False).enabled is False
    span = _openai_call(provider, otlp_sink)
    assert "gen_ai.input.messages" not in span.attributes
    otlp_sink.spans.clear()
    capture_content(True, max_total_chars=100)
    assert capture_content() == ContentCapture(max_total_chars=100)
    span = _openai_call(provider, otlp_sink)
    assert "gen_ai.output.messages" in span.attributes


def test_limits_cut_each_message_and_the_total_with_a_marker(
    provider: TracerProvider, otlp_sink: OTLPSink
) -> None:
    policy = ContentCapture(max_message_chars=12, max_total_chars=30)
    messages = [
        {"role": "user", "content": "a" * 20},
        {"role": "assistant", "content": "b" * 10},
        {"role": "user", "content": "c" * 10},
        {"role": "user", "content": "d" * 10},
    ]
    hook = OpenTelemetryHook(provider, capture_content=policy)
    attributes = _openai_call(
        provider, otlp_sink, hook=hook, messages=messages, reply="e" * 50
    ).attributes
    texts = [
        "".join(part.get("content", "") for part in message["parts"])
        for message in json.loads(attributes["gen_ai.input.messages"])
    ]
    # the system message (9) + 12 of the 20 a's + 9 b's reach the 30-character budget
    assert texts == [
        "Be brief.",
        "a" * 12 + "…[truncated 8 chars]",
        "b" * 9 + "…[truncated 1 chars]",
        "…[truncated 10 chars]",
        "…[truncated 10 chars]",
    ]
    assert attributes["turnout.input_content_truncated"] is True
    assert attributes["output.value"] == "e" * 12 + "…[truncated 38 chars]"
    assert attributes["llm.output_messages.0.message.content"] == attributes["output.value"]


def test_a_long_conversation_is_exported_whole_up_to_the_limits(
    provider: TracerProvider, otlp_sink: OTLPSink
) -> None:
    """The attribute's own 8 KiB cut would break the JSON: content is bounded by the policy."""
    messages = [{"role": "user", "content": f"{i:03d} " + "x" * 3_000} for i in range(5)]
    hook = OpenTelemetryHook(provider, capture_content=True)
    attributes = _openai_call(provider, otlp_sink, hook=hook, messages=messages).attributes
    sent = json.loads(attributes["gen_ai.input.messages"])  # whole, valid JSON
    assert len(attributes["gen_ai.input.messages"]) > 8_192
    assert [m["parts"][0]["content"][:3] for m in sent[1:]] == ["000", "001", "002", "003", "004"]
    assert sum(len(m["parts"][0]["content"]) for m in sent) < 16_000 + 5 * 30


def test_redact_changes_or_drops_each_message_before_export(
    provider: TracerProvider, otlp_sink: OTLPSink, tmp_path: Path
) -> None:
    seen: list[str] = []

    def redact(message: dict[str, Any]) -> dict[str, Any] | None:
        seen.append(message["role"])
        if message["role"] == "system":
            return None
        for part in message["parts"]:
            if part["type"] == "text":
                part["content"] = re.sub(r"Paris|Yes", "[city]", part["content"])
        return message

    tracker = LocalTracker("content", storage_dir=tmp_path)
    hook = OpenTelemetryHook(provider, capture_content=ContentCapture(redact=redact))
    attributes = _openai_call(provider, otlp_sink, hook=hook, tracker=tracker).attributes
    tracker.close()
    assert seen == ["system", "user", "assistant", "tool", "user", "assistant"]
    sent = json.loads(attributes["gen_ai.input.messages"])
    assert [m["role"] for m in sent] == ["user", "assistant", "tool", "user"]
    assert sent[0]["parts"][0]["content"] == "What is the weather in [city]?"
    assert attributes["output.value"] == "[city], take one."
    logged = [
        line["value"]
        for line in read_log(tracker.log_path("content-app"))
        if line["t"] == "attr" and line["key"] == "gen_ai.input.messages"
    ]
    assert logged == [attributes["gen_ai.input.messages"]]  # the tracker got the redacted copy
    attrs = [line for line in read_log(tracker.log_path("content-app")) if line["t"] == "attr"]
    assert "weather in Paris" not in json.dumps(attrs)  # nor in any other attribute


def test_a_failing_redact_withholds_the_text_and_the_step_goes_on(
    provider: TracerProvider, otlp_sink: OTLPSink, caplog: pytest.LogCaptureFixture
) -> None:
    def redact(message: dict[str, Any]) -> dict[str, Any]:
        raise RuntimeError("no")

    hook = OpenTelemetryHook(provider, capture_content=ContentCapture(redact=redact))
    attributes = _openai_call(provider, otlp_sink, hook=hook).attributes
    sent = json.loads(attributes["gen_ai.input.messages"])
    assert {m["parts"][0]["content"] for m in sent} == {
        "[content withheld: the redact callback failed]"
    }
    assert "Paris" not in json.dumps(attributes)
    assert "the redact callback failed" in caplog.text


def test_content_reaches_the_local_tracker_only_when_captured(
    provider: TracerProvider, otlp_sink: OTLPSink, tmp_path: Path
) -> None:
    keys = []
    for capture in (False, True):
        tracker = LocalTracker("content", storage_dir=tmp_path / str(capture))
        hook = OpenTelemetryHook(provider, capture_content=capture)
        _openai_call(provider, otlp_sink, hook=hook, tracker=tracker)
        otlp_sink.spans.clear()
        tracker.close()
        lines = read_log(tracker.log_path("content-app"))
        keys.append({line["key"] for line in lines if line["t"] == "attr"})
    off, on = keys
    assert not {k for k in off if "messages" in k or k.endswith(".value")}
    assert {"gen_ai.input.messages", "gen_ai.output.messages", "output.value"} <= on


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"max_message_chars": 0}, "max_message_chars=0"),
        ({"max_total_chars": "10"}, "max_total_chars='10'"),
        ({"redact": "strip"}, "redact='strip'"),
    ],
    ids=["zero-limit", "text-limit", "not-callable"],
)
def test_bad_policies_are_refused_naming_the_argument(bad: dict[str, Any], message: str) -> None:
    with pytest.raises((ValueError, TypeError), match=re.escape(message)):
        ContentCapture(**bad)


def test_bad_switch_values_are_refused() -> None:
    with pytest.raises(TypeError, match="give True, False, a ContentCapture"):
        capture_content("yes")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"capture_content='on'\): give True, False, None"):
        OpenTelemetryHook(capture_content="on")  # type: ignore[arg-type]


# -- LangChain, with its offline fake chat model -------------------------------------------------


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_langchain_model_runs_export_their_messages(
    provider: TracerProvider, otlp_sink: OTLPSink, mode: str
) -> None:
    pytest.importorskip("langchain_core")
    from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
    from langchain_core.messages import AIMessage
    from langchain_core.prompts import ChatPromptTemplate

    from turnout.integrations.langchain import RunnableAction

    prompt = ChatPromptTemplate.from_messages([("system", "You rhyme."), ("human", "{topic}")])
    model = GenericFakeChatModel(messages=iter([AIMessage(content="moon, June")]))
    act = RunnableAction(prompt | model, {"topic": "topic"}, "answer", is_async=mode == "async")
    hook = OpenTelemetryHook(provider, capture_content=True)
    app = _app(act, hook, topic="the sky")
    if mode == "async":
        asyncio.run(app.astep())
    else:
        app.step()
    (span,) = _llm_spans(otlp_sink)
    assert span.name == "GenericFakeChatModel"
    assert json.loads(span.attributes["gen_ai.input.messages"]) == [
        {"role": "system", "parts": [{"type": "text", "content": "You rhyme."}]},
        {"role": "user", "parts": [{"type": "text", "content": "the sky"}]},
    ]
    (answer,) = json.loads(span.attributes["gen_ai.output.messages"])
    assert answer["parts"] == [{"type": "text", "content": "moon, June"}]
    assert span.attributes["llm.input_messages.1.message.content"] == "the sky"
    assert span.attributes["output.value"] == "moon, June"
    # the prompt template's span is a chain: no content is put on it
    (template,) = otlp_sink.by_name("ChatPromptTemplate")
    assert _content_keys(template) == set()


def test_langchain_content_stays_off_by_default(
    provider: TracerProvider, otlp_sink: OTLPSink
) -> None:
    pytest.importorskip("langchain_core")
    from langchain_core.language_models.fake_chat_models import FakeListChatModel

    from turnout.integrations.langchain import RunnableAction

    act = RunnableAction(FakeListChatModel(responses=["hi"]), "topic", "answer")
    _app(act, OpenTelemetryHook(provider), topic="hello").step()
    (span,) = _llm_spans(otlp_sink)
    assert _content_keys(span) == set()


# -- LlamaIndex, with its offline mock LLM --------------------------------------------------------


@pytest.mark.parametrize("capture", [False, True])
def test_llamaindex_llm_calls_export_their_messages_when_asked(
    provider: TracerProvider, otlp_sink: OTLPSink, capture: bool
) -> None:
    pytest.importorskip("llama_index.core")
    from llama_index.core.chat_engine import SimpleChatEngine
    from llama_index.core.llms import MockLLM
    from llama_index.core.memory import ChatMemoryBuffer

    from turnout.integrations.llamaindex import chat_action

    engine = SimpleChatEngine.from_defaults(
        llm=MockLLM(max_tokens=2), memory=ChatMemoryBuffer.from_defaults()
    )
    act = chat_action(engine, input="msg", output="answer")
    hook = OpenTelemetryHook(provider, capture_content=capture)
    _app(act, hook, msg="what purrs?").step()
    chats = [s for s in otlp_sink.spans if s.attributes.get("gen_ai.operation.name") == "chat"]
    assert chats, [s.name for s in otlp_sink.spans]
    if not capture:
        assert not [s for s in otlp_sink.spans if _content_keys(s)]
        return
    (span,) = [s for s in chats if "gen_ai.input.messages" in s.attributes]
    sent = json.loads(span.attributes["gen_ai.input.messages"])
    assert sent[-1] == {"role": "user", "parts": [{"type": "text", "content": "what purrs?"}]}
    (answer,) = json.loads(span.attributes["gen_ai.output.messages"])
    assert answer["role"] == "assistant"
    assert answer["parts"] == [{"type": "text", "content": "text text"}]  # MockLLM's reply
    assert span.attributes["llm.output_messages.0.message.content"] == "text text"
