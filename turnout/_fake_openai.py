"""A local OpenAI-compatible HTTP server for tests: ``FakeOpenAIServer`` (stdlib only).

It serves ``POST /v1/chat/completions`` and ``POST /v1/responses``, plain and streamed (SSE), on
127.0.0.1, so tests drive the real ``openai`` client over real HTTP::

    from openai import OpenAI
    from turnout.testing import FakeOpenAIServer

    with FakeOpenAIServer(replies=["Hello there!"]) as server:
        client = OpenAI(base_url=server.base_url, api_key="test", max_retries=0)
        reply = client.chat.completions.create(model="m", messages=[...])

Replies come from a queue (texts, ``FakeToolCall`` lists, ``FakeReply``, ``FakeError``), or from a
function of the request; with the queue empty, the server echoes the last user message. Tokens
are whitespace-separated words (a word keeps its trailing space), so usage is deterministic:
input tokens count the words of every message, output tokens the words of the reply. Every
request is logged in ``server.requests``.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeAlias

__all__ = [
    "FakeError",
    "FakeOpenAIServer",
    "FakeReply",
    "FakeRequest",
    "FakeToolCall",
    "count_tokens",
    "split_tokens",
]

_WORD = re.compile(r"\S+\s*")


def split_tokens(text: str) -> list[str]:
    """The fake's tokens: words, each with its trailing whitespace (joined they give ``text``
    without its leading whitespace)."""
    return _WORD.findall(text)


def count_tokens(text: str) -> int:
    """How many tokens the fake counts in ``text``."""
    return len(split_tokens(text))


@dataclass(frozen=True, kw_only=True, slots=True)
class FakeToolCall:
    """A tool call the fake model requests: ``name(**arguments)``."""

    name: str
    arguments: dict[str, Any] = field(default_factory=dict)
    id: str | None = None
    """The call id; ``call_<n>`` numbered by the server if not given."""


@dataclass(frozen=True, kw_only=True, slots=True)
class FakeReply:
    """A scripted reply: text, tool calls or both, optionally after ``delay`` seconds (to make a
    client with a shorter timeout raise ``APITimeoutError``).

    ``fail_after=n`` makes a streamed reply fail after its first ``n`` tokens: a chat stream
    sends an ``{"error": ...}`` chunk, a Responses stream a ``response.failed`` event, both
    with ``error`` as the message (with ``hang_up=True`` the connection is just closed
    instead). A request that is not streamed gets a 500 with that message."""

    text: str = ""
    tool_calls: tuple[FakeToolCall, ...] = ()
    delay: float = 0.0
    model: str | None = None
    """The model name reported back; the requested one if ``None``."""
    fail_after: int | None = None
    error: str = "the fake model failed mid-stream"
    hang_up: bool = False


@dataclass(frozen=True, kw_only=True, slots=True)
class FakeError:
    """A scripted failure: an OpenAI-shaped error body with this HTTP status (429 becomes
    ``RateLimitError``, 400 ``BadRequestError``, 500 ``InternalServerError`` in the client)."""

    status: int = 500
    message: str = "the fake server was told to fail"
    type: str | None = None
    code: str | None = None
    delay: float = 0.0


@dataclass(frozen=True, kw_only=True, slots=True)
class FakeRequest:
    """One request the server received.

    Attributes:
        api: ``"chat"`` (chat completions) or ``"responses"``.
        model: the requested model.
        messages: chat messages (chat completions), else ``None``.
        input: the ``input`` of a Responses request, else ``None``.
        stream: whether a stream was requested.
        tools: the tool schemas sent (empty if none).
        body: the whole JSON body.
        headers: the request headers, names in lower case.
    """

    api: str
    model: str
    messages: list[dict[str, Any]] | None
    input: Any
    stream: bool
    tools: list[dict[str, Any]]
    body: dict[str, Any]
    headers: dict[str, str]

    def user_text(self) -> str:
        """The last user message's text (``""`` if none)."""
        for message in reversed(self.conversation()):
            if message.get("role") == "user":
                return _text_of(message.get("content"))
        return ""

    def conversation(self) -> list[dict[str, Any]]:
        """The request's messages, also for a Responses ``input`` (a string is one user message)."""
        if self.messages is not None:
            return self.messages
        if isinstance(self.input, str):
            return [{"role": "user", "content": self.input}]
        return [item for item in self.input or () if isinstance(item, dict)]


