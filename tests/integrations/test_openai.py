"""The OpenAI adapter, driving the real ``openai`` client against ``FakeOpenAIServer``."""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import gc
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, Literal, TypedDict

import pytest

openai = pytest.importorskip("openai")

import pydantic  # noqa: E402 - a dependency of openai

from turnout import Action, ApplicationBuilder, State, on_exception  # noqa: E402
from turnout.core.tracking import LocalTracker, read_log  # noqa: E402
from turnout.integrations.openai import (  # noqa: E402
    StreamFailedError,
    ToolCallError,
    ToolSchemaError,
    append_state,
    chat_action,
    from_state,
    function_tool,
    openai_retry_policy,
    responses_action,
    tool_action,
    tool_calls_requested,
    update_state,
)
from turnout.lifecycle import DoLogAttributeHook, PostEndSpanHook, PreStartSpanHook  # noqa: E402
from turnout.testing import FakeOpenAIServer, FakeReply, FakeToolCall  # noqa: E402

MODES = ["sync", "async"]
APIS = {"chat": chat_action, "responses": responses_action}


@pytest.fixture
def server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer() as fake:
        yield fake


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


_OPEN_ASYNC_CLIENTS: list[Any] = []
_OPEN_SYNC_CLIENTS: list[Any] = []
# The variables that would point the tests (and the examples) at a real API or collector.
_REAL_SERVICE_VARIABLES = (
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "OPENAI_ORG_ID",
    "OPENAI_PROJECT_ID",
)


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """Every test talks to the local fake only (a developer's OPENAI_API_KEY or OTLP endpoint
    is ignored) and tracks into a temporary directory, and every client a test made is closed
    when it ends."""
    monkeypatch.setenv("TURNOUT_HOME", str(tmp_path / "turnout-home"))
    otel = [name for name in os.environ if name.startswith("OTEL_EXPORTER_OTLP_")]
    for name in (*_REAL_SERVICE_VARIABLES, *otel):
        monkeypatch.delenv(name, raising=False)
    yield
    close_clients()


def close_clients() -> None:
    """Close the clients ``client()`` made (the async ones not closed by ``in_loop`` in a loop
    of their own): left open, their sockets are reported as unraisable warnings."""
    while _OPEN_SYNC_CLIENTS:
        _OPEN_SYNC_CLIENTS.pop().close()
    if _OPEN_ASYNC_CLIENTS:

        async def close_async() -> None:
            while _OPEN_ASYNC_CLIENTS:
                await _OPEN_ASYNC_CLIENTS.pop().close()

        asyncio.run(close_async())


def client(server: FakeOpenAIServer, mode: str, **kwargs: Any) -> Any:
    kind = openai.AsyncOpenAI if mode == "async" else openai.OpenAI
    options = {"base_url": server.base_url, "api_key": "test", "max_retries": 0, **kwargs}
    made = kind(**options)
    (_OPEN_ASYNC_CLIENTS if mode == "async" else _OPEN_SYNC_CLIENTS).append(made)
    return made


def in_loop(coro: Any) -> Any:
    """``asyncio.run(coro)``, closing the async clients in that loop (left open, they would be
    closed by the garbage collector after the loop is gone)."""

    async def main() -> Any:
        try:
            return await coro
        finally:
            while _OPEN_ASYNC_CLIENTS:
                await _OPEN_ASYNC_CLIENTS.pop().close()

    return asyncio.run(main())


class Recorder(PreStartSpanHook, PostEndSpanHook, DoLogAttributeHook):
    """Spans (name, parent name, error) and the attributes logged on each span."""

    def __init__(self) -> None:
        self.spans: list[tuple[str, str | None, str | None]] = []
        self.attributes: dict[str, dict[str, Any]] = {}

    def pre_start_span(self, *, span: Any, **future_kwargs: Any) -> None:
        self.attributes[span.uid] = {}

    def post_end_span(self, *, span: Any, exception: Any = None, **future_kwargs: Any) -> None:
        error = type(exception).__name__ if exception is not None else None
        parent = span.parent.name if span.parent is not None else None
        self.spans.append((span.name, parent, error))

    def do_log_attributes(
        self, *, span: Any, attributes: dict[str, Any], **future_kwargs: Any
    ) -> None:
        self.attributes.setdefault(span.uid if span else "step", {}).update(attributes)

    def merged(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for attributes in self.attributes.values():
            out.update(attributes)
        return out


def one_step_app(act: Action, hooks: tuple[Any, ...] = (), **state: Any) -> Any:
    builder = ApplicationBuilder().with_actions(ask=act).with_transitions().with_entrypoint("ask")
    state.setdefault("messages", [{"role": "user", "content": "hello there"}])
    return builder.with_state(**state).with_hooks(*hooks).build()


def run_step(app: Any, mode: str, stream: bool) -> tuple[list[str], dict[str, Any], State]:
    """Run one step; the streamed tokens, the result and the state."""
    tokens: list[str] = []

    async def arun() -> tuple[dict[str, Any], State]:
        if stream:
            _action, container = await app.astream_result(halt_after=["ask"])
            async for item in container:
                tokens.append(item["delta"])
            result, state = await container.get()
            return result, state
        _action, result, state = await app.astep()
        return result, state

    if mode == "async":
        result, state = in_loop(arun())
    elif stream:
        _action, container = app.stream_result(halt_after=["ask"])
        tokens.extend(item["delta"] for item in container)
        result, state = container.get()
    else:
        _action, result, state = app.step()
    return tokens, result, state


# -- model calls -----------------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize("api", list(APIS))
def test_reply_is_appended_to_the_conversation(
    server: FakeOpenAIServer, mode: str, api: str, stream: bool
) -> None:
    server.add_replies("Hi! Nice to meet you.")
    act = APIS[api](client(server, mode), model="fake-1", stream=stream, temperature=0.3)
    tokens, result, state = run_step(one_step_app(act), mode, stream)
    assert state["messages"][-1] == {"role": "assistant", "content": "Hi! Nice to meet you."}
    assert result["content"] == "Hi! Nice to meet you."
    assert result["finish_reason"] == "stop"
    assert result["usage"] == {"input_tokens": 2, "output_tokens": 5}
    assert tokens == (["Hi! ", "Nice ", "to ", "meet ", "you."] if stream else [])
    (request,) = server.requests
    assert (request.api, request.model, request.stream) == (api, "fake-1", stream)
    assert request.body["temperature"] == 0.3
    sent = request.messages if api == "chat" else request.input
    assert sent == [{"role": "user", "content": "hello there"}]


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize("api", list(APIS))
def test_each_call_is_a_child_span_with_gen_ai_attributes(
    server: FakeOpenAIServer, api: str, stream: bool
) -> None:
    recorder = Recorder()
    server.add_replies(FakeReply(text="one two three", model="fake-1-0613"))
    act = APIS[api](client(server, "sync"), model="fake-1", stream=stream, temperature=0.5)
    run_step(one_step_app(act, (recorder,)), "sync", stream)
    assert recorder.spans == [("chat fake-1", None, None)]
    (attributes,) = recorder.attributes.values()
    expected = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "fake-1",
        "gen_ai.request.temperature": 0.5,
        "gen_ai.response.model": "fake-1-0613",
        "gen_ai.response.finish_reasons": ["stop"],
        "gen_ai.usage.input_tokens": 2,
        "gen_ai.usage.output_tokens": 3,
    }
    assert {k: attributes[k] for k in expected} == expected
    assert attributes["gen_ai.response.id"].startswith("chatcmpl_" if api == "chat" else "resp_")
    first_chunk = attributes.get("gen_ai.response.time_to_first_chunk")
    assert (first_chunk is not None and first_chunk >= 0) if stream else first_chunk is None


