"""The Haystack adapter: components and pipelines as actions (sync and async), the input and
output mappings checked against the real sockets, Haystack's spans nested under the step (hooks,
local tracker, OpenTelemetry), the tracer put back afterwards, serde, the missing extra."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("haystack")

from haystack import Document, component
from haystack.components.builders import PromptBuilder
from haystack.dataclasses import ChatMessage
from haystack.tracing.tracer import NullTracer, Span, Tracer
from haystack.tracing.tracer import tracer as haystack_proxy

from examples.haystack_rag import application as rag_example
from tests.integrations.missing_extra import import_without
from turnout import Application, ApplicationBuilder, State
from turnout.core.errors import ActionDefinitionError
from turnout.core.serde import DEFAULT_SERDE
from turnout.core.tracking import LocalTracker, read_log
from turnout.integrations.haystack import (
    HaystackAction,
    HaystackTracer,
    append_state,
    from_value,
    trace_haystack,
)

TEMPLATE = "Docs: {{ documents }} Question: {{ question }}"


@pytest.fixture(params=["sync", "async"])
def mode(request: pytest.FixtureRequest) -> str:
    """Run the test with run and with run_async."""
    return str(request.param)


class SpanLog:
    """A hook recording spans (name, uid, parent uid), their errors and their attributes."""

    def __init__(self) -> None:
        self.started: list[tuple[str, str, str | None]] = []
        self.ended: dict[str, BaseException | None] = {}
        self.attributes: dict[str | None, dict[str, Any]] = {}

    def pre_start_span(self, *, span: Any, **future_kwargs: Any) -> None:
        parent = span.parent.uid if span.parent is not None else None
        self.started.append((span.name, span.uid, parent))

    def post_end_span(self, *, span: Any, exception: BaseException | None, **kw: Any) -> None:
        self.ended[span.uid] = exception

    def do_log_attributes(self, *, span: Any, attributes: dict[str, Any], **kw: Any) -> None:
        self.attributes.setdefault(span.uid if span else None, {}).update(attributes)


def build(state: dict[str, Any], *hooks: Any, **actions: Any) -> Application:
    names = list(actions)
    return (
        ApplicationBuilder()
        .with_actions(**actions)
        .with_transitions(*itertools.pairwise(names))
        .with_state(**state)
        .with_entrypoint(names[0])
        .with_hooks(*hooks)
        .build()
    )


def step(app: Application, mode: str, **inputs: Any) -> tuple[Any, State]:
    if mode == "async":
        done = asyncio.run(app.astep(inputs=inputs or None))
    else:
        done = app.step(inputs=inputs or None)
    assert done is not None
    return done[1], done[2]


@component
class Shout:
    """A sync-only component."""

    @component.output_types(text=str)
    def run(self, text: str, times: int = 1) -> dict[str, Any]:
        return {"text": (text.upper() + "!") * times}


@component
class AsyncShout:
    """A component with run_async, recording which one ran."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    @component.output_types(text=str)
    def run(self, text: str) -> dict[str, Any]:
        self.calls.append("run")
        return {"text": text.upper()}

    @component.output_types(text=str)
    async def run_async(self, text: str) -> dict[str, Any]:
        self.calls.append("run_async")
        return {"text": text.upper()}


@component
class WarmCounter:
    """Counts its warm-ups."""

    def __init__(self) -> None:
        self.warmed = 0

    def warm_up(self) -> None:
        self.warmed += 1

    @component.output_types(n=int)
    def run(self, n: int) -> dict[str, Any]:
        return {"n": n + self.warmed}


@component
class Broken:
    @component.output_types(text=str)
    def run(self, text: str) -> dict[str, Any]:
        raise RuntimeError(f"cannot handle {text!r}")


# -- components as actions --------------------------------------------------------------------


def test_a_component_reads_its_inputs_from_state_and_writes_its_outputs(mode):
    build_prompt = HaystackAction(
        PromptBuilder(template=TEMPLATE),
        input={"documents": "docs", "question": "q"},
        output={"prompt": "prompt"},
        is_async=mode == "async",
    )
    app = build({"docs": ["a", "b"], "q": "why?"}, build_prompt=build_prompt)
    result, state = step(app, mode)
    assert state["prompt"] == "Docs: ['a', 'b'] Question: why?"
    assert result == {"prompt": "Docs: ['a', 'b'] Question: why?"}
    assert build_prompt.reads == ["docs", "q"]
    assert build_prompt.writes == ["prompt"]


