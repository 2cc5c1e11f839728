"""Every example under examples/ runs offline and does what its README says."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from examples.approval import application as approval
from examples.chatbot import application as chatbot
from examples.counter import application as counter
from examples.streaming_chatbot import application as streaming
from tests.test_docs import python_blocks, skip_without_adapter_library
from turnout import Application, State
from turnout.core.errors import AsyncRequiredError
from turnout.lifecycle import PostRunStepHook

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted(p.parent.name for p in ROOT.glob("examples/*/application.py"))


@pytest.fixture(params=["sync", "async"])
def mode(request: pytest.FixtureRequest) -> str:
    """Run the test with an example's sync drivers and with its async ones."""
    return str(request.param)


@pytest.mark.parametrize("name", EXAMPLES, ids=EXAMPLES)
def test_example_has_readme_and_runs_as_a_script(name: str, tmp_path: Path) -> None:
    assert (ROOT / "examples" / name / "README.md").is_file()
    skip_without_adapter_library(f"examples/{name}")
    done = subprocess.run(
        [sys.executable, f"examples/{name}/application.py"],
        cwd=ROOT,
        # offline: a developer's OpenAI key or OTLP endpoint must not reach the examples, and
        # examples that track write under a temporary TURNOUT_HOME, not the developer's
        env={
            **{
                k: v
                for k, v in os.environ.items()
                if k not in ("OPENAI_API_KEY", "OPENAI_BASE_URL")
                and not k.startswith("OTEL_EXPORTER_OTLP_")
            },
            "TURNOUT_HOME": str(tmp_path / "turnout-home"),
        },
        stdin=subprocess.DEVNULL,  # an interactive example (the adventure) reads no commands
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip()


README_PAGES = sorted(p.parent.name for p in ROOT.glob("examples/*/README.md"))


@pytest.mark.parametrize("name", README_PAGES, ids=README_PAGES)
def test_example_readme_code_runs(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    """The Python blocks of an example's README run in order, sharing one namespace."""
    relative = f"examples/{name}/README.md"
    skip_without_adapter_library(f"examples/{name}")
    blocks = python_blocks((ROOT / relative).read_text(encoding="utf-8"))
    assert blocks, f"{relative} has no Python example"
    namespace: dict[str, object] = {"__name__": f"readme_{name}"}
    for block in blocks:
        code = "\n" * (block.line - 1) + block.code
        exec(compile(code, relative, "exec", dont_inherit=True), namespace)


def test_counter_counts_to_its_limit_then_reports() -> None:
    app = counter.application(limit=4)
    action, result, state = app.run(halt_after=["report"])
    assert action is not None
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


# -- streaming chatbot ---------------------------------------------------------------------------


def _streaming_app(mode: str, **kwargs: Any) -> Application:
    return streaming.application(use_async=mode == "async", **kwargs)


def _stream_turn(app: Application, mode: str, prompt: str) -> tuple[list[str], str]:
    """One turn: the tokens in the order they reached the caller, and the final answer."""
    tokens: list[str] = []
    if mode == "sync":
        answer = streaming.stream_chat(app, prompt, tokens.append)
    else:
        answer = asyncio.run(streaming.astream_chat(app, prompt, tokens.append))
    return tokens, answer


def _user(text: str) -> dict[str, str]:
    return {"role": "user", "content": text}


def test_streaming_chatbot_streams_tokens_in_order_then_appends_the_answer(mode: str) -> None:
    app = _streaming_app(mode)
    tokens, answer = _stream_turn(app, mode, "hello")
    expected = list(streaming.canned_tokens([_user("hello")]))
    assert tokens == expected
    assert len(tokens) == 12
    assert tokens[:3] == ["(turn ", "1) ", "You "]
    assert answer == "(turn 1) You said 'hello'. I stream one word at a time."
    assert "".join(tokens).strip() == answer
    assert app.state["chat_history"] == [
        _user("hello"),
        {"role": "assistant", "content": answer},
    ]
    assert app.sequence_id == 1  # user_input (0), respond (1)
    nxt = app.get_next_action()
    assert nxt is not None
    assert nxt.name == "user_input"


def test_streaming_chatbot_commits_the_answer_only_when_the_stream_ends(mode: str) -> None:
    app = _streaming_app(mode)
    seen: list[tuple[str, int]] = []

    def on_token(token: str) -> None:
        seen.append((token, len(app.state["chat_history"])))

    if mode == "sync":
        streaming.stream_chat(app, "hi", on_token)
    else:
        asyncio.run(streaming.astream_chat(app, "hi", on_token))
    assert len(seen) == 12
    assert {length for _token, length in seen} == {1}  # only the user's message, meanwhile
    assert len(app.state["chat_history"]) == 2


def test_streaming_chatbot_keeps_the_conversation_across_turns(mode: str) -> None:
    app = _streaming_app(mode)
    _stream_turn(app, mode, "hello")
    tokens, answer = _stream_turn(app, mode, "again")
    assert tokens[0] == "(turn "
    assert tokens[1] == "2) "
    assert answer == "(turn 2) You said 'again'. I stream one word at a time."
    history = app.state["chat_history"]
    assert [m["role"] for m in history] == ["user", "assistant", "user", "assistant"]
    assert history[2] == _user("again")
    assert app.sequence_id == 3


def test_usage_recorder_counts_streamed_tokens_and_keeps_gen_ai_usage(mode: str) -> None:
    recorder = streaming.UsageRecorder()
    app = _streaming_app(mode, recorder=recorder)
    first, _ = _stream_turn(app, mode, "hello there")
    second, _ = _stream_turn(app, mode, "bye")
    assert len(first) == 13
    assert recorder.tokens == first + second
    assert recorder.streams == [(1, len(first)), (3, len(second))]
    assert recorder.attributes == {
        "gen_ai.request.model": "stand-in-1",
        # the second turn's input, in words: "hello there" (2), the first answer (13), "bye" (1)
        "gen_ai.usage.input_tokens": 16,
        "gen_ai.usage.output_tokens": len(second),
    }


def test_streaming_chatbot_streams_a_bound_model(mode: str) -> None:
    def words(history: list[dict[str, str]]) -> Iterator[str]:
        yield from ("echo: ", history[-1]["content"])

    async def awords(history: list[dict[str, str]]) -> AsyncIterator[str]:
        for token in words(history):
            yield token

    app = _streaming_app(mode, generate=words if mode == "sync" else awords)
    tokens, answer = _stream_turn(app, mode, "ping")
    assert tokens == ["echo: ", "ping"]
    assert answer == "echo: ping"


def test_sync_respond_also_streams_under_the_async_driver() -> None:
    app = streaming.application()
    tokens, answer = _stream_turn(app, "async", "hello")
    assert tokens == list(streaming.canned_tokens([_user("hello")]))
    assert app.state["chat_history"][-1] == {"role": "assistant", "content": answer}


def test_async_respond_refuses_the_sync_driver_without_streaming() -> None:
    app = streaming.application(use_async=True)
    with pytest.raises(AsyncRequiredError, match="astream_result"):
        streaming.stream_chat(app, "hello")
    assert app.state["chat_history"] == [_user("hello")]  # user_input ran, respond did not
    nxt = app.get_next_action()
    assert nxt is not None
    assert nxt.name == "respond"


@pytest.mark.parametrize("flags", [[], ["--async"]], ids=["sync", "async"])
def test_streaming_chatbot_main_prints_the_streamed_answers(
    flags: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    answers = streaming.main([*flags, "hello", "bye"])
    assert answers == [
        "(turn 1) You said 'hello'. I stream one word at a time.",
        "(turn 2) You said 'bye'. I stream one word at a time.",
    ]
    out = capsys.readouterr().out
    assert f"user: hello\nbot:  {answers[0]}" in out
    assert f"user: bye\nbot:  {answers[1]}" in out
    assert "streamed 24 tokens in 2 answers" in out
    assert "'gen_ai.usage.output_tokens': 12" in out


# -- approval ------------------------------------------------------------------------------------


class _Trail(PostRunStepHook):
    """Records ``(action, attempt, exception type or None)`` for every attempt of every step."""

    def __init__(self) -> None:
        self.steps: list[tuple[str, int, str | None]] = []
        self.sequence_ids: list[int] = []

    def post_run_step(
        self,
        *,
        action: Any,
        sequence_id: int,
        attempt: int,
        exception: BaseException | None,
        **future_kwargs: Any,
    ) -> None:
        failure = type(exception).__name__ if exception is not None else None
        self.steps.append((action.name, attempt, failure))
        self.sequence_ids.append(sequence_id)


def _submit(app: Application, mode: str, audience: str = "public") -> State:
    if mode == "sync":
        return approval.submit(app, "Launch", audience)
    return asyncio.run(approval.asubmit(app, "Launch", audience))


def _decide(app: Application, mode: str, decision: str, feedback: str = "") -> State:
    if mode == "sync":
        return approval.decide(app, decision, feedback)
    return asyncio.run(approval.adecide(app, decision, feedback))


def _approval_app(failures: int = 0) -> tuple[Application, _Trail, approval.FlakyPublisher]:
    trail = _Trail()
    publisher = approval.FlakyPublisher(failures=failures)
    return approval.application(publisher, hooks=(trail,)), trail, publisher


def test_public_draft_stops_after_assess_waiting_for_review(mode: str) -> None:
    app, trail, publisher = _approval_app()
    state = _submit(app, mode)
    assert trail.steps == [("draft", 1, None), ("assess", 1, None)]
    assert app.prior_action == "assess"  # request_halt() stopped the run right there
    assert approval.awaiting_review(app)
    assert state["needs_approval"] is True
    assert state["draft"] == "Launch: first draft."
    assert state["status"] == "draft"
    assert publisher.calls == 0


def test_internal_draft_is_published_without_a_review(mode: str) -> None:
    app, trail, publisher = _approval_app()
    state = _submit(app, mode, audience="internal")
    assert [name for name, _, _ in trail.steps] == ["draft", "assess", "publish"]
    assert state["needs_approval"] is False
    assert state["status"] == "published"
    assert state["reviews"] == []
    assert publisher.calls == 1
    assert app.get_next_action() is None


APPROVAL_PATHS = [
    pytest.param(
        ["approve"],
        0,
        ["draft", "assess", "review", "publish"],
        "published",
        id="approve",
    ),
    pytest.param(
        ["reject", "approve"],
        0,
        ["draft", "assess", "review", "revise", "review", "publish"],
        "published",
        id="reject-then-approve",
    ),
    pytest.param(
        ["reject", "reject", "approve"],
        0,
        ["draft", "assess", "review", "revise", "review", "revise", "review", "publish"],
        "published",
        id="reject-twice-then-approve",
    ),
    pytest.param(
        ["approve"],
        3,
        ["draft", "assess", "review", "publish", "publish", "publish", "notify_failure"],
        "failed",
        id="publish-fails-routed",
    ),
]


@pytest.mark.parametrize(("decisions", "failures", "steps", "status"), APPROVAL_PATHS)
def test_approval_paths_run_the_expected_steps(
    mode: str, decisions: list[str], failures: int, steps: list[str], status: str
) -> None:
    app, trail, _publisher = _approval_app(failures)
    _submit(app, mode)
    stops: list[str | None] = []
    for decision in decisions:
        assert approval.awaiting_review(app)
        state = _decide(app, mode, decision, f"note {len(stops)}")
        stops.append(app.prior_action)
    assert [name for name, _, _ in trail.steps] == steps
    # every rejection stops after revise (halt_before review); the last call runs to the end
    assert stops == ["revise"] * (len(decisions) - 1) + [steps[-1]]
    assert state["status"] == status
    assert [r["decision"] for r in state["reviews"]] == decisions
    assert state["revision"] == len(decisions)
    assert app.get_next_action() is None


def test_rejection_feedback_reaches_the_revision(mode: str) -> None:
    app, _trail, _publisher = _approval_app()
    _submit(app, mode)
    state = _decide(app, mode, "reject", "cite the numbers")
    assert state["draft"] == "Launch: revision 2 (cite the numbers)."
    assert state["reviews"] == [
        {"revision": 1, "decision": "reject", "feedback": "cite the numbers"}
    ]
    assert approval.awaiting_review(app)
    state = _decide(app, mode, "approve")
    assert state["url"] == "https://example.invalid/posts/1"
    assert state["reviews"][-1] == {"revision": 2, "decision": "approve", "feedback": ""}


def test_flaky_publish_is_retried_under_one_sequence_id(mode: str) -> None:
    app, trail, publisher = _approval_app(failures=2)
    _submit(app, mode)
    state = _decide(app, mode, "approve")
    assert trail.steps[-3:] == [
        ("publish", 1, "PublishError"),
        ("publish", 2, "PublishError"),
        ("publish", 3, None),
    ]
    assert trail.sequence_ids[-3:] == [3, 3, 3]
    assert publisher.calls == 3
    assert state["status"] == "published"
    assert state["url"] == "https://example.invalid/posts/3"
    assert "error" not in state


def test_publish_failure_after_every_retry_routes_to_notify_failure(mode: str) -> None:
    app, trail, publisher = _approval_app(failures=3)
    _submit(app, mode)
    state = _decide(app, mode, "approve")  # no exception reaches the caller
    assert publisher.calls == 3
    assert trail.steps[-2:] == [("publish", 3, "PublishError"), ("notify_failure", 1, None)]
    assert state["error"]["type"] == "PublishError"
    assert state["error"]["action"] == "publish"
    assert state["error"]["attempts"] == 3
    assert state["status"] == "failed"
    assert state["notification"] == (
        "could not publish after 3 attempts: PublishError: service unavailable (call 3)"
    )
    assert "url" not in state


def test_review_refuses_an_unknown_decision_and_keeps_waiting(mode: str) -> None:
    app, trail, _publisher = _approval_app()
    before = _submit(app, mode)
    with pytest.raises(ValueError, match="'maybe'"):
        _decide(app, mode, "maybe")
    assert app.state == before
    assert approval.awaiting_review(app)
    assert _decide(app, mode, "approve")["status"] == "published"
    assert trail.steps[-2] == ("review", 1, None)


@pytest.mark.parametrize(
    ("argv", "status", "lines"),
    [
        pytest.param(["--approve"], "published", ["human: approve", "[3] publish"], id="approve"),
        pytest.param(
            ["--reject", "1", "--publish-failures", "2"],
            "published",
            ["human: reject (make it shorter (#1))", "[3] revise: revision 2", "attempt 2 failed"],
            id="reject-then-approve",
        ),
        pytest.param(
            ["--publish-failures", "3", "--async"],
            "failed",
            ["attempt 3 failed (service unavailable (call 3)); giving up", "[4] notify_failure"],
            id="publish-fails-async",
        ),
        pytest.param(
            ["--internal"],
            "published",
            ["assess: no approval needed", "[2] publish"],
            id="internal",
        ),
    ],
)
def test_approval_main_prints_each_stage(
    argv: list[str], status: str, lines: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    state = approval.main(argv)
    out = capsys.readouterr().out
    assert state["status"] == status
    assert out.rstrip().endswith(f"status: {status}")
    for line in lines:
        assert line in out


# -- resumable chat ------------------------------------------------------------------------------


@pytest.fixture
def resumable() -> Any:
    """The resumable chat example's module."""
    from examples.resumable_chat import application as module

    return module


def _mode_flags(mode: str) -> list[str]:
    return ["--async"] if mode == "async" else []


def _user_messages(history: list[dict[str, str]]) -> list[str]:
    return [m["content"] for m in history if m["role"] == "user"]


def _stored_history(db: Path) -> list[dict[str, str]]:
    from turnout.core.sqlite import SQLitePersister

    with SQLitePersister(db) as persister:
        record = persister.load(None, "demo")
    assert record is not None
    return list(record.state["chat_history"])


def test_resumable_chat_continues_where_the_last_run_stopped(
    resumable: Any, mode: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "chat.db"
    first = resumable.main(["--db", str(db), "--turns", "2", *_mode_flags(mode)])
    assert first.resumed_at is None
    assert [prompt for prompt, _ in first.turns] == list(resumable.SCRIPT[:2])
    assert first.sequence_id == 3
    second = resumable.main(["--db", str(db), "--turns", "2", *_mode_flags(mode)])
    assert second.resumed_at == 3
    assert [prompt for prompt, _ in second.turns] == list(resumable.SCRIPT[2:4])
    assert second.turns[0][1].startswith("(turn 3) ")
    assert _user_messages(second.history) == list(resumable.SCRIPT[:4])
    assert second.history == _stored_history(db)
    out = capsys.readouterr().out
    assert "new conversation 'demo'" in out
    assert "resumed conversation 'demo' at sequence id 3 (2 user messages so far" in out


def test_resumable_chat_answers_a_message_cut_off_before_its_answer(
    resumable: Any, mode: str, tmp_path: Path
) -> None:
    from turnout.core.sqlite import SQLitePersister

    db = tmp_path / "chat.db"
    with SQLitePersister(db) as persister:
        app = resumable.application(persister)
        app.step(inputs={"prompt": resumable.SCRIPT[0]})  # user_input saved, respond never ran
    session = resumable.main(["--db", str(db), "--turns", "2", *_mode_flags(mode)])
    assert session.resumed_at == 0
    assert [prompt for prompt, _ in session.turns] == list(resumable.SCRIPT[:2])
    assert [m["role"] for m in session.history] == ["user", "assistant"] * 2
    assert _user_messages(session.history) == list(resumable.SCRIPT[:2])  # none sent twice


def test_resumable_chat_finishes_the_script_then_does_nothing_more(
    resumable: Any, mode: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "chat.db"
    done = resumable.main(["--db", str(db), *_mode_flags(mode)])
    assert done.finished
    assert len(done.turns) == len(resumable.SCRIPT)
    again = resumable.main(["--db", str(db), *_mode_flags(mode)])
    assert again.turns == []
    assert again.finished
    assert again.sequence_id == again.resumed_at == 2 * len(resumable.SCRIPT) - 1
    assert "the script is finished" in capsys.readouterr().out


def test_resumable_chat_without_db_leaves_no_file(
    resumable: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    session = resumable.main([])
    assert session.finished
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("flags", [[], ["--async"]], ids=["sync", "async"])
def test_resumable_chat_killed_with_sigkill_resumes_in_a_new_process(
    resumable: Any, flags: list[str], tmp_path: Path
) -> None:
    """Killed after its first exchange, the next process resumes at the last saved step."""
    db = tmp_path / "chat.db"
    script = ROOT / "examples" / "resumable_chat" / "application.py"
    # A long delay after each exchange: the kill always lands while the process waits.
    command = [sys.executable, "-u", str(script), "--db", str(db), "--delay", "60", *flags]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as child:
        assert child.stdout is not None
        printed = [child.stdout.readline() for _ in range(3)]
        child.kill()
        child.wait(timeout=30)
    assert child.returncode != 0
    assert printed[0].startswith("new conversation 'demo'")
    assert printed[1:] == [
        "user: hello\n",
        "bot:  (turn 1) You said: 'hello'. I am a stand-in model.\n",
    ]
    done = subprocess.run(
        [sys.executable, str(script), "--db", str(db), *flags],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "resumed conversation 'demo' at sequence id 1" in done.stdout
    assert "user: what happens to this chat if the process dies?" in done.stdout
    assert "user: hello" not in done.stdout
    assert "the script is finished" in done.stdout
    history = _stored_history(db)
    assert _user_messages(history) == list(resumable.SCRIPT)
    assert [m["role"] for m in history] == ["user", "assistant"] * len(resumable.SCRIPT)
