"""Snapshot marks (``turnout.core.trackindex``): ``LocalTracker.load`` starts at the nearest
verified snapshot instead of replaying the whole log, and answers exactly what the whole replay
answers: on clean logs, on resumed and forked ones, and on logs and indexes damaged at random
(then the marks are not used, or what they give is still the whole replay's answer)."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from turnout import ApplicationBuilder, RetryPolicy, State, action
from turnout.core.errors import PersistenceError
from turnout.core.trackhistory import Chain, full_chain
from turnout.core.trackindex import INDEX_FILENAME, find_chain, read_marks
from turnout.core.tracking import LocalTracker
from turnout.core.tracklog import ChildRecord, dump_line

from .test_tracklog_fuzz import Damage, damages

APP = "marked"


@action(reads=["messages"], writes=["messages"])
def chat(state: State) -> State:
    return state.append(messages=f"message {len(state['messages'])}")


def chat_app(
    tracker: LocalTracker, app_id: str = APP, sequence_id: int | None = None, **initialize: Any
) -> Any:
    return (
        ApplicationBuilder()
        .with_actions(chat=chat)
        .with_transitions(("chat", "chat"))
        .with_identifiers(app_id=app_id, sequence_id=sequence_id)
        .initialize_from(
            tracker, default_state={"messages": []}, default_entrypoint="chat", **initialize
        )
        .with_tracker(tracker)
        .build()
    )


def run(root: Path, steps: int, *, every: int = 4, app_id: str = APP, **initialize: Any) -> Path:
    """``steps`` steps of the chat app in a new tracker (a new process, as far as the log can
    tell), resuming what the log holds."""
    tracker = LocalTracker("proj", root, snapshot_every=every)
    app = chat_app(tracker, app_id, **initialize)
    for _ in range(steps):
        app.step()
    tracker.close()
    return tracker.log_path(app_id)


def same_answer(path: Path, seq: int | None, app_id: str = APP) -> Chain | None:
    """What the marks give for ``seq``, after checking it is the whole replay's answer."""
    fast = find_chain(path, app_id, seq)
    if fast is not None:
        assert fast == full_chain(path, app_id, seq), seq
    return fast


def test_every_snapshot_line_gets_a_mark_naming_its_run_and_app_line(tmp_path: Path) -> None:
    path = run(tmp_path, 10)
    marks = read_marks(path.parent / INDEX_FILENAME)
    assert [m.seq for m in marks] == [0, 4, 8]
    lines = path.read_bytes()
    for mark in marks:
        assert lines[mark.at - 1 : mark.at] == b"\n"
        assert b'"snapshot"' in lines[mark.at : mark.end]
        assert lines[mark.app_at :].startswith(b'{"t":"app"')
        assert mark.app_seq is None
        assert mark.run == marks[0].run


def test_the_latest_state_comes_from_the_last_snapshot_and_the_deltas_after_it(
    tmp_path: Path,
) -> None:
    path = run(tmp_path, 11)
    chain = same_answer(path, None)
    assert chain is not None
    assert chain.target.seq == 10
    assert [e.seq for e in chain.ends] == [9, 10]
    loaded = LocalTracker("proj", tmp_path).load(None, APP)
    assert loaded is not None
    assert loaded.sequence_id == 10
    assert loaded.state["messages"] == [f"message {i}" for i in range(11)]


def test_a_given_step_starts_at_the_nearest_snapshot_before_it(tmp_path: Path) -> None:
    path = run(tmp_path, 11)
    for seq in range(11):
        chain = same_answer(path, seq)
        assert chain is not None
        assert chain.target.seq == seq
        assert len(chain.ends) == seq % 4


def test_resumed_runs_load_from_their_own_snapshots_with_the_first_app_line_naming_the_app(
    tmp_path: Path,
) -> None:
    run(tmp_path, 6)
    run(tmp_path, 5)  # resumes at 5: steps 6..10
    path = run(tmp_path, 3)  # resumes at 10: steps 11..13
    marks = read_marks(path.parent / INDEX_FILENAME)
    assert {m.app_seq for m in marks} == {None, 5, 10}
    for seq in [None, *range(14)]:
        chain = same_answer(path, seq)
        assert chain is not None
        assert chain.app is not None
        assert chain.app.sequence_id is None  # the app line that started the application