def test_burr_form_reads_writes_and_bound_params(mode):
    shout = HaystackAction(
        component=Shout(),
        name="shout",
        reads={"text": "message"},
        writes={"loud": "text"},
        bound_params={"times": 2},
        is_async=mode == "async",
    )
    _, state = step(build({"message": "hi"}, shout=shout), mode)
    assert state["loud"] == "HI!HI!"
    assert (shout.reads, shout.writes) == (["message"], ["loud"])
    listed = HaystackAction(Shout(), reads=["text"], writes=["text"], is_async=mode == "async")
    _, state = step(build({"text": "yo"}, listed=listed), mode)
    assert state["text"] == "YO!"


def test_an_async_action_awaits_run_async_when_the_component_has_it():
    shouter = AsyncShout()
    act = HaystackAction(shouter, input=["text"], output="out", is_async=True)
    _, state = step(build({"text": "hey"}, shout=act), "async")
    assert state["out"] == {"text": "HEY"}  # a str output spec writes the whole output dict
    assert shouter.calls == ["run_async"]


def test_application_inputs_feed_the_component_and_appends_go_to_lists(mode):
    act = HaystackAction(
        Shout(),
        output={"text": append_state("said")},
        inputs=["text"],
        is_async=mode == "async",
    )
    assert act.reads == []
    app = build({"said": ["first"]}, shout=act)
    _, state = step(app, mode, text="second")
    assert state["said"] == ["first", "SECOND!"]


def test_a_component_is_warmed_up_once_before_its_first_run():
    counter = WarmCounter()
    act = HaystackAction(counter, input=["n"], output={"n": "n"})
    app = ApplicationBuilder().with_actions(count=act).with_transitions(("count", "count"))
    app = app.with_state(n=0).with_entrypoint("count").build()
    app.step()
    app.step()
    assert counter.warmed == 1
    assert app.state["n"] == 2
    cold = WarmCounter()
    build({"n": 0}, count=HaystackAction(cold, input=["n"], output="o", do_warm_up=False)).step()
    assert cold.warmed == 0


def test_an_error_in_the_component_fails_the_step_naming_the_action(mode):
    log = SpanLog()
    act = HaystackAction(Broken(), input=["text"], output="out", is_async=mode == "async")
    with pytest.raises(RuntimeError, match="cannot handle 'x'") as caught:
        step(build({"text": "x"}, log, broken=act), mode)
    assert any("action 'broken'" in note for note in caught.value.__notes__)
    assert log.started == [("broken", "0:0", None)]  # the component's span, under the step
    assert all(isinstance(error, RuntimeError) for error in log.ended.values())


# -- pipelines as actions ---------------------------------------------------------------------


def test_a_pipeline_takes_qualified_and_bare_inputs_and_returns_inner_outputs(mode):
    act = HaystackAction(
        rag_example.rag_pipeline(),
        input={"retriever.query": "question", "question": "question", "top_k": from_value(1)},
        output={"replies": "replies", "retriever.documents": "documents", "llm.meta": "meta"},
        is_async=mode == "async",
    )
    result, state = step(build({"question": "How is bread baked?"}, rag=act), mode)
    assert state["replies"] == ["Bread is baked from flour, water, salt and yeast."]
    assert [d.content for d in state["documents"]] == [rag_example.DOCUMENTS[2]]
    assert state["meta"][0]["model"] == "extractive-1"
    assert sorted(result) == ["llm", "retriever"]  # the retriever's output was asked for
    assert act.reads == ["question"]
    assert act.writes == ["replies", "documents", "meta"]


def test_the_example_answers_from_the_retrieved_documents(mode):
    app = rag_example.application(use_async=mode == "async")
    if mode == "async":
        ran = asyncio.run(app.arun(halt_after=["respond"], inputs={"question": "Do cats sleep?"}))
        answer = ran[2]["answer"]
    else:
        answer = rag_example.chat(app, "Do cats sleep?")
    assert answer == "Cats purr and sleep most of the day."
    assert app.state["chat_history"][0] == {"role": "user", "content": "Do cats sleep?"}


