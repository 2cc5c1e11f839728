"""The OpenTelemetry adapter: exported tree, context propagation, the reverse bridge, OTLP."""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("opentelemetry.sdk")

from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)
from opentelemetry.trace import StatusCode

from tests.integrations.missing_extra import import_without
from tests.integrations.otel_spans import by_name, parent_of, sid
from tests.integrations.otlp_sink import OTLPSink
from turnout import (
    ApplicationBuilder,
    ApplicationContext,
    RetryPolicy,
    State,
    TracerFactory,
    action,
    streaming_action,
)
from turnout.integrations.opentelemetry import (
    OpenTelemetryHook,
    otel_value,
)


@pytest.fixture
def sink() -> Iterator[OTLPSink]:
    """A local OTLP/HTTP collector."""
    with OTLPSink() as running:
        yield running


# -- applications ---------------------------------------------------------------------------------


@action(reads=["question"], writes=["answer"])
def answer(state: State, __tracer: TracerFactory) -> State:
    with __tracer("retrieve") as span:
        span.log_attributes(documents=2, sources=["a", "b"], meta={"k": 1})
        with __tracer("rank"):
            pass
    __tracer.log_attributes(
        **{
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": "stand-in",
            "gen_ai.usage.input_tokens": 7,
            "gen_ai.usage.output_tokens": 3,
        }
    )
    return state.update(answer=f"about {state['question']}")


@action(reads=["question"], writes=["answer"])
async def aanswer(state: State, __tracer: TracerFactory) -> State:
    async with __tracer("retrieve") as span:
        span.log_attributes(documents=2)
        async with __tracer("rank"):
            await asyncio.sleep(0)
    __tracer.log_attributes(**{"gen_ai.request.model": "stand-in"})
    return state.update(answer=f"about {state['question']}")


@action(reads=["answer"], writes=["done"])
def finish(state: State) -> State:
    return state.update(done=True)


def qa_app(hook: Any, answerer: Any = answer, **builder: Any) -> Any:
    return (
        ApplicationBuilder()
        .with_actions(answer=answerer, finish=finish)
        .with_transitions(("answer", "finish"))
        .with_state(question="otters")
        .with_entrypoint("answer")
        .with_identifiers(app_id="app-1", partition_key="user-9")
        .with_hooks(hook)
        .build()
    )


def _one_step_app(provider: TracerProvider, act: Any, name: str = "act") -> Any:
    """An application of the one action ``act``, called ``name``, exporting to ``provider``."""
    return (
        ApplicationBuilder()
        .with_actions(**{name: act})
        .with_transitions()
        .with_entrypoint(name)
        .with_hooks(OpenTelemetryHook(provider))
        .build()
    )


def assert_qa_tree(spans: Any, method: str) -> None:
    call = by_name(spans, f"turnout.{method}")
    step = by_name(spans, "answer")
    retrieve, rank = by_name(spans, "retrieve"), by_name(spans, "rank")
    last = by_name(spans, "finish")
    assert call.parent is None
    assert parent_of(step) == sid(call)
    assert parent_of(last) == sid(call)
    assert parent_of(retrieve) == sid(step)
    assert parent_of(rank) == sid(retrieve)
    assert len({span.context.trace_id for span in spans if span.context}) == 1
    assert call.attributes is not None
    assert step.attributes is not None
    assert call.attributes["turnout.method"] == method
    assert dict(step.attributes) | {} == {
        **dict(step.attributes),
        "turnout.app_id": "app-1",
        "turnout.partition_key": "user-9",
        "session.id": "app-1",
        "gen_ai.conversation.id": "app-1",
        "turnout.sequence_id": 0,
        "turnout.action": "answer",
        "turnout.reads": ("question",),
        "turnout.writes": ("answer",),
        "turnout.attempt": 1,
        "openinference.span.kind": "LLM",
        "gen_ai.request.model": "stand-in",
        "llm.model_name": "stand-in",
    }
    assert last.attributes is not None
    assert last.attributes["turnout.sequence_id"] == 1
    assert last.attributes["openinference.span.kind"] == "CHAIN"
    assert retrieve.attributes is not None
    assert retrieve.attributes["documents"] == 2
    assert retrieve.attributes["turnout.span_uid"] == "0:0"
    assert rank.attributes is not None
    assert rank.attributes["turnout.span_uid"] == "0:0.0"
    assert all(span.status.status_code is StatusCode.UNSET for span in spans)
    assert step.start_time is not None
    assert retrieve.start_time is not None
    assert step.start_time <= retrieve.start_time