def test_a_resume_from_an_earlier_step_loads_the_new_timeline(tmp_path: Path) -> None:
    run(tmp_path, 10)
    path = run(tmp_path, 2, sequence_id=2)  # a second timeline: steps 3, 4
    chain = same_answer(path, None)
    assert chain is not None
    assert chain.target.seq == 4
    loaded = LocalTracker("proj", tmp_path).load(None, APP)
    assert loaded is not None
    assert loaded.state["messages"] == [f"message {i}" for i in range(5)]
    for seq in range(10):
        same_answer(path, seq)


def test_a_fork_loads_from_its_own_log(tmp_path: Path) -> None:
    run(tmp_path, 6)
    path = run(tmp_path, 6, app_id="fork", fork_from_app_id=APP, fork_from_sequence_id=3)
    chain = same_answer(path, None, "fork")
    assert chain is not None
    assert chain.target.seq == 9


def test_without_an_index_the_whole_log_is_replayed(tmp_path: Path) -> None:
    path = run(tmp_path, 9)
    (path.parent / INDEX_FILENAME).unlink()
    assert find_chain(path, APP, None) is None
    loaded = LocalTracker("proj", tmp_path).load(None, APP)
    assert loaded is not None
    assert loaded.sequence_id == 8


def test_marks_of_another_log_are_not_used(tmp_path: Path) -> None:
    other = run(tmp_path / "a", 9)
    path = run(tmp_path / "b", 9)
    (path.parent / INDEX_FILENAME).write_bytes((other.parent / INDEX_FILENAME).read_bytes())
    assert find_chain(path, APP, None) is None


def test_a_new_log_in_place_of_a_deleted_one_drops_the_old_marks(tmp_path: Path) -> None:
    path = run(tmp_path, 9)
    path.unlink()
    run(tmp_path, 2)
    assert [m.seq for m in read_marks(path.parent / INDEX_FILENAME)] == [0]
    assert same_answer(path, None) is not None


def test_a_line_from_another_writer_inside_a_run_stops_its_marks(tmp_path: Path) -> None:
    tracker = LocalTracker("proj", tmp_path, snapshot_every=4)
    app = chat_app(tracker)
    for _ in range(3):
        app.step()
    # Another process appends to the same log (here: a child link it writes by hand).
    child = ChildRecord(kind="fork", child_app_id="c", child_partition_key=None, seq=1, time=0.0)
    with open(tracker.log_path(APP), "ab") as log:
        log.write(dump_line(child.to_json()))
    for _ in range(6):
        app.step()
    tracker.close()
    path = tracker.log_path(APP)
    assert [m.seq for m in read_marks(path.parent / INDEX_FILENAME)] == [0]
    chain = same_answer(path, None)  # read on from the one mark left, at step 0
    assert chain is not None
    assert chain.target.seq == 8
    loaded = LocalTracker("proj", tmp_path).load(None, APP)
    assert loaded is not None
    assert loaded.sequence_id == 8


def test_a_torn_index_line_keeps_the_marks_after_it(tmp_path: Path) -> None:
    path = run(tmp_path, 5)
    index = path.parent / INDEX_FILENAME
    index.write_bytes(index.read_bytes() + b'{"t":"mark","seq":')  # a writer killed mid-line
    run(tmp_path, 4)  # resumes at 4: a snapshot at 8
    assert [m.seq for m in read_marks(index)] == [0, 4, 8]


# -- the property: on damaged logs and indexes, the marks give the whole replay's answer ----------


