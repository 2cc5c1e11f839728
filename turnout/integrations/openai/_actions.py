"""The actions: a model call (chat completions or Responses; sync, async; streaming or not),
running the tools it asked for, and the condition that routes to them."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator, Callable, Generator, Iterable, Sequence
from typing import Any

import openai

from turnout.core.action import Action, FunctionBasedAction
from turnout.core.condition import Condition
from turnout.core.retry import RetryPolicy
from turnout.core.state import State
from turnout.core.streaming import FunctionBasedStreamingAction
from turnout.core.tracing import TracerFactory
from turnout.integrations._inputs import input_names, reads_besides, with_inputs
from turnout.integrations._mapping import append_state, from_state, input_reader, output_writer
from turnout.integrations._spans import records
from turnout.integrations.openai._calls import (
    Accumulator,
    Api,
    Call,
    Reply,
    Spec,
    StreamFailedError,
    check_params,
    parse,
)
from turnout.integrations.openai._calls import to_messages as _to_messages
from turnout.integrations.openai._tools import Tool, ToolCallError, as_tools

__all__ = [
    "RETRYABLE_ERRORS",
    "chat_action",
    "openai_retry_policy",
    "responses_action",
    "tool_action",
    "tool_calls_requested",
]

RETRYABLE_ERRORS: tuple[type[BaseException], ...] = (
    openai.RateLimitError,
    openai.APIConnectionError,  # APITimeoutError is one
    openai.InternalServerError,
    StreamFailedError,
)
"""The OpenAI errors worth another attempt: rate limits, timeouts, lost connections, 5xx, and
streams that failed after they began (``StreamFailedError``)."""

Item = dict[str, Any]


def openai_retry_policy(max_attempts: int = 3, **kwargs: Any) -> RetryPolicy:
    """A ``RetryPolicy`` that retries ``RETRYABLE_ERRORS`` (other arguments as ``RetryPolicy``).

    Give the client ``max_retries=0`` so that the policy, not the client, decides."""
    return RetryPolicy(max_attempts=max_attempts, retry_on=RETRYABLE_ERRORS, **kwargs)


def chat_action(
    client: openai.OpenAI | openai.AsyncOpenAI,
    *,
    model: str,
    messages: Any = "messages",
    output: Any = None,
    system: str | None = None,
    tools: Iterable[Callable[..., Any] | Tool] = (),
    stream: bool = False,
    reads: Sequence[str] | None = None,
    writes: Sequence[str] | None = None,
    retry: RetryPolicy | None = None,
    tags: Sequence[str] = (),
    inputs: Sequence[str] = (),
    **params: Any,
) -> Action:
    """An action that sends the conversation to ``client.chat.completions.create``.

    Args:
        client: ``openai.OpenAI(...)`` (a sync action) or ``openai.AsyncOpenAI(...)`` (async).
        model: the model name.
        messages: where the conversation comes from: a state key holding a list of
            ``{"role", "content"}`` dicts (the default, ``"messages"``) or any input spec of
            ``turnout.integrations._mapping`` giving such a list, one message or a string.
        output: where the reply goes, as an output spec applied to the assistant message dict;
            by default it is appended to the ``messages`` key.
        system: a system prompt put before the conversation.
        tools: functions (or ``Tool``) the model may call; see ``function_tool``.
        stream: a streaming action yielding ``{"delta": token}`` items.
        reads: extra state keys read (needed with a function input spec).
        writes: extra state keys written (needed with a function output spec).
        retry: a ``RetryPolicy`` (see ``openai_retry_policy``).
        tags: labels for the action.
        inputs: names of application inputs the action takes (``app.step(inputs={...})``):
            ``messages=`` reads an input like a state key (it shadows a state key of its
            name), and a mapping gets the inputs it does not name added.
        **params: passed to ``create`` (``temperature=0.2``, ``max_tokens=...``).

    The step's result is ``{"content", "message", "tool_calls", "finish_reason", "model", "id",
    "usage"}``; each request is a ``chat <model>`` span carrying ``gen_ai.*`` attributes.
    """
    return _model_action(
        "chat", client, model, messages, output, system, tools, stream, reads, writes, retry,
        tags, params, inputs,
    )  # fmt: skip


def responses_action(
    client: openai.OpenAI | openai.AsyncOpenAI,
    *,
    model: str,
    messages: Any = "messages",
    output: Any = None,
    system: str | None = None,
    tools: Iterable[Callable[..., Any] | Tool] = (),
    stream: bool = False,
    reads: Sequence[str] | None = None,
    writes: Sequence[str] | None = None,
    retry: RetryPolicy | None = None,
    tags: Sequence[str] = (),
    inputs: Sequence[str] = (),
    **params: Any,
) -> Action:
    """``chat_action`` over the Responses API (``client.responses.create``).

    The conversation keeps the same shape in state: tool calls and their results are sent as
    ``function_call`` / ``function_call_output`` items, and ``system`` as ``instructions``.
    """
    return _model_action(
        "responses", client, model, messages, output, system, tools, stream, reads, writes,
        retry, tags, params, inputs,
    )  # fmt: skip


def _model_action(
    api: Api, client: Any, model: str, messages: Any, output: Any, system: str | None,
    tools: Iterable[Callable[..., Any] | Tool], stream: bool, reads: Sequence[str] | None,
    writes: Sequence[str] | None, retry: RetryPolicy | None, tags: Sequence[str],
    params: dict[str, Any], inputs: Sequence[str] = (),
) -> Action:  # fmt: skip
    owner = f"{api}_action(model={model!r})"
    names = input_names(inputs, owner)
    is_async = _is_async_client(client, owner)
    if not isinstance(model, str) or not model:
        raise TypeError(f"{owner}: model= must be a model name, got {model!r}")
    clash = sorted({"stream", "messages", "input", "tools", "model"} & set(params))
    if clash:
        raise TypeError(
            f"{owner}: {clash} are set by the action; use its own arguments (stream=, "
            f"messages=, tools=) instead of passing them as parameters"
        )
    check_params(api, client, params, owner)
    read, read_keys = input_reader(messages, reads=reads, owner=owner)
    if output is None:
        key = messages.key if isinstance(messages, from_state) else messages
        if not isinstance(key, str):
            raise TypeError(
                f"{owner}: the reply has nowhere to go by default because messages= is not a "
                f"state key; pass output=append_state('key') (or another output spec)"
            )
        output = append_state(key)
    write, write_keys = output_writer(output, writes=writes, owner=owner)
    spec = Spec(
        api=api,
        model=model,
        system=system,
        tools=as_tools(tools, owner),
        params=dict(params),
        owner=owner,
    )

    def commit(reply: Reply, state: State) -> tuple[dict[str, Any], State]:
        return reply.result(), write(reply.message(), state)

    def start(state: State, given: dict[str, Any]) -> Call:
        value = with_inputs(read, state, given, names, spec_keys=read_keys, owner=owner)
        return Call(spec, _to_messages(value, owner), stream=stream)

    def run(state: State, **given: Any) -> tuple[dict[str, Any], State]:
        call = start(state, given)
        try:
            reply = parse(api, call.create(client))
        except BaseException as exc:
            call.failed(exc)
            raise
        call.done(reply)
        return commit(reply, state)

    async def arun(state: State, **given: Any) -> tuple[dict[str, Any], State]:
        call = start(state, given)
        try:
            reply = parse(api, await call.create(client))
        except BaseException as exc:
            call.failed(exc)
            raise
        call.done(reply)
        return commit(reply, state)

    def run_stream(state: State, **given: Any) -> Generator[Item | tuple[Item, State], None, None]:
        call = start(state, given)
        folded = Accumulator(api=api)
        try:
            with call.create(client) as events:
                folded.request = events.response.request
                for event in events:
                    token = folded.feed(event)
                    if token:
                        call.token()
                        yield {"delta": token}
            reply = folded.reply()
        except BaseException as caught:
            exc = call.interrupted(caught, folded)
            if exc is caught:
                raise
            raise exc from caught
        call.done(reply)
        yield commit(reply, state)

    async def arun_stream(
        state: State, **given: Any
    ) -> AsyncGenerator[Item | tuple[Item, State], None]:
        call = start(state, given)
        folded = Accumulator(api=api)
        try:
            async with await call.create(client) as events:
                folded.request = events.response.request
                async for event in events:
                    token = folded.feed(event)
                    if token:
                        call.token()
                        yield {"delta": token}
            reply = folded.reply()
        except BaseException as caught:
            exc = call.interrupted(caught, folded)
            if exc is caught:
                raise
            raise exc from caught
        call.done(reply)
        yield commit(reply, state)

    fn: Callable[..., Any]
    if stream:
        fn = arun_stream if is_async else run_stream
        fn.__name__ = fn.__qualname__ = f"{api}_stream"
        return FunctionBasedStreamingAction(
            fn, reads_besides(read_keys, names), write_keys, input_spec=(names, []), tags=tags,
            retry=retry,
        )  # fmt: skip
    fn = arun if is_async else run
    fn.__name__ = fn.__qualname__ = api
    return FunctionBasedAction(
        fn, reads_besides(read_keys, names), write_keys, input_spec=(names, []), tags=tags,
        retry=retry,
    )  # fmt: skip


def _is_async_client(client: Any, owner: str) -> bool:
    if isinstance(client, openai.AsyncOpenAI):
        return True
    if isinstance(client, openai.OpenAI):
        return False
    raise TypeError(
        f"{owner}: client= must be openai.OpenAI(...) or openai.AsyncOpenAI(...), got "
        f"{client!r}; turnout never builds one from the environment for you"
    )


def _pending_calls(state: State, key: str, owner: str) -> list[dict[str, Any]]:
    history = state[key]
    last = history[-1] if history else None
    if not isinstance(last, dict) or last.get("role") != "assistant" or not last.get("tool_calls"):
        raise ToolCallError(
            f"{owner}: the last message in {key!r} asks for no tool ({last!r}); guard the "
            f"transition to this action with tool_calls_requested({key!r})"
        )
    calls: list[dict[str, Any]] = last["tool_calls"]
    return calls


def tool_action(
    tools: Iterable[Callable[..., Any] | Tool],
    *,
    messages: str = "messages",
    on_error: str = "report",
    retry: RetryPolicy | None = None,
    tags: Sequence[str] = (),
    max_concurrency: int = 8,
) -> Action:
    """An action that runs the tool calls of the last assistant message in ``messages`` and
    appends one ``{"role": "tool", "tool_call_id", "content"}`` message per call.

    Args:
        tools: the functions (or ``Tool``) the model may call, as given to the model action.
        messages: the state key of the conversation.
        on_error: ``"report"`` sends a failing tool's error to the model as the result's
            content (it can recover); ``"raise"`` fails the step with the tool's exception.
        retry: a ``RetryPolicy`` for the step.
        tags: labels for the action.
        max_concurrency: async only: how many calls run at once. The model's parallel tool
            calls run concurrently (a sync tool among them runs on the event loop as it is
            reached); the results keep the calls' order.

    It is async when any tool is an ``async def``. Each call is an ``execute_tool <name>`` span.
    With ``on_error="raise"`` the first failing call (in the calls' order) fails the step, once
    every call has finished.
    """
    owner = f"tool_action(messages={messages!r})"
    if on_error not in ("report", "raise"):
        raise ValueError(f"{owner}: on_error= is 'report' or 'raise', got {on_error!r}")
    if not isinstance(max_concurrency, int) or max_concurrency < 1:
        raise ValueError(
            f"{owner}: max_concurrency= is how many tool calls run at once, a positive int; "
            f"got {max_concurrency!r}"
        )
    by_name = as_tools(tools, owner)
    if not by_name:
        raise ValueError(f"{owner}: tools= is empty; give the functions the model may call")

    def prepare(call: dict[str, Any]) -> tuple[Tool, dict[str, Any]]:
        name = call["function"]["name"]
        if name not in by_name:
            raise ToolCallError(f"the model asked for tool {name!r}; known: {sorted(by_name)}")
        tool = by_name[name]
        return tool, tool.arguments(call["function"]["arguments"])

    def finish(
        state: State, outcomes: list[tuple[dict[str, Any], Any, BaseException | None]]
    ) -> tuple[dict[str, Any], State]:
        results = []
        for call, value, error in outcomes:
            content = (
                _content(value) if error is None else f"Error: {type(error).__name__}: {error}"
            )
            results.append({"role": "tool", "tool_call_id": call["id"], "content": content})
        return {"tool_results": results}, state.extend(**{messages: results})

    def failed(call: dict[str, Any], exc: BaseException) -> None:
        if on_error == "raise":
            note = getattr(exc, "add_note", None)  # Python 3.11+
            if note is not None:
                note(f"turnout: raised by tool {call['function']['name']!r} ({owner})")
            raise exc

    def run(state: State) -> tuple[dict[str, Any], State]:
        outcomes: list[tuple[dict[str, Any], Any, BaseException | None]] = []
        for call in _pending_calls(state, messages, owner):
            span = _tool_span(call)
            try:
                tool, kwargs = prepare(call)
                value = tool.fn(**kwargs)
            except Exception as exc:
                _end(span, exc)
                failed(call, exc)
                outcomes.append((call, None, exc))
                continue
            _end(span, None)
            outcomes.append((call, value, None))
        return finish(state, outcomes)

    async def arun(state: State) -> tuple[dict[str, Any], State]:
        gate = asyncio.Semaphore(max_concurrency)

        async def one(call: dict[str, Any]) -> tuple[dict[str, Any], Any, BaseException | None]:
            async with gate:
                span = _tool_span(call)
                try:
                    tool, kwargs = prepare(call)
                    value = tool.fn(**kwargs)
                    if tool.is_async:
                        value = await value
                except Exception as exc:
                    _end(span, exc)
                    return call, None, exc
                _end(span, None)
                return call, value, None

        outcomes = list(await asyncio.gather(*map(one, _pending_calls(state, messages, owner))))
        for call, _value, error in outcomes:
            if error is not None:
                failed(call, error)
        return finish(state, outcomes)

    fn = arun if any(t.is_async for t in by_name.values()) else run
    fn.__name__ = fn.__qualname__ = "run_tools"
    return FunctionBasedAction(fn, [messages], [messages], tags=tags, retry=retry)


def _tool_span(call: dict[str, Any]) -> Any:
    tracer = TracerFactory.current() if records("openai") else None
    if tracer is None:
        return None
    name = call["function"]["name"]
    span = tracer.start_span(f"execute_tool {name}")
    span.log_attributes(
        **{
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.tool.name": name,
            "gen_ai.tool.call.id": call["id"],
        }
    )
    return span


def _end(span: Any, exc: BaseException | None) -> None:
    if span is not None:
        span.end(exception=exc)


def _content(value: Any) -> str:
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, default=str)
    except (TypeError, ValueError):
        return str(value)


def tool_calls_requested(messages: str = "messages") -> Condition:
    """A transition condition: the last message in ``messages`` is the model asking for tools.

    Route ``("ask", "run_tools", tool_calls_requested())`` then ``("ask", "reply")``; use
    ``~tool_calls_requested()`` for the opposite."""

    def asked(state: State) -> bool:
        history = state[messages]
        last = history[-1] if history else None
        return (
            isinstance(last, dict)
            and last.get("role") == "assistant"
            and bool(last.get("tool_calls"))
        )

    return Condition([messages], asked, name=f"tool_calls_requested({messages!r})")
