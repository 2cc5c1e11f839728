"""The LangChain adapter: runnables as actions (invoke, ainvoke, stream, astream), the input and
output specs, the run configuration, LangChain runs as child spans, message serde, tool calls."""

from __future__ import annotations

import asyncio
import itertools
import json
from typing import Any
from uuid import UUID

import pytest

pytest.importorskip("langchain_core")

from langchain_core.callbacks import BaseCallbackHandler, CallbackManager
from langchain_core.documents import Document
from langchain_core.language_models.fake_chat_models import (
    FakeListChatModel,
    GenericFakeChatModel,
)
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.output_parsers import (
    CommaSeparatedListOutputParser,
    JsonOutputParser,
    StrOutputParser,
)
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnableLambda, RunnableParallel
from langchain_core.tools import tool

from examples.langchain_agent import application as agent_example
from tests.integrations.missing_extra import import_without
from turnout import Application, ApplicationBuilder, State
from turnout.core.errors import ActionDefinitionError, AsyncRequiredError
from turnout.core.retry import RetryPolicy
from turnout.core.serde import DEFAULT_SERDE, Serde
from turnout.core.sqlite import SQLitePersister
from turnout.core.tracking import LocalTracker, read_log
from turnout.integrations.langchain import (
    RunnableAction,
    SpanCallbackHandler,
    StreamingRunnableAction,
    ToolCallsAction,
    append_state,
    extend_state,
    from_state,
    from_value,
    has_tool_calls,
    register_serde,
    runnable_action,
    step_config,
    update_state,
)

PROMPT = ChatPromptTemplate.from_messages([("system", "You are {role}."), ("human", "{q}")])


@pytest.fixture(params=["sync", "async"])
def mode(request: pytest.FixtureRequest) -> str:
    """Run the test with invoke/stream and with ainvoke/astream."""
    return str(request.param)


def chat_model(*replies: str | AIMessage) -> GenericFakeChatModel:
    return GenericFakeChatModel(messages=iter(replies))


def chain(*replies: str | AIMessage) -> Any:
    return PROMPT | chat_model(*replies) | StrOutputParser()


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

    def uid(self, name: str) -> str:
        return next(uid for n, uid, _ in self.started if n == name)


def builder_of(state: dict[str, Any], **actions: Any) -> ApplicationBuilder:
    """The ``actions`` in a line, the first one the entrypoint, on ``state``."""
    names = list(actions)
    return (
        ApplicationBuilder()
        .with_actions(**actions)
        .with_transitions(*itertools.pairwise(names))
        .with_state(**state)
        .with_entrypoint(names[0])
    )


def build(state: dict[str, Any], *hooks: Any, **actions: Any) -> Application:
    return builder_of(state, **actions).with_hooks(*hooks).build()


def step(app: Application, mode: str, **inputs: Any) -> tuple[Any, State]:
    if mode == "async":
        done = asyncio.run(app.astep(inputs=inputs or None))
    else:
        done = app.step(inputs=inputs or None)
    assert done is not None
    return done[1], done[2]


def stream(app: Application, mode: str) -> tuple[list[dict[str, Any]], Any, State]:
    name = app.get_next_action().name  # type: ignore[union-attr]

    async def collect() -> tuple[list[dict[str, Any]], Any, State]:
        _action, container = await app.astream_result(halt_after=[name])
        items = [item async for item in container]
        result, state = await container.get()
        return items, result, state

    if mode == "async":
        return asyncio.run(collect())
    _action, container = app.stream_result(halt_after=[name])
    items = list(container)
    result, state = container.get()
    return items, result, state


# -- invoke and ainvoke ----------------------------------------------------------------------------


def test_a_chain_runs_as_an_action_and_its_output_lands_in_state(mode):
    act = RunnableAction(
        chain("Paris."),
        input={"role": from_value("a geographer"), "q": "question"},
        output="answer",
        is_async=mode == "async",
    )
    app = build({"question": "Capital of France?"}, answer=act)
    result, state = step(app, mode)
    assert result == {"output": "Paris."}
    assert state["answer"] == "Paris."
    assert act.reads == ["question"]
    assert act.writes == ["answer"]


def test_an_async_action_awaits_ainvoke_and_refuses_the_sync_driver():
    seen: list[str] = []

    async def ainvoke_only(value: str) -> str:
        seen.append("async")
        return value.upper()

    act = RunnableAction(RunnableLambda(ainvoke_only), "q", "a", is_async=True)
    app = build({"q": "hi"}, shout=act)
    with pytest.raises(AsyncRequiredError):
        app.step()
    _result, state = step(app, "async")
    assert state["a"] == "HI"
    assert seen == ["async"]


def test_a_chat_model_appends_its_ai_message_to_the_conversation(mode):
    model = chat_model(AIMessage("Hello!"))
    act = RunnableAction(
        model, input="messages", output=append_state("messages"), is_async=mode == "async"
    )
    app = build({"messages": [HumanMessage("Hi")]}, reply=act)
    _result, state = step(app, mode)
    assert [m.type for m in state["messages"]] == ["human", "ai"]
    assert state["messages"][-1].content == "Hello!"


