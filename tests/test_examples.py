"""Every example under examples/ runs offline and does what its README says."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from examples.chatbot import application as chatbot
from examples.counter import application as counter

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted(p.parent.name for p in ROOT.glob("examples/*/application.py"))


@pytest.mark.parametrize("name", EXAMPLES, ids=EXAMPLES)
def test_example_has_readme_and_runs_as_a_script(name: str) -> None:
    assert (ROOT / "examples" / name / "README.md").is_file()
    done = subprocess.run(
        [sys.executable, f"examples/{name}/application.py"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip()


def test_counter_counts_to_its_limit_then_reports() -> None:
    app = counter.application(limit=4)
    action, result, state = app.run(halt_after=["report"])
    assert action.name == "report"
    assert result == {"message": "counted to 4 (limit 4)"}
    assert state["count"] == 4
    assert app.sequence_id == 4  # four increments (ids 0-3), then report (id 4)


def test_counter_main_prints_the_message(capsys: pytest.CaptureFixture[str]) -> None:
    assert counter.main(["--limit", "2"]) == "counted to 2 (limit 2)"
    assert "counted to 2" in capsys.readouterr().out


def test_chatbot_keeps_the_conversation_across_turns() -> None:
    app = chatbot.application()
    first = chatbot.chat(app, "hello")
    second = chatbot.chat(app, "again")
    assert "'hello'" in first
    assert first.startswith("(turn 1)")
    assert "'again'" in second
    assert second.startswith("(turn 2)")
    history = app.state["chat_history"]
    assert [m["role"] for m in history] == ["user", "assistant", "user", "assistant"]
    assert history[2] == {"role": "user", "content": "again"}


def test_chatbot_uses_the_bound_reply_function() -> None:
    app = chatbot.application(reply=lambda history: f"{len(history)} messages so far")
    assert chatbot.chat(app, "hi") == "1 messages so far"
    assert chatbot.chat(app, "hi again") == "3 messages so far"


def test_chatbot_waits_for_input_between_turns() -> None:
    app = chatbot.application()
    chatbot.chat(app, "hello")
    nxt = app.get_next_action()
    assert nxt is not None
    assert nxt.name == "user_input"
