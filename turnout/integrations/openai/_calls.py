"""One API call: the request from state, its child span, the reply parsed, errors explained."""

from __future__ import annotations

import difflib
import inspect
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import openai

from turnout.core.context import ApplicationContext
from turnout.core.tracing import OpenSpan, TracerFactory
from turnout.integrations._content import ContentCapture, content_attributes, current_capture
from turnout.integrations._spans import records
from turnout.integrations.openai._content import genai_messages, genai_reply
from turnout.integrations.openai._tools import Tool

__all__ = [
    "Accumulator",
    "Call",
    "Reply",
    "Spec",
    "StreamFailedError",
    "check_params",
    "to_messages",
]

Api = Literal["chat", "responses"]
# Request parameters recorded under their OpenTelemetry GenAI names.
_REQUEST_ATTRIBUTES = {
    "temperature": "gen_ai.request.temperature",
    "top_p": "gen_ai.request.top_p",
    "max_tokens": "gen_ai.request.max_tokens",
    "max_completion_tokens": "gen_ai.request.max_tokens",
    "max_output_tokens": "gen_ai.request.max_tokens",
    "frequency_penalty": "gen_ai.request.frequency_penalty",
    "presence_penalty": "gen_ai.request.presence_penalty",
    "seed": "gen_ai.request.seed",
    "stop": "gen_ai.request.stop_sequences",
    "n": "gen_ai.request.choice.count",
}


class StreamFailedError(openai.APIError):
    """The model failed after its stream had begun: an ``error`` event, a ``response.failed``
    event, or a stream cut before the model finished. ``message``, ``code`` and ``type`` are the
    server's; it is an ``openai.APIError`` (``on_exception(openai.APIError)`` matches it) and
    one of ``RETRYABLE_ERRORS``: the request had been accepted, so the failure is the server's."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Spec:
    """What an action sends: the API, the model, the tools and the other parameters."""

    api: Api
    model: str
    system: str | None
    tools: Mapping[str, Tool]
    params: Mapping[str, Any]
    owner: str


# What a parameter of one API is called in the other (or how to send it instead).
_ALTERNATIVES: dict[Api, dict[str, str]] = {
    "chat": {
        "max_output_tokens": "max_completion_tokens=",
        "instructions": "system=",
        "text": "response_format=",
    },
    "responses": {
        "max_tokens": "max_output_tokens=",
        "max_completion_tokens": "max_output_tokens=",
        "response_format": "text={'format': ...}",
        "n": "one request per choice (Responses has no n=)",
        "stop": "no stop sequences (Responses has no stop=)",
    },
}


def check_params(api: Api, client: Any, params: Mapping[str, Any], owner: str) -> None:
    """Fail at build time on a parameter the client's ``create`` does not take (the client
    would raise a bare ``TypeError`` at the first step)."""
    create = client.chat.completions.create if api == "chat" else client.responses.create
    try:
        accepted = inspect.signature(create).parameters
    except (TypeError, ValueError):  # pragma: no cover - a client without a signature
        return
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in accepted.values()):
        return
    method = "chat.completions.create" if api == "chat" else "responses.create"
    for name in params:
        if name in accepted:
            continue
        hint = _ALTERNATIVES[api].get(name)
        if hint is None:
            close = difflib.get_close_matches(name, list(accepted), n=1)
            hint = f"{close[0]}=" if close else None
        instead = f"use {hint} instead, " if hint else ""
        raise TypeError(
            f"{owner}: {name}= is not a parameter of the client's {method}; {instead}or send "
            f"a server-specific field with extra_body={{{name!r}: ...}}"
        )


@dataclass(frozen=True, kw_only=True, slots=True)
class Reply:
    """The model's answer, whichever API and mode produced it."""

    content: str
    tool_calls: list[dict[str, Any]]
    id: str | None = None
    model: str | None = None
    finish_reason: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None

    def message(self) -> dict[str, Any]:
        """The assistant message to keep in the conversation (chat-completions shape)."""
        out: dict[str, Any] = {"role": "assistant", "content": self.content}
        if self.tool_calls:
            out["tool_calls"] = self.tool_calls
        return out

    def result(self) -> dict[str, Any]:
        """The step's result."""
        return {
            "content": self.content,
            "message": self.message(),
            "tool_calls": self.tool_calls,
            "finish_reason": self.finish_reason,
            "model": self.model,
            "id": self.id,
            "usage": {"input_tokens": self.input_tokens, "output_tokens": self.output_tokens},
        }


