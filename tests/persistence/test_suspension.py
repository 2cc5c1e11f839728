"""Suspend and resume on every backend, sync and async: the suspension and its answer live in
the persister's journal, so a freshly built application (another process) resumes it; a second
answer is refused; a fork from a suspended step resumes on its own. The approval flow runs in
two real processes on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.persistence.child import ROOT
from tests.persistence.conftest import Harness
from turnout import ApplicationBuilder, State, action
from turnout.core.application import Application
from turnout.core.context import ApplicationContext
from turnout.core.errors import AnswerValidationError, SuspensionError
from turnout.core.suspension import SuspensionRecord

SCHEMA = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}


def flow(h: Harness, sent: list[str]) -> tuple[Any, Any]:
    def notify(who: str) -> str:
        sent.append(who)
        return who

    if h.is_async:

        @action(reads=["n"], writes=["ok"])
        async def review(state: State, __context: ApplicationContext) -> State:
            await __context.adurable("notify", notify, "reviewer")
            answer = __context.suspend("approval", schema=SCHEMA, metadata={"n": state["n"]})
            return state.update(ok=answer["ok"])

    else:

        @action(reads=["n"], writes=["ok"])
        def review(state: State, __context: ApplicationContext) -> State:
            __context.durable("notify", notify, "reviewer")
            answer = __context.suspend("approval", schema=SCHEMA, metadata={"n": state["n"]})
            return state.update(ok=answer["ok"])

    @action(reads=["ok"], writes=["done"])
    def publish(state: State) -> State:
        return state.update(done=state["ok"])

    return review, publish


def build(h: Harness, sent: list[str], app_id: str, **fork: Any) -> Application:
    review, publish = flow(h, sent)
    builder = (
        ApplicationBuilder()
        .with_actions(review=review, publish=publish)
        .with_transitions(("review", "publish"))
        .with_identifiers(app_id=app_id)
        .initialize_from(
            h.persister,
            resume_at_next_action=True,
            default_state={"n": 1},
            default_entrypoint="review",
            **fork,
        )
        .with_state_persister(h.persister)
    )
    return h.build(builder)


def run(h: Harness, app: Application) -> Any:
    if h.is_async:
        return h.run(app.arun(halt_after=["publish"]))
    return app.run(halt_after=["publish"])


def resume(h: Harness, app: Application, channel: str, value: Any) -> Any:
    if h.is_async:
        return h.run(app.aresume(channel, value))
    return app.resume(channel, value)


def test_a_fresh_application_resumes_a_suspension_saved_by_the_persister(
    persister: Harness,
) -> None:
    h = persister
    sent: list[str] = []
    first = build(h, sent, "saved")
    assert isinstance(run(h, first)[1], SuspensionRecord)
    loaded = h.load(None, "saved")
    assert loaded is not None
    assert (loaded.status, loaded.position) == ("suspended", "review")

    again = build(h, sent, "saved")
    pending = again.suspension
    assert pending is not None
    assert (pending.channel, pending.schema, pending.metadata) == ("approval", SCHEMA, {"n": 1})
    with pytest.raises(SuspensionError):
        resume(h, again, "other", {"ok": True})
    with pytest.raises(AnswerValidationError, match=r"\$\.ok"):
        resume(h, again, "approval", {"ok": "yes"})
    assert h.load(None, "saved") == loaded  # refused answers changed nothing
    state = resume(h, again, "approval", {"ok": True})[2]
    assert state["ok"] is True
    assert sent == ["reviewer"]
    assert run(h, again)[2]["done"] is True


def test_a_second_answer_from_a_stale_application_is_refused(persister: Harness) -> None:
    h = persister
    sent: list[str] = []
    run(h, build(h, sent, "twice"))
    one, two = build(h, sent, "twice"), build(h, sent, "twice")
    resume(h, one, "approval", {"ok": True})
    with pytest.raises(SuspensionError, match="answered already"):
        resume(h, two, "approval", {"ok": False})
    assert one.state["ok"] is True


def test_an_answer_given_before_a_crash_is_not_lost(persister: Harness) -> None:
    h = persister
    sent: list[str] = []
    run(h, build(h, sent, "crash"))
    answered = build(h, sent, "crash")
    # Store the answer as resume() does, then "crash" before the action runs again.
    from turnout.core.suspension import journal_of, save_answer

    access = journal_of(h.persister)
    assert access is not None
    assert answered.suspension is not None
    h.run(save_answer(access, answered.suspension, {"ok": False}))
    restarted = build(h, sent, "crash")
    assert restarted.suspension is None
    with pytest.raises(SuspensionError, match="answered already"):
        resume(h, restarted, "approval", {"ok": True})
    assert run(h, restarted)[2]["done"] is False
    assert sent == ["reviewer"]


def test_a_fork_from_a_suspended_step_resumes_on_its_own(persister: Harness) -> None:
    h = persister
    sent: list[str] = []
    run(h, build(h, sent, "parent"))
    fork = build(h, sent, "fork", fork_from_app_id="parent", fork_from_sequence_id=0)
    assert fork.suspension is not None
    assert resume(h, fork, "approval", {"ok": True})[2]["ok"] is True
    parent = build(h, sent, "parent")
    assert parent.suspension is not None  # the parent still waits
    assert resume(h, parent, "approval", {"ok": False})[2]["ok"] is False


def _child(spec: dict[str, Any]) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "tests.persistence.suspend_child", json.dumps(spec)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    out: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return out


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_an_approval_suspended_in_one_process_is_resumed_in_another(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    from tests.persistence.conftest import Harness as Made
    from tests.persistence.conftest import require_backend

    require_backend(kind)
    h = Made(kind, tmp_path)
    request.addfinalizer(h.close)
    h.open()
    effects = tmp_path / "effects.txt"
    spec = h.spec(app_id="approval", effects=str(effects))
    suspended = _child({**spec, "phase": "suspend"})
    assert suspended["result"]["channel"] == "approval"
    assert suspended["result"]["metadata"] == {"draft": "release notes"}
    refused = _child({**spec, "phase": "resume", "answer": {"approved": "yes"}})
    assert refused["pending"] == "approval"
    assert refused["error"].startswith("AnswerValidationError")
    assert "$.approved" in refused["error"]
    resumed = _child({**spec, "phase": "resume", "answer": {"approved": True}})
    assert resumed["state"] == {"draft": "release notes", "approved": True, "published": True}
    assert effects.read_text().splitlines() == ["notify reviewer"]  # once, across processes
    again = _child({**spec, "phase": "resume", "answer": {"approved": False}})
    assert "not suspended" in again["error"]