def test_application_inputs_are_added_to_a_dict_input(mode):
    act = RunnableAction(
        RunnableLambda(lambda d: f"{d['greeting']}, {d['name']}"),
        input={"greeting": "greeting"},
        output="text",
        inputs=["name"],
        is_async=mode == "async",
    )
    app = build({"greeting": "Hello"}, greet=act)
    _result, state = step(app, mode, name="Ada")
    assert state["text"] == "Hello, Ada"


def test_an_action_named_at_creation_needs_no_name_in_the_builder():
    act = RunnableAction(ECHO, "a", "b", name="echo")
    builder = ApplicationBuilder().with_actions(act).with_transitions().with_state(a=1)
    app = builder.with_entrypoint("echo").build()
    assert app.step()[2]["b"] == 1  # type: ignore[index]


def test_a_retry_policy_retries_a_failing_runnable(mode):
    calls: list[int] = []

    def flaky(value: int) -> int:
        calls.append(value)
        if len(calls) < 3:
            raise ConnectionError("try again")
        return value * 10

    policy = RetryPolicy(max_attempts=3, initial_delay=0, jitter=0)
    act = RunnableAction(RunnableLambda(flaky), "n", "n", retry=policy, is_async=mode == "async")
    _result, state = step(build({"n": 2}, flaky=act), mode)
    assert (state["n"], calls) == (20, [2, 2, 2])


def test_importing_the_adapter_without_langchain_names_the_extra():
    out = import_without("langchain_core", "turnout.integrations.langchain")
    assert out.startswith("MissingExtraError")
    assert 'pip install "turnout[langchain]"' in out


# -- input and output specs ------------------------------------------------------------------------

ECHO = RunnableLambda(lambda value: value)


@pytest.mark.parametrize(
    ("spec", "reads", "expected"),
    [
        ("a", None, 1),
        (from_state("a"), None, 1),
        (from_value(7), None, 7),
        (["a", "b"], None, {"a": 1, "b": 2}),
        ({"x": "a", "y": from_state("b"), "z": from_value(0)}, None, {"x": 1, "y": 2, "z": 0}),
        (lambda state: state["a"] + state["b"], ["a", "b"], 3),
    ],
    ids=["key", "from_state", "from_value", "keys", "mapping", "function"],
)
def test_input_specs_feed_the_runnable(spec, reads, expected):
    act = RunnableAction(ECHO, spec, "out", reads=reads)
    _result, state = step(build({"a": 1, "b": 2}, echo=act), "sync")
    assert state["out"] == expected


@pytest.mark.parametrize(
    ("spec", "writes", "expected"),
    [
        ("out", None, {"out": {"n": 1, "items": [1, 2]}}),
        (update_state("out"), None, {"out": {"n": 1, "items": [1, 2]}}),
        (append_state("log"), None, {"log": [0, {"n": 1, "items": [1, 2]}]}),
        ({"n": "count", "items": extend_state("log")}, None, {"count": 1, "log": [0, 1, 2]}),
        (lambda output, state: state.update(total=sum(output["items"])), ["total"], {"total": 3}),
    ],
    ids=["key", "update_state", "append_state", "fields", "function"],
)
def test_output_specs_write_the_output(spec, writes, expected):
    parallel: Any = RunnableParallel(
        n=RunnableLambda(lambda _: 1), items=RunnableLambda(lambda _: [1, 2])
    )
    act = RunnableAction(parallel, from_value(None), spec, writes=writes)
    _result, state = step(build({"log": [0]}, fan=act), "sync")
    assert {key: state[key] for key in expected} == expected


def test_output_fields_can_be_attributes_of_the_output():
    act = RunnableAction(
        chat_model(AIMessage("hi", id="m1")), "q", {"content": "text", "id": "mid"}
    )
    _result, state = step(build({"q": "hello"}, ask=act), "sync")
    assert (state["text"], state["mid"]) == ("hi", "m1")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"runnable": lambda x: x}, "expected a LangChain Runnable.*RunnableLambda"),
        ({"input": lambda state: 1}, "pass reads="),
        ({"output": lambda output, state: state}, "pass writes="),
        ({"input": 3}, "input 3 is not understood"),
        ({"output": 3}, "output 3 is not understood"),
        ({"output": {"text": 3}}, r"output\['text'\] is 3"),
        ({"config": ["tags"]}, "config must be a RunnableConfig dict"),
        ({"inputs": "name"}, r"inputs=\['name'\]"),
    ],
    ids=[
        "not-runnable",
        "fn-no-reads",
        "fn-no-writes",
        "bad-input",
        "bad-output",
        "bad-field",
        "bad-config",
        "inputs-str",
    ],
)
def test_bad_specs_are_refused_with_the_fix(kwargs, message):
    arguments: dict[str, Any] = {"runnable": ECHO, "input": "a", "output": "b", **kwargs}
    runnable = arguments.pop("runnable")
    with pytest.raises(TypeError, match=message):
        RunnableAction(runnable, **arguments)


def test_a_missing_output_field_fails_the_step_naming_the_field():
    act = RunnableAction(RunnableLambda(lambda _: {"a": 1}), from_value(0), {"b": "x"})
    with pytest.raises(KeyError, match="no field 'b'"):
        build({}, act=act).step()


def test_runnable_action_helper_picks_the_streaming_class():
    assert type(runnable_action(ECHO, "a", "b")) is RunnableAction
    assert type(runnable_action(ECHO, "a", "b", stream=True)) is StreamingRunnableAction