def test_the_example_main_prints_each_answer(capsys):
    answers = rag_example.main(["What erupts from volcanoes?"])
    assert answers == ["Lava, ash and gas erupt from them."]
    assert "A: Lava, ash and gas erupt from them." in capsys.readouterr().out


# -- bad mappings -----------------------------------------------------------------------------


def test_an_unknown_input_names_the_components_real_inputs():
    with pytest.raises(ActionDefinitionError) as caught:
        HaystackAction(PromptBuilder(template=TEMPLATE), input={"questoin": "q"}, output="p")
    message = str(caught.value)
    assert "['questoin'] is not an input" in message
    assert "the inputs are ['documents', 'question', 'template', 'template_variables']" in message


def test_an_unknown_output_names_the_components_real_outputs():
    with pytest.raises(
        ActionDefinitionError, match=r"'promt' is not an output; the outputs are \['prompt'\]"
    ):
        HaystackAction(
            PromptBuilder(template=TEMPLATE), input=["documents", "question"], output={"promt": "p"}
        )


def test_a_mandatory_input_left_out_is_named():
    with pytest.raises(ActionDefinitionError, match=r"mandatory inputs not fed: \['text'\]"):
        HaystackAction(Shout(), input={"times": from_value(2)}, output="out")


def test_a_pipeline_mapping_names_the_pipelines_inputs_and_outputs():
    pipeline = rag_example.rag_pipeline()
    with pytest.raises(ActionDefinitionError) as caught:
        HaystackAction(pipeline, input={"retriever.qurey": "q", "question": "q"}, output="o")
    assert "'retriever.query'" in str(caught.value)
    assert "'prompt_builder.question'" in str(caught.value)
    with pytest.raises(ActionDefinitionError, match=r"'llm\.answer' is not an output"):
        HaystackAction(pipeline, input={"query": "q", "question": "q"}, output={"llm.answer": "a"})


def test_something_else_than_a_component_is_refused():
    with pytest.raises(ActionDefinitionError, match="is not a Haystack component or pipeline"):
        HaystackAction(lambda text: text, input=["text"], output="out")


def test_an_output_is_required():
    with pytest.raises(ActionDefinitionError, match="say where the output goes"):
        HaystackAction(Shout(), input=["text"])


# -- spans ------------------------------------------------------------------------------------


def _rag_action(mode: str) -> HaystackAction:
    return HaystackAction(
        rag_example.rag_pipeline(),
        input={"query": "question", "question": "question"},
        output={"replies": "replies"},
        is_async=mode == "async",
    )


def test_the_pipeline_and_its_components_are_spans_nested_under_the_step(mode):
    log = SpanLog()
    step(build({"question": "How is bread baked?"}, log, rag=_rag_action(mode)), mode)
    # the step's own span is the hooks' step events; its spans are numbered under it
    assert log.started == [
        ("haystack.pipeline.run", "0:0", None),
        ("retriever", "0:0.0", "0:0"),
        ("prompt_builder", "0:0.1", "0:0"),
        ("llm", "0:0.2", "0:0"),
    ]
    assert set(log.ended) == {uid for _, uid, _ in log.started}
    assert all(error is None for error in log.ended.values())
    llm = log.attributes["0:0.2"]
    assert llm["openinference.span.kind"] == "LLM"
    assert llm["gen_ai.operation.name"] == "text_completion"
    assert llm["gen_ai.response.model"] == "extractive-1"
    assert llm["gen_ai.usage.output_tokens"] == 9  # the reply's words
    assert llm["gen_ai.usage.input_tokens"] > 9
    assert log.attributes["0:0.0"]["openinference.span.kind"] == "RETRIEVER"
    assert log.attributes["0:0.1"]["haystack.component.type"] == "PromptBuilder"
    # content tracing is off by default: no inputs or outputs on the spans
    assert "haystack.component.output" not in llm
    assert "haystack.pipeline.input_data" not in log.attributes["0:0"]
    assert log.attributes["0:0"]["haystack.pipeline.execution_mode"] == mode