Reply: TypeAlias = "str | FakeReply | FakeError | FakeToolCall | list[FakeToolCall]"
Responder: TypeAlias = "Callable[[FakeRequest], Reply]"


def echo(request: FakeRequest) -> Reply:
    """The default reply: repeat the last user message."""
    return f"You said: {request.user_text()}"


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts: {"type": "text"|"input_text", "text": ...}
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return "" if content is None else str(content)


def _input_tokens(request: FakeRequest) -> int:
    total = 0
    for message in request.conversation():
        total += count_tokens(_text_of(message.get("content")))
        total += count_tokens(str(message.get("output", "")))  # Responses tool outputs
    return total


class FakeOpenAIServer:
    """An OpenAI-compatible server on ``127.0.0.1`` (port 0: a free port), for tests.

    Args:
        replies: replies served in order (see ``add_replies``), or a function from the
            ``FakeRequest`` to a reply, called for every request.
        host: the address to bind.
        port: the port (0 picks a free one).

    Use it as a context manager, or call ``start()`` and ``stop()``.
    """

    def __init__(
        self,
        replies: Iterable[Reply] | Responder | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self._queue: deque[Reply] = deque()
        self._failures: deque[FakeError] = deque()  # from fail_next: before the replies
        self._responder: Responder = echo
        if callable(replies):
            self._responder = replies
        elif replies is not None:
            self.add_replies(*replies)
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._stopping = threading.Event()
        self.requests: list[FakeRequest] = []
        self._server = ThreadingHTTPServer((host, port), _handler(self))
        self._server.daemon_threads = True
        self._server.block_on_close = False
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        """The ``base_url`` to give ``OpenAI(...)``: ``http://127.0.0.1:<port>/v1``."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/v1"

    def add_replies(self, *replies: Reply) -> None:
        """Queue replies: a text, a ``FakeToolCall`` or list of them (the model asks for tools),
        a ``FakeReply`` or a ``FakeError``. Each request takes the next one."""
        for reply in replies:
            _check_reply(reply)
            self._queue.append(reply)

    def fail_next(self, status: int, message: str | None = None, *, times: int = 1) -> None:
        """Make the next ``times`` requests fail with ``status`` (429, 400, 500, ...), before
        any queued reply. Failures queue in the order given: ``fail_next(429)`` then
        ``fail_next(500)`` serves the 429 first."""
        error = FakeError(status=status, message=message or f"fake error {status}")
        with self._lock:
            self._failures.extend([error] * times)

    def start(self) -> FakeOpenAIServer:
        """Serve in a background thread; returns the server."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._server.serve_forever,
                kwargs={"poll_interval": 0.05},  # stop() waits for one poll at most
                name="fake-openai",
                daemon=True,
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket (delayed replies are cut short)."""
        self._stopping.set()
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> FakeOpenAIServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _next_reply(self, request: FakeRequest) -> FakeReply | FakeError:
        with self._lock:
            self.requests.append(request)
            scripted: Reply | None = None
            if self._failures:
                scripted = self._failures.popleft()
            elif self._queue:
                scripted = self._queue.popleft()
        reply = scripted if scripted is not None else self._responder(request)
        _check_reply(reply)
        if isinstance(reply, str):
            return FakeReply(text=reply)
        if isinstance(reply, FakeToolCall):
            return FakeReply(tool_calls=(reply,))
        if isinstance(reply, list):
            return FakeReply(tool_calls=tuple(reply))
        return reply

    def _new_id(self, prefix: str) -> str:
        with self._lock:
            return f"{prefix}_{next(self._ids)}"

    def _wait(self, seconds: float) -> None:
        if seconds > 0:
            self._stopping.wait(seconds)


def _check_reply(reply: Any) -> None:
    ok = isinstance(reply, str | FakeReply | FakeError | FakeToolCall) or (
        isinstance(reply, list) and all(isinstance(c, FakeToolCall) for c in reply)
    )
    if not ok:
        raise TypeError(
            f"FakeOpenAIServer: reply {reply!r} is not understood; give a str, FakeReply(...), "
            f"FakeToolCall(...), a list of FakeToolCall or FakeError(...)"
        )


_ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 404: "not_found_error"}
_ERROR_TYPES |= {429: "rate_limit_exceeded"}


def _handler(server: FakeOpenAIServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # A reply is one send (headers and body buffered, flushed after the request) on a
        # socket without Nagle's algorithm: a request on a kept-alive connection would else
        # wait for the client's delayed ACK (40 ms or more) between the headers and the body.
        disable_nagle_algorithm = True
        wbufsize = 1 << 16

        def log_message(self, format: str, *args: Any) -> None:
            pass  # keep test output clean

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            try:
                body = json.loads(self.rfile.read(length) or b"{}")
            except ValueError:
                self._error(FakeError(status=400, message="the request body is not JSON"))
                return
            api = {"/v1/chat/completions": "chat", "/v1/responses": "responses"}.get(
                self.path.split("?")[0]
            )
            if api is None or not isinstance(body, dict):
                self._error(FakeError(status=404, message=f"no route {self.path}"))
                return
            request = FakeRequest(
                api=api,
                model=str(body.get("model", "")),
                messages=body.get("messages") if api == "chat" else None,
                input=body.get("input") if api == "responses" else None,
                stream=bool(body.get("stream")),
                tools=list(body.get("tools") or []),
                body=body,
                headers={k.lower(): v for k, v in self.headers.items()},
            )
            reply = server._next_reply(request)
            server._wait(reply.delay)
            if server._stopping.is_set():
                self.close_connection = True  # stopped while delaying: the client gave up
                return
            if isinstance(reply, FakeReply) and reply.fail_after is not None and not request.stream:
                reply = FakeError(status=500, message=reply.error)
            if isinstance(reply, FakeError):
                self._error(reply)
                return
            ids = server._new_id
            usage = (_input_tokens(request), _output_tokens(reply))
            build = _chat if api == "chat" else _response
            if not request.stream:
                self._send(200, "application/json", json.dumps(build(request, reply, usage, ids)))
                return
            events = (_chat_stream if api == "chat" else _response_stream)(
                request, reply, usage, ids
            )
            self._stream(events)

        def _error(self, error: FakeError) -> None:
            kind = error.type or _ERROR_TYPES.get(error.status, "server_error")
            payload = {"message": error.message, "type": kind, "param": None, "code": error.code}
            self._send(error.status, "application/json", json.dumps({"error": payload}))

        def _send(self, status: int, content_type: str, text: str) -> None:
            data = text.encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _stream(self, events: Iterator[str]) -> None:
            # No Content-Length: the body ends when the connection closes.
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True
            for event in events:
                self.wfile.write(event.encode("utf-8"))
                self.wfile.flush()

    return Handler


# -- wire formats ----------------------------------------------------------------------------------

_Ids: TypeAlias = "Callable[[str], str]"
_Call: TypeAlias = "tuple[str, str, str]"  # call id, tool name, arguments as JSON


def _output_tokens(reply: FakeReply) -> int:
    calls = sum(count_tokens(f"{c.name} {json.dumps(c.arguments)}") for c in reply.tool_calls)
    return count_tokens(reply.text) + calls


def _calls(reply: FakeReply, ids: _Ids) -> list[_Call]:
    return [(c.id or ids("call"), c.name, json.dumps(c.arguments)) for c in reply.tool_calls]


def _sse(payload: dict[str, Any], event: str | None = None) -> str:
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {json.dumps(payload)}\n\n"


def _chat_usage(usage: tuple[int, int]) -> dict[str, int]:
    return {"prompt_tokens": usage[0], "completion_tokens": usage[1], "total_tokens": sum(usage)}


def _chat(
    request: FakeRequest, reply: FakeReply, usage: tuple[int, int], ids: _Ids
) -> dict[str, Any]:
    calls = _calls(reply, ids)
    message: dict[str, Any] = {
        "role": "assistant",
        "content": reply.text if reply.text or not calls else None,
        "refusal": None,
    }
    if calls:
        message["tool_calls"] = [
            {"id": cid, "type": "function", "function": {"name": name, "arguments": arguments}}
            for cid, name, arguments in calls
        ]
    return {
        "id": ids("chatcmpl"),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": reply.model or request.model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": "tool_calls" if calls else "stop",
                "logprobs": None,
            }
        ],
        "usage": _chat_usage(usage),
    }


def _chat_stream(
    request: FakeRequest, reply: FakeReply, usage: tuple[int, int], ids: _Ids
) -> Iterator[str]:
    base = {
        "id": ids("chatcmpl"),
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": reply.model or request.model,
    }

    def chunk(delta: dict[str, Any], finish: str | None = None) -> str:
        return _sse({**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})

    yield chunk({"role": "assistant", "content": ""})
    for index, token in enumerate(split_tokens(reply.text)):
        if index == reply.fail_after:
            break
        yield chunk({"content": token})
    if reply.fail_after is not None:
        if not reply.hang_up:
            yield _sse({"error": {"message": reply.error, "type": "server_error", "code": None}})
        return
    calls = _calls(reply, ids)
    for index, (cid, name, arguments) in enumerate(calls):
        function = {"name": name, "arguments": ""}
        yield chunk(
            {"tool_calls": [{"index": index, "id": cid, "type": "function", "function": function}]}
        )
        yield chunk({"tool_calls": [{"index": index, "function": {"arguments": arguments}}]})
    yield chunk({}, "tool_calls" if calls else "stop")
    options = request.body.get("stream_options") or {}
    if isinstance(options, dict) and options.get("include_usage"):
        yield _sse({**base, "choices": [], "usage": _chat_usage(usage)})
    yield "data: [DONE]\n\n"


def _response(
    request: FakeRequest, reply: FakeReply, usage: tuple[int, int], ids: _Ids
) -> dict[str, Any]:
    calls = _calls(reply, ids)
    output: list[dict[str, Any]] = []
    if reply.text or not calls:
        part = {"type": "output_text", "text": reply.text, "annotations": []}
        output.append(
            {
                "id": ids("msg"),
                "type": "message",
                "role": "assistant",
                "status": "completed",
                "content": [part],
            }
        )
    for cid, name, arguments in calls:
        output.append(
            {
                "id": ids("fc"),
                "type": "function_call",
                "call_id": cid,
                "name": name,
                "arguments": arguments,
                "status": "completed",
            }
        )
    return {
        "id": ids("resp"),
        "object": "response",
        "created_at": int(time.time()),
        "model": reply.model or request.model,
        "status": "completed",
        "output": output,
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": request.tools,
        "error": None,
        "incomplete_details": None,
        "instructions": request.body.get("instructions"),
        "metadata": {},
        "usage": {
            "input_tokens": usage[0],
            "output_tokens": usage[1],
            "total_tokens": sum(usage),
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens_details": {"reasoning_tokens": 0},
        },
    }


def _response_stream(
    request: FakeRequest, reply: FakeReply, usage: tuple[int, int], ids: _Ids
) -> Iterator[str]:
    final = _response(request, reply, usage, ids)
    numbers = itertools.count()

    def event(kind: str, **data: Any) -> str:
        return _sse({"type": kind, "sequence_number": next(numbers), **data}, kind)

    started = {**final, "status": "in_progress", "output": [], "usage": None}
    yield event("response.created", response=started)
    yield event("response.in_progress", response=started)
    for index, item in enumerate(final["output"]):
        where = {"item_id": item["id"], "output_index": index}
        if item["type"] == "message":
            yield event(
                "response.output_item.added",
                output_index=index,
                item={**item, "status": "in_progress", "content": []},
            )
            empty = {"type": "output_text", "text": "", "annotations": []}
            yield event("response.content_part.added", **where, content_index=0, part=empty)
            text = item["content"][0]["text"]
            for number, token in enumerate(split_tokens(text)):
                if number == reply.fail_after:
                    break
                yield event(
                    "response.output_text.delta", **where, content_index=0, delta=token, logprobs=[]
                )
            if reply.fail_after is not None:
                break
            yield event(
                "response.output_text.done", **where, content_index=0, text=text, logprobs=[]
            )
            part = item["content"][0]
            yield event("response.content_part.done", **where, content_index=0, part=part)
        else:
            yield event(
                "response.output_item.added",
                output_index=index,
                item={**item, "arguments": "", "status": "in_progress"},
            )
            arguments = item["arguments"]
            yield event("response.function_call_arguments.delta", **where, delta=arguments)
            yield event(
                "response.function_call_arguments.done",
                **where,
                name=item["name"],
                arguments=arguments,
            )
        yield event("response.output_item.done", output_index=index, item=item)
    if reply.fail_after is None:
        yield event("response.completed", response=final)
    elif not reply.hang_up:
        error = {"code": "server_error", "message": reply.error}
        failed = {**final, "status": "failed", "error": error, "output": [], "usage": None}
        yield event("response.failed", response=failed)
