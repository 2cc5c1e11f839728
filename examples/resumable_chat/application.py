"""A chat that survives a restart: every step is saved to SQLite, and the next run continues it.

Run it, stop it however you like (Ctrl-C, ``kill -9``), and run it again with the same ``--db``:
it prints the sequence id it resumed at and goes on with the next message of the script.

    python examples/resumable_chat/application.py --db chat.db --delay 2   # kill it meanwhile
    python examples/resumable_chat/application.py --db chat.db             # it carries on

The user's messages are scripted and the replies come from a stand-in model, so the example runs
offline; replace ``canned_reply`` with a call to your model. Without ``--db`` the chat goes to a
throw-away file, deleted at the end of the run.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from turnout import Application, ApplicationBuilder, State, action
from turnout.core.sqlite import AsyncSQLitePersister, SQLitePersister

Reply = Callable[[list[dict[str, str]]], str]

SCRIPT = (
    "hello",
    "what happens to this chat if the process dies?",
    "and when it starts again?",
    "what if two processes run the same chat?",
    "how big does the file get?",
    "thanks, bye",
)


def canned_reply(history: list[dict[str, str]]) -> str:
    """A deterministic stand-in for a chat model."""
    turn = sum(1 for message in history if message["role"] == "user")
    return f"(turn {turn}) You said: {history[-1]['content']!r}. I am a stand-in model."


@action(reads=[], writes=["chat_history"])
def user_input(state: State, prompt: str) -> State:
    """Append the user's message to the conversation."""
    return state.append(chat_history={"role": "user", "content": prompt})


@action(reads=["chat_history"], writes=["chat_history"])
def respond(state: State, reply: Reply = canned_reply) -> tuple[dict[str, str], State]:
    """Ask the model for an answer and append it to the conversation."""
    answer = reply(state["chat_history"])
    return {"answer": answer}, state.append(chat_history={"role": "assistant", "content": answer})


def builder(persister: Any, app_id: str = "demo", reply: Reply = canned_reply) -> Any:
    """The chat, loaded from ``persister`` (or new) and saved to it after every step."""
    return (
        ApplicationBuilder()
        .with_actions(user_input, respond.bind(reply=reply))
        .with_transitions(("user_input", "respond"), ("respond", "user_input"))
        .initialize_from(
            persister, default_state={"chat_history": []}, default_entrypoint="user_input"
        )
        .with_state_persister(persister)
        .with_identifiers(app_id=app_id)
    )


def application(
    persister: SQLitePersister, app_id: str = "demo", reply: Reply = canned_reply
) -> Application:
    """The chat over a synchronous persister."""
    app: Application = builder(persister, app_id, reply).build()
    return app


async def aapplication(
    persister: AsyncSQLitePersister, app_id: str = "demo", reply: Reply = canned_reply
) -> Application:
    """The chat over an asynchronous persister (run it with the async methods)."""
    app: Application = await builder(persister, app_id, reply).abuild()
    return app


def user_turns(app: Application) -> int:
    return sum(1 for message in app.state["chat_history"] if message["role"] == "user")


def next_prompt(app: Application, script: Sequence[str]) -> str | None:
    """The scripted message to send next, ``None`` when the script is done."""
    turns = user_turns(app)
    return script[turns] if turns < len(script) else None


def pending_answer(app: Application) -> bool:
    """Whether the last run stopped between a message and its answer."""
    nxt = app.get_next_action()
    return nxt is not None and nxt.name == "respond"


def chat_turn(app: Application, script: Sequence[str]) -> tuple[str, str] | None:
    """One exchange: answer a message left unanswered by the last run, or send the next one."""
    if pending_answer(app):
        prompt = app.state["chat_history"][-1]["content"]
        _action, result, _state = app.run(halt_after=["respond"])
    else:
        prompt = next_prompt(app, script)
        if prompt is None:
            return None
        _action, result, _state = app.run(halt_after=["respond"], inputs={"prompt": prompt})
    assert result is not None
    return prompt, str(result["answer"])