def test_the_local_tracker_records_the_haystack_spans(tmp_path, mode):
    tracker = LocalTracker("hs", tmp_path)
    act = _rag_action(mode)
    app = (
        ApplicationBuilder()
        .with_actions(rag=act)
        .with_transitions(("rag", "rag"))
        .with_state(question="What erupts from volcanoes?")
        .with_entrypoint("rag")
        .with_identifiers(app_id="tracked")
        .with_tracker(tracker)
        .build()
    )
    step(app, mode)
    tracker.close()
    lines = list(read_log(tracker.log_path("tracked")))
    started = {line["name"]: line["parent"] for line in lines if line["t"] == "span_start"}
    assert started == {
        "haystack.pipeline.run": None,
        "retriever": "0:0",
        "prompt_builder": "0:0",
        "llm": "0:0",
    }
    ended = [line for line in lines if line["t"] == "span_end"]
    assert len(ended) == 4
    assert all(line["error"] is None for line in ended)


def test_opentelemetry_exports_the_components_under_the_pipeline_under_the_step(mode, otel):
    from tests.integrations.otel_spans import by_name, parent_of, sid
    from turnout.integrations.opentelemetry import OpenTelemetryHook

    provider, exporter = otel
    hook = OpenTelemetryHook(tracer_provider=provider)
    step(build({"question": "How is bread baked?"}, hook, rag=_rag_action(mode)), mode)
    spans = exporter.get_finished_spans()
    pipeline = by_name(spans, "haystack.pipeline.run")
    steps = [s for s in spans if s.name == "rag"]
    assert parent_of(pipeline) in {sid(s) for s in steps}
    for name in ("retriever", "prompt_builder", "llm"):
        assert parent_of(by_name(spans, name)) == sid(pipeline), name
    llm = dict(by_name(spans, "llm").attributes or {})
    assert llm["gen_ai.usage.output_tokens"] == 9
    assert llm["openinference.span.kind"] == "LLM"


def test_content_is_recorded_when_haystack_content_tracing_is_on(monkeypatch):
    monkeypatch.setattr(haystack_proxy, "is_content_tracing_enabled", True)
    log = SpanLog()
    step(build({"question": "How is bread baked?"}, log, rag=_rag_action("sync")), "sync")
    llm_uid = next(uid for name, uid, _ in log.started if name == "llm")
    assert "Bread is baked" in log.attributes[llm_uid]["haystack.component.output"]
    assert "How is bread baked?" in log.attributes["0:0"]["haystack.pipeline.input_data"]


class Recorder(Tracer):
    """A Haystack tracer recording the operations it is given."""

    def __init__(self) -> None:
        self.operations: list[str] = []

    @contextlib.contextmanager
    def trace(
        self, operation_name: str, tags: dict[str, Any] | None = None, parent_span: Any = None
    ) -> Iterator[Span]:
        self.operations.append(operation_name)
        with NullTracer().trace(operation_name) as span:
            yield span

    def current_span(self) -> Span | None:
        return None


def test_the_tracer_found_is_put_back_and_gets_the_spans_outside_a_step(monkeypatch):
    recorder = Recorder()
    monkeypatch.setattr(haystack_proxy, "actual_tracer", recorder)
    pipeline = rag_example.rag_pipeline()
    with trace_haystack() as installed:
        assert haystack_proxy.actual_tracer is installed
        assert isinstance(installed, HaystackTracer)
        with trace_haystack() as nested:
            assert nested is installed
        assert haystack_proxy.actual_tracer is installed  # still open once
        pipeline.run({"query": "bread", "question": "bread?"})  # outside a step
    assert haystack_proxy.actual_tracer is recorder
    assert recorder.operations[0] == "haystack.pipeline.run"
    assert recorder.operations.count("haystack.component.run") == 3
    log = SpanLog()
    step(build({"question": "bread?"}, log, rag=_rag_action("sync")), "sync")
    assert len(log.started) == 4
    assert haystack_proxy.actual_tracer is recorder  # the step's block put it back too
    assert len(recorder.operations) == 4  # and the step's spans went to turnout only


