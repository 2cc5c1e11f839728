"""The email assistant at the terminal (``--cli``): no server; the drafts stream to stdout, the
clarifying questions and the approval are asked with ``input()`` (through a pipe, and through a
pseudo-terminal as a person types them), or scripted with ``--answer``/``--feedback``/
``--approve``; ``--track`` records the run with its suspensions."""

from __future__ import annotations

import asyncio
import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("sse_starlette")

from examples.email_assistant_served import application as assistant
from turnout.core.tracking import LocalTracker
from turnout.core.tracklog import EndRecord, read_records

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "examples" / "email_assistant_served" / "application.py"
REQUEST = "Invite the team to lunch"
DAY, TONE = "Which day should the email propose?", "Should the tone be formal or casual?"
APPROVE = "Send this email? (yes, or say what to change)"


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}


def _steps(storage: Path, app_id: str) -> list[tuple[str, str]]:
    log = LocalTracker(assistant.PROJECT, storage_dir=storage).log_path(app_id)
    return [(r.action, r.status) for r in read_records(log).records if isinstance(r, EndRecord)]


EXPECTED_STEPS = [
    ("receive", "completed"),
    ("draft", "completed"),
    ("clarify", "suspended"),
    ("clarify", "completed"),
    ("draft", "completed"),
    ("review", "suspended"),
    ("review", "completed"),  # changes requested
    ("draft", "completed"),
    ("review", "suspended"),
    ("review", "completed"),  # approved
    ("send", "completed"),
]


def test_piped_answers_drive_it_to_the_sent_email_and_the_run_is_tracked(tmp_path: Path) -> None:
    typed = "Friday\n\ncasual\nmention the menu\nyes\n"  # the empty reply is asked again
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--cli", REQUEST, "--token-delay", "0", "--track",
         "--tracking-dir", str(tmp_path), "--app-id", "lunch"],
        input=typed, capture_output=True, text=True, timeout=60, check=False, env=_env(),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert out.count(f"{TONE} ") == 2  # asked again after the empty reply
    assert out.count("--- draft ---") == 3
    sent = out.split("--- sent ---\n")[1]
    assert "Details: Friday; casual." in sent
    assert "Revised as asked: mention the menu." in sent
    assert "tracked as 'lunch'" in out
    assert _steps(tmp_path, "lunch") == EXPECTED_STEPS


def _read_until(fd: int, text: str, seen: bytearray, deadline: float) -> None:
    while text.encode() not in seen:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"never saw {text!r}; the terminal shows:\n{seen.decode()}"
        ready, _, _ = select.select([fd], [], [], remaining)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # the child closed the terminal
                chunk = b""
            assert chunk, f"the program ended before {text!r}:\n{seen.decode()}"
            seen += chunk


def test_a_person_answers_at_a_terminal(tmp_path: Path) -> None:
    """Through a pseudo-terminal: each question waits for the typed line."""
    controller, terminal = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, str(SCRIPT), "--cli", REQUEST, "--token-delay", "0"],
        stdin=terminal, stdout=terminal, stderr=terminal, env=_env(), close_fds=True,
    )  # fmt: skip
    os.close(terminal)
    seen = bytearray()
    deadline = time.monotonic() + 60
    try:
        for question, reply in ((DAY, "Monday"), (TONE, "formal"), (APPROVE, "yes")):
            _read_until(controller, question, seen, deadline)
            assert process.poll() is None  # waiting for the person
            os.write(controller, f"{reply}\n".encode())
        _read_until(controller, "Your assistant\r\n", seen, deadline)
        _read_until(controller, "--- sent ---", seen, deadline)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(controller)
    sent = seen.decode().split("--- sent ---")[1]
    assert "Details: Monday; formal." in sent


def test_flags_script_every_reply(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def no_input(prompt: str = "") -> str:
        raise AssertionError(f"asked at the terminal: {prompt!r}")

    monkeypatch.setattr("builtins.input", no_input)
    argv = ["--cli", REQUEST, "--token-delay", "0", "--answer", "Friday", "--answer", "casual",
            "--feedback", "shorter", "--approve"]  # fmt: skip
    state = assistant.main(argv)
    assert state is not None
    assert state["answers"] == ["Friday", "casual"]
    assert state["feedback"] == ["shorter"]
    assert state["final_email"] == state["drafts"][-1]
    assert len(state["drafts"]) == 3
    assert f"{TONE} casual" in capsys.readouterr().out


def test_stdin_closed_before_an_answer_says_how_to_script_it() -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--cli", REQUEST, "--token-delay", "0"],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60, check=False,
        env=_env(),
    )  # fmt: skip
    assert done.returncode == 1
    assert f"no answer to {DAY!r} (stdin is closed)" in done.stderr
    assert "--answer TEXT" in done.stderr


