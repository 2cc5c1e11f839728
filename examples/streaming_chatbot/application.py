"""A chatbot whose answer streams token by token, with sync and async drivers.

``respond`` is a streaming action: it yields ``{"delta": token}`` for every token the model
produces and, last, ``(result, state)`` with the whole answer appended to the conversation. The
model is a stand-in that yields the words of a canned reply, so the example runs offline and
always streams the same tokens; bind your own generator in its place.

A ``UsageRecorder`` hook counts the streamed tokens (``post_stream_item``) and keeps the
``gen_ai.usage.*`` attributes the action logs through its ``__tracer``.

Run it: ``python examples/streaming_chatbot/application.py "hello"`` (add ``--async`` for the
async driver).
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Generator, Iterator
from typing import Any

from turnout import Application, ApplicationBuilder, State, TracerFactory, action, streaming_action
from turnout.lifecycle import DoLogAttributeHook, PostEndStreamHook, PostStreamItemHook

Message = dict[str, str]
TokenSource = Callable[[list[Message]], Iterator[str]]
AsyncTokenSource = Callable[[list[Message]], AsyncIterator[str]]
Item = dict[str, Any]
MODEL = "stand-in-1"


def canned_reply(history: list[Message]) -> str:
    """The whole answer the stand-in model gives: it echoes the last user message."""
    turns = sum(1 for message in history if message["role"] == "user")
    return f"(turn {turns}) You said {history[-1]['content']!r}. I stream one word at a time."


def canned_tokens(history: list[Message]) -> Iterator[str]:
    """A deterministic stand-in for a streaming chat model: the words of ``canned_reply``,
    each with its trailing space, so joining the tokens gives the answer back."""
    yield from re.findall(r"\S+\s*", canned_reply(history))


async def acanned_tokens(history: list[Message]) -> AsyncIterator[str]:
    """The async form of ``canned_tokens``, as an async model client would stream."""
    for token in canned_tokens(history):
        await asyncio.sleep(0)  # hand control to the event loop, as a network read would
        yield token


def _usage(history: list[Message], tokens: list[str]) -> dict[str, Any]:
    """OpenTelemetry GenAI attributes for one answer (tokens counted as words here)."""
    return {
        "gen_ai.request.model": MODEL,
        "gen_ai.usage.input_tokens": sum(len(m["content"].split()) for m in history),
        "gen_ai.usage.output_tokens": len(tokens),
    }


@action(reads=[], writes=["chat_history"])
def user_input(state: State, prompt: str) -> State:
    """Append the user's message to the conversation."""
    return state.append(chat_history={"role": "user", "content": prompt})


@streaming_action(reads=["chat_history"], writes=["chat_history"])
def respond(
    state: State, __tracer: TracerFactory, generate: TokenSource = canned_tokens
) -> Generator[Item | tuple[Item, State], None, None]:
    """Stream the model's answer, then append it to the conversation."""
    history: list[Message] = state["chat_history"]
    tokens: list[str] = []
    for token in generate(history):
        tokens.append(token)
        yield {"delta": token}
    __tracer.log_attributes(**_usage(history, tokens))
    answer = "".join(tokens).strip()
    yield {"answer": answer}, state.append(chat_history={"role": "assistant", "content": answer})


@streaming_action(reads=["chat_history"], writes=["chat_history"])
async def arespond(
    state: State, __tracer: TracerFactory, generate: AsyncTokenSource = acanned_tokens
) -> AsyncGenerator[Item | tuple[Item, State], None]:
    """``respond`` for an async model client: an async generator."""
    history: list[Message] = state["chat_history"]
    tokens: list[str] = []
    async for token in generate(history):
        tokens.append(token)
        yield {"delta": token}
    __tracer.log_attributes(**_usage(history, tokens))
    answer = "".join(tokens).strip()
    yield {"answer": answer}, state.append(chat_history={"role": "assistant", "content": answer})


