"""A multi-step chat whose state is a pydantic model, saved to SQLite and resumed.

The state is ``ChatState``: the last prompt, the conversation (a list of ``Message`` models), the
last reply (a nested ``Reply`` model) and a turn counter. ``user_input`` is an
``@action.pydantic`` taking the prompt as an input; ``respond`` is a
``@streaming_action.pydantic`` that streams partial ``Reply`` models, each with a little more
text, as a structured-output client streams them, then writes the whole reply and the new
messages. A value that does not fit the model (a prompt that is not a string) is refused at the
step that wrote it, and the state is left as it was.

Every step is saved to SQLite; building the application again from the same file resumes the
chat with ``app.state.data`` a ``ChatState`` again. Every step is also recorded by the local
tracker (``turnout ui`` shows it). The replies come from a stand-in model, so the example runs
offline; bind your own reply source in its place.

Run it: ``python examples/typed_chat/application.py "hello" "what is typed state?"`` (add
``--async`` for the async drivers, ``--db chat.db`` to keep the chat between runs).
"""

from __future__ import annotations

import argparse
import asyncio
import re
import tempfile
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Generator, Iterator
from pathlib import Path
from typing import Any, Literal

# The adapter first: without its library it raises MissingExtraError naming the extra.
import turnout.integrations.pydantic  # noqa: F401

# isort: split
from pydantic import BaseModel, Field

from turnout import Application, ApplicationBuilder, action, streaming_action
from turnout.core.errors import StateValidationError
from turnout.core.sqlite import SQLitePersister
from turnout.core.tracking import LocalTracker, tracking_home
from turnout.integrations.pydantic import PydanticTypingSystem, model_to_dict

PROJECT = "typed-chat"


class Message(BaseModel):
    """One message of the conversation."""

    role: Literal["user", "assistant"]
    content: str


class Reply(BaseModel):
    """The model's structured answer; streamed as partial replies whose text grows."""

    text: str = ""
    mood: Literal["neutral", "curious", "cheerful"] = "neutral"
    words: int = 0


class ChatState(BaseModel):
    """The whole state of the chat."""

    prompt: str = ""
    messages: list[Message] = Field(default_factory=list)
    last_reply: Reply | None = None
    turns: int = 0


ReplySource = Callable[[list[Message]], Iterator[Reply]]
AsyncReplySource = Callable[[list[Message]], AsyncIterator[Reply]]


def canned_replies(messages: list[Message]) -> Iterator[Reply]:
    """A deterministic stand-in for a structured-output model: partial ``Reply`` models, one
    more word each, the last one whole."""
    turn = sum(1 for message in messages if message.role == "user")
    said = messages[-1].content
    mood: Literal["curious", "cheerful"] = "curious" if said.endswith("?") else "cheerful"
    words = re.findall(r"\S+", f"(turn {turn}) You said {said!r}; I am a typed stand-in.")
    for count in range(1, len(words) + 1):
        yield Reply(text=" ".join(words[:count]), mood=mood, words=count)


async def acanned_replies(messages: list[Message]) -> AsyncIterator[Reply]:
    """The async form of ``canned_replies``, as an async client would stream."""
    for reply in canned_replies(messages):
        await asyncio.sleep(0)  # hand control to the event loop, as a network read would
        yield reply


@action.pydantic(reads=[], writes=["prompt"])
def user_input(state: ChatState, prompt: str) -> ChatState:
    """Take the user's message; ``respond`` adds it to the conversation with its answer."""
    state.prompt = prompt
    return state


def _answered(state: ChatState, reply: Reply) -> ChatState:
    state.messages = [
        *state.messages,
        Message(role="user", content=state.prompt),
        Message(role="assistant", content=reply.text),
    ]
    state.last_reply = reply
    state.turns += 1
    return state


@streaming_action.pydantic(
    reads=["prompt", "messages", "turns"],
    writes=["messages", "last_reply", "turns"],
    state_input_type=ChatState,
    state_output_type=ChatState,
    stream_type=Reply,
)
def respond(
    state: ChatState, generate: ReplySource = canned_replies
) -> Generator[tuple[Reply, ChatState | None], None, None]:
    """Stream partial replies, then write the whole one and the two new messages."""
    reply = Reply()
    for reply in generate([*state.messages, Message(role="user", content=state.prompt)]):
        yield reply, None
    yield reply, _answered(state, reply)


@streaming_action.pydantic(
    reads=["prompt", "messages", "turns"],
    writes=["messages", "last_reply", "turns"],
    state_input_type=ChatState,
    state_output_type=ChatState,
    stream_type=Reply,
)
async def arespond(
    state: ChatState, generate: AsyncReplySource = acanned_replies
) -> AsyncGenerator[tuple[Reply, ChatState | None], None]:
    """``respond`` for an async client: an async generator."""
    reply = Reply()
    async for reply in generate([*state.messages, Message(role="user", content=state.prompt)]):
        yield reply, None
    yield reply, _answered(state, reply)