# -- the exported tree ----------------------------------------------------------------------------


def test_sync_run_exports_call_step_and_spans_as_a_tree(otel: Any) -> None:
    provider, exporter = otel
    qa_app(OpenTelemetryHook(provider)).run(halt_after=["finish"])
    spans = exporter.get_finished_spans()
    assert len(spans) == 5
    assert_qa_tree(spans, "run")
    step = by_name(spans, "answer")
    assert step.attributes is not None
    assert step.attributes["gen_ai.usage.input_tokens"] == 7
    assert step.attributes["llm.token_count.total"] == 10
    retrieve = by_name(spans, "retrieve")
    assert retrieve.attributes is not None
    assert retrieve.attributes["sources"] == ("a", "b")
    assert retrieve.attributes["meta"] == '{"k": 1}'
    scope = by_name(spans, "answer").instrumentation_scope
    assert scope is not None
    assert scope.name == "turnout"


def test_async_run_exports_the_same_tree(otel: Any) -> None:
    provider, exporter = otel
    app = qa_app(OpenTelemetryHook(provider), aanswer)
    asyncio.run(app.arun(halt_after=["finish"]))
    assert_qa_tree(exporter.get_finished_spans(), "arun")


def test_each_step_call_is_its_own_trace_root(otel: Any) -> None:
    provider, exporter = otel
    app = qa_app(OpenTelemetryHook(provider))
    app.step()
    app.step()
    spans = exporter.get_finished_spans()
    assert [s.name for s in spans if s.parent is None] == ["turnout.step", "turnout.step"]
    calls = [s for s in spans if s.parent is None]
    assert parent_of(by_name(spans, "finish")) == sid(calls[1])


def test_a_failing_step_is_an_error_with_an_exception_event_and_retries_are_attempts(
    otel: Any,
) -> None:
    provider, exporter = otel
    calls = {"n": 0}

    @action(reads=[], writes=["x"], retry=RetryPolicy(max_attempts=3, initial_delay=0))
    def flaky(state: State) -> State:
        calls["n"] += 1
        if calls["n"] < 3:
            raise ValueError(f"boom {calls['n']}")
        return state.update(x=1)

    app = _one_step_app(provider, flaky, "flaky")
    app.run()
    attempts = sorted(
        (s for s in exporter.get_finished_spans() if s.name == "flaky"),
        key=lambda s: s.attributes["turnout.attempt"] if s.attributes else 0,
    )
    assert [s.status.status_code for s in attempts] == [
        StatusCode.ERROR,
        StatusCode.ERROR,
        StatusCode.UNSET,
    ]
    first = attempts[0]
    assert first.status.description == "ValueError: boom 1"
    assert first.attributes is not None
    assert first.attributes["turnout.will_retry"] is True
    assert [s.attributes["turnout.status"] for s in attempts if s.attributes] == [
        "retrying",
        "retrying",
        "completed",
    ]
    (event,) = first.events
    assert event.name == "exception"
    assert event.attributes is not None
    assert event.attributes["exception.type"] == "ValueError"
    assert event.attributes["exception.message"] == "boom 1"
    assert all(s.attributes and s.attributes["turnout.sequence_id"] == 0 for s in attempts)


def test_a_failed_call_and_span_are_errors(otel: Any) -> None:
    provider, exporter = otel

    @action(reads=[], writes=["x"])
    def broken(state: State, __tracer: TracerFactory) -> State:
        with __tracer("inner"):
            raise KeyError("missing")

    app = _one_step_app(provider, broken, "broken")
    with pytest.raises(KeyError):
        app.run()
    spans = exporter.get_finished_spans()
    for name in ("inner", "broken", "turnout.run"):
        span = by_name(spans, name)
        assert span.status.status_code is StatusCode.ERROR, name
        assert [e.name for e in span.events] == ["exception"]
    step = by_name(spans, "broken")
    assert step.attributes is not None
    assert step.attributes["turnout.will_retry"] is False