class UsageRecorder(PostStreamItemHook, PostEndStreamHook, DoLogAttributeHook):
    """Records every streamed token and the usage attributes the actions log."""

    def __init__(self) -> None:
        self.tokens: list[str] = []
        self.streams: list[tuple[int, int]] = []  # (sequence_id, items_streamed) per stream
        self.attributes: dict[str, Any] = {}

    def post_stream_item(self, *, item: Any, **future_kwargs: Any) -> None:
        self.tokens.append(item["delta"])

    def post_end_stream(
        self, *, sequence_id: int, items_streamed: int, **future_kwargs: Any
    ) -> None:
        self.streams.append((sequence_id, items_streamed))

    def do_log_attributes(self, *, attributes: dict[str, Any], **future_kwargs: Any) -> None:
        self.attributes.update(attributes)


def application(
    *,
    use_async: bool = False,
    generate: TokenSource | AsyncTokenSource | None = None,
    recorder: UsageRecorder | None = None,
    app_id: str | None = None,
) -> Application:
    """The chatbot: ``user_input`` -> ``respond`` -> ``user_input`` -> ...

    With ``use_async=True`` the ``respond`` step is the async generator ``arespond`` (run it with
    ``astream_chat``); otherwise it is the sync ``respond``, which either driver can run.
    ``generate`` replaces the stand-in model: a function from the conversation to an iterator of
    tokens (an async iterator with ``use_async=True``).
    """
    reply: Any = arespond if use_async else respond
    if generate is not None:
        reply = reply.bind(generate=generate)
    builder = (
        ApplicationBuilder()
        .with_actions(user_input=user_input, respond=reply)
        .with_transitions(("user_input", "respond"), ("respond", "user_input"))
        .with_state(chat_history=[])
        .with_entrypoint("user_input")
        .with_identifiers(app_id=app_id)
    )
    if recorder is not None:
        builder = builder.with_hooks(recorder)
    return builder.build()


def _ignore(token: str) -> None:
    pass


def stream_chat(app: Application, prompt: str, on_token: Callable[[str], None] = _ignore) -> str:
    """One turn with the sync driver: ``on_token`` sees each token as it arrives."""
    _action, container = app.stream_result(halt_after=["respond"], inputs={"prompt": prompt})
    for item in container:
        on_token(item["delta"])
    result, _state = container.get()
    assert result is not None
    return str(result["answer"])


async def astream_chat(
    app: Application, prompt: str, on_token: Callable[[str], None] = _ignore
) -> str:
    """One turn with the async driver (``astream_result``)."""
    _action, container = await app.astream_result(halt_after=["respond"], inputs={"prompt": prompt})
    async for item in container:
        on_token(item["delta"])
    result, _state = await container.get()
    assert result is not None
    return str(result["answer"])


def _print_prompt(prompt: str) -> None:
    print(f"user: {prompt}\nbot:  ", end="", flush=True)


def _print_token(token: str) -> None:
    sys.stdout.write(token)
    sys.stdout.flush()


def main(argv: list[str] | None = None) -> list[str]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("prompts", nargs="*", default=["hello", "how are you?"])
    parser.add_argument("--async", dest="use_async", action="store_true", help="astream_result")
    args = parser.parse_args(argv)
    recorder = UsageRecorder()
    app = application(use_async=args.use_async, recorder=recorder)

    async def chat_async() -> list[str]:
        answers = []
        for prompt in args.prompts:
            _print_prompt(prompt)
            answers.append(await astream_chat(app, prompt, _print_token))
            print()
        return answers

    if args.use_async:
        answers = asyncio.run(chat_async())
    else:
        answers = []
        for prompt in args.prompts:
            _print_prompt(prompt)
            answers.append(stream_chat(app, prompt, _print_token))
            print()
    usage = {k: v for k, v in recorder.attributes.items() if k.startswith("gen_ai.usage.")}
    print(
        f"streamed {len(recorder.tokens)} tokens in {len(recorder.streams)} answers; last {usage}"
    )
    return answers


if __name__ == "__main__":
    main()