def builder(
    persister: SQLitePersister,
    *,
    app_id: str = "demo",
    use_async: bool = False,
    generate: ReplySource | AsyncReplySource | None = None,
    tracking_dir: str | Path | None = None,
) -> ApplicationBuilder:
    """The chat, loaded from ``persister`` (or new), saved to it after every step and tracked.

    With ``use_async=True`` the ``respond`` step is the async generator ``arespond`` (run it
    with ``achat``). ``generate`` replaces the stand-in model: a function from the conversation
    (a list of ``Message``) to an iterator of partial ``Reply`` models (an async iterator with
    ``use_async=True``). The local tracker writes under ``tracking_dir``, by default
    ``$TURNOUT_HOME`` or ``~/.turnout``.
    """
    reply: Any = arespond if use_async else respond
    if generate is not None:
        reply = reply.bind(generate=generate)
    return (
        ApplicationBuilder()
        .with_actions(user_input=user_input, respond=reply)
        .with_transitions(("user_input", "respond"), ("respond", "user_input"))
        .with_typing(PydanticTypingSystem(ChatState))
        .initialize_from(
            persister,
            resume_at_next_action=True,
            default_state=model_to_dict(ChatState()),
            default_entrypoint="user_input",
        )
        .with_state_persister(persister)
        .with_identifiers(app_id=app_id)
        .with_tracker(LocalTracker(PROJECT, storage_dir=tracking_dir))
    )


def application(persister: SQLitePersister, **options: Any) -> Application:
    """``builder(persister, **options).build()``."""
    return builder(persister, **options).build()


def _ignore(reply: Reply) -> None:
    pass


def chat(app: Application, prompt: str, on_partial: Callable[[Reply], None] = _ignore) -> Reply:
    """One turn with the sync driver: ``on_partial`` sees every partial reply as it arrives."""
    _action, container = app.stream_result(halt_after=["respond"], inputs={"prompt": prompt})
    for partial in container:
        on_partial(partial)
    reply, _state = container.get()
    assert isinstance(reply, Reply)
    return reply


async def achat(
    app: Application, prompt: str, on_partial: Callable[[Reply], None] = _ignore
) -> Reply:
    """One turn with the async driver (``astream_result``)."""
    _action, container = await app.astream_result(halt_after=["respond"], inputs={"prompt": prompt})
    async for partial in container:
        on_partial(partial)
    reply, _state = await container.get()
    assert isinstance(reply, Reply)
    return reply


def refused_input(app: Application, prompt: Any) -> StateValidationError:
    """Send a prompt that does not fit ``ChatState.prompt``: the error the step raised (the state
    and the saved chat are left as they were)."""
    try:
        app.run(halt_after=["user_input"], inputs={"prompt": prompt})
    except StateValidationError as error:
        return error
    raise AssertionError(f"prompt={prompt!r} was accepted")


def _session(db: Path, prompts: list[str], use_async: bool, tracking_dir: Path | None) -> None:
    with SQLitePersister(db) as persister:
        app = application(persister, use_async=use_async, tracking_dir=tracking_dir)
        data: ChatState = app.state.data
        if app.sequence_id is None:
            print(f"new chat in {db}")
        else:
            print(
                f"resumed at sequence id {app.sequence_id}: a {type(data).__name__} with "
                f"{data.turns} turn(s); last reply {data.last_reply!r}"
            )
        for prompt in prompts:
            partials: list[Reply] = []
            print(f"user: {prompt}")
            if use_async:
                reply = asyncio.run(achat(app, prompt, partials.append))
            else:
                reply = chat(app, prompt, partials.append)
            print(f"bot:  {reply.text}  [{reply.mood}; {len(partials)} partial replies]")
        error = refused_input(app, 42)
        print(f"refused prompt=42: {str(error).splitlines()[1].strip()}")
        data = app.state.data
        print(
            f"{data.turns} turn(s), {len(data.messages)} messages, at sequence id {app.sequence_id}"
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("prompts", nargs="*", default=["hello", "what is typed state?"])
    parser.add_argument("--db", type=Path, help="the SQLite file (default: a throw-away one)")
    parser.add_argument("--async", dest="use_async", action="store_true", help="astream_result")
    parser.add_argument(
        "--tracking-dir", type=Path, help="where the tracker writes ($TURNOUT_HOME or ~/.turnout)"
    )
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as scratch:
        db = args.db or Path(scratch) / "chat.db"
        _session(db, args.prompts[:1], args.use_async, args.tracking_dir)
        print("-- a new process would build the application again from the file --")
        _session(db, args.prompts[1:], args.use_async, args.tracking_dir)
    where = tracking_home(args.tracking_dir) / PROJECT
    print(f"every step is tracked under {where} (see it with `turnout ui`)")


if __name__ == "__main__":
    main()