def test_start_span_with_an_explicit_parent_nests_by_uid(otel: Any) -> None:
    provider, exporter = otel

    @action(reads=[], writes=["x"])
    def callbacks(state: State, __tracer: TracerFactory) -> State:
        chain = __tracer.start_span("chain")
        llm = __tracer.start_span("llm", parent=chain)
        tool = __tracer.start_span("tool", parent=chain)
        llm.log_attributes(**{"gen_ai.usage.input_tokens": 4})
        llm.end()
        tool.end(exception=RuntimeError("tool failed"))
        chain.end()
        __tracer.start_span("never ended")
        return state.update(x=1)

    app = _one_step_app(provider, callbacks, "callbacks")
    app.run()
    spans = exporter.get_finished_spans()
    step, chain = by_name(spans, "callbacks"), by_name(spans, "chain")
    llm, tool = by_name(spans, "llm"), by_name(spans, "tool")
    assert parent_of(chain) == sid(step)
    assert parent_of(llm) == sid(chain)
    assert parent_of(tool) == sid(chain)
    assert llm.attributes is not None
    assert llm.attributes["openinference.span.kind"] == "LLM"
    assert tool.status.status_code is StatusCode.ERROR
    left = by_name(spans, "never ended")
    assert left.attributes is not None
    assert left.attributes["turnout.unfinished"] is True


def test_capture_state_exports_inputs_and_outputs_as_json(otel: Any) -> None:
    provider, exporter = otel
    app = qa_app(OpenTelemetryHook(provider, capture_state=True))
    app.step()
    step = by_name(exporter.get_finished_spans(), "answer")
    assert step.attributes is not None
    assert step.attributes["input.value"] == '{"state": {"question": "otters"}, "inputs": {}}'
    assert step.attributes["output.value"] == '{"state": {"answer": "about otters"}, "result": {}}'
    assert step.attributes["output.mime_type"] == "application/json"


def test_state_is_not_exported_by_default(otel: Any) -> None:
    provider, exporter = otel
    qa_app(OpenTelemetryHook(provider)).step()
    attributes = by_name(exporter.get_finished_spans(), "answer").attributes or {}
    assert "input.value" not in attributes
    assert "output.value" not in attributes


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("text", "text"),
        (3, 3),
        (2.5, 2.5),
        (True, True),
        ([1, 2], (1, 2)),
        (["a", 1], '["a", 1]'),
        ([], "[]"),
        (None, "null"),
        ({"a": [1]}, '{"a": [1]}'),
        (2**70, str(2**70)),
        (object, "\"<class 'object'>\""),
    ],
    ids=["str", "int", "float", "bool", "ints", "mixed", "empty", "none", "dict", "bigint", "obj"],
)
def test_values_otel_cannot_take_become_json_or_text(value: Any, expected: Any) -> None:
    assert otel_value(value) == expected


def test_a_provider_that_is_not_one_is_refused_with_the_fix() -> None:
    with pytest.raises(TypeError, match=r"TracerProvider\(\)"):
        OpenTelemetryHook("http://localhost:4318")  # type: ignore[arg-type]


def test_the_default_provider_is_the_global_one_and_is_never_installed() -> None:
    from opentelemetry import trace

    before = trace.get_tracer_provider()
    qa_app(OpenTelemetryHook()).run(halt_after=["finish"])
    assert trace.get_tracer_provider() is before


# -- context propagation into actions -------------------------------------------------------------


def _library_call(provider: TracerProvider, name: str = "library.call") -> None:
    """What an instrumented library does: a span under whatever span is current."""
    with provider.get_tracer("some.library").start_as_current_span(name):
        pass