def _baseline(root: Path) -> Path:
    """A log with snapshots, a retried step, a failed one, a resume from the latest step and
    one from an earlier step (a second timeline), each from a new tracker."""
    attempts = {"n": 0}

    @action(
        reads=["n", "items"],
        writes=["n", "items"],
        retry=RetryPolicy(max_attempts=2, initial_delay=0, jitter=0),
    )
    def work(state: State) -> State:
        attempts["n"] += 1
        if attempts["n"] == 3:  # step 2's first attempt fails and is retried
            raise ValueError("flaky")
        if attempts["n"] in (6, 7):  # both attempts of step 4 fail: it fails for good
            raise KeyError("broken")
        return state.increment(n=1).append(items=f"item {state['n']}")

    def session(steps: int, sequence_id: int | None = None, **initialize: Any) -> Path:
        tracker = LocalTracker("proj", root, snapshot_every=3)
        app = (
            ApplicationBuilder()
            .with_actions(work=work)
            .with_transitions(("work", "work"))
            .with_identifiers(app_id=APP, sequence_id=sequence_id)
            .initialize_from(
                tracker,
                default_state={"n": 0, "items": []},
                default_entrypoint="work",
                **initialize,
            )
            .with_tracker(tracker)
            .build()
        )
        for _ in range(steps):
            with contextlib.suppress(KeyError):
                app.step()
        tracker.close()
        return tracker.log_path(APP)

    session(7)
    session(4)  # resumes at 5: steps 6..9
    return session(3, sequence_id=7, override_state_values={"n": 50})  # steps 8..10 again


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    path = _baseline(tmp_path_factory.mktemp("whole"))
    target = LocalTracker("proj", tmp_path_factory.mktemp("damaged")).log_path(APP)
    target.parent.mkdir(parents=True)
    index = (path.parent / INDEX_FILENAME).read_bytes()
    assert len(read_marks(path.parent / INDEX_FILENAME)) >= 4
    for seq in range(11):
        same_answer(path, seq)
    assert same_answer(path, None) is not None  # undamaged, the marks answer
    return {"log": path.read_bytes(), "index": index, "target": target}


def _apply(data: bytes, chosen: list[Damage], cut: int | None) -> bytes:
    lines = data.splitlines(keepends=True)
    for damage in chosen:
        lines = damage(lines)
    out = b"".join(lines)
    return out if cut is None else out[: cut % (len(out) + 1)]


FUZZ = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
    derandomize=True,
    database=None,
)
_INDEX = st.integers(min_value=0, max_value=10_000)


@FUZZ
@given(
    log_damage=st.lists(damages, min_size=0, max_size=3),
    log_cut=st.none() | _INDEX,
    index_damage=st.lists(damages, min_size=0, max_size=2),
)
def test_the_marks_give_the_whole_replays_answer_on_damaged_logs(
    baseline: dict[str, Any],
    log_damage: list[Damage],
    log_cut: int | None,
    index_damage: list[Damage],
) -> None:
    target: Path = baseline["target"]
    target.write_bytes(_apply(baseline["log"], log_damage, log_cut))
    index = _apply(baseline["index"], index_damage, None) if baseline["index"] else b""
    (target.parent / INDEX_FILENAME).write_bytes(index)
    for seq in [None, *range(12)]:
        fast = find_chain(target, APP, seq)
        if fast is None:
            continue
        try:
            whole = full_chain(target, APP, seq)
        except PersistenceError as exc:
            raise AssertionError(f"the marks answered for {seq}, the whole log raised") from exc
        assert fast == whole, seq


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_initialize_from_resumes_the_marked_latest_state(tmp_path: Path, mode: str) -> None:
    path = run(tmp_path, 11)
    assert find_chain(path, APP, None) is not None
    tracker = LocalTracker("proj", tmp_path)
    builder = (
        ApplicationBuilder()
        .with_actions(chat=chat)
        .with_transitions(("chat", "chat"))
        .with_identifiers(app_id=APP)
        .initialize_from(
            tracker, resume_at_next_action=True, default_state={}, default_entrypoint="chat"
        )
    )
    app = builder.build() if mode == "sync" else asyncio.run(builder.abuild())
    assert app.sequence_id == 10
    assert app.state["messages"] == [f"message {i}" for i in range(11)]
