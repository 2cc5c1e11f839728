"""A stored history is loaded whole or not at all, on every backend (see ``conftest.py``): a
record removed behind the persister's back, a save racing a ``delete()``, and ids no backend can
store each give a clear error instead of a silently wrong state or an orphan."""

from __future__ import annotations

import asyncio
import pickle
import threading
from collections.abc import Callable
from typing import Any

import pytest

from tests.persistence import backends
from tests.persistence.conftest import Harness
from turnout import ApplicationBuilder, State, action
from turnout.core.application import Application
from turnout.core.errors import ConcurrencyError, PersistenceError


@action(reads=["items"], writes=["items"])
def add(state: State) -> State:
    return state.append(items=len(state["items"]))


def adding(h: Harness, app_id: str, persister: Any = None) -> Application:
    return h.build(
        ApplicationBuilder()
        .with_actions(add)
        .with_transitions(("add", "add"))
        .with_state(items=[])
        .with_entrypoint("add")
        .with_identifiers(app_id=app_id)
        .with_state_persister(persister if persister is not None else h.persister)
    )


def twenty_five_steps(h: Harness, app_id: str) -> Any:
    """Sequence ids 0..24 saved with ``snapshot_every=10`` (snapshots at 0, 10, 20)."""
    persister = h.open(snapshot_every=10)
    app = adding(h, app_id, persister)
    for _ in range(25):
        h.step(app)
    kinds = {r.sequence_id: r.kind for r in h.records(None, app_id)}
    assert [i for i, kind in kinds.items() if kind == "snapshot"] == [0, 10, 20]
    return persister


def remove(h: Harness, app_id: str, sequence_id: int) -> None:
    backends.remove_record(h.kind, h.location, h.prefix, h.persister, app_id, sequence_id)


@pytest.mark.parametrize(
    ("missing", "whole"), [(22, 21), (20, 19), (24, 23)], ids=["delta", "snapshot", "latest"]
)
def test_a_missing_record_fails_every_load_through_it(
    persister: Harness, missing: int, whole: int
) -> None:
    h = persister
    p = twenty_five_steps(h, "holed")
    remove(h, "holed", missing)
    targets = [None, 24] if missing != 24 else [None]
    for sequence_id in targets:
        with pytest.raises(PersistenceError) as info:
            h.load(None, "holed", sequence_id, persister=p)
        message = str(info.value)
        assert "'holed'" in message
        assert f"sequence id {missing} is missing" in message
        assert "fork_from_app_id='holed'" in message
        assert f"fork_from_sequence_id={whole})" in message
    loaded = h.load(None, "holed", whole, persister=p)
    assert loaded is not None
    assert loaded.state["items"] == list(range(whole + 1))


def test_the_fork_the_error_names_continues_from_the_last_whole_step(persister: Harness) -> None:
    h = persister
    p = twenty_five_steps(h, "broken")
    remove(h, "broken", 22)
    fork = h.build(
        ApplicationBuilder()
        .with_actions(add)
        .with_transitions(("add", "add"))
        .with_identifiers(app_id="mended")
        .initialize_from(
            p, default_entrypoint="add", fork_from_app_id="broken", fork_from_sequence_id=21
        )
        .with_state_persister(p)
    )
    h.step(fork)
    loaded = h.load(None, "mended", persister=p)
    assert loaded is not None
    assert (loaded.sequence_id, loaded.state["items"]) == (22, list(range(23)))


def test_a_chain_without_its_first_snapshot_is_refused(persister: Harness) -> None:
    h = persister
    p = twenty_five_steps(h, "headless")
    for sequence_id in (0, 10):
        remove(h, "headless", sequence_id)
    with pytest.raises(PersistenceError, match=r"the snapshot that sequence id 1 .* applies to"):
        h.load(None, "headless", 5, persister=p)
    loaded = h.load(None, "headless", 22, persister=p)
    assert loaded is not None
    assert loaded.state["items"] == list(range(23))


# -- deleting an app while its writer runs -------------------------------------------------------


@pytest.mark.parametrize("steps", [3, 7], ids=["next-is-delta", "next-is-snapshot"])
def test_a_save_after_a_concurrent_delete_conflicts_and_leaves_nothing(
    persister: Harness, steps: int
) -> None:
    h = persister
    app = adding(h, "victim")
    for _ in range(steps):  # SNAPSHOT_EVERY is 7: the 8th save would be a snapshot
        h.step(app)
    other = h.open()
    assert h.run(other.delete("victim")) == steps
    with pytest.raises(ConcurrencyError) as info:
        h.step(app)
    assert info.value.deleted
    assert (info.value.app_id, info.value.sequence_id) == ("victim", steps)
    assert "was deleted" in str(info.value)
    assert "with_identifiers(app_id='victim')" in str(info.value)
    assert h.load(None, "victim") is None
    assert h.records(None, "victim") == []
    assert h.list_app_ids(None) == []
    assert h.prune(keep_last=1) == 0
    fresh = adding(h, "victim")  # starting the id afresh, deliberately, works
    h.step(fresh)
    assert h.list_app_ids(None) == ["victim"]
    loaded = h.load(None, "victim")
    assert loaded is not None
    assert (loaded.sequence_id, loaded.state["items"]) == (0, [0])