def test_converse_puts_each_question_to_ask_in_order() -> None:
    asked: list[tuple[str, str]] = []
    replies = iter(["Friday", "casual", "yes"])

    def ask(channel: str, question: str) -> str:
        asked.append((channel, question))
        return next(replies)

    tokens: list[str] = []
    app = assistant.application()
    state = asyncio.run(assistant.converse(app, REQUEST, ask=ask, say=tokens.append))
    assert asked == [("clarifications", DAY), ("clarifications", TONE), ("approval", APPROVE)]
    assert state["final_email"] in "".join(tokens)
    assert not app.has_next_action()


def test_the_readme_mermaid_graph_is_the_application_graph() -> None:
    readme = (ROOT / "examples" / "email_assistant_served" / "README.md").read_text()
    drawn = readme.split("```mermaid\n", 1)[1].split("```", 1)[0]
    assert drawn.strip() == assistant.application().graph.to_mermaid().strip()


@pytest.mark.parametrize("offline", [False, True], ids=["provider", "offline"])
def test_with_a_key_the_questions_and_drafts_come_from_the_provider(
    offline: bool, tmp_path: Path
) -> None:
    """``OPENAI_API_KEY`` set: the clarifying questions and every draft come from the chat
    model the openai client is configured for (a local server standing in for the API, by
    ``OPENAI_BASE_URL``); the drafts stream, the answers and the feedback reach the model;
    ``--offline`` keeps the offline drafting model."""
    pytest.importorskip("openai")
    from turnout.testing import FakeOpenAIServer

    asked: list[tuple[str, str]] = []

    def provider(request: Any) -> str:
        conversation = request.conversation()
        system, user = str(conversation[0]["content"]), request.user_text()
        asked.append((request.model, user))
        if system.startswith("You help write an email"):
            return '["Which room?", "Lunch or dinner?"]'
        return f"Dear team, draft {len(asked)}: " + " / ".join(user.splitlines())

    with FakeOpenAIServer(provider) as server:
        env = {**_env(), "OPENAI_API_KEY": "sk-test", "OPENAI_BASE_URL": server.base_url,
               "OPENAI_MODEL": "provider-model"}  # fmt: skip
        done = subprocess.run(
            [sys.executable, str(SCRIPT), "--cli", REQUEST, "--token-delay", "0",
             "--answer", "the big room", "--answer", "lunch", "--feedback", "shorter",
             "--approve", *(["--offline"] if offline else [])],
            env=env, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
    assert done.returncode == 0, done.stderr
    if offline:
        assert asked == []
        assert DAY in done.stdout  # the offline model's own question
        return
    assert {model for model, _ in asked} == {"provider-model"}
    assert "Which room?" in done.stdout
    assert "Lunch or dinner?" in done.stdout
    drafts = [user for _, user in asked if user.startswith("Request:")]
    assert len(drafts) == 3  # first draft, with the answers, with the feedback
    assert "Answer: the big room" in drafts[1]
    assert "Answer: lunch" in drafts[1]
    assert "Change: shorter" in drafts[2]
    sent = done.stdout.split("--- sent ---", 1)[1]
    assert "Change: shorter" in sent
    assert sent.strip().startswith("Dear team, draft")


def test_questions_are_read_from_json_or_from_question_lines() -> None:
    from examples.email_assistant_served.openai_model import parse_questions

    assert parse_questions('["Which day?", " ", "Tone?", "Where?", "Who?"]') == [
        "Which day?", "Tone?", "Where?",
    ]  # fmt: skip
    assert parse_questions('```json\n["Which day?"]\n```') == ["Which day?"]
    assert parse_questions("Sure!\n- Which day?\n- Formal or casual?") == [
        "Which day?", "Formal or casual?",
    ]  # fmt: skip
    assert parse_questions('{"questions": 1}') == []
    assert parse_questions("[]") == []
