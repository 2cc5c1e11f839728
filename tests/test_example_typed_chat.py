"""examples/typed_chat: a typed multi-step chat, streamed, refused, saved, resumed and tracked."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("pydantic")

from examples.typed_chat import application as typed_chat
from examples.typed_chat.application import ChatState, Message, Reply
from turnout import Application
from turnout.core.errors import StateValidationError
from turnout.core.sqlite import SQLitePersister
from turnout.core.tracking import read_log

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(params=["sync", "async"])
def mode(request: pytest.FixtureRequest) -> str:
    """Run the test with the example's sync drivers and with its async ones."""
    return str(request.param)


@pytest.fixture
def persister(tmp_path: Path) -> Iterator[SQLitePersister]:
    with SQLitePersister(tmp_path / "chat.db") as opened:
        yield opened


def _app(persister: SQLitePersister, mode: str, tmp_path: Path, **options: Any) -> Application:
    return typed_chat.application(
        persister, use_async=mode == "async", tracking_dir=tmp_path / "tracking", **options
    )


def _turn(app: Application, mode: str, prompt: str) -> tuple[list[Reply], Reply]:
    """One turn: the partial replies in the order they reached the caller, and the reply."""
    partials: list[Reply] = []
    if mode == "sync":
        reply = typed_chat.chat(app, prompt, partials.append)
    else:
        reply = asyncio.run(typed_chat.achat(app, prompt, partials.append))
    return partials, reply


def _refuse(app: Application, mode: str, prompt: Any) -> StateValidationError:
    async def arun() -> None:
        await app.arun(halt_after=["user_input"], inputs={"prompt": prompt})

    def run() -> None:
        if mode == "sync":
            app.run(halt_after=["user_input"], inputs={"prompt": prompt})
        else:
            asyncio.run(arun())

    with pytest.raises(StateValidationError) as info:
        run()
    return info.value


def test_reply_streams_partial_models_then_the_state_holds_the_whole_one(
    persister: SQLitePersister, mode: str, tmp_path: Path
) -> None:
    app = _app(persister, mode, tmp_path)
    partials, reply = _turn(app, mode, "hello")
    assert all(type(partial) is Reply for partial in partials)
    assert [partial.words for partial in partials] == list(range(1, 11))
    assert partials[0].text == "(turn"
    assert reply == partials[-1]
    assert reply == Reply(
        text="(turn 1) You said 'hello'; I am a typed stand-in.", mood="cheerful", words=10
    )
    data = app.state.data
    assert isinstance(data, ChatState)
    assert data.last_reply == reply
    assert data.messages == [
        Message(role="user", content="hello"),
        Message(role="assistant", content=reply.text),
    ]
    assert (data.prompt, data.turns) == ("hello", 1)
    assert app.sequence_id == 1  # user_input (0), respond (1)


def test_each_turn_sees_the_conversation_so_far(
    persister: SQLitePersister, mode: str, tmp_path: Path
) -> None:
    app = _app(persister, mode, tmp_path)
    _turn(app, mode, "hello")
    _, reply = _turn(app, mode, "what is typed state?")
    assert reply.text.startswith("(turn 2) You said 'what is typed state?'")
    assert reply.mood == "curious"
    assert [m.role for m in app.state.data.messages] == ["user", "assistant"] * 2


def test_a_bound_reply_source_replaces_the_stand_in(
    persister: SQLitePersister, mode: str, tmp_path: Path
) -> None:
    def replies(messages: list[Message]) -> Iterator[Reply]:
        yield Reply(text=f"{len(messages)} message(s)", words=2)

    async def areplies(messages: list[Message]) -> AsyncIterator[Reply]:
        for reply in replies(messages):
            yield reply

    app = _app(persister, mode, tmp_path, generate=replies if mode == "sync" else areplies)
    _, reply = _turn(app, mode, "hi")
    assert reply == Reply(text="1 message(s)", words=2)
    assert app.state.data.messages[-1] == Message(role="assistant", content="1 message(s)")