def test_the_deleted_writer_cannot_overwrite_the_fresh_app(persister: Harness) -> None:
    h = persister
    old = adding(h, "reborn")
    for _ in range(2):
        h.step(old)
    h.delete("reborn")
    fresh = adding(h, "reborn")
    h.step(fresh)
    with pytest.raises(ConcurrencyError) as info:
        h.step(old)
    assert not info.value.deleted
    assert [r.sequence_id for r in h.records(None, "reborn")] == [0]


# -- ids -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("partition_key", "app_id", "shown"),
    [(None, "a\ud800", "'a\\ud800'"), ("user\udfff", "app", "'user\\udfff'")],
    ids=["app-id", "partition-key"],
)
def test_an_id_with_a_lone_surrogate_is_refused(
    persister: Harness, partition_key: str | None, app_id: str, shown: str
) -> None:
    h = persister
    calls: list[Callable[[], object]] = [
        lambda: h.save(partition_key, app_id, 0, "act", State({"x": 1})),
        lambda: h.load(partition_key, app_id),
        lambda: h.delete(app_id, partition_key),
    ]
    for call in calls:
        with pytest.raises(PersistenceError, match="lone surrogate") as info:
            call()
        assert shown in str(info.value)
    assert h.list_app_ids(None) == []


class AfterStep:
    """A hook that calls ``then`` once, after the step with sequence id ``at``."""

    def __init__(self, at: int, then: Any) -> None:
        self.at, self.then = at, then

    def post_run_step(self, *, sequence_id: int, **future_kwargs: Any) -> None:
        if sequence_id == self.at:
            self.then()


def test_a_delete_racing_a_running_writer_leaves_the_app_wholly_gone(persister: Harness) -> None:
    h = persister
    other = h.open()
    if h.is_async:
        started = asyncio.Event()
        hook = AfterStep(5, started.set)
    else:
        signal = threading.Event()
        hook = AfterStep(5, signal.set)
    app = h.build(
        ApplicationBuilder()
        .with_actions(add)
        .with_transitions(("add", "add"))
        .with_state(items=[])
        .with_entrypoint("add")
        .with_identifiers(app_id="raced")
        .with_state_persister(h.persister)
        .with_hooks(hook)
    )
    outcome: list[BaseException] = []

    if h.is_async:

        async def write_async() -> None:
            try:
                for _ in range(2000):  # stops at the delete long before
                    await app.astep()
                    await asyncio.sleep(0)  # a yield, not a wait: lets the deleter run
            except ConcurrencyError as exc:
                outcome.append(exc)

        async def remove_it() -> None:
            await started.wait()
            await other.delete("raced")

        async def both() -> None:
            await asyncio.gather(write_async(), remove_it())

        h.run(both())
    else:

        def write() -> None:
            try:
                for _ in range(2000):  # stops at the delete long before
                    app.step()
            except ConcurrencyError as exc:
                outcome.append(exc)

        writer = threading.Thread(target=write)
        writer.start()
        signal.wait(timeout=60)
        other.delete("raced")
        writer.join()
    assert len(outcome) == 1, outcome
    assert isinstance(outcome[0], ConcurrencyError)
    assert outcome[0].deleted
    assert h.records(None, "raced") == []
    assert h.list_app_ids(None) == []
    assert h.load(None, "raced") is None


@pytest.mark.parametrize("deleted", [False, True], ids=["advanced", "deleted"])
def test_a_concurrency_error_survives_pickling(deleted: bool) -> None:
    """It crosses process boundaries (a process-pool child's save) with its fields intact."""
    error = ConcurrencyError("user-1", "app", 4, deleted=deleted)
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is ConcurrencyError
    assert (copy.partition_key, copy.app_id, copy.sequence_id) == ("user-1", "app", 4)
    assert copy.deleted is deleted
    assert str(copy) == str(error)


def test_racing_first_saves_of_a_new_app_id_exactly_one_wins(persister: Harness) -> None:
    """Each save creates the app's row before locking it: racing creators must not deadlock."""
    h = persister
    for round_number in range(3):
        app_id = f"newborn-{round_number}"
        apps = [adding(h, app_id, h.open()) for _ in range(3)]
        outcomes = h.race(*apps)
        assert sum(o is None for o in outcomes) == 1, outcomes
        assert all(o is None or isinstance(o, ConcurrencyError) for o in outcomes), outcomes
        assert [r.sequence_id for r in h.records(None, app_id)] == [0]
        assert app_id in h.list_app_ids(None)


def test_an_app_whose_every_record_was_removed_is_not_loaded_as_new(persister: Harness) -> None:
    h = persister
    app = adding(h, "emptied")
    for _ in range(3):
        h.step(app)
    for sequence_id in range(3):
        remove(h, "emptied", sequence_id)
    for target in (None, 2):
        with pytest.raises(PersistenceError, match="sequence id 2 is missing") as info:
            h.load(None, "emptied", target)
        assert "persister.delete('emptied', None)" in str(info.value)
    assert h.load(None, "emptied", 1) is None  # an earlier id: as if pruned


def test_records_left_without_their_app_row_are_reported_and_deletable(persister: Harness) -> None:
    h = persister
    app = adding(h, "orphan")
    for _ in range(2):
        h.step(app)
    backends.remove_app_row(h.kind, h.location, h.prefix, h.persister, "orphan")
    assert h.list_app_ids(None) == []
    with pytest.raises(PersistenceError, match="no app row") as info:
        h.load(None, "orphan")
    assert "persister.delete('orphan', None)" in str(info.value)
    assert h.delete("orphan") == 2
    assert h.load(None, "orphan") is None