# -- streaming -------------------------------------------------------------------------------------


def test_chat_model_chunks_stream_as_deltas_and_add_up_to_an_ai_message(mode):
    act = StreamingRunnableAction(
        PROMPT | chat_model("the capital is Paris"),
        input={"role": from_value("terse"), "q": "question"},
        output=append_state("messages"),
        is_async=mode == "async",
    )
    app = build({"question": "?", "messages": []}, answer=act)
    items, result, state = stream(app, mode)
    deltas = [item["delta"] for item in items[:-1]]
    assert deltas == ["the", " ", "capital", " ", "is", " ", "Paris"]
    assert all(isinstance(item["chunk"], AIMessageChunk) for item in items[:-1])
    assert items[-1] == result
    message = state["messages"][-1]
    assert type(message) is AIMessage
    assert message.content == "the capital is Paris"


def test_a_string_parser_stream_is_joined(mode):
    act = StreamingRunnableAction(
        FakeListChatModel(responses=["abc"]) | StrOutputParser(),
        input="q",
        output="answer",
        is_async=mode == "async",
    )
    items, result, state = stream(build({"q": "?"}, answer=act), mode)
    assert [item["delta"] for item in items[:-1]] == ["a", "b", "c"]
    assert result == {"output": "abc"}
    assert state["answer"] == "abc"


def test_dict_chunks_merge_key_by_key():
    parallel = RunnableParallel(a=FakeListChatModel(responses=["xy"]) | StrOutputParser())
    act = StreamingRunnableAction(parallel, "q", "out")
    items, _result, state = stream(build({"q": "?"}, fan=act), "sync")
    assert [item["delta"] for item in items[:-1]] == ["", ""]  # dicts carry no text of their own
    assert state["out"] == {"a": "xy"}


STREAMED_PARSERS = {
    "json": (JsonOutputParser(), '{"answer": "hello world", "n": 3}'),
    "comma-separated list": (CommaSeparatedListOutputParser(), "red, green, blue"),
    "str": (StrOutputParser(), "plain text"),
}


@pytest.mark.parametrize("parser", list(STREAMED_PARSERS), ids=list(STREAMED_PARSERS))
def test_a_streamed_parser_output_equals_what_invoke_returns(parser, mode):
    """Cumulative parsers (JSON) stream the whole value so far: the output is the last chunk."""
    make, reply = STREAMED_PARSERS[parser]
    expected = (FakeListChatModel(responses=[reply]) | make).invoke("q")
    act = StreamingRunnableAction(
        FakeListChatModel(responses=[reply]) | make, "q", "out", is_async=mode == "async"
    )
    _items, result, state = stream(build({"q": "?"}, parse=act), mode)
    assert result == {"output": expected}
    assert state["out"] == expected


def test_a_streamed_chat_model_output_equals_what_invoke_returns(mode):
    expected = chat_model("the capital is Paris").invoke("q")
    act = StreamingRunnableAction(
        chat_model("the capital is Paris"), "q", "out", is_async=mode == "async"
    )
    _items, _result, state = stream(build({"q": "?"}, chat=act), mode)
    assert type(state["out"]) is type(expected)
    assert state["out"].content == expected.content


def test_a_cumulative_parser_is_found_behind_bindings_and_a_diff_parser_adds_up():
    reply = '{"a": "bc"}'
    bound = FakeListChatModel(responses=[reply]) | JsonOutputParser().with_config(tags=["x"])
    assert StreamingRunnableAction(bound, "q", "out").aggregate == "last"
    diff = FakeListChatModel(responses=[reply]) | JsonOutputParser(diff=True)
    assert StreamingRunnableAction(diff, "q", "out").aggregate == "add"


@pytest.mark.parametrize(
    ("aggregate", "expected"),
    [("last", "c"), ("add", "abc"), (lambda chunks: "|".join(chunks), "a|b|c")],
    ids=["last", "add", "function"],
)
def test_aggregate_chooses_how_chunks_make_the_output(aggregate, expected):
    act = StreamingRunnableAction(
        FakeListChatModel(responses=["abc"]) | StrOutputParser(), "q", "out", aggregate=aggregate
    )
    _items, _result, state = stream(build({"q": "?"}, parse=act), "sync")
    assert state["out"] == expected


def test_an_unknown_aggregate_is_refused():
    with pytest.raises(ActionDefinitionError, match="aggregate is 'sum'"):
        StreamingRunnableAction(ECHO, "q", "out", aggregate="sum")  # type: ignore[arg-type]


@pytest.mark.parametrize("option", ["reads", "writes", "tags"])
def test_a_string_for_a_list_of_names_is_refused(option):
    with pytest.raises(ActionDefinitionError, match=f"write {option}=\\['ab'\\]"):
        RunnableAction(ECHO, "q", "out", **{option: "ab"})


def test_an_error_of_the_runnable_keeps_its_type_and_names_the_action(mode):
    def fail(value: Any) -> Any:
        raise ZeroDivisionError("boom")

    act = RunnableAction(RunnableLambda(fail), "q", "out", is_async=mode == "async")
    with pytest.raises(ZeroDivisionError) as info:
        step(build({"q": 1}, divide=act), mode)
    assert "raised by the runnable of action 'divide'" in getattr(info.value, "__notes__", [])