@pytest.mark.parametrize("api", list(APIS))
def test_request_parameters_are_recorded_under_their_gen_ai_names(
    server: FakeOpenAIServer, api: str
) -> None:
    recorder = Recorder()
    if api == "chat":
        params: dict[str, Any] = {
            "seed": 7, "stop": "END", "n": 1, "max_completion_tokens": 20,
            "response_format": {"type": "json_object"},
        }  # fmt: skip
        expected = {
            "gen_ai.request.seed": 7, "gen_ai.request.stop_sequences": ["END"],
            "gen_ai.request.choice.count": 1, "gen_ai.request.max_tokens": 20,
            "gen_ai.output.type": "json",
        }  # fmt: skip
    else:
        params = {"max_output_tokens": 20, "top_p": 0.9, "text": {"format": {"type": "text"}}}
        expected = {
            "gen_ai.request.max_tokens": 20, "gen_ai.request.top_p": 0.9,
            "gen_ai.output.type": "text",
        }  # fmt: skip
    run_step(one_step_app(APIS[api](client(server, "sync"), model="m", **params), (recorder,)),
             "sync", False)  # fmt: skip
    attributes = recorder.merged()
    assert {k: attributes.get(k) for k in expected} == expected


def test_async_streaming_span_has_usage(server: FakeOpenAIServer) -> None:
    recorder = Recorder()
    act = chat_action(client(server, "async"), model="m", stream=True)
    run_step(one_step_app(act, (recorder,)), "async", True)
    attributes = recorder.merged()
    assert attributes["gen_ai.usage.input_tokens"] == 2
    assert attributes["gen_ai.usage.output_tokens"] == 4  # "You said: hello there"
    assert "gen_ai.response.time_to_first_chunk" in attributes


def test_usage_reaches_the_local_tracker_log(server: FakeOpenAIServer, tmp_path: Path) -> None:
    tracker = LocalTracker("openai-test", storage_dir=tmp_path)
    act = chat_action(client(server, "sync"), model="m", stream=True)
    app = (
        ApplicationBuilder()
        .with_actions(ask=act)
        .with_transitions()
        .with_entrypoint("ask")
        .with_state(messages=[{"role": "user", "content": "a b c"}])
        .with_tracker(tracker)
        .with_identifiers(app_id="run-1")
        .build()
    )
    run_step(app, "sync", True)
    tracker.close()
    lines = list(read_log(tracker.log_path("run-1")))
    spans = [line["name"] for line in lines if line["t"] == "span_start"]
    attributes = {line["key"]: line["value"] for line in lines if line["t"] == "attr"}
    assert spans == ["chat m"]
    assert attributes["gen_ai.usage.input_tokens"] == 3
    assert attributes["gen_ai.usage.output_tokens"] == 5  # "You said: a b c"
    assert attributes["gen_ai.request.model"] == "m"
    assert [line["t"] for line in lines if line["t"].startswith("stream")] == [
        "stream_start",
        "stream_first",
        "stream_end",
    ]


@pytest.mark.parametrize("api", list(APIS))
def test_messages_and_output_take_the_shared_specs(
    server: FakeOpenAIServer, mode: str, api: str
) -> None:
    server.add_replies("Paris.")
    act = APIS[api](
        client(server, mode),
        model="m",
        messages=from_state("question"),
        output={"content": update_state("answer"), "role": "last_role"},
        system="Answer in one word.",
    )
    assert sorted(act.reads) == ["question"]
    assert sorted(act.writes) == ["answer", "last_role"]
    _tokens, _result, state = run_step(
        one_step_app(act, question="Capital of France?"), mode, False
    )
    assert (state["answer"], state["last_role"]) == ("Paris.", "assistant")
    (request,) = server.requests
    if api == "chat":
        assert request.messages == [
            {"role": "system", "content": "Answer in one word."},
            {"role": "user", "content": "Capital of France?"},
        ]
    else:
        assert request.body["instructions"] == "Answer in one word."
        assert request.input == [{"role": "user", "content": "Capital of France?"}]