def test_a_prompt_that_is_not_a_string_is_refused_and_changes_nothing(
    persister: SQLitePersister, mode: str, tmp_path: Path
) -> None:
    app = _app(persister, mode, tmp_path)
    _turn(app, mode, "hello")
    before = app.state.data
    error = _refuse(app, mode, 42)
    assert isinstance(error, ValueError)
    assert "action 'user_input' wrote values that do not fit ChatState" in str(error)
    assert "prompt: got int 42, expected str" in str(error)
    assert app.state.data == before
    assert app.get_next_action() is not None
    assert app.get_next_action().name == "user_input"  # type: ignore[union-attr]
    _, reply = _turn(app, mode, "still here")  # the chat goes on
    assert reply.text.startswith("(turn 2)")


def test_building_again_from_the_file_resumes_with_state_data_a_model(
    persister: SQLitePersister, mode: str, tmp_path: Path
) -> None:
    _, first = _turn(_app(persister, mode, tmp_path), mode, "hello")
    with SQLitePersister(tmp_path / "chat.db") as reopened:
        app = _app(reopened, mode, tmp_path)
        data = app.state.data
        assert isinstance(data, ChatState)
        assert data.last_reply == first
        assert all(type(message) is Message for message in data.messages)
        assert app.sequence_id == 1
        assert app.get_next_action().name == "user_input"  # type: ignore[union-attr]
        _, reply = _turn(app, mode, "again?")
        assert reply.text.startswith("(turn 2) You said 'again?'")
        assert app.state.data.turns == 2


def test_the_tracker_logs_every_step_with_the_typed_values(
    persister: SQLitePersister, mode: str, tmp_path: Path
) -> None:
    app = _app(persister, mode, tmp_path)
    _turn(app, mode, "hello")
    logs = list((tmp_path / "tracking" / "typed-chat").glob("*/log.jsonl"))
    assert [log.parent.name for log in logs] == [app.uid]
    ends = [r for r in read_log(logs[0]) if r.get("t") == "end"]
    assert [(r["action"], r["status"]) for r in ends] == [
        ("user_input", "completed"),
        ("respond", "completed"),
    ]
    written = {change[1] for change in ends[1]["changes"]}
    assert written == {"messages", "last_reply", "turns"}


def test_a_new_process_resumes_the_saved_chat_without_registering_its_models(
    tmp_path: Path,
) -> None:
    """The models were stored by this process; another one loads them, registered only by
    ``PydanticTypingSystem(ChatState)``."""
    with SQLitePersister(tmp_path / "chat.db") as persister:
        _turn(_app(persister, "sync", tmp_path), "sync", "hello")
    script = (
        "from examples.typed_chat.application import ChatState, Message, application\n"
        "from turnout.core.sqlite import SQLitePersister\n"
        f"with SQLitePersister({str(tmp_path / 'chat.db')!r}) as persister:\n"
        f"    data = application(persister, tracking_dir={str(tmp_path / 'tracking')!r})"
        ".state.data\n"
        "assert type(data) is ChatState and type(data.messages[0]) is Message, data\n"
        "print(data.turns, data.last_reply.words)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["1", "10"]


def test_main_chats_restarts_and_shows_the_refusal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], mode: str
) -> None:
    argv = ["hi", "and now?", "--db", str(tmp_path / "main.db")]
    argv += ["--tracking-dir", str(tmp_path / "runs")]
    typed_chat.main(argv + (["--async"] if mode == "async" else []))
    out = capsys.readouterr().out
    assert "new chat in" in out
    assert "resumed at sequence id 2: a ChatState with 1 turn(s)" in out
    assert (
        "bot:  (turn 2) You said 'and now?'; I am a typed stand-in.  [curious; 11 partial replies]"
        in out
    )
    assert out.count("refused prompt=42: prompt: got int 42, expected str") == 2