def test_library_spans_nest_under_the_step_in_sync_mode(otel: Any) -> None:
    provider, exporter = otel

    @action(reads=[], writes=["x"])
    def act(state: State, __tracer: TracerFactory) -> State:
        _library_call(provider, "in step")
        with __tracer("inner"):
            _library_call(provider, "in span")
        return state.update(x=1)

    _one_step_app(provider, act).run()
    _library_call(provider, "after")
    spans = exporter.get_finished_spans()
    assert parent_of(by_name(spans, "in step")) == sid(by_name(spans, "act"))
    assert parent_of(by_name(spans, "in span")) == sid(by_name(spans, "inner"))
    assert by_name(spans, "after").parent is None  # nothing leaks out of the run


def test_library_spans_nest_under_the_step_in_async_mode(otel: Any) -> None:
    provider, exporter = otel

    @action(reads=[], writes=["x"])
    async def act(state: State) -> State:
        await asyncio.sleep(0)
        await asyncio.gather(asyncio.to_thread(_library_call, provider, "to_thread"))
        _library_call(provider, "in step")
        return state.update(x=1)

    async def main() -> None:
        await _one_step_app(provider, act).astep()
        _library_call(provider, "after")

    asyncio.run(main())
    spans = exporter.get_finished_spans()
    step = by_name(spans, "act")
    assert parent_of(by_name(spans, "in step")) == sid(step)
    assert parent_of(by_name(spans, "to_thread")) == sid(step)  # to_thread copies the context
    assert by_name(spans, "after").parent is None


@streaming_action(reads=[], writes=["reply"])
def streamer(state: State) -> Any:
    for token in ("a", "b"):
        _library_call(STREAM_PROVIDER[0], f"token {token}")
        yield {"delta": token}
    yield {"reply": "ab"}, state.update(reply="ab")


@streaming_action(reads=[], writes=["reply"])
async def astreamer(state: State) -> Any:
    for token in ("a", "b"):
        await asyncio.sleep(0)
        _library_call(STREAM_PROVIDER[0], f"token {token}")
        yield {"delta": token}
    yield {"reply": "ab"}, state.update(reply="ab")


STREAM_PROVIDER: list[TracerProvider] = []


@pytest.fixture
def stream_provider(otel: Any) -> Iterator[tuple[TracerProvider, InMemorySpanExporter]]:
    STREAM_PROVIDER[:] = [otel[0]]
    yield otel
    STREAM_PROVIDER.clear()


def _assert_stream_tree(spans: Any, method: str) -> None:
    call, step = by_name(spans, f"turnout.{method}"), by_name(spans, "chat")
    assert parent_of(step) == sid(call)
    for token in ("a", "b"):
        assert parent_of(by_name(spans, f"token {token}")) == sid(step)
    assert step.attributes is not None
    assert step.attributes["turnout.stream.items"] == 2
    assert [e.name for e in step.events] == ["turnout.stream.first_item"]
    assert by_name(spans, "after").parent is None


def test_library_spans_nest_under_a_streaming_step_in_sync_mode(stream_provider: Any) -> None:
    provider, exporter = stream_provider
    _, container = _one_step_app(provider, streamer, "chat").stream_result(halt_after=["chat"])
    assert [item["delta"] for item in container] == ["a", "b"]
    container.get()
    _library_call(provider, "after")
    _assert_stream_tree(exporter.get_finished_spans(), "stream_result")


def test_library_spans_nest_under_a_streaming_step_in_async_mode(stream_provider: Any) -> None:
    provider, exporter = stream_provider

    async def main() -> None:
        app = _one_step_app(provider, astreamer, "chat")
        _, container = await app.astream_result(halt_after=["chat"])
        assert [item["delta"] async for item in container] == ["a", "b"]
        await container.get()
        _library_call(provider, "after")

    asyncio.run(main())
    _assert_stream_tree(exporter.get_finished_spans(), "astream_result")