def test_messages_from_a_function_of_state(server: FakeOpenAIServer) -> None:
    def prompt(state: State) -> list[dict[str, str]]:
        return [{"role": "user", "content": f"Summarise: {state['text']}"}]

    act = chat_action(
        client(server, "sync"), model="m", messages=prompt, reads=["text"], output="summary"
    )
    _tokens, _result, state = run_step(one_step_app(act, text="long story"), "sync", False)
    assert state["summary"] == {"role": "assistant", "content": "You said: Summarise: long story"}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"client": object()}, "client= must be openai.OpenAI"),
        ({"messages": from_state("q") and (lambda s: s), "reads": ["q"]}, "nowhere to go"),
        ({"stream": True, "n": 1, "input": "x"}, "set by the action"),
        ({"model": ""}, "model= must be a model name"),
        ({"tools": [lambda x: x]}, "no type hint"),
    ],
    ids=["client", "no-output", "param-clash", "model", "bad-tool"],
)
def test_bad_arguments_name_the_fix(
    server: FakeOpenAIServer, kwargs: dict[str, Any], message: str
) -> None:
    options: dict[str, Any] = {"client": client(server, "sync"), "model": "m", **kwargs}
    with pytest.raises(TypeError, match=message):
        chat_action(**options)


def test_messages_of_the_wrong_shape_fail_clearly(server: FakeOpenAIServer) -> None:
    act = chat_action(client(server, "sync"), model="m")
    with pytest.raises(TypeError, match="list of"):
        run_step(one_step_app(act, messages=42), "sync", False)


# -- errors and retries ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (429, "RateLimitError"),
        (400, "BadRequestError"),
        (500, "InternalServerError"),
    ],
)
@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_api_errors_keep_their_type_and_name_the_action_and_model(
    server: FakeOpenAIServer, mode: str, status: int, error: str, stream: bool
) -> None:
    recorder = Recorder()
    server.fail_next(status, "slow down" if status == 429 else "nope")
    act = responses_action(client(server, mode), model="fake-1", stream=stream)
    with pytest.raises(getattr(openai, error)) as caught:
        run_step(one_step_app(act, (recorder,)), mode, stream)
    text = str(caught.value)
    assert "action 'ask'" in text
    assert "model 'fake-1'" in text
    assert recorder.spans == [("chat fake-1", None, error)]


def test_timeout_surfaces_as_api_timeout_error(server: FakeOpenAIServer, mode: str) -> None:
    server.add_replies(FakeReply(text="late", delay=5))  # the server's stop() cuts it short
    act = chat_action(client(server, mode, timeout=0.2), model="m")
    with pytest.raises(openai.APITimeoutError, match=r"action 'ask'.*model 'm'"):
        run_step(one_step_app(act), mode, False)


def test_connection_refused_surfaces_as_api_connection_error(mode: str) -> None:
    with FakeOpenAIServer() as gone:
        pass  # stopped: its port refuses connections now
    act = chat_action(client(gone, mode), model="m")
    with pytest.raises(openai.APIConnectionError, match="action 'ask'"):
        run_step(one_step_app(act), mode, False)


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_rate_limit_then_success_with_a_retry_policy(
    server: FakeOpenAIServer, mode: str, stream: bool
) -> None:
    server.fail_next(429, times=2)
    server.add_replies("third time lucky")
    policy = openai_retry_policy(max_attempts=3, initial_delay=0, jitter=0)
    act = chat_action(client(server, mode), model="m", stream=stream, retry=policy)
    _tokens, result, state = run_step(one_step_app(act), mode, stream)
    assert result["content"] == "third time lucky"
    assert state["messages"][-1]["content"] == "third time lucky"
    assert len(server.requests) == 3


def test_bad_request_routes_through_on_exception(server: FakeOpenAIServer, mode: str) -> None:
    from turnout import action

    @action(reads=["error"], writes=["notice"])
    def apologise(state: State) -> State:
        return state.update(notice=f"sorry: {state['error']['type']}")

    server.fail_next(400, "model not found")
    app = (
        ApplicationBuilder()
        .with_actions(ask=chat_action(client(server, mode), model="m"), apologise=apologise)
        .with_transitions(("ask", "apologise", on_exception(openai.BadRequestError)))
        .with_state(messages=[{"role": "user", "content": "hi"}])
        .with_entrypoint("ask")
        .build()
    )
    if mode == "sync":
        _action, _result, state = app.run(halt_after=["apologise"])
    else:
        _action, _result, state = in_loop(app.arun(halt_after=["apologise"]))
    assert state["notice"] == "sorry: BadRequestError"
    assert "model not found" in state["error"]["message"]
    assert "action 'ask'" in state["error"]["message"]


@pytest.mark.parametrize(
    ("api", "param", "message"),
    [
        (
            "responses",
            "max_tokens",
            r"max_tokens= is not a parameter .*responses.create; use "
            r"max_output_tokens= instead",
        ),
        ("chat", "max_output_tokens", r"chat.completions.create; use max_completion_tokens="),
        ("chat", "temperatur", r"temperatur= .*use temperature= instead"),
        ("responses", "response_format", r"use text=\{'format': ...\}"),
    ],
    ids=["responses-max-tokens", "chat-max-output-tokens", "typo", "response-format"],
)
def test_parameters_the_client_does_not_take_fail_when_the_action_is_built(
    server: FakeOpenAIServer, mode: str, api: str, param: str, message: str
) -> None:
    with pytest.raises(TypeError, match=message) as caught:
        APIS[api](client(server, mode), model="m", **{param: 5})
    assert f"{api}_action(model='m')" in str(caught.value)
    assert "extra_body=" in str(caught.value)
    assert server.requests == []