async def achat_turn(app: Application, script: Sequence[str]) -> tuple[str, str] | None:
    """``chat_turn`` with ``await app.arun(...)``."""
    if pending_answer(app):
        prompt = app.state["chat_history"][-1]["content"]
        _action, result, _state = await app.arun(halt_after=["respond"])
    else:
        prompt = next_prompt(app, script)
        if prompt is None:
            return None
        _action, result, _state = await app.arun(halt_after=["respond"], inputs={"prompt": prompt})
    assert result is not None
    return prompt, str(result["answer"])


@dataclass(frozen=True, kw_only=True)
class Session:
    """What one run did."""

    resumed_at: int | None  # the sequence id the run started from; None for a new chat
    turns: list[tuple[str, str]]  # (message, answer) exchanged during this run
    sequence_id: int | None  # the last step saved
    history: list[dict[str, str]]  # the whole conversation so far
    finished: bool  # every scripted message has its answer


def _say(text: str) -> None:
    print(text, flush=True)  # flushed: a killed process has printed everything it did


def _opened(app: Application, db: Path, app_id: str) -> int | None:
    resumed_at = app.sequence_id
    if resumed_at is None:
        _say(f"new conversation {app_id!r} in {db}")
    else:
        nxt = app.get_next_action()
        _say(
            f"resumed conversation {app_id!r} at sequence id {resumed_at} "
            f"({user_turns(app)} user messages so far; next: {nxt.name if nxt else 'nothing'})"
        )
    return resumed_at


def _exchanged(turn: tuple[str, str]) -> None:
    prompt, answer = turn
    _say(f"user: {prompt}\nbot:  {answer}")


def _closing(app: Application, resumed_at: int | None, turns: list[tuple[str, str]]) -> Session:
    finished = next_prompt(app, SCRIPT) is None and not pending_answer(app)
    _say(f"saved up to sequence id {app.sequence_id}")
    if finished:
        _say("the script is finished; delete the database file to start over")
    return Session(
        resumed_at=resumed_at,
        turns=turns,
        sequence_id=app.sequence_id,
        history=list(app.state["chat_history"]),
        finished=finished,
    )


def run_sync(db: Path, app_id: str, turns: int | None, delay: float) -> Session:
    with SQLitePersister(db) as persister:
        app = application(persister, app_id)
        resumed_at = _opened(app, db, app_id)
        done: list[tuple[str, str]] = []
        while turns is None or len(done) < turns:
            turn = chat_turn(app, SCRIPT)
            if turn is None:
                break
            _exchanged(turn)
            done.append(turn)
            if delay:
                time.sleep(delay)
        return _closing(app, resumed_at, done)


async def run_async(db: Path, app_id: str, turns: int | None, delay: float) -> Session:
    persister = AsyncSQLitePersister(db)
    try:
        app = await aapplication(persister, app_id)
        resumed_at = _opened(app, db, app_id)
        done: list[tuple[str, str]] = []
        while turns is None or len(done) < turns:
            turn = await achat_turn(app, SCRIPT)
            if turn is None:
                break
            _exchanged(turn)
            done.append(turn)
            if delay:
                await asyncio.sleep(delay)
        return _closing(app, resumed_at, done)
    finally:
        await persister.close()


def main(argv: list[str] | None = None) -> Session:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", type=Path, help="the SQLite file (default: a throw-away one)")
    parser.add_argument("--app-id", default="demo", help="which conversation (default: demo)")
    parser.add_argument("--turns", type=int, help="stop after this many exchanges")
    parser.add_argument(
        "--delay", type=float, default=0.0, help="seconds to wait between exchanges"
    )
    parser.add_argument("--async", dest="use_async", action="store_true", help="use arun")
    args = parser.parse_args(argv)

    def run(db: Path) -> Session:
        if args.use_async:
            return asyncio.run(run_async(db, args.app_id, args.turns, args.delay))
        return run_sync(db, args.app_id, args.turns, args.delay)

    if args.db is not None:
        return run(args.db)
    with tempfile.TemporaryDirectory(prefix="resumable-chat-") as directory:
        _say("no --db given: this chat goes to a throw-away file (pass --db chat.db to keep it)")
        return run(Path(directory) / "chat.db")


if __name__ == "__main__":
    main()
