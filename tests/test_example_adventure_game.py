"""The adventure game example end to end, offline: full games to the win (in code, from the
command line and on the Streamlit page through ``AppTest``), commands the map refuses, and a
model that proposes illegal moves or lies in its narration without changing the state."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("openai")

import openai

from examples.adventure_game import application as game
from examples.adventure_game import world
from turnout import Application
from turnout.testing import FakeOpenAIServer, FakeToolCall

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "adventure_game" / "application.py"


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """A developer's key must not send the game to the real API."""
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)


@pytest.fixture
def app() -> Iterator[Application]:
    with game.model_client() as (client, model):
        yield game.application(client, model)


def _position(app: Application) -> tuple[str, list[str], list[str]]:
    return app.state["room"], list(app.state["inventory"]), list(app.state["unlocked"])


def test_the_walkthrough_wins_with_the_crown_and_ends_the_run(app: Application) -> None:
    verdicts = [game.play_turn(app, words, lambda _token: None) for words in game.WALKTHROUGH]
    assert [v["allowed"] for v in verdicts] == [True] * 5 + [False] + [True] * 3
    assert verdicts[5]["message"] == "The door east is locked."  # east before using the key
    assert _position(app) == ("vault", ["lamp", "key", "crown"], ["hall:east"])
    assert app.state["won"] is True
    assert app.get_next_action() is None  # no transition out of narrate once won
    assert app.state["chat_history"][-1]["content"].endswith("you have won!")
    with pytest.raises(RuntimeError, match="game is over"):
        game.play_turn(app, "go west", lambda _token: None)


def test_each_turn_halts_for_the_next_command_with_the_narration_streamed(
    app: Application,
) -> None:
    tokens: list[str] = []
    verdict = game.play_turn(app, "take the lamp", tokens.append)
    assert verdict == {
        "command": "take the lamp",
        "proposed": {"verb": "take", "target": "lamp"},
        "allowed": True,
        "message": "You take the lamp.",
    }
    narration = app.state["chat_history"][-1]
    assert narration == {"role": "assistant", "content": "".join(tokens).strip()}
    assert len(tokens) > 1
    assert app.get_next_action().name == "command"  # type: ignore[union-attr]
    assert app.state["chat_history"][-2] == {"role": "user", "content": "take the lamp"}


@pytest.mark.parametrize(
    ("words", "message"),
    [
        ("go west", "There is no exit west from the cellar."),
        ("take crown", "There is no crown here to take."),
        ("use key", "You do not carry a key."),
        ("dance wildly", "That is not something you can do."),
    ],
    ids=["no-exit", "item-elsewhere", "item-not-carried", "not-a-command"],
)
def test_an_illegal_command_is_refused_and_changes_nothing(
    app: Application, words: str, message: str
) -> None:
    before = _position(app)
    verdict = game.play_turn(app, words, lambda _token: None)
    assert (verdict["allowed"], verdict["message"]) == (False, message)
    assert _position(app) == before
    assert app.state["chat_history"][-1]["content"].startswith(message)
    assert app.get_next_action().name == "command"  # type: ignore[union-attr]


def test_the_dark_library_hides_the_key_until_the_player_carries_the_lamp() -> None:
    dark = world.Position(room="library")
    refused = world.judge(dark, world.take("key"))
    assert not refused.allowed
    assert "too dark" in refused.message
    assert "too dark" in world.describe(dark)
    lit = world.Position(room="library", inventory=("lamp",), taken=("lamp",))
    assert world.judge(lit, world.take("key")).position.inventory == ("lamp", "key")


@pytest.mark.parametrize(
    "proposal",
    [
        FakeToolCall(name="take", arguments={"item": "crown"}),
        FakeToolCall(name="move", arguments={"direction": "east"}),
        FakeToolCall(name="teleport", arguments={"room": "vault"}),
        FakeToolCall(name="move", arguments={"to": "up"}),
        "You find yourself in the vault holding the crown.",
    ],
    ids=["take-from-another-room", "no-such-exit", "unknown-tool", "bad-arguments", "text-only"],
)
def test_a_model_proposing_an_illegal_change_is_refused(proposal: Any) -> None:
    """The model's word is a proposal: the rules refuse it, and a lying narration changes no
    state either."""
    lie = "You take the crown. You have won!"
    with FakeOpenAIServer(replies=[proposal, lie]) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="test", max_retries=0)
        with client:
            app = game.application(client, "scripted")
            verdict = game.play_turn(app, "do the thing", lambda _token: None)
    assert verdict["allowed"] is False
    assert _position(app) == ("cellar", [], [])
    assert app.state["won"] is False
    assert app.state["chat_history"][-1] == {"role": "assistant", "content": lie}
    assert app.get_next_action().name == "command"  # type: ignore[union-attr]
    interpret_request = server.requests[0]
    assert [t["function"]["name"] for t in interpret_request.tools] == ["move", "take", "use"]
    assert "The player is here: A damp cellar." in interpret_request.conversation()[0]["content"]
    assert "Verdict: refused" in server.requests[1].user_text()


def test_the_command_line_plays_the_walkthrough_and_tracks_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = game.main(["--walkthrough", "--track", "--tracking-dir", str(tmp_path)])
    out = capsys.readouterr().out
    assert state["won"] is True
    assert state["room"] == "vault"
    assert "*** You won! ***" in out
    assert "> go east\nThe door east is locked." in out
    logs = list((tmp_path / game.PROJECT).rglob("*.jsonl"))
    assert logs, f"no tracking log under {tmp_path}"
    assert '"narrate"' in "".join(log.read_text(encoding="utf-8") for log in logs)


def test_the_command_line_reads_typed_commands_until_the_input_ends(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    typed = iter(["take lamp", "go up", "quit", "go north"])
    monkeypatch.setattr("builtins.input", lambda _prompt="": next(typed))
    state = game.main([])
    assert (state["room"], state["inventory"]) == ("hall", ["lamp"])  # stopped at "quit"
    assert "You go up to the hall." in capsys.readouterr().out


def test_the_readme_mermaid_graph_is_the_application_graph(app: Application) -> None:
    readme = (ROOT / "examples" / "adventure_game" / "README.md").read_text(encoding="utf-8")
    drawn = readme.split("```mermaid\n", 1)[1].split("```", 1)[0]
    assert drawn.strip() == app.graph.to_mermaid().strip()


def test_the_streamlit_page_plays_to_the_win() -> None:
    pytest.importorskip("streamlit")
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(EXAMPLE), default_timeout=30)
    try:
        at.run()
        assert not at.exception
        assert at.sidebar.subheader[0].value == "Room: cellar"
        at.chat_input[0].set_value("go west").run()
        messages = [(m.name, m.markdown[0].value) for m in at.chat_message]
        assert messages[-2] == ("user", "go west")
        assert messages[-1][1].startswith("There is no exit west from the cellar.")
        for words in game.WALKTHROUGH:
            at.chat_input[0].set_value(words).run()
            assert not at.exception, words
        assert at.success[0].value == "You hold the crown: you won!"
        assert not at.chat_input  # the game is over: no more commands
        assert at.sidebar.subheader[0].value == "Room: vault"
        (trace,) = at.sidebar.dataframe
        assert list(trace.value["action"]) == ["narrate"] * (len(game.WALKTHROUGH) + 1)
        assert "crown" in at.sidebar.caption[0].value
        next(b for b in at.sidebar.button if b.label == "New game").click().run()
        assert at.sidebar.subheader[0].value == "Room: cellar"
        assert at.chat_input
    finally:
        if "model_stack" in at.session_state:
            at.session_state["model_stack"].close()