def test_a_pipeline_run_in_a_plain_action_is_traced_inside_trace_haystack():
    from turnout import action

    pipeline = rag_example.rag_pipeline()

    @action(reads=["question"], writes=["answer"])
    def answer(state: State) -> State:
        with trace_haystack():
            out = pipeline.run({"query": state["question"], "question": state["question"]})
        return state.update(answer=out["llm"]["replies"][0])

    log = SpanLog()
    build({"question": "How is bread baked?"}, log, answer=answer).step()
    assert [name for name, _, _ in log.started] == [
        "haystack.pipeline.run",
        "retriever",
        "prompt_builder",
        "llm",
    ]


# -- serde and the missing extra ------------------------------------------------------------------


def test_documents_and_chat_messages_round_trip_through_the_default_serde():
    doc = Document(content="hello", meta={"topic": "greeting"}, score=0.5)
    message = ChatMessage.from_user("hi there")
    text = DEFAULT_SERDE.dumps({"docs": [doc], "messages": [message]})
    loaded = DEFAULT_SERDE.loads(text)
    assert loaded["docs"] == [doc]
    assert loaded["messages"][0].text == "hi there"
    assert loaded["messages"][0].role == message.role


def test_without_haystack_the_import_names_the_extra():
    out = import_without("haystack", "turnout.integrations.haystack")
    assert out.startswith("MissingExtraError")
    assert 'pip install "turnout[haystack]"' in out


# -- a pipeline as a graph --------------------------------------------------------------------


def test_a_straight_pipeline_becomes_one_action_per_component(mode):
    from turnout.integrations.haystack import haystack_pipeline_to_burr_graph, pipeline_to_graph

    assert haystack_pipeline_to_burr_graph is pipeline_to_graph  # Burr's name
    graph = pipeline_to_graph(rag_example.rag_pipeline())
    names = [a.name for a in graph.actions]
    assert names == ["retriever", "prompt_builder", "llm"]
    by_name = {a.name: a for a in graph.actions}
    assert by_name["retriever"].reads == ["query"]  # top_k, filters... keep their defaults
    assert by_name["prompt_builder"].reads == ["documents", "question"]
    assert by_name["llm"].reads == ["prompt"]
    app = (
        ApplicationBuilder()
        .with_graph(graph)
        .with_state(query="bread", question="How is bread baked?")
        .with_entrypoint("retriever")
        .build()
    )
    if mode == "async":
        state = asyncio.run(app.arun(halt_after=["llm"]))[2]
    else:
        state = app.run(halt_after=["llm"])[2]
    assert state["replies"] == ["Bread is baked from flour, water, salt and yeast."]
    assert "Question: How is bread baked?" in state["prompt"]


def test_a_pipeline_that_joins_or_loops_is_refused_as_a_graph():
    from haystack import Pipeline
    from haystack.components.joiners import DocumentJoiner
    from haystack.components.retrievers.in_memory import InMemoryBM25Retriever
    from haystack.document_stores.in_memory import InMemoryDocumentStore

    from turnout.integrations.haystack import pipeline_to_graph

    store = InMemoryDocumentStore()
    joined = Pipeline()
    joined.add_component("a", InMemoryBM25Retriever(document_store=store))
    joined.add_component("b", InMemoryBM25Retriever(document_store=store))
    joined.add_component("join", DocumentJoiner())
    joined.connect("a.documents", "join.documents")
    joined.connect("b.documents", "join.documents")
    with pytest.raises(ActionDefinitionError, match=r"'join\.documents' has several senders"):
        pipeline_to_graph(joined)
    with pytest.raises(ActionDefinitionError, match="expected a haystack Pipeline"):
        pipeline_to_graph(Shout())


def test_haystack_sees_the_open_span_and_its_log_correlation_inside_a_step():
    from turnout import action

    seen: list[dict[str, Any]] = []

    @action(reads=[], writes=[])
    def look(state: State) -> State:
        with trace_haystack(), haystack_proxy.trace("outer", tags={"n": 1}):
            current = haystack_proxy.current_span()
            assert current is not None
            seen.append(current.get_correlation_data_for_logs())
        return state

    build({}, look=look).step()
    assert seen == [{"turnout.action": "look", "turnout.span_uid": "0:0"}]