def test_streaming_records_the_first_token_time_on_the_model_span(mode):
    log = SpanLog()
    act = StreamingRunnableAction(chat_model("a b"), "q", "out", is_async=mode == "async")
    stream(build({"q": "?"}, log, answer=act), mode)
    attributes = log.attributes[log.uid("answer")]  # the model is the outermost run
    assert attributes["turnout.first_token_time"] > 0
    # the name the OpenAI adapter and the OpenTelemetry hook use too
    assert attributes["gen_ai.response.time_to_first_chunk"] >= 0
    # the old name, deprecated, kept with the same value
    assert (
        attributes["turnout.time_to_first_token"]
        == (attributes["gen_ai.response.time_to_first_chunk"])
    )


# -- run configuration -----------------------------------------------------------------------------


class ConfigSpy(BaseCallbackHandler):
    """A user's callback handler: what LangChain tells it about the outermost run."""

    def __init__(self) -> None:
        self.roots: list[dict[str, Any]] = []

    def on_chain_start(
        self,
        serialized: Any,
        inputs: Any,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        if parent_run_id is None:
            self.roots.append({"name": kwargs.get("name"), "tags": tags, "metadata": metadata})


@pytest.mark.parametrize("callbacks", ["list", "manager"])
def test_user_callbacks_see_turnout_metadata_tags_and_the_action_as_run_name(mode, callbacks):
    spy = ConfigSpy()
    handlers: Any = [spy] if callbacks == "list" else CallbackManager(handlers=[spy])
    config: Any = {"callbacks": handlers, "tags": ["mine"], "metadata": {"team": "search"}}
    act = RunnableAction(
        chain("ok"), ["role", "q"], "a", config=config, tags=["llm"], is_async=mode == "async"
    )
    start = builder_of({"role": "r", "q": "q"}, answer=act)
    app = start.with_identifiers(app_id="app-1", partition_key="user-7").build()
    step(app, mode)
    [root] = spy.roots
    assert root["name"] == "answer"
    assert root["tags"] == ["mine", "llm"]
    assert root["metadata"] == {
        "team": "search",
        "turnout.app_id": "app-1",
        "turnout.partition_key": "user-7",
        "turnout.sequence_id": 0,
        "turnout.action": "answer",
    }
    assert config == {"callbacks": handlers, "tags": ["mine"], "metadata": {"team": "search"}}


def test_a_configured_run_name_wins_over_the_action_name():
    spy = ConfigSpy()
    act = RunnableAction(ECHO, "a", "b", config={"callbacks": [spy], "run_name": "echo-run"})
    build({"a": 1}, echo=act).step()
    assert spy.roots[0]["name"] == "echo-run"


def test_step_config_outside_a_step_is_a_copy_of_the_config():
    config: Any = {"tags": ["x"]}
    assert step_config(config) == {"tags": ["x"]}
    assert step_config() == {}


# -- child spans -----------------------------------------------------------------------------------


def test_langchain_runs_become_nested_child_spans_of_the_step(mode):
    log = SpanLog()
    act = RunnableAction(chain("ok"), ["role", "q"], "a", is_async=mode == "async")
    step(build({"role": "r", "q": "q"}, log, answer=act), mode)
    assert log.started == [
        ("answer", "0:0", None),
        ("ChatPromptTemplate", "0:0.0", "0:0"),
        ("GenericFakeChatModel", "0:0.1", "0:0"),
        ("StrOutputParser", "0:0.2", "0:0"),
    ]
    assert log.ended == {"0:0": None, "0:0.0": None, "0:0.1": None, "0:0.2": None}
    assert log.attributes["0:0.1"]["langchain.run_type"] == "chat_model"
    assert log.attributes["0:0.1"]["gen_ai.operation.name"] == "chat"


def test_nested_chains_nest_their_spans():
    log = SpanLog()

    def inc(x: int) -> int:
        return x + 1

    def double(x: int) -> int:
        return x * 2

    inner = (RunnableLambda(inc) | RunnableLambda(double)).with_config(run_name="inner")
    outer = RunnableLambda(inc) | inner
    _result, state = step(build({"n": 1}, log, calc=RunnableAction(outer, "n", "n")), "sync")
    assert state["n"] == 6
    parents = {name: parent for name, _uid, parent in log.started}
    assert parents["inner"] == log.uid("calc")
    assert [name for name, _uid, parent in log.started if parent == log.uid("inner")] == [
        "inc",
        "double",
    ]


class NamedFakeModel(GenericFakeChatModel):
    """A fake chat model with a model name, as real providers have."""

    model_name: str = "fake-model-1"


def test_parallel_branches_nest_under_the_parallel_run(mode):
    log = SpanLog()
    fan = RunnableParallel(up=RunnableLambda(str.upper), low=RunnableLambda(str.lower))
    act = RunnableAction(fan, "word", {"up": "up", "low": "low"}, is_async=mode == "async")
    _result, state = step(build({"word": "MiXed"}, log, fan=act), mode)
    assert (state["up"], state["low"]) == ("MIXED", "mixed")
    root = log.uid("fan")
    branches = sorted(name for name, _uid, parent in log.started if parent == root)
    assert branches == ["lower", "upper"]
    assert len(log.ended) == len(log.started) == 3


def test_model_spans_carry_the_model_name_and_token_usage(mode):
    log = SpanLog()
    reply = AIMessage(
        "hi", usage_metadata={"input_tokens": 11, "output_tokens": 3, "total_tokens": 14}
    )
    model = NamedFakeModel(messages=iter([reply]))
    act = RunnableAction(model, "q", "a", is_async=mode == "async")
    step(build({"q": "?"}, log, ask=act), mode)
    attributes = log.attributes[log.uid("ask")]  # the model is the outermost run
    assert attributes["gen_ai.request.model"] == "fake-model-1"
    assert attributes["gen_ai.usage.input_tokens"] == 11
    assert attributes["gen_ai.usage.output_tokens"] == 3


def test_an_error_in_the_runnable_fails_the_step_and_ends_the_spans_with_it(mode):
    log = SpanLog()

    def explode(_: Any) -> str:
        raise ValueError("model overloaded")

    act = RunnableAction(
        PROMPT | RunnableLambda(explode), ["role", "q"], "a", is_async=mode == "async"
    )
    app = build({"role": "r", "q": "q"}, log, answer=act)
    with pytest.raises(ValueError, match="model overloaded"):
        step(app, mode)
    assert [name for name, _uid, _parent in log.started] == [
        "answer",
        "ChatPromptTemplate",
        "explode",
    ]
    assert log.ended["0:0.0"] is None
    for uid in ("0:0", "0:0.1"):
        assert isinstance(log.ended[uid], ValueError)
    assert "a" not in app.state


def test_an_error_while_streaming_ends_the_spans_with_it(mode):
    log = SpanLog()

    def explode(_: Any) -> str:
        raise RuntimeError("stream broke")

    act = StreamingRunnableAction(RunnableLambda(explode), "q", "a", is_async=mode == "async")
    with pytest.raises(RuntimeError, match="stream broke"):
        stream(build({"q": "?"}, log, answer=act), mode)
    assert all(isinstance(error, RuntimeError) for error in log.ended.values())
    assert len(log.ended) == len(log.started) > 0


def test_the_local_tracker_records_the_child_spans_and_their_attributes(tmp_path, mode):
    tracker = LocalTracker("lc", tmp_path)
    act = RunnableAction(chain("ok"), ["role", "q"], "a", is_async=mode == "async")
    start = builder_of({"role": "r", "q": "q"}, answer=act)
    app = start.with_identifiers(app_id="tracked").with_tracker(tracker).build()
    step(app, mode)
    tracker.close()
    lines = list(read_log(tracker.log_path("tracked")))
    spans = [
        (line["name"], line["span"], line["parent"]) for line in lines if line["t"] == "span_start"
    ]
    assert spans == [
        ("answer", "0:0", None),
        ("ChatPromptTemplate", "0:0.0", "0:0"),
        ("GenericFakeChatModel", "0:0.1", "0:0"),
        ("StrOutputParser", "0:0.2", "0:0"),
    ]
    ends = {line["span"] for line in lines if line["t"] == "span_end" and line["error"] is None}
    assert ends == {"0:0", "0:0.0", "0:0.1", "0:0.2"}
    run_types = {
        line["span"]: line["value"]
        for line in lines
        if line["t"] == "attr" and line["key"] == "langchain.run_type"
    }
    assert run_types["0:0.1"] == "chat_model"


def test_opentelemetry_exports_the_runs_under_the_step_span(mode, otel):
    from turnout.integrations.opentelemetry import OpenTelemetryHook

    provider, exporter = otel
    usage = {"input_tokens": 3, "output_tokens": 2, "total_tokens": 5}
    runnable = PROMPT | chat_model(AIMessage("ok", usage_metadata=usage)) | StrOutputParser()
    act = RunnableAction(runnable, ["role", "q"], "a", is_async=mode == "async")
    hook = OpenTelemetryHook(tracer_provider=provider)
    step(build({"role": "r", "q": "q"}, hook, answer=act), mode)
    spans = exporter.get_finished_spans()
    names = {span.context.span_id: span.name for span in spans}
    parent_of = {s.context.span_id: s.parent.span_id if s.parent else None for s in spans}
    # call span > step span "answer" > the chain's span "answer" (its run name) > its runs
    chain_id = next(
        s.context.span_id
        for s in spans
        if s.name == "answer" and names.get(parent_of[s.context.span_id]) == "answer"
    )
    children = {s.name: s for s in spans if parent_of[s.context.span_id] == chain_id}
    assert sorted(children) == ["ChatPromptTemplate", "GenericFakeChatModel", "StrOutputParser"]
    model = dict(children["GenericFakeChatModel"].attributes or {})
    assert (model["gen_ai.usage.input_tokens"], model["gen_ai.usage.output_tokens"]) == (3, 2)


def test_the_span_handler_records_runs_in_a_plain_action_through_step_config():
    from turnout import action

    log = SpanLog()
    runnable = chain("ok")

    @action(reads=["q"], writes=["a"])
    def ask(state: State) -> State:
        return state.update(a=runnable.invoke({"role": "r", "q": state["q"]}, step_config()))

    step(build({"q": "?"}, log, ask=ask), "sync")
    assert [name for name, _uid, _parent in log.started][:2] == ["ask", "ChatPromptTemplate"]
    assert all(error is None for error in log.ended.values())


def test_the_span_handler_outside_a_step_records_nothing():
    handler = SpanCallbackHandler()
    assert ECHO.invoke(1, {"callbacks": [handler]}) == 1
    assert handler.open_spans == 0


# -- messages as JSON ------------------------------------------------------------------------------

CONVERSATION: list[BaseMessage] = [
    SystemMessage("Be brief."),
    HumanMessage("What is 2 + 3?", id="h1"),
    AIMessage(
        "",
        tool_calls=[{"name": "add", "args": {"a": 2, "b": 3}, "id": "call-1"}],
        usage_metadata={"input_tokens": 5, "output_tokens": 1, "total_tokens": 6},
    ),
    ToolMessage("5", tool_call_id="call-1", name="add"),
    AIMessageChunk(content="5."),
]


def test_messages_round_trip_through_json_without_pickle():
    text = DEFAULT_SERDE.dumps({"messages": CONVERSATION})
    assert "pickle" not in text
    loaded = DEFAULT_SERDE.loads(json.loads(json.dumps(text)))["messages"]
    assert loaded == CONVERSATION
    assert [type(m) for m in loaded] == [type(m) for m in CONVERSATION]
    assert loaded[2].tool_calls[0]["args"] == {"a": 2, "b": 3}


def test_documents_round_trip_with_their_metadata_and_id():
    documents = [
        Document(page_content="Cats purr.", metadata={"source": "a.txt", "page": 3}, id="d1"),
        Document(page_content="No metadata."),
    ]
    loaded = DEFAULT_SERDE.loads(DEFAULT_SERDE.dumps({"docs": documents}))["docs"]
    assert [type(d) for d in loaded] == [Document, Document]
    assert loaded == documents
    assert loaded[0].metadata == {"source": "a.txt", "page": 3}
    assert loaded[0].id == "d1"


def test_register_serde_teaches_a_serde_of_your_own():
    serde = Serde()
    register_serde(serde)
    assert serde.loads(serde.dumps(CONVERSATION)) == CONVERSATION


def _chat_app() -> Any:
    act = RunnableAction(chat_model(AIMessage("4", id="a2")), "messages", append_state("messages"))
    return ApplicationBuilder().with_actions(reply=act).with_transitions(("reply", "reply"))


def _new_chat(app_id: str) -> Any:
    """``_chat_app`` started on ``CONVERSATION``."""
    start = _chat_app().with_state(messages=list(CONVERSATION)).with_entrypoint("reply")
    return start.with_identifiers(app_id=app_id)


def test_messages_in_state_persist_and_load_through_sqlite(tmp_path):
    persister = SQLitePersister(tmp_path / "chat.db")
    app = _new_chat("chat").with_state_persister(persister).build()
    app.step()
    loaded = persister.load(None, "chat")
    persister.close()
    assert loaded is not None
    assert loaded["state"]["messages"] == [*CONVERSATION, AIMessage("4", id="a2")]
    assert isinstance(loaded["state"]["messages"][2], AIMessage)


def test_messages_in_state_resume_from_the_local_tracker(tmp_path):
    tracker = LocalTracker("lc", tmp_path)
    app = _new_chat("resume").with_tracker(tracker).build()
    app.step()
    tracker.close()
    again = LocalTracker("lc", tmp_path)
    resumed = (
        _chat_app()
        .initialize_from(
            again,
            resume_at_next_action=True,
            default_state={"messages": []},
            default_entrypoint="reply",
        )
        .with_identifiers(app_id="resume")
        .build()
    )
    again.close()
    assert resumed.sequence_id == 0
    assert resumed.state["messages"] == [*CONVERSATION, AIMessage("4", id="a2")]
    assert type(resumed.state["messages"][3]) is ToolMessage


# -- tool calls ------------------------------------------------------------------------------------


@tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@tool
def divide(a: int, b: int) -> float:
    """Divide a by b."""
    return a / b


def _asking(*calls: tuple[str, dict[str, Any]]) -> list[BaseMessage]:
    tool_calls = [{"name": n, "args": a, "id": f"c{i}"} for i, (n, a) in enumerate(calls)]
    return [HumanMessage("?"), AIMessage("", tool_calls=tool_calls)]


def test_tool_calls_run_and_append_tool_messages_with_tool_spans(mode):
    log = SpanLog()
    act = ToolCallsAction([add, divide], is_async=mode == "async")
    app = build(
        {"messages": _asking(("add", {"a": 1, "b": 2}), ("divide", {"a": 1, "b": 4}))},
        log,
        tools=act,
    )
    result, state = step(app, mode)
    replies = state["messages"][2:]
    assert [(m.content, m.tool_call_id, m.name) for m in replies] == [
        ("3", "c0", "add"),
        ("0.25", "c1", "divide"),
    ]
    assert result == {"tool_messages": replies}
    assert [(name, parent) for name, _uid, parent in log.started] == [
        ("add", None),
        ("divide", None),
    ]
    assert log.attributes["0:0"]["gen_ai.tool.name"] == "add"


def test_tool_errors_and_unknown_tools_become_error_messages(mode):
    act = ToolCallsAction([divide], is_async=mode == "async")
    app = build({"messages": _asking(("divide", {"a": 1, "b": 0}), ("nope", {}))}, tools=act)
    _result, state = step(app, mode)
    errors = state["messages"][2:]
    assert [m.status for m in errors] == ["error", "error"]
    assert "ZeroDivisionError" in errors[0].content
    assert "unknown tool 'nope'" in errors[1].content


def test_tool_errors_fail_the_step_when_not_handled():
    act = ToolCallsAction([divide], handle_errors=False)
    app = build({"messages": _asking(("divide", {"a": 1, "b": 0}))}, tools=act)
    with pytest.raises(ZeroDivisionError):
        app.step()


def test_tool_calls_action_refuses_non_tools():
    with pytest.raises(TypeError, match="@tool"):
        ToolCallsAction([lambda: 1])  # type: ignore[list-item]


def test_has_tool_calls_looks_at_the_last_message():
    condition = has_tool_calls()
    assert condition.run(State({"messages": _asking(("add", {}))}))[condition.KEY] is True
    assert condition.run(State({"messages": [AIMessage("done")]}))[condition.KEY] is False
    assert condition.run(State({"messages": []}))[condition.KEY] is False


# -- the example -----------------------------------------------------------------------------------


def test_the_agent_example_loops_through_the_tools_until_the_model_answers():
    app = agent_example.application(app_id="agent")
    added = agent_example.ask(app, "What is 3 * 4 + 5?")
    assert [m.type for m in added] == ["human", "ai", "tool", "ai", "tool", "ai"]
    assert [m.content for m in added if m.type == "tool"] == ["12", "17"]
    assert added[-1].content == "3 * 4 + 5 = 17."
    assert DEFAULT_SERDE.loads(DEFAULT_SERDE.dumps(added)) == added


def test_the_agent_example_runs_as_a_script(capsys):
    assert agent_example.main([]) == "3 * 4 + 5 = 17."
    assert "multiply({'a': 3, 'b': 4})" in capsys.readouterr().out


class Gate:
    """Async tools that all wait on one barrier: they pass only if ``parties`` of them run at
    once. Counts how many are inside together at most."""

    def __init__(self, parties: int) -> None:
        self.parties = parties
        self.inside = 0
        self.most = 0

    def tools(self, count: int) -> list[Any]:
        barrier: asyncio.Barrier | None = None

        async def meet(i: int) -> str:
            nonlocal barrier
            if barrier is None:  # made inside the step's event loop
                barrier = asyncio.Barrier(self.parties)
            self.inside += 1
            self.most = max(self.most, self.inside)
            try:
                await asyncio.wait_for(barrier.wait(), timeout=10)
            finally:
                self.inside -= 1
            return f"met {i}"

        def make(i: int) -> Any:
            async def gated() -> str:
                """A tool that waits for its siblings."""
                return await meet(i)

            gated.__name__ = f"gated{i}"
            return tool(gated)

        return [make(i) for i in range(count)]


def test_async_tool_calls_run_concurrently_and_keep_their_order() -> None:
    gate = Gate(3)  # run one after another, the first call would wait for the others forever
    act = ToolCallsAction(gate.tools(3), is_async=True, handle_errors=False)
    app = build({"messages": _asking(("gated0", {}), ("gated1", {}), ("gated2", {}))}, tools=act)
    _result, state = step(app, "async")
    assert [(m.content, m.tool_call_id) for m in state["messages"][2:]] == [
        ("met 0", "c0"),
        ("met 1", "c1"),
        ("met 2", "c2"),
    ]


def test_async_tool_calls_are_bounded_by_max_concurrency() -> None:
    gate = Gate(2)  # pairs meet: calls 0 and 1, then 2 and 3
    act = ToolCallsAction(gate.tools(4), is_async=True, handle_errors=False, max_concurrency=2)
    calls = [(f"gated{i}", {}) for i in range(4)]
    _result, state = step(build({"messages": _asking(*calls)}, tools=act), "async")
    assert [m.content for m in state["messages"][2:]] == ["met 0", "met 1", "met 2", "met 3"]
    assert gate.most == 2
    with pytest.raises(ValueError, match=r"max_concurrency= .* positive int; got 0"):
        ToolCallsAction(gate.tools(1), max_concurrency=0)


# -- leaving a stream early ----------------------------------------------------------------------


class EndLog(SpanLog):
    """A SpanLog that also records, in order, every span end and the step's end."""

    def __init__(self) -> None:
        super().__init__()
        self.order: list[tuple[str, str | None]] = []

    def post_end_span(self, *, span: Any, exception: BaseException | None, **kw: Any) -> None:
        super().post_end_span(span=span, exception=exception, **kw)
        self.order.append((span.name, type(exception).__name__ if exception else None))

    def post_run_step(self, *, exception: BaseException | None = None, **kw: Any) -> None:
        self.order.append(("<step>", type(exception).__name__ if exception else None))


def _long_stream_app(mode: str, *hooks: Any, tracker: Any = None) -> Application:
    act = StreamingRunnableAction(
        chain("one two three four five six"), ["role", "q"], "a", is_async=mode == "async"
    )
    start = builder_of({"role": "r", "q": "q"}, talk=act).with_identifiers(app_id="left")
    if tracker is not None:
        start = start.with_tracker(tracker)
    return start.with_hooks(*hooks).build()


def _stream_and_leave(app: Application, mode: str, log: EndLog) -> list[tuple[str, str | None]]:
    """Read one item, leave the loop, close the container with ``with``/``async with``;
    what had ended when the close returned."""
    if mode == "sync":
        _act, container = app.stream_result(halt_after=["talk"])
        with container:
            for _item in container:
                break
        seen = list(log.order)
        assert container.get() == (None, app.state)
        return seen

    async def leave() -> list[tuple[str, str | None]]:
        _act, container = await app.astream_result(halt_after=["talk"])
        async with container:
            async for _item in container:
                break
        seen = list(log.order)
        assert await container.get() == (None, app.state)
        return seen

    return asyncio.run(leave())


def test_closing_a_stream_early_ends_the_spans_innermost_first_then_the_step(mode):
    log = EndLog()
    app = _long_stream_app(mode, log)
    ended = _stream_and_leave(app, mode, log)
    assert ended == [  # all of it before close() returned, not at garbage collection
        ("ChatPromptTemplate", None),
        ("StrOutputParser", "GeneratorExit"),
        ("GenericFakeChatModel", "GeneratorExit"),
        ("talk", "GeneratorExit"),
        ("<step>", "GeneratorExit"),
    ]
    cancelled = {uid for uid, attrs in log.attributes.items() if attrs.get("turnout.cancelled")}
    assert cancelled == {
        log.uid("talk"),
        log.uid("GenericFakeChatModel"),
        log.uid("StrOutputParser"),
    }
    assert app.get_next_action().name == "talk"  # not committed: the step is next again
    assert "a" not in app.state


def test_a_closed_stream_is_cancelled_in_the_local_tracker(tmp_path):
    tracker = LocalTracker("lc", tmp_path)
    log = EndLog()
    _stream_and_leave(_long_stream_app("sync", log, tracker=tracker), "sync", log)
    tracker.close()
    lines = list(read_log(tracker.log_path("left")))
    (end,) = [line for line in lines if line["t"] == "end"]
    assert end["status"] == "cancelled"
    ends = [line["span"] for line in lines if line["t"] == "span_end"]
    assert ends == ["0:0.0", "0:0.2", "0:0.1", "0:0"]  # children before their parent
    marked = {
        line["span"] for line in lines if line["t"] == "attr" and line["key"] == "turnout.cancelled"
    }
    assert marked == {"0:0", "0:0.1", "0:0.2"}


def test_a_closed_stream_exports_cancelled_spans_children_first(otel, mode):
    from opentelemetry.sdk.trace import ReadableSpan

    from turnout.integrations.opentelemetry import OpenTelemetryHook

    provider, exporter = otel
    log = EndLog()
    _stream_and_leave(_long_stream_app(mode, OpenTelemetryHook(provider), log), mode, log)
    spans: tuple[ReadableSpan, ...] = exporter.get_finished_spans()
    names = [s.name for s in spans]
    assert names.index("StrOutputParser") < names.index("talk")  # the order they ended in
    assert names.index("GenericFakeChatModel") < names.index("talk")
    by = {s.name: s for s in spans}
    for name in ("StrOutputParser", "GenericFakeChatModel"):
        assert by[name].attributes["turnout.cancelled"] is True
    steps = [s for s in spans if s.attributes.get("turnout.status") == "cancelled"]
    assert len(steps) == 1
    (talk,) = [s for s in spans if s.name == "talk" and s is not steps[0]]
    assert talk.attributes["turnout.cancelled"] is True


def test_library_spans_off_leaves_the_runs_to_an_instrumentor():
    from turnout.integrations.opentelemetry import library_spans

    before = library_spans()
    library_spans(False)
    try:
        log = SpanLog()
        act = RunnableAction(chain("ok"), ["role", "q"], "a")
        step(build({"role": "r", "q": "q"}, log, answer=act), "sync")
        assert log.started == []  # no span for the chain, prompt, model or parser
    finally:
        library_spans(before)
    log = SpanLog()
    step(
        build({"role": "r", "q": "q"}, log, answer=RunnableAction(chain("ok"), ["role", "q"], "a")),
        "sync",
    )
    assert len(log.started) == 4


def test_retriever_and_tool_runs_export_their_openinference_kind(otel):
    from langchain_core.callbacks import CallbackManagerForRetrieverRun
    from langchain_core.retrievers import BaseRetriever

    from turnout.integrations.opentelemetry import OpenTelemetryHook

    class Shelf(BaseRetriever):
        def _get_relevant_documents(
            self, query: str, *, run_manager: CallbackManagerForRetrieverRun
        ) -> list[Document]:
            return [Document(page_content=f"about {query}")]

    provider, exporter = otel
    find = RunnableAction(Shelf(), "q", "docs")
    tools = ToolCallsAction([add])
    app = build(
        {"q": "cats", "messages": _asking(("add", {"a": 1, "b": 2}))},
        OpenTelemetryHook(tracer_provider=provider),
        find=find,
        tools=tools,
    )
    app.run(halt_after=["tools"])
    kinds = {
        str(s.attributes.get("langchain.run_type")): (
            s.attributes.get("openinference.span.kind"),
            s.attributes.get("gen_ai.operation.name"),
        )
        for s in exporter.get_finished_spans()
        if "langchain.run_type" in s.attributes
    }
    assert kinds["retriever"] == ("RETRIEVER", "retrieval")
    assert kinds["tool"] == ("TOOL", "execute_tool")
