"""The journal of ``ApplicationContext.durable``, on every backend, sync and async: replays on
retries, crashes and reruns, ``DeterminismError``, and prune / delete / fork keeping the journal
in step with the records."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest

from tests.persistence.conftest import Harness
from turnout import ApplicationBuilder, State, action
from turnout.core.application import Application
from turnout.core.context import ApplicationContext
from turnout.core.errors import ConcurrencyError, DeterminismError
from turnout.core.journal import JournalEntry
from turnout.core.retry import RetryPolicy


class Crash(BaseException):
    """Stands for SIGKILL in-process: not an ``Exception``, so the step saves nothing."""


def send_action(h: Harness, sent: list[Any], plan: Callable[[int], None]) -> Any:
    """A step that sends ``n`` once through ``durable`` then calls ``plan(n)`` (which may
    raise); sync or async like the backend."""
    retry = RetryPolicy(max_attempts=4, initial_delay=0, jitter=0)

    def send(n: int) -> dict[str, Any]:
        sent.append(n)
        return {"sent": n, "pair": (n, n)}

    if h.is_async:

        async def asend(n: int) -> dict[str, Any]:
            return send(n)

        @action(reads=["n"], writes=["n", "receipt"], retry=retry)
        async def step(state: State, __context: ApplicationContext) -> State:
            receipt = await __context.adurable("send", asend, state["n"])
            plan(state["n"])
            return state.update(n=state["n"] + 1, receipt=receipt)

        return step

    @action(reads=["n"], writes=["n", "receipt"], retry=retry)
    def sync_step(state: State, __context: ApplicationContext) -> State:
        receipt = __context.durable("send", send, state["n"])
        plan(state["n"])
        return state.update(n=state["n"] + 1, receipt=receipt)

    return sync_step


def build(h: Harness, step: Any, app_id: str, **fork: Any) -> Application:
    builder = (
        ApplicationBuilder()
        .with_actions(step=step)
        .with_transitions(("step", "step"))
        .with_identifiers(app_id=app_id)
        .initialize_from(
            h.persister,
            resume_at_next_action=True,
            default_state={"n": 0},
            default_entrypoint="step",
            **fork,
        )
        .with_state_persister(h.persister)
    )
    return h.build(builder)


def entries(h: Harness, app_id: str, sequence_id: int) -> list[JournalEntry]:
    found: list[JournalEntry] = h.run(
        h.persister.core.store.journal_entries("", app_id, sequence_id)
    )
    return found


def test_a_retried_step_replays_its_journaled_call(persister: Harness) -> None:
    h = persister
    sent: list[Any] = []
    failures = iter([ValueError("flaky"), ValueError("flaky")])

    def plan(n: int) -> None:
        failure = next(failures, None)
        if failure is not None:
            raise failure

    app = build(h, send_action(h, sent, plan), "retried")
    h.step(app)
    h.step(app)
    assert sent == [0, 1]
    assert app.state["receipt"] == {"sent": 1, "pair": (1, 1)}
    assert [(e.index, e.key) for e in entries(h, "retried", 0)] == [(0, "send")]


def test_a_step_restarted_after_a_crash_replays_without_calling_again(persister: Harness) -> None:
    h = persister
    sent: list[Any] = []

    def crash(n: int) -> None:
        raise Crash

    with pytest.raises(Crash):
        h.step(build(h, send_action(h, sent, crash), "crashed"))
    restarted = build(h, send_action(h, sent, lambda n: None), "crashed")
    h.step(restarted)
    assert sent == [0]
    assert restarted.sequence_id == 0
    assert restarted.state["receipt"] == {"sent": 0, "pair": (0, 0)}


def test_the_first_call_returns_what_a_replay_will(persister: Harness) -> None:
    h = persister
    app = build(h, send_action(h, [], lambda n: None), "decoded")
    h.step(app)
    assert app.state["receipt"]["pair"] == (0, 0)  # as the serde loads it back


def test_a_replay_asking_for_another_key_raises_determinism_error(persister: Harness) -> None:
    h = persister
    sent: list[Any] = []

    def crash(n: int) -> None:
        raise Crash

    with pytest.raises(Crash):
        h.step(build(h, send_action(h, sent, crash), "changed"))

    if h.is_async:

        @action(reads=["n"], writes=["n"])
        async def other(state: State, __context: ApplicationContext) -> State:
            await __context.adurable("charge", sent.append, "charged")
            return state.update(n=1)

    else:

        @action(reads=["n"], writes=["n"])
        def other(state: State, __context: ApplicationContext) -> State:
            __context.durable("charge", sent.append, "charged")
            return state.update(n=1)

    with pytest.raises(DeterminismError) as caught:
        h.step(build(h, other, "changed"))
    error = caught.value
    assert (error.key, error.journaled_key, error.index, error.sequence_id) == (
        "charge",
        "send",
        0,
        0,
    )
    assert "durable('charge')" in str(error)
    assert "durable('send')" in str(error)
    assert sent == [0]


def test_a_failed_steps_rerun_replays_its_journal(persister: Harness) -> None:
    h = persister
    sent: list[Any] = []

    def fail(n: int) -> None:
        raise ValueError("down")

    app = build(h, send_action(h, sent, fail), "rerun")
    with pytest.raises(ValueError, match="down"):
        h.step(app)
    assert sent == [0]  # four attempts, one call
    rerun = build(h, send_action(h, sent, lambda n: None), "rerun")
    h.step(rerun)
    assert rerun.sequence_id == 1
    assert sent == [0]
    assert rerun.state["receipt"] == {"sent": 0, "pair": (0, 0)}
    assert [e.key for e in entries(h, "rerun", 1)] == ["send"]


def test_prune_removes_the_journal_of_pruned_steps_only(persister: Harness) -> None:
    h = persister
    app = build(h, send_action(h, [], lambda n: None), "pruned")
    for _ in range(4):
        h.step(app)
    assert h.prune(keep_last=2, app_id="pruned") == 2
    assert [len(entries(h, "pruned", s)) for s in range(4)] == [0, 0, 1, 1]


def test_delete_removes_the_apps_journal(persister: Harness) -> None:
    h = persister
    app = build(h, send_action(h, [], lambda n: None), "deleted")
    h.step(app)
    h.step(app)
    h.delete("deleted")
    assert entries(h, "deleted", 0) == []
    assert entries(h, "deleted", 1) == []


def test_a_fork_copies_the_journal_up_to_the_fork_point(persister: Harness) -> None:
    h = persister
    sent: list[Any] = []
    app = build(h, send_action(h, sent, lambda n: None), "parent")
    for _ in range(3):
        h.step(app)
    fork = build(
        h,
        send_action(h, sent, lambda n: None),
        "fork",
        fork_from_app_id="parent",
        fork_from_sequence_id=1,
    )
    h.step(fork)
    assert fork.sequence_id == 2
    assert sent == [0, 1, 2, 2]  # the fork's own step 2 sends again: its journal starts there
    assert [len(entries(h, "fork", s)) for s in range(3)] == [1, 1, 1]
    assert entries(h, "fork", 1)[0].payload == entries(h, "parent", 1)[0].payload


def test_journaling_the_same_call_twice_is_a_concurrency_error(persister: Harness) -> None:
    h = persister
    entry = JournalEntry(
        partition_key="",
        app_id="twice",
        sequence_id=0,
        index=0,
        key="send",
        payload="1",
        created_at=dt.datetime.now(dt.UTC),
    )
    store = h.persister.core.store
    h.run(store.journal_record(entry))
    with pytest.raises(ConcurrencyError):
        h.run(store.journal_record(entry))
    assert [e.payload for e in entries(h, "twice", 0)] == ["1"]