def test_threads_see_the_step_span_when_they_run_in_a_copied_context(otel: Any) -> None:
    provider, exporter = otel

    @action(reads=[], writes=["x"])
    def act(state: State) -> State:
        context = contextvars.copy_context()
        copied = threading.Thread(target=context.run, args=(_library_call, provider, "copied"))
        bare = threading.Thread(target=_library_call, args=(provider, "bare"))
        for thread in (copied, bare):
            thread.start()
            thread.join()
        return state.update(x=1)

    _one_step_app(provider, act).run()
    spans = exporter.get_finished_spans()
    assert parent_of(by_name(spans, "copied")) == sid(by_name(spans, "act"))
    assert by_name(spans, "bare").parent is None  # a plain thread starts with an empty context


# -- the real OTLP/HTTP exporter ------------------------------------------------------------------


@pytest.mark.parametrize("compression", [None, "gzip"], ids=["plain", "gzip"])
def test_the_otlp_exporter_ships_the_tree_to_a_collector(
    sink: OTLPSink, compression: str | None
) -> None:
    exporter = OTLPSpanExporter(
        endpoint=sink.endpoint,
        timeout=5,
        compression=Compression(compression) if compression else None,
    )
    provider = TracerProvider(
        resource=Resource.create({SERVICE_NAME: "qa", "openinference.project.name": "qa"})
    )
    provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=60_000))
    try:
        qa_app(OpenTelemetryHook(provider)).run(halt_after=["finish"])
        assert provider.force_flush(5_000)
    finally:
        provider.shutdown()
    assert [encoding for encoding, _ in sink.requests] == [compression or ""]
    spans = {span.name: span for span in sink.spans}
    assert sorted(spans) == ["answer", "finish", "rank", "retrieve", "turnout.run"]
    call, step = spans["turnout.run"], spans["answer"]
    assert call.parent_span_id == ""
    assert step.parent_span_id == call.span_id
    assert spans["finish"].parent_span_id == call.span_id
    assert spans["retrieve"].parent_span_id == step.span_id
    assert spans["rank"].parent_span_id == spans["retrieve"].span_id
    assert {span.trace_id for span in sink.spans} == {call.trace_id}
    assert len(call.trace_id) == 32
    assert step.attributes["turnout.app_id"] == "app-1"
    assert step.attributes["turnout.partition_key"] == "user-9"
    assert step.attributes["session.id"] == "app-1"
    assert step.attributes["turnout.reads"] == ("question",)
    assert step.attributes["gen_ai.usage.output_tokens"] == 3
    assert step.attributes["openinference.span.kind"] == "LLM"
    assert spans["retrieve"].attributes["meta"] == '{"k": 1}'
    assert step.resource["service.name"] == "qa"
    assert step.resource["openinference.project.name"] == "qa"
    assert step.scope == "turnout"
    assert call.start_ns <= step.start_ns <= spans["retrieve"].start_ns
    assert spans["rank"].end_ns <= spans["retrieve"].end_ns <= step.end_ns <= call.end_ns


def test_a_failure_reaches_the_collector_as_an_error_status_and_event(
    sink: OTLPSink,
) -> None:
    provider = TracerProvider()
    exporter = OTLPSpanExporter(endpoint=sink.endpoint, timeout=5)
    provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=60_000))

    @action(reads=[], writes=["x"])
    def broken(state: State) -> State:
        raise ValueError("no")

    app = _one_step_app(provider, broken, "broken")
    try:
        with pytest.raises(ValueError, match="no"):
            app.run()
        assert provider.force_flush(5_000)
    finally:
        provider.shutdown()
    (step,) = sink.by_name("broken")
    assert step.status_code == 2  # STATUS_CODE_ERROR
    assert step.status_message == "ValueError: no"
    ((name, attributes),) = step.events
    assert name == "exception"
    assert attributes["exception.type"] == "ValueError"