@pytest.mark.parametrize("hang_up", [False, True], ids=["error-event", "hang-up"])
@pytest.mark.parametrize("api", list(APIS))
def test_a_stream_failing_midway_raises_an_api_error_with_the_servers_message(
    server: FakeOpenAIServer, mode: str, api: str, hang_up: bool
) -> None:
    recorder = Recorder()
    server.add_replies(
        FakeReply(
            text="one two three four", fail_after=2, error="The model crashed", hang_up=hang_up
        )
    )
    act = APIS[api](client(server, mode), model="m", stream=True)
    app = one_step_app(act, (recorder,))
    tokens: list[str] = []

    def consume() -> None:
        if mode == "sync":
            _action, container = app.stream_result(halt_after=["ask"])
            tokens.extend(item["delta"] for item in container)
            return

        async def aconsume() -> None:
            _action, container = await app.astream_result(halt_after=["ask"])
            async for item in container:
                tokens.append(item["delta"])

        in_loop(aconsume())

    with pytest.raises(openai.APIError) as caught:
        consume()
    assert isinstance(caught.value, StreamFailedError)
    text = str(caught.value)
    assert ("connection was cut" if hang_up else "The model crashed") in text
    assert "action 'ask'" in text
    assert "model 'm'" in text
    assert tokens == ["one ", "two "]
    assert recorder.spans == [("chat m", None, "StreamFailedError")]


@pytest.mark.parametrize("api", list(APIS))
def test_a_failed_stream_is_retried_by_openai_retry_policy(
    server: FakeOpenAIServer, mode: str, api: str
) -> None:
    """Only before its first token: once tokens reached the caller, a step is not retried."""
    server.add_replies(FakeReply(text="lost words", fail_after=0), "second try")
    policy = openai_retry_policy(max_attempts=2, initial_delay=0, jitter=0)
    act = APIS[api](client(server, mode), model="m", stream=True, retry=policy)
    _tokens, result, state = run_step(one_step_app(act), mode, True)
    assert result["content"] == "second try"
    assert state["messages"][-1]["content"] == "second try"


def test_a_failed_stream_routes_through_on_exception_api_error(server: FakeOpenAIServer) -> None:
    from turnout import action

    @action(reads=["error"], writes=["notice"])
    def apologise(state: State) -> State:
        return state.update(notice=state["error"]["message"])

    server.add_replies(FakeReply(text="a b c", fail_after=1, error="overloaded"))
    app = (
        ApplicationBuilder()
        .with_actions(ask=responses_action(client(server, "sync"), model="m", stream=True))
        .with_actions(apologise=apologise)
        .with_transitions(("ask", "apologise", on_exception(openai.APIError)))
        .with_state(messages=[{"role": "user", "content": "hi"}])
        .with_entrypoint("ask")
        .build()
    )
    _action, container = app.stream_result(halt_after=["apologise"])
    list(container)
    _result, state = container.get()
    assert "overloaded" in state["notice"]


@pytest.mark.parametrize("api", list(APIS))
def test_an_abandoned_stream_ends_its_span_without_an_error(
    server: FakeOpenAIServer, api: str
) -> None:
    recorder = Recorder()
    server.add_replies("one two three")
    app = one_step_app(APIS[api](client(server, "sync"), model="m", stream=True), (recorder,))
    _action, container = app.stream_result(halt_after=["ask"])
    iterator = iter(container)
    assert next(iterator) == {"delta": "one "}
    del iterator, container  # the caller walks away: the generators are closed
    gc.collect()
    assert ("chat m", None, None) in recorder.spans
    assert recorder.merged()["turnout.stream_abandoned"] is True


# -- tool schemas ----------------------------------------------------------------------------------


class Unit(enum.Enum):
    CELSIUS = "celsius"
    FAHRENHEIT = "fahrenheit"


@dataclasses.dataclass
class Point:
    x: float
    y: float = 0.0


class Filters(TypedDict):
    tag: str
    limit: int


def weather(city: str, unit: Unit = Unit.CELSIUS, days: int = 1) -> str:
    """Get the weather forecast.

    More detail that is not the summary.

    Args:
        city: the city name,
            spelled in English.
        unit: the temperature unit.
        days (int): how many days.
    """
    return f"{city}: sunny for {days} day(s) in {unit.value}"


def search(
    query: Annotated[str, "what to look for"],
    tags: list[str],
    mode: Literal["fast", "deep"] = "fast",
    limit: int | None = None,
    weights: dict[str, float] | None = None,
    where: Point | None = None,
    filters: Filters | None = None,
) -> list[str]:
    """Search the notes."""
    return [query, *tags, mode]


def test_schema_from_a_documented_function() -> None:
    tool = function_tool(weather)
    assert tool.name == "weather"
    assert tool.description == "Get the weather forecast."
    assert tool.parameters == {
        "type": "object",
        "properties": {
            "city": {"type": "string", "description": "the city name, spelled in English."},
            "unit": {"enum": ["celsius", "fahrenheit"], "description": "the temperature unit."},
            "days": {"type": "integer", "description": "how many days.", "default": 1},
        },
        "required": ["city"],
    }
    assert tool.chat_schema() == {
        "type": "function",
        "function": {
            "name": "weather",
            "description": "Get the weather forecast.",
            "parameters": tool.parameters,
        },
    }
    assert tool.responses_schema()["name"] == "weather"
    assert tool.responses_schema()["strict"] is False