def to_messages(value: Any, owner: str) -> list[dict[str, Any]]:
    """The conversation from the input spec's value: a list of messages, one message, or a
    string (one user message)."""
    if isinstance(value, str):
        return [{"role": "user", "content": value}]
    if isinstance(value, Mapping) and "role" in value:
        return [dict(value)]
    if isinstance(value, Sequence) and all(isinstance(m, Mapping) for m in value):
        return [dict(m) for m in value]
    raise TypeError(
        f"{owner}: the messages are {value!r}; the input must give a list of "
        f'{{"role": ..., "content": ...}} dicts, one such dict, or a string (a user message)'
    )


def _responses_input(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Chat-shaped messages as Responses ``input`` items (tool calls and their results)."""
    items: list[dict[str, Any]] = []
    for message in messages:
        role = message.get("role")
        if role == "assistant" and message.get("tool_calls"):
            if message.get("content"):
                items.append({"role": "assistant", "content": message["content"]})
            for call in message["tool_calls"]:
                function = call["function"]
                items.append(
                    {
                        "type": "function_call",
                        "call_id": call["id"],
                        "name": function["name"],
                        "arguments": function["arguments"],
                    }
                )
        elif role == "tool":
            output = str(message.get("content", ""))
            items.append(
                {
                    "type": "function_call_output",
                    "call_id": message["tool_call_id"],
                    "output": output,
                }
            )
        else:
            items.append(message)
    return items


@dataclass(kw_only=True, slots=True)
class Accumulator:
    """Folds a stream's events into a ``Reply``; ``feed`` returns each text token."""

    api: Api
    text: list[str] = field(default_factory=list)
    calls: dict[int, dict[str, Any]] = field(default_factory=dict)
    id: str | None = None
    model: str | None = None
    finish_reason: str | None = None
    usage: tuple[int | None, int | None] = (None, None)
    final: Reply | None = None
    request: Any = None
    """The HTTP request of the stream (the errors raised for a failed stream carry it)."""

    def failure(self, message: str, body: Any = None) -> StreamFailedError:
        return StreamFailedError(message, self.request, body=body)

    def converted(self, exc: BaseException) -> BaseException:
        """The client's bare ``APIError`` for an error event in a chat stream, as a
        ``StreamFailedError``; any other exception as it is."""
        if type(exc) is openai.APIError:
            return StreamFailedError(exc.message, exc.request, body=exc.body)
        return exc

    def feed(self, event: Any) -> str | None:
        return self._chat(event) if self.api == "chat" else self._responses(event)

    def _chat(self, chunk: Any) -> str | None:
        self.id = self.id or chunk.id
        self.model = self.model or chunk.model
        if chunk.usage is not None:
            self.usage = (chunk.usage.prompt_tokens, chunk.usage.completion_tokens)
        if not chunk.choices:
            return None
        choice = chunk.choices[0]
        self.finish_reason = choice.finish_reason or self.finish_reason
        for delta in choice.delta.tool_calls or ():
            call = self.calls.setdefault(
                delta.index,
                {"id": "", "type": "function", "function": {"name": "", "arguments": ""}},
            )
            call["id"] = delta.id or call["id"]
            if delta.function is not None:
                call["function"]["name"] += delta.function.name or ""
                call["function"]["arguments"] += delta.function.arguments or ""
        token = choice.delta.content
        if token:
            self.text.append(token)
            return str(token)
        return None

    def _responses(self, event: Any) -> str | None:
        if event.type == "response.output_text.delta":
            self.text.append(event.delta)
            return str(event.delta)
        if event.type in ("response.completed", "response.incomplete"):
            self.final = parse(self.api, event.response)
        elif event.type == "response.failed":
            error = event.response.error
            body = error.model_dump() if error is not None else None
            raise self.failure(getattr(error, "message", None) or "the response failed", body)
        elif event.type == "error":
            body = {"message": event.message, "code": event.code, "param": event.param}
            raise self.failure(event.message or "the stream reported an error", body)
        return None

    def reply(self) -> Reply:
        if self.final is not None:
            return self.final
        if self.api == "responses":
            raise self.failure(
                "the Responses stream ended without a response.completed event (the "
                "connection was cut)"
            )
        if self.finish_reason is None:
            raise self.failure(
                "the chat stream ended before the model finished (no finish_reason; the "
                "connection was cut)"
            )
        calls = [self.calls[i] for i in sorted(self.calls)]
        return Reply(
            content="".join(self.text),
            tool_calls=calls,
            id=self.id,
            model=self.model,
            finish_reason=self.finish_reason,
            input_tokens=self.usage[0],
            output_tokens=self.usage[1],
        )


def parse(api: Api, response: Any) -> Reply:
    """The ``Reply`` in a ``ChatCompletion`` or a ``Response``."""
    usage = response.usage
    if api == "chat":
        choice = response.choices[0]
        calls = [
            {
                "id": c.id,
                "type": "function",
                "function": {"name": c.function.name, "arguments": c.function.arguments},
            }
            for c in choice.message.tool_calls or ()
            if getattr(c, "function", None) is not None
        ]
        return Reply(
            content=choice.message.content or "",
            tool_calls=calls,
            id=response.id,
            model=response.model,
            finish_reason=choice.finish_reason,
            input_tokens=usage.prompt_tokens if usage else None,
            output_tokens=usage.completion_tokens if usage else None,
        )
    calls = [
        {
            "id": item.call_id,
            "type": "function",
            "function": {"name": item.name, "arguments": item.arguments},
        }
        for item in response.output
        if item.type == "function_call"
    ]
    finish = "tool_calls" if calls else ("stop" if response.status == "completed" else None)
    return Reply(
        content=response.output_text,
        tool_calls=calls,
        id=response.id,
        model=response.model,
        finish_reason=finish or response.status,
        input_tokens=usage.input_tokens if usage else None,
        output_tokens=usage.output_tokens if usage else None,
    )


def _output_type(params: Mapping[str, Any]) -> str | None:
    """``gen_ai.output.type`` from ``response_format=`` (chat) or ``text={"format": ...}``
    (Responses): ``"json"`` for a JSON object or schema, else ``"text"``."""
    chosen = params.get("response_format")
    if chosen is None and isinstance(params.get("text"), Mapping):
        chosen = params["text"].get("format")
    kind = chosen.get("type") if isinstance(chosen, Mapping) else None
    if kind is None:
        return None
    return "json" if kind in ("json_object", "json_schema") else "text"


class Call:
    """One request: its keyword arguments, its ``chat <model>`` span, its outcome."""

    __slots__ = ("_capture", "_first", "_started", "kwargs", "span", "spec")

    def __init__(self, spec: Spec, messages: list[dict[str, Any]], *, stream: bool) -> None:
        self.spec = spec
        kwargs: dict[str, Any] = {"model": spec.model, **spec.params}
        if spec.api == "chat":
            system = [{"role": "system", "content": spec.system}] if spec.system else []
            kwargs["messages"] = system + messages
            if spec.tools:
                kwargs["tools"] = [t.chat_schema() for t in spec.tools.values()]
            if stream:
                kwargs["stream_options"] = {"include_usage": True}
        else:
            kwargs["input"] = _responses_input(messages)
            if spec.system:
                kwargs["instructions"] = spec.system
            if spec.tools:
                kwargs["tools"] = [t.responses_schema() for t in spec.tools.values()]
        if stream:
            kwargs["stream"] = True
        self.kwargs = kwargs
        self._started = time.perf_counter()
        self._first: float | None = None
        self.span: OpenSpan | None = None
        self._capture: ContentCapture | None = None
        tracer = TracerFactory.current() if records("openai") else None
        if tracer is not None:
            self.span = tracer.start_span(f"chat {spec.model}")
            attributes: dict[str, Any] = {
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": "openai",
                "gen_ai.request.model": spec.model,
            }
            for param, value in spec.params.items():
                if param in _REQUEST_ATTRIBUTES and value is not None:
                    attributes[_REQUEST_ATTRIBUTES[param]] = value
            if isinstance(attributes.get("gen_ai.request.stop_sequences"), str):
                stop = attributes["gen_ai.request.stop_sequences"]
                attributes["gen_ai.request.stop_sequences"] = [stop]
            output_type = _output_type(spec.params)
            if output_type is not None:
                attributes["gen_ai.output.type"] = output_type
            policy = current_capture()
            if policy.enabled:
                self._capture = policy
                system = [{"role": "system", "content": spec.system}] if spec.system else []
                sent = genai_messages(system + messages)
                attributes |= content_attributes(policy, inputs=sent)
            self.span.log_attributes(**attributes)

    def create(self, client: Any) -> Any:
        """The client's ``create`` method for this API, called with the request."""
        api = client.chat.completions if self.spec.api == "chat" else client.responses
        return api.create(**self.kwargs)

    def token(self) -> None:
        """Note a streamed token (the first one gives the time to first chunk)."""
        if self._first is None:
            self._first = time.perf_counter() - self._started

    def done(self, reply: Reply) -> None:
        if self.span is None:
            return
        attributes: dict[str, Any] = {}
        for key, value in (
            ("gen_ai.response.id", reply.id),
            ("gen_ai.response.model", reply.model),
            ("gen_ai.usage.input_tokens", reply.input_tokens),
            ("gen_ai.usage.output_tokens", reply.output_tokens),
            ("gen_ai.response.time_to_first_chunk", self._first),
        ):
            if value is not None:
                attributes[key] = value
        if reply.finish_reason is not None:
            attributes["gen_ai.response.finish_reasons"] = [reply.finish_reason]
        if self._capture is not None:
            answer = genai_reply(reply.content, reply.tool_calls, reply.finish_reason)
            attributes |= content_attributes(self._capture, outputs=[answer])
        self.span.log_attributes(**attributes)
        self.span.end()

    def interrupted(self, caught: BaseException, folded: Accumulator) -> BaseException:
        """End the span of a stream stopped by ``caught``; the exception to raise.

        A consumer that stops reading (``GeneratorExit``) is no failure: the span ends normally,
        marked ``turnout.stream_abandoned``."""
        if isinstance(caught, GeneratorExit):
            if self.span is not None:
                self.span.log_attributes(**{"turnout.stream_abandoned": True})
                self.span.end()
            return caught
        exc = folded.converted(caught)
        self.failed(exc)
        return exc

    def failed(self, exc: BaseException) -> None:
        """End the span with ``exc``; an OpenAI error gets the action and model in its message."""
        if isinstance(exc, openai.OpenAIError):
            explain(exc, self.spec)
        if self.span is not None:
            self.span.end(exception=exc)


_HINTS: list[tuple[type[BaseException], str]] = [
    (
        openai.RateLimitError,
        "retry it: retry=openai_retry_policy() on the action, or RetryPolicy(retry_on="
        "(openai.RateLimitError,)); route it with on_exception(openai.RateLimitError)",
    ),
    (
        openai.APITimeoutError,
        "raise the client's timeout (OpenAI(timeout=...)) or retry with openai_retry_policy()",
    ),
    (
        openai.APIConnectionError,
        "check the client's base_url and the network; retry with openai_retry_policy()",
    ),
    (openai.BadRequestError, "the request was rejected: check the model name and parameters"),
]


def explain(exc: openai.OpenAIError, spec: Spec) -> None:
    """Prefix the error's message with the action and the model (the exception keeps its type,
    so ``except openai.RateLimitError`` and retry policies still match it)."""
    context = ApplicationContext.get()
    action = context.action_name if context is not None else None
    where = f"action {action!r}" if action else spec.owner
    api = "chat.completions" if spec.api == "chat" else "responses"
    prefix = f"{where} (OpenAI {api}, model {spec.model!r}): "
    message = str(exc.args[0]) if exc.args else str(exc)
    if message.startswith(prefix):
        return  # already explained (a retried attempt re-raising the same object)
    hint = next((f" [{text}]" for kind, text in _HINTS if isinstance(exc, kind)), "")
    exc.args = (prefix + message + hint, *exc.args[1:])
    if hasattr(exc, "message"):
        exc.message = prefix + message + hint