def test_a_child_application_spawned_by_a_step_nests_under_it_even_in_a_bare_thread(
    otel: Any,
) -> None:
    provider, exporter = otel
    hook = OpenTelemetryHook(provider)

    @action(reads=[], writes=["x"])
    def spawn(state: State, __context: ApplicationContext) -> State:
        child = (
            ApplicationBuilder()
            .with_actions(finish)
            .with_transitions()
            .with_state(answer="a")
            .with_entrypoint("finish")
            .with_identifiers(app_id="child")
            .with_spawning_parent(__context.app_id, __context.sequence_id)
            .with_hooks(hook)
            .build()
        )
        worker = threading.Thread(target=child.run)  # no copied context
        worker.start()
        worker.join()
        return state.update(x=1)

    parent = (
        ApplicationBuilder()
        .with_actions(spawn)
        .with_transitions()
        .with_entrypoint("spawn")
        .with_hooks(hook)  # the same hook: it knows the parent's running step
        .build()
    )
    parent.run()
    spans = exporter.get_finished_spans()
    child_call = next(
        s
        for s in spans
        if s.attributes and s.attributes["turnout.app_id"] == "child" and s.name == "turnout.run"
    )
    assert parent_of(child_call) == sid(by_name(spans, "spawn"))
    assert parent_of(by_name(spans, "finish")) == sid(child_call)


# -- robustness -----------------------------------------------------------------------------------


def test_iterate_and_aiterate_are_one_call_span_each(otel: Any) -> None:
    provider, exporter = otel
    list(qa_app(OpenTelemetryHook(provider)).iterate(halt_after=["finish"]))

    async def main() -> None:
        app = qa_app(OpenTelemetryHook(provider), aanswer)
        async for _ in app.aiterate(halt_after=["finish"]):
            pass

    asyncio.run(main())
    roots = [s for s in exporter.get_finished_spans() if s.parent is None]
    assert [s.name for s in roots] == ["turnout.iterate", "turnout.aiterate"]


def test_a_cancelled_async_step_is_an_error_and_leaks_no_context(otel: Any) -> None:
    provider, exporter = otel
    started = asyncio.Event()

    @action(reads=[], writes=["x"])
    async def slow(state: State) -> State:
        started.set()
        await asyncio.Event().wait()  # until cancelled
        return state

    async def main() -> None:
        app = _one_step_app(provider, slow, "slow")
        task = asyncio.create_task(app.arun())
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        _library_call(provider, "after")

    asyncio.run(main())
    spans = exporter.get_finished_spans()
    step = by_name(spans, "slow")
    assert step.status.status_code is StatusCode.ERROR
    assert step.attributes is not None
    assert step.attributes["turnout.status"] == "cancelled"
    assert by_name(spans, "turnout.arun").status.status_code is StatusCode.ERROR
    assert by_name(spans, "after").parent is None


class Unprintable:
    def __repr__(self) -> str:
        raise RuntimeError("no repr")


def test_a_hook_failure_is_logged_and_never_breaks_the_run(
    otel: Any, caplog: pytest.LogCaptureFixture
) -> None:
    provider, exporter = otel

    @action(reads=[], writes=["x"])
    def odd(state: State, __tracer: TracerFactory) -> State:
        __tracer.log_attributes(weird=Unprintable())
        return state.update(x=1)

    _, _, state = _one_step_app(provider, odd, "odd").run()
    assert state["x"] == 1
    assert "OpenTelemetry export failed in do_log_attributes" in caplog.text
    assert by_name(exporter.get_finished_spans(), "odd").status.status_code is StatusCode.UNSET


def test_an_abandoned_stream_is_cancelled_and_leaves_no_context(stream_provider: Any) -> None:
    provider, exporter = stream_provider
    _, container = _one_step_app(provider, streamer, "chat").stream_result(halt_after=["chat"])
    for _item in container:
        _library_call(provider, "between items")  # the step is still in progress here
        break
    del container, _item  # closes the stream
    _library_call(provider, "after")
    spans = exporter.get_finished_spans()
    step = by_name(spans, "chat")
    assert parent_of(by_name(spans, "between items")) == sid(step)
    assert step.attributes is not None
    assert step.attributes["turnout.status"] == "cancelled"
    assert by_name(spans, "after").parent is None


def test_without_the_extra_the_import_names_the_pip_command() -> None:
    out = import_without("opentelemetry", "turnout.integrations.opentelemetry")
    assert out.startswith("MissingExtraError ")
    assert 'pip install "turnout[opentelemetry]"' in out