def test_schema_of_containers_unions_literals_and_records() -> None:
    props = function_tool(search).parameters["properties"]
    assert props["query"] == {"type": "string", "description": "what to look for"}
    assert props["tags"] == {"type": "array", "items": {"type": "string"}}
    assert props["mode"] == {"type": "string", "enum": ["fast", "deep"], "default": "fast"}
    assert props["limit"] == {"anyOf": [{"type": "integer"}, {"type": "null"}], "default": None}
    assert props["weights"]["anyOf"][0] == {
        "type": "object",
        "additionalProperties": {"type": "number"},
    }
    assert props["where"]["anyOf"][0] == {
        "type": "object",
        "properties": {"x": {"type": "number"}, "y": {"type": "number"}},
        "required": ["x"],
    }
    assert props["filters"]["anyOf"][0]["required"] == ["limit", "tag"]
    assert function_tool(search).parameters["required"] == ["query", "tags"]


class Order(pydantic.BaseModel):
    item: str
    quantity: int


def test_schema_of_a_pydantic_model_and_strict_mode() -> None:
    def place(order: Order) -> str:
        """Place an order."""
        return f"{order.quantity} x {order.item!s}"

    tool = function_tool(place, name="place_order", strict=True)
    assert tool.name == "place_order"
    assert tool.parameters["additionalProperties"] is False
    assert tool.parameters["properties"]["order"]["required"] == ["item", "quantity"]
    assert tool.chat_schema()["function"]["strict"] is True
    assert tool.fn(**tool.arguments('{"order": {"item": "tea", "quantity": 2}}')) == "2 x tea"


class Item(pydantic.BaseModel):
    name: str


class Line(pydantic.BaseModel):
    item: Item
    note: str | None = None
    count: int = 1


class Basket(pydantic.BaseModel):
    lines: list[Line]
    gift: bool = False


@dataclasses.dataclass
class Address:
    street: str
    floor: int = 0


def checkout(
    basket: Basket, address: Address, coupon: str = "", express: bool | None = None
) -> str:
    """Check the basket out."""
    line = basket.lines[0]
    return f"{line.item.name} x{line.count} {line.note} {address.floor} {coupon!r} {express}"


def object_schemas(schema: Any) -> Iterator[dict[str, Any]]:
    """Every object schema inside ``schema`` (the $defs too)."""
    if isinstance(schema, dict):
        if "properties" in schema:
            yield schema
        for value in schema.values():
            yield from object_schemas(value)
    elif isinstance(schema, list):
        for value in schema:
            yield from object_schemas(value)


def test_nested_pydantic_models_refer_to_defs_at_the_root_of_the_parameters() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    parameters = function_tool(checkout).parameters
    assert set(parameters["$defs"]) == {"Item", "Line"}
    assert "$defs" not in parameters["properties"]["basket"]
    good = {"basket": {"lines": [{"item": {"name": "tea"}}]}, "address": {"street": "Main"}}
    jsonschema.validate(good, parameters)  # every $ref resolves against the root
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**good, "basket": {"lines": [{"item": {}}]}}, parameters)


def test_two_models_with_one_name_are_rejected() -> None:
    first = pydantic.create_model("Same", a=(int, ...))
    second = pydantic.create_model("Same", b=(str, ...))
    holder_a = pydantic.create_model("A", x=(first, ...))
    holder_b = pydantic.create_model("B", y=(second, ...))

    def both(a: Any, b: Any) -> str:
        return ""

    both.__annotations__ = {"a": holder_a, "b": holder_b, "return": str}
    with pytest.raises(ToolSchemaError, match="two different models are named 'Same'"):
        function_tool(both)


def test_strict_schema_requires_every_field_at_every_level_and_has_no_defaults() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    parameters = function_tool(checkout, strict=True).parameters
    objects = list(object_schemas(parameters))
    assert len(objects) == 5  # the parameters, Basket, Address, Line, Item
    for schema in objects:
        assert schema["required"] == list(schema["properties"]), schema
        assert schema["additionalProperties"] is False, schema
    assert '"default"' not in json.dumps(parameters)
    props = parameters["properties"]
    assert props["coupon"]["type"] == ["string", "null"]
    assert props["express"]["anyOf"] == [{"type": "boolean"}, {"type": "null"}]
    assert props["address"]["properties"]["floor"]["type"] == ["integer", "null"]
    assert props["basket"]["properties"]["gift"]["type"] == ["boolean", "null"]
    line = parameters["$defs"]["Line"]["properties"]
    assert line["count"]["type"] == ["integer", "null"]
    assert line["note"]["anyOf"] == [{"type": "string"}, {"type": "null"}]
    assert line["item"] == {"$ref": "#/$defs/Item"}  # required: not made nullable
    nulls = {
        "basket": {"lines": [{"item": {"name": "tea"}, "note": None, "count": None}], "gift": None},
        "address": {"street": "Main", "floor": None},
        "coupon": None,
        "express": None,
    }
    jsonschema.validate(nulls, parameters)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**nulls, "extra": 1}, parameters)


def test_strict_tool_fills_defaults_where_the_model_sent_null() -> None:
    tool = function_tool(checkout, strict=True)
    raw = json.dumps(
        {
            "basket": {"lines": [{"item": {"name": "tea"}, "note": None, "count": None}]},
            "address": {"street": "Main", "floor": None},
            "coupon": None,
            "express": None,
        }
    )
    assert tool.fn(**tool.arguments(raw)) == "tea x1 None 0 '' None"


def test_strict_mode_rejects_free_form_objects() -> None:
    def tag(labels: dict[str, str]) -> str:
        return ""

    with pytest.raises(ToolSchemaError, match="strict=True needs objects with fixed fields"):
        function_tool(tag, strict=True)
    assert function_tool(tag).parameters["properties"]["labels"]["type"] == "object"


def _no_hint(city, days: int) -> str:  # type: ignore[no-untyped-def]
    return str(city)


def _star_args(*cities: str) -> str:
    return ""


def _bad_type(when: complex) -> str:
    return ""


def _int_keys(table: dict[int, str]) -> str:
    return ""


