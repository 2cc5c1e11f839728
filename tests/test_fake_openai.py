"""``turnout.testing.FakeOpenAIServer``: the real ``openai`` client against it, over HTTP."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

openai = pytest.importorskip("openai")

from turnout._fake_openai import count_tokens, split_tokens  # noqa: E402
from turnout.testing import (  # noqa: E402
    FakeError,
    FakeOpenAIServer,
    FakeReply,
    FakeRequest,
    FakeToolCall,
)

USER = [{"role": "user", "content": "hello big world"}]


@pytest.fixture
def server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer() as fake:
        yield fake


_OPEN: list[Any] = []


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    """Every sync client a test made is closed after it (an open one warns at exit)."""
    yield
    while _OPEN:
        _OPEN.pop().close()


def sync_client(server: FakeOpenAIServer, **kwargs: Any) -> Any:
    client = openai.OpenAI(base_url=server.base_url, api_key="test", max_retries=0, **kwargs)
    _OPEN.append(client)
    return client


def test_base_url_is_loopback_on_a_free_port(server: FakeOpenAIServer) -> None:
    assert server.base_url.startswith("http://127.0.0.1:")
    assert server.base_url.endswith("/v1")
    assert not server.base_url.endswith(":0/v1")


def test_tokens_are_words_with_their_trailing_space() -> None:
    assert split_tokens("Hi there,  you!") == ["Hi ", "there,  ", "you!"]
    assert count_tokens("") == 0
    assert count_tokens(" a b ") == 2


def test_chat_completion_echoes_by_default_with_usage(server: FakeOpenAIServer) -> None:
    reply = sync_client(server).chat.completions.create(model="m", messages=USER)
    assert reply.choices[0].message.content == "You said: hello big world"
    assert reply.choices[0].finish_reason == "stop"
    assert reply.model == "m"
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (3, 5)
    assert reply.usage.total_tokens == 8


def test_chat_stream_sends_tokens_then_a_usage_chunk(server: FakeOpenAIServer) -> None:
    server.add_replies("one two three")
    chunks = list(
        sync_client(server).chat.completions.create(
            model="m", messages=USER, stream=True, stream_options={"include_usage": True}
        )
    )
    tokens = [
        c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content
    ]
    assert tokens == ["one ", "two ", "three"]
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].choices == []
    assert chunks[-1].usage.completion_tokens == 3
    assert len({c.id for c in chunks}) == 1


def test_chat_stream_without_include_usage_has_no_usage_chunk(server: FakeOpenAIServer) -> None:
    chunks = list(
        sync_client(server).chat.completions.create(model="m", messages=USER, stream=True)
    )
    assert all(c.usage is None for c in chunks)
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_chat_stream_helper_assembles_the_completion(server: FakeOpenAIServer) -> None:
    server.add_replies("streamed answer")
    with sync_client(server).chat.completions.stream(model="m", messages=USER) as stream:
        for _event in stream:
            pass
        final = stream.get_final_completion()
    assert final.choices[0].message.content == "streamed answer"


def test_chat_tool_calls_plain_and_streamed(server: FakeOpenAIServer) -> None:
    call = FakeToolCall(name="lookup", arguments={"q": "tea"}, id="call_a")
    server.add_replies([call], call)
    client = sync_client(server)
    plain = client.chat.completions.create(model="m", messages=USER)
    (made,) = plain.choices[0].message.tool_calls
    assert (made.id, made.function.name, made.function.arguments) == (
        "call_a",
        "lookup",
        '{"q": "tea"}',
    )
    assert plain.choices[0].finish_reason == "tool_calls"
    assert plain.choices[0].message.content is None
    with client.chat.completions.stream(model="m", messages=USER) as stream:
        for _event in stream:
            pass
        final = stream.get_final_completion()
    assert final.choices[0].message.tool_calls[0].function.arguments == '{"q": "tea"}'


def test_responses_plain_and_streamed_event_order(server: FakeOpenAIServer) -> None:
    server.add_replies("red green", "blue sky")
    client = sync_client(server)
    plain = client.responses.create(model="m", input="colours?")
    assert plain.output_text == "red green"
    assert (plain.usage.input_tokens, plain.usage.output_tokens) == (1, 2)
    events = list(client.responses.create(model="m", input="again", stream=True))
    assert [e.type for e in events] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert [e.delta for e in events if e.type == "response.output_text.delta"] == ["blue ", "sky"]
    assert events[-1].response.output_text == "blue sky"


def test_responses_function_calls(server: FakeOpenAIServer) -> None:
    server.add_replies(FakeReply(text="Let me look.", tool_calls=(FakeToolCall(name="f"),)))
    with sync_client(server).responses.stream(model="m", input="x") as stream:
        for _event in stream:
            pass
        final = stream.get_final_response()
    kinds = [item.type for item in final.output]
    assert kinds == ["message", "function_call"]
    assert final.output_text == "Let me look."
    assert final.output[1].name == "f"
    assert final.output[1].arguments == "{}"


def test_async_client_streams_too(server: FakeOpenAIServer) -> None:
    server.add_replies("async works", "also here")

    async def main() -> tuple[list[str], str]:
        async with openai.AsyncOpenAI(
            base_url=server.base_url, api_key="test", max_retries=0
        ) as client:
            stream = await client.chat.completions.create(model="m", messages=USER, stream=True)
            tokens = [c.choices[0].delta.content async for c in stream if c.choices]
            response = await client.responses.create(model="m", input="hi")
            return [t for t in tokens if t], response.output_text

    assert asyncio.run(main()) == (["async ", "works"], "also here")


def test_request_log_records_what_was_sent(server: FakeOpenAIServer) -> None:
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    client = sync_client(server)
    client.chat.completions.create(model="gpt-x", messages=USER, tools=tools, temperature=0.1)
    client.responses.create(model="gpt-y", input=[{"role": "user", "content": "yo"}], stream=True)
    chat, responses = server.requests
    assert (chat.api, chat.model, chat.stream, chat.tools) == ("chat", "gpt-x", False, tools)
    assert chat.messages == USER
    assert chat.input is None
    assert chat.body["temperature"] == 0.1
    assert chat.headers["authorization"] == "Bearer test"
    assert (responses.api, responses.model, responses.stream) == ("responses", "gpt-y", True)
    assert responses.input == [{"role": "user", "content": "yo"}]
    assert responses.user_text() == "yo"


def test_a_function_computes_each_reply() -> None:
    def reply(request: FakeRequest) -> str:
        return f"{request.model}: {len(request.conversation())} message(s)"

    with FakeOpenAIServer(reply) as server:
        first = sync_client(server).chat.completions.create(model="m1", messages=USER * 2)
        second = sync_client(server).responses.create(model="m2", input="one")
    assert first.choices[0].message.content == "m1: 2 message(s)"
    assert second.output_text == "m2: 1 message(s)"


@pytest.mark.parametrize(
    ("status", "error", "kind"),
    [
        (429, "RateLimitError", "rate_limit_exceeded"),
        (400, "BadRequestError", "invalid_request_error"),
        (500, "InternalServerError", "server_error"),
    ],
)
def test_injected_errors_have_the_openai_shape(
    server: FakeOpenAIServer, status: int, error: str, kind: str
) -> None:
    server.fail_next(status, "scripted failure")
    with pytest.raises(getattr(openai, error)) as caught:
        sync_client(server).chat.completions.create(model="m", messages=USER)
    assert caught.value.status_code == status
    assert caught.value.body == {
        "message": "scripted failure",
        "type": kind,
        "param": None,
        "code": None,
    }
    # the failure was used up: the next request succeeds
    assert sync_client(server).responses.create(model="m", input="x").output_text


def test_fail_next_times_and_fake_error_in_the_queue(server: FakeOpenAIServer) -> None:
    server.add_replies("after the errors")
    server.fail_next(500, times=2)
    server.add_replies(FakeError(status=400, code="bad_model", message="no such model"))
    client = sync_client(server)
    for _ in range(2):
        with pytest.raises(openai.InternalServerError):
            client.chat.completions.create(model="m", messages=USER)
    assert client.chat.completions.create(model="m", messages=USER).choices[0].message.content == (
        "after the errors"
    )
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="m", messages=USER)
    assert caught.value.code == "bad_model"


def test_a_delayed_reply_makes_the_client_time_out(server: FakeOpenAIServer) -> None:
    server.add_replies(FakeReply(text="too late", delay=5))  # stop() cuts the wait short
    with pytest.raises(openai.APITimeoutError):
        sync_client(server, timeout=0.2).chat.completions.create(model="m", messages=USER)


def test_unknown_routes_and_bodies_get_openai_errors(server: FakeOpenAIServer) -> None:
    def post(path: str, data: bytes) -> tuple[int, dict[str, Any]]:
        url = server.base_url.removesuffix("/v1") + path
        try:
            with urllib.request.urlopen(urllib.request.Request(url, data=data)) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    assert post("/v1/embeddings", b"{}") == (
        404,
        {"error": {"message": "no route /v1/embeddings", "type": "not_found_error",
                   "param": None, "code": None}},
    )  # fmt: skip
    status, body = post("/v1/chat/completions", b"{not json")
    assert status == 400
    assert body["error"]["message"] == "the request body is not JSON"
    assert server.requests == []


def test_replies_of_an_unknown_kind_are_refused() -> None:
    with pytest.raises(TypeError, match="reply 42 is not understood"):
        FakeOpenAIServer([42])  # type: ignore[list-item]


def test_stop_frees_the_port() -> None:
    server = FakeOpenAIServer().start()
    url = server.base_url
    server.stop()
    with pytest.raises(openai.APIConnectionError):
        openai.OpenAI(base_url=url, api_key="t", max_retries=0).responses.create(
            model="m", input="x"
        )


def test_a_reply_can_fail_mid_stream(server: FakeOpenAIServer) -> None:
    """``fail_after=n``: n tokens, then an error chunk (chat) or ``response.failed`` (Responses);
    with ``hang_up=True`` the connection closes instead; unstreamed, a 500."""
    failing = FakeReply(text="one two three", fail_after=1, error="boom")
    server.add_replies(failing, failing, FakeReply(text="a b", fail_after=1, hang_up=True), failing)
    with sync_client(server) as client:
        tokens: list[str] = []

        def read_chat() -> None:
            for chunk in client.chat.completions.create(model="m", messages=USER, stream=True):
                if chunk.choices and chunk.choices[0].delta.content:
                    tokens.append(chunk.choices[0].delta.content)

        with pytest.raises(openai.APIError, match="boom"):
            read_chat()
        assert tokens == ["one "]
        events = list(client.responses.create(model="m", input="hi", stream=True))
        assert [e.delta for e in events if e.type == "response.output_text.delta"] == ["one "]
        assert events[-1].type == "response.failed"
        assert events[-1].response.error.message == "boom"
        cut = list(client.chat.completions.create(model="m", messages=USER, stream=True))
        assert [c.choices[0].finish_reason for c in cut if c.choices] == [None, None]
        with pytest.raises(openai.InternalServerError, match="boom"):
            client.chat.completions.create(model="m", messages=USER)


def test_fail_next_serves_failures_first_in_first_out(server: FakeOpenAIServer) -> None:
    server.add_replies("fine")
    server.fail_next(429)
    server.fail_next(500)
    client = sync_client(server)
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model="m", messages=USER)
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model="m", messages=USER)
    assert client.chat.completions.create(model="m", messages=USER).choices[0].message.content == (
        "fine"
    )


def test_replies_are_written_in_one_send_without_nagle(server: FakeOpenAIServer) -> None:
    """Headers and body leave in one send on a TCP_NODELAY socket, so a request on a kept-alive
    connection does not wait for the client's delayed ACK between them: one read of the second
    and later replies on one connection already holds the whole reply."""
    import socket

    body = json.dumps({"model": "m", "messages": USER}).encode()
    request = (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )
    host, port = server.base_url.split("//")[1].split("/")[0].split(":")
    with socket.create_connection((host, int(port)), timeout=10) as conn:
        for _ in range(5):
            conn.sendall(request)
            reply = conn.recv(1 << 16)
            head, _sep, rest = reply.partition(b"\r\n\r\n")
            length = int(
                next(
                    line.split(b":")[1]
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length")
                )
            )
            assert len(rest) == length, reply  # the body came with the headers
            assert json.loads(rest)["choices"][0]["message"]["content"].endswith("hello big world")
    handler = server._server.RequestHandlerClass
    assert getattr(handler, "disable_nagle_algorithm", False) is True