@pytest.mark.parametrize(
    ("fn", "message"),
    [
        (_no_hint, "parameter 'city' has no type hint"),
        (_star_args, "parameter 'cities' is \\*args"),
        (_bad_type, "parameter 'when'.*has no JSON schema"),
        (_int_keys, "use dict\\[str, ...\\]"),
        (42, "must be a function"),
    ],
    ids=["no-hint", "star-args", "complex", "int-keys", "not-callable"],
)
def test_bad_tool_functions_are_rejected_with_the_fix(fn: Any, message: str) -> None:
    with pytest.raises(ToolSchemaError, match=message):
        function_tool(fn)


def test_tool_names_must_suit_openai_and_be_unique() -> None:
    with pytest.raises(ToolSchemaError, match="name 'a b'"):
        function_tool(weather, name="a b")
    with pytest.raises(ToolSchemaError, match="two tools are named 'weather'"):
        tool_action([weather, weather])


def test_tool_arguments_are_parsed_and_checked() -> None:
    tool = function_tool(weather)
    assert tool.arguments('{"city": "Oslo", "unit": "fahrenheit"}') == {
        "city": "Oslo",
        "unit": Unit.FAHRENHEIT,
    }
    with pytest.raises(ToolCallError, match="not JSON"):
        tool.arguments("{city")
    with pytest.raises(ToolCallError, match="missing: \\['city'\\]"):
        tool.arguments('{"days": 2}')


# -- tool calling ----------------------------------------------------------------------------------


def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


def divide(a: float, b: float) -> float:
    """Divide a by b."""
    return a / b


async def aadd(a: int, b: int) -> int:
    """Add two integers, asynchronously."""
    await asyncio.sleep(0)
    return a + b


ARGS = '{"a": 2, "b": 3}'


def agent_app(act: Action, tools: Action, hooks: tuple[Any, ...] = ()) -> Any:
    return (
        ApplicationBuilder()
        .with_actions(ask=act, tools=tools)
        .with_transitions(("ask", "tools", tool_calls_requested()), ("tools", "ask"))
        .with_state(messages=[{"role": "user", "content": "What is 2 + 3?"}])
        .with_entrypoint("ask")
        .with_hooks(*hooks)
        .build()
    )


def run_app(app: Any, mode: str) -> State:
    if mode == "sync":
        return app.run(halt_after=[])[2]  # type: ignore[no-any-return]
    return in_loop(app.arun(halt_after=[]))[2]  # type: ignore[no-any-return]


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize("api", list(APIS))
def test_agent_loop_runs_the_requested_tool_and_answers(
    server: FakeOpenAIServer, mode: str, api: str, stream: bool
) -> None:
    recorder = Recorder()
    server.add_replies([FakeToolCall(name="add", arguments=json.loads(ARGS), id="c1")], "It is 5.")
    tool_fn = aadd if mode == "async" else add
    tools = [function_tool(tool_fn, name="add")]
    act = APIS[api](client(server, mode), model="m", tools=tools, stream=stream)
    state = run_app(agent_app(act, tool_action(tools), (recorder,)), mode)
    call = {"id": "c1", "type": "function", "function": {"name": "add", "arguments": ARGS}}
    assert state["messages"][1:] == [
        {"role": "assistant", "content": "", "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "c1", "content": "5"},
        {"role": "assistant", "content": "It is 5."},
    ]
    first, second = server.requests
    assert [t.get("name") or t["function"]["name"] for t in first.tools] == ["add"]
    if api == "responses":
        assert second.input[1:] == [
            {"type": "function_call", "call_id": "c1", "name": "add", "arguments": ARGS},
            {"type": "function_call_output", "call_id": "c1", "output": "5"},
        ]
    else:
        assert second.messages == state["messages"][:3]
    assert [name for name, _parent, _error in recorder.spans] == [
        "chat m",
        "execute_tool add",
        "chat m",
    ]
    assert recorder.merged()["gen_ai.tool.call.id"] == "c1"


def test_tool_errors_are_reported_to_the_model(server: FakeOpenAIServer, mode: str) -> None:
    server.add_replies(
        [
            FakeToolCall(name="divide", arguments={"a": 1, "b": 0}, id="c1"),
            FakeToolCall(name="teleport", arguments={}, id="c2"),
            FakeToolCall(name="add", arguments={"a": 1}, id="c3"),
        ],
        "Sorry, I cannot.",
    )
    tools = [add, divide]
    act = chat_action(client(server, mode), model="m", tools=tools)
    state = run_app(agent_app(act, tool_action(tools)), mode)
    results = {m["tool_call_id"]: m["content"] for m in state["messages"] if m["role"] == "tool"}
    assert results["c1"] == "Error: ZeroDivisionError: float division by zero"
    assert results["c2"].startswith("Error: ToolCallError: the model asked for tool 'teleport'")
    assert "missing: ['b']" in results["c3"]
    assert state["messages"][-1] == {"role": "assistant", "content": "Sorry, I cannot."}


def test_tool_errors_can_be_raised(server: FakeOpenAIServer, mode: str) -> None:
    server.add_replies([FakeToolCall(name="divide", arguments={"a": 1, "b": 0})])
    act = chat_action(client(server, mode), model="m", tools=[divide])
    app = agent_app(act, tool_action([divide], on_error="raise"))
    with pytest.raises(ZeroDivisionError):
        run_app(app, mode)
    assert app.state["messages"][-1]["role"] == "assistant"  # nothing appended by the tools step


def test_tool_action_without_a_pending_call_says_how_to_guard_it() -> None:
    app = (
        ApplicationBuilder()
        .with_actions(tools=tool_action([add]))
        .with_transitions()
        .with_state(messages=[{"role": "user", "content": "hi"}])
        .with_entrypoint("tools")
        .build()
    )
    with pytest.raises(ToolCallError, match="tool_calls_requested\\('messages'\\)"):
        app.step()


def test_tool_action_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="on_error= is 'report' or 'raise'"):
        tool_action([add], on_error="ignore")
    with pytest.raises(ValueError, match="tools= is empty"):
        tool_action([])


def test_tool_calls_requested_reads_the_last_message() -> None:
    condition = tool_calls_requested("history")
    asks = {"role": "assistant", "content": "", "tool_calls": [{"id": "x"}]}
    assert condition.reads == ["history"]
    assert condition.evaluate(State({"history": [asks]}))
    assert not condition.evaluate(State({"history": [asks, {"role": "tool", "content": "1"}]}))
    assert not condition.evaluate(State({"history": []}))
    assert (~condition).evaluate(State({"history": [{"role": "assistant", "content": "done"}]}))


def test_reply_content_appended_with_append_state(server: FakeOpenAIServer) -> None:
    act = chat_action(
        client(server, "sync"), model="m", output={"content": append_state("answers")}
    )
    _t, _r, state = run_step(one_step_app(act, answers=[]), "sync", False)
    assert state["answers"] == ["You said: hello there"]
    assert json.dumps(state.get_all())  # everything the adapter stores is plain JSON


# -- examples --------------------------------------------------------------------------------------


@pytest.mark.parametrize("responses", [False, True], ids=["chat", "responses"])
def test_agent_example_answers_from_its_tool(mode: str, responses: bool) -> None:
    from examples.openai_agent import application as agent

    with agent.model_client(mode == "async") as (model_client, model):
        app = agent.application(model_client, model, responses=responses)
        if mode == "sync":
            answers = [agent.ask(app, "Weather in Paris?"), agent.ask(app, "And Lisbon?")]
        else:
            _OPEN_ASYNC_CLIENTS.append(model_client)

            async def both() -> list[str]:
                return [
                    await agent.aask(app, "Weather in Paris?"),
                    await agent.aask(app, "Lisbon?"),
                ]

            answers = in_loop(both())
    assert answers == [
        "In Paris it is 12 degrees celsius with rain.",
        "In Lisbon it is 19 degrees celsius with sun.",
    ]
    roles = [m["role"] for m in app.state["messages"]]
    assert roles == ["user", "assistant", "tool", "assistant"] * 2


def test_agent_tools_have_documented_schemas() -> None:
    from examples.openai_agent import application as agent

    weather = agent.TOOLS[0].chat_schema()["function"]
    assert weather["description"] == "Get today's weather for a city."
    assert weather["parameters"]["properties"]["unit"] == {
        "type": "string",
        "enum": ["celsius", "fahrenheit"],
        "description": "the temperature unit.",
        "default": "celsius",
    }
    assert agent.convert_temperature(212, "celsius") == 100.0


def test_agent_example_main_prints_the_answers(capsys: pytest.CaptureFixture[str]) -> None:
    from examples.openai_agent import application as agent

    assert agent.main(["--async", "--responses", "Weather in Oslo?"]) == [
        "In Oslo it is -3 degrees celsius with snow."
    ]
    out = capsys.readouterr().out
    assert "agent: In Oslo it is -3 degrees celsius with snow." in out
    assert "(1 tool call(s), 4 steps)" in out


def test_chatbot_example_streams_and_tracks(tmp_path: Path) -> None:
    from examples.openai_chatbot import application as chatbot

    tracker = LocalTracker("chat", storage_dir=tmp_path)
    with chatbot.model_client() as (model_client, model):
        app = chatbot.application(model_client, model, tracker=tracker, app_id="c1")
        tokens: list[str] = []
        answer = chatbot.stream_chat(app, "hello", tokens.append)
        chatbot.stream_chat(app, "again", tokens.append)
    tracker.close()
    assert answer == "(turn 1) You said 'hello'. Set OPENAI_API_KEY for a real model."
    assert tokens[:3] == ["(turn ", "1) ", "You "]
    assert "".join(tokens).startswith(answer)
    assert [m["role"] for m in app.state["messages"]] == ["user", "assistant"] * 2
    lines = list(read_log(tracker.log_path("c1")))
    usage = [line["value"] for line in lines if line.get("key") == "gen_ai.usage.output_tokens"]
    assert usage == [11, 11]  # the words of the answer
    assert [line["name"] for line in lines if line["t"] == "span_start"] == ["chat fake-chat"] * 2


def test_chatbot_example_main_sync_and_async(capsys: pytest.CaptureFixture[str]) -> None:
    from examples.openai_chatbot import application as chatbot

    assert chatbot.main(["hi"]) == chatbot.main(["--async", "hi"])
    out = capsys.readouterr().out
    assert out.count("bot:  (turn 1) You said 'hi'.") == 2
    assert "tracked as" in out


def test_chatbot_spans_export_to_opentelemetry() -> None:
    pytest.importorskip("opentelemetry.sdk")
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from examples.openai_chatbot import application as chatbot
    from turnout.integrations.opentelemetry import OpenTelemetryHook

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with chatbot.model_client() as (model_client, model):
        hook = OpenTelemetryHook(tracer_provider=provider)
        app = chatbot.application(model_client, model, hooks=(hook,))
        chatbot.stream_chat(app, "hello", lambda token: None)
    provider.shutdown()
    spans = {span.name: span for span in exporter.get_finished_spans()}
    chat = spans["chat fake-chat"]
    assert chat.attributes is not None
    assert chat.attributes["gen_ai.usage.output_tokens"] == 11
    assert chat.attributes["gen_ai.request.model"] == "fake-chat"
    assert chat.parent is not None
    parent = next(s for s in spans.values() if s.context.span_id == chat.parent.span_id)
    assert "respond" in parent.name


def test_chatbot_otlp_hook_only_with_an_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    import contextlib

    pytest.importorskip("opentelemetry.exporter.otlp.proto.http")
    from examples.openai_chatbot import application as chatbot
    from turnout.integrations.opentelemetry import OpenTelemetryHook

    with contextlib.ExitStack() as stack:
        assert chatbot.otlp_hooks(stack) == ()
    for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")
        with contextlib.ExitStack() as stack:
            (hook,) = chatbot.otlp_hooks(stack)  # nothing is sent: no span was made
            assert isinstance(hook, OpenTelemetryHook)
        monkeypatch.delenv(name)


@pytest.mark.parametrize("variable", ["TRACES_ENDPOINT", "ENDPOINT"])
def test_chatbot_main_tracks_locally_and_exports_over_otlp_at_once(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, variable: str
) -> None:
    pytest.importorskip("opentelemetry.exporter.otlp.proto.http")
    from examples.openai_chatbot import application as chatbot
    from tests.integrations.otlp_sink import OTLPSink

    home = tmp_path / "home"
    monkeypatch.setenv("TURNOUT_HOME", str(home))
    with OTLPSink() as sink:
        endpoint = sink.endpoint
        if variable == "ENDPOINT":
            endpoint = endpoint.removesuffix("/v1/traces")
        monkeypatch.setenv(f"OTEL_EXPORTER_OTLP_{variable}", endpoint)
        assert chatbot.main(["hello"]) == [
            "(turn 1) You said 'hello'. Set OPENAI_API_KEY for a real model."
        ]
        # main() shut the provider down, which flushed every span to the sink
        chat = sink.by_name("chat fake-chat")
        assert len(chat) == 1
        assert chat[0].attributes["gen_ai.usage.output_tokens"] == 11
    tracker = LocalTracker("openai-chatbot", storage_dir=home)
    (app_id,) = tracker.list_app_ids()
    lines = list(read_log(tracker.log_path(app_id)))
    assert [line["name"] for line in lines if line["t"] == "span_start"] == ["chat fake-chat"]
    assert chat[0].attributes["turnout.app_id"] == app_id


def test_the_tests_never_see_a_real_openai_key_or_collector() -> None:
    """The autouse ``offline`` fixture: a developer's environment cannot reach a real service."""
    assert "OPENAI_API_KEY" not in os.environ
    assert "OPENAI_BASE_URL" not in os.environ
    assert not [name for name in os.environ if name.startswith("OTEL_EXPORTER_OTLP_")]


def test_example_model_clients_are_closed_with_their_context() -> None:
    from examples.openai_agent import application as agent
    from examples.openai_chatbot import application as chatbot

    for example in (agent, chatbot):
        with example.model_client() as (model_client, _model):
            assert not model_client.is_closed()
        assert model_client.is_closed()


def gated_tools(parties: int, count: int) -> tuple[list[Any], dict[str, int]]:
    """``count`` async tools that pass a barrier only when ``parties`` of them run at once;
    ``seen["most"]`` is how many were inside together at most."""
    seen = {"inside": 0, "most": 0}
    barrier: list[asyncio.Barrier] = []

    def make(i: int) -> Any:
        async def gated() -> str:
            """Wait for the sibling calls."""
            if not barrier:
                barrier.append(asyncio.Barrier(parties))  # inside the step's event loop
            seen["inside"] += 1
            seen["most"] = max(seen["most"], seen["inside"])
            try:
                await asyncio.wait_for(barrier[0].wait(), timeout=10)
            finally:
                seen["inside"] -= 1
            return f"met {i}"

        gated.__name__ = gated.__qualname__ = f"gated{i}"
        return gated

    return [make(i) for i in range(count)], seen


def tool_calls_app(tools: Action, count: int) -> Any:
    calls = [
        {"id": f"c{i}", "type": "function", "function": {"name": f"gated{i}", "arguments": "{}"}}
        for i in range(count)
    ]
    return (
        ApplicationBuilder()
        .with_actions(tools=tools)
        .with_transitions()
        .with_state(messages=[{"role": "assistant", "content": None, "tool_calls": calls}])
        .with_entrypoint("tools")
        .build()
    )


def test_async_tool_calls_run_concurrently_in_order() -> None:
    tools, _seen = gated_tools(3, 3)  # one after another, the first would wait forever
    app = tool_calls_app(tool_action(tools, on_error="raise"), 3)
    _act, result, _state = asyncio.run(app.astep())
    assert [(r["tool_call_id"], r["content"]) for r in result["tool_results"]] == [
        ("c0", "met 0"),
        ("c1", "met 1"),
        ("c2", "met 2"),
    ]


def test_async_tool_calls_are_bounded_by_max_concurrency() -> None:
    tools, seen = gated_tools(2, 4)  # pairs meet: calls 0 and 1, then 2 and 3
    app = tool_calls_app(tool_action(tools, on_error="raise", max_concurrency=2), 4)
    _act, result, _state = asyncio.run(app.astep())
    assert [r["content"] for r in result["tool_results"]] == ["met 0", "met 1", "met 2", "met 3"]
    assert seen["most"] == 2
    with pytest.raises(ValueError, match=r"max_concurrency= .* positive int; got 0"):
        tool_action(tools, max_concurrency=0)


def test_chat_action_takes_application_inputs(server: FakeOpenAIServer, mode: str) -> None:
    act = chat_action(
        client(server, mode),
        model="m",
        messages="name",
        output="reply",
        inputs=["name"],
    )
    app = (
        ApplicationBuilder().with_actions(ask=act).with_transitions().with_entrypoint("ask").build()
    )
    if mode == "sync":
        done = app.step(inputs={"name": "bob"})
    else:
        done = in_loop(app.astep(inputs={"name": "bob"}))
    assert done is not None
    assert done[2]["reply"]["content"].endswith("bob")
    assert server.requests[-1].messages == [{"role": "user", "content": "bob"}]
    assert act.reads == []
