"""The persister contract, run against every backend (see ``conftest.py`` for the ids).

Each test body is written once: the ``persister`` fixture's ``Harness`` calls a sync persister's
methods directly and awaits an async one's on the test's event loop, and builds applications with
``build()`` or ``abuild()`` to match. ``snapshot_every`` is 7, so multi-step tests cross snapshot
boundaries.
"""

from __future__ import annotations

import asyncio
import copy
import datetime as dt
import math
from typing import Any

import pytest

from tests.persistence.child import Child
from tests.persistence.conftest import Harness
from tests.persistence.samples import SAMPLES, same
from turnout import ApplicationBuilder, RetryPolicy, State, action, on_exception
from turnout.core.application import Application
from turnout.core.errors import AsyncRequiredError, ConcurrencyError, GraphSetupError
from turnout.core.persistence import ParentPointer, PersistedStateData
from turnout.core.state import Change, apply_changes

# -- applications --------------------------------------------------------------------------------


@action(reads=["trail"], writes=["trail"])
def first(state: State) -> State:
    return state.append(trail="first")


@action(reads=["trail"], writes=["trail"])
def second(state: State) -> State:
    return state.append(trail="second")


@action(reads=["trail"], writes=["trail"])
def third(state: State) -> State:
    return state.append(trail="third")


CYCLE = (("first", "second"), ("second", "third"), ("third", "first"))


def cycle(app_id: str, partition_key: str | None = None) -> ApplicationBuilder:
    """first -> second -> third -> first, with no state or entrypoint yet."""
    return (
        ApplicationBuilder()
        .with_actions(first, second, third)
        .with_transitions(*CYCLE)
        .with_identifiers(app_id=app_id, partition_key=partition_key)
    )


def new_cycle(h: Harness, app_id: str, partition_key: str | None = None) -> Application:
    builder = cycle(app_id, partition_key).with_state(trail=[]).with_entrypoint("first")
    return h.build(builder.with_state_persister(h.persister))


def resumed(h: Harness, app_id: str, persister: Any = None, **kwargs: Any) -> Application:
    """The cycle app resumed (or forked, with ``fork_from_*`` kwargs) from ``persister``."""
    target = persister if persister is not None else h.persister
    kwargs.setdefault("default_state", {"trail": []})
    kwargs.setdefault("default_entrypoint", "first")
    partition_key = kwargs.pop("partition_key", None)
    builder = cycle(app_id, partition_key).initialize_from(target, **kwargs)
    return h.build(builder.with_state_persister(target))


@action(reads=["count", "history", "pairs"], writes=["count", "history", "pairs", "last"])
def grow(state: State) -> State:
    """Every kind of change an action can make: increment, append, extend and set."""
    n = state["count"]
    return (
        state.increment(count=1)
        .append(history={"i": n, "text": f"message number {n}"})
        .extend(pairs=[n, -n])
        .update(last=(n, str(n)))
    )


def run_growing(h: Harness, app_id: str, steps: int, **ids: Any) -> list[dict[str, Any]]:
    """Run ``grow`` ``steps`` times; the state after each step (index = sequence id)."""
    app = h.build(
        ApplicationBuilder()
        .with_actions(grow)
        .with_transitions(("grow", "grow"))
        .with_state(count=0, history=[], pairs=[], last=None)
        .with_entrypoint("grow")
        .with_identifiers(app_id=app_id, **ids)
        .with_state_persister(h.persister)
    )
    states = []
    for _ in range(steps):
        h.step(app)
        states.append(copy.deepcopy(app.state.get_all()))
    return states


def kinds(h: Harness, app_id: str, partition_key: str | None = None) -> dict[int, str]:
    return {r.sequence_id: r.kind for r in h.records(partition_key, app_id)}


def stored_ids(h: Harness, app_id: str, partition_key: str | None = None) -> list[int]:
    return [r.sequence_id for r in h.records(partition_key, app_id)]


# -- saving and loading --------------------------------------------------------------------------


def test_every_serde_type_round_trips(persister: Harness) -> None:
    values = {**SAMPLES, "nan": math.nan}
    persister.save(None, "types", 0, "act", State(values))
    loaded = persister.load(None, "types")
    assert loaded is not None
    got = loaded.state.get_all()
    assert got.keys() == values.keys()
    for key, value in values.items():
        assert same(value, got[key]), key


def test_loaded_record_carries_its_metadata_and_reads_as_a_mapping(persister: Harness) -> None:
    before = dt.datetime.now(dt.UTC)
    persister.save("user-1", "meta", 0, "act", State({"x": 1}), "completed")
    loaded = persister.load("user-1", "meta")
    assert isinstance(loaded, PersistedStateData)
    assert (loaded.partition_key, loaded.app_id, loaded.sequence_id) == ("user-1", "meta", 0)
    assert (loaded.position, loaded.status, loaded.parent) == ("act", "completed", None)
    assert loaded.created_at.tzinfo is not None
    assert before - dt.timedelta(seconds=5) <= loaded.created_at <= before + dt.timedelta(minutes=1)
    assert loaded["state"] == State({"x": 1})
    assert dict(loaded)["sequence_id"] == 0


def test_the_state_schema_version_round_trips_with_snapshots_deltas_and_prune(
    persister: Harness,
) -> None:
    persister.save(None, "v", 0, "act", State({"x": 1}), schema_version=3)
    after = State({"x": 2})
    changes = [Change("set", "x", 2)]
    persister.save(None, "v", 1, "act", after, changes=changes, previous_sequence_id=0,
                   schema_version=3)  # fmt: skip
    persister.save(None, "old", 0, "act", State({"x": 1}))
    assert [r.kind for r in persister.records(None, "v")] == ["snapshot", "delta"]
    for seq in (0, 1):
        loaded = persister.load(None, "v", seq)
        assert loaded is not None
        assert loaded.schema_version == 3
    persister.prune(keep_last=1)
    loaded = persister.load(None, "v")
    assert loaded is not None
    assert (loaded.schema_version, loaded.state["x"]) == (3, 2)
    old = persister.load(None, "old")
    assert old is not None
    assert old.schema_version == 1


def test_load_without_sequence_id_gives_the_latest(persister: Harness) -> None:
    for i in range(3):
        persister.save(None, "latest", i, "act", State({"i": i}))
    loaded = persister.load(None, "latest")
    assert loaded is not None
    assert (loaded.sequence_id, loaded.state["i"]) == (2, 2)


def test_a_sequence_id_that_was_never_saved_loads_none(persister: Harness) -> None:
    persister.save(None, "gaps", 0, "act", State({"i": 0}))
    assert persister.load(None, "gaps", 1) is None
    assert persister.load(None, "gaps", 99) is None
    assert persister.load(None, "nobody") is None
    assert persister.load("user-1", "gaps") is None


def test_every_sequence_id_of_a_30_step_run_rebuilds_exactly(persister: Harness) -> None:
    expected = run_growing(persister, "grown", 30)
    stored = kinds(persister, "grown")
    assert sorted(stored) == list(range(30))
    assert {i for i, kind in stored.items() if kind == "snapshot"} == {0, 7, 14, 21, 28}
    for sequence_id, state in enumerate(expected):
        loaded = persister.load(None, "grown", sequence_id)
        assert loaded is not None
        assert loaded.sequence_id == sequence_id
        assert loaded.state.get_all() == state, sequence_id
        assert type(loaded.state["last"]) is tuple


def test_deltas_with_delete_and_every_other_change_rebuild_exactly(persister: Harness) -> None:
    state = State({"count": 0, "items": [], "tmp": "x"})
    persister.save(None, "ops", 0, "op", state)
    expected = {0: state.get_all()}
    for i in range(1, 20):
        changes = [Change("append", "items", i), Change("increment", "count", i)]
        changes.append(Change("extend", "items", (-i, f"{i}")))
        if "tmp" in state:
            changes.append(Change("delete", "tmp", None))
        else:
            changes.append(Change("set", "tmp", {"made at": i}))
        state = apply_changes(state, changes)
        persister.save(None, "ops", i, "op", state, changes=changes, previous_sequence_id=i - 1)
        expected[i] = copy.deepcopy(state.get_all())
    assert "delta" in kinds(persister, "ops").values()
    for sequence_id, values in expected.items():
        loaded = persister.load(None, "ops", sequence_id)
        assert loaded is not None
        assert loaded.state.get_all() == values, sequence_id


def test_delta_records_do_not_grow_with_the_history(persister: Harness) -> None:
    run_growing(persister, "sizes", 30)
    records = persister.records(None, "sizes")
    deltas = {r.sequence_id: len(r.payload.encode()) for r in records if r.kind == "delta"}
    snapshots = {r.sequence_id: len(r.payload.encode()) for r in records if r.kind == "snapshot"}
    early = [size for i, size in deltas.items() if i < 7]
    late = [size for i, size in deltas.items() if i > 21]
    assert early
    assert late
    # Only the step number's digits differ between steps: a few bytes, never the history.
    assert max(late) <= max(early) + 12
    assert max(deltas.values()) * 5 < snapshots[28]
    assert snapshots[28] > snapshots[7] > snapshots[0]


# -- listing, partitions, deletion ---------------------------------------------------------------


def test_list_app_ids_gives_the_most_recently_created_first_per_partition(
    persister: Harness,
) -> None:
    for partition_key, app_id in [
        (None, "a1"),
        ("user-1", "b1"),
        (None, "a2"),
        ("user-1", "b2"),
        (None, "a3"),
    ]:
        persister.save(partition_key, app_id, 0, "act", State({"app": app_id}))
    persister.save(None, "a1", 1, "act", State({"app": "a1"}))  # a later step: still the oldest
    assert persister.list_app_ids(None) == ["a3", "a2", "a1"]
    assert persister.list_app_ids("user-1") == ["b2", "b1"]
    assert persister.list_app_ids("user-2") == []


def test_partition_keys_isolate_apps_with_the_same_id(persister: Harness) -> None:
    persister.save(None, "same", 0, "act", State({"who": "nobody"}))
    persister.save("user-1", "same", 0, "act", State({"who": "user-1"}))
    persister.save("user-1", "same", 1, "act", State({"who": "user-1 again"}))
    none_record = persister.load(None, "same")
    user_record = persister.load("user-1", "same")
    assert none_record is not None
    assert user_record is not None
    assert (none_record.sequence_id, none_record.state["who"]) == (0, "nobody")
    assert (user_record.sequence_id, user_record.state["who"]) == (1, "user-1 again")
    assert (none_record.partition_key, user_record.partition_key) == (None, "user-1")
    assert persister.list_app_ids(None) == ["same"]
    assert persister.list_app_ids("user-1") == ["same"]


def test_no_partition_key_and_the_empty_one_are_the_same_app_each_read_back_as_asked(
    persister: Harness,
) -> None:
    persister.save(None, "no_pk", 0, "act", State({"n": 1}))
    as_none, as_empty = persister.load(None, "no_pk"), persister.load("", "no_pk")
    assert as_none is not None
    assert as_empty is not None
    assert (as_none.partition_key, as_empty.partition_key) == (None, "")
    assert as_none.state["n"] == as_empty.state["n"] == 1
    assert persister.list_app_ids(None) == persister.list_app_ids("") == ["no_pk"]


@pytest.mark.parametrize(
    ("one", "other"),
    [
        (("a:b", "c"), ("a", "b:c")),
        (("a", "b|c"), ("a|b", "c")),
        (("user/1", "x*"), ("user", "1/x*")),
        (("pk", "{id}"), ("pk{", "id}")),
    ],
    ids=["colon", "pipe", "slash-star", "braces"],
)
def test_separator_characters_in_keys_never_collide(
    persister: Harness, one: tuple[str, str], other: tuple[str, str]
) -> None:
    persister.save(*one, 0, "act", State({"owner": "one"}))
    persister.save(*other, 0, "act", State({"owner": "other"}))
    persister.save(*other, 1, "act", State({"owner": "other"}))
    first_record, second_record = persister.load(*one), persister.load(*other)
    assert first_record is not None
    assert second_record is not None
    assert (first_record.sequence_id, first_record.state["owner"]) == (0, "one")
    assert (second_record.sequence_id, second_record.state["owner"]) == (1, "other")
    assert persister.list_app_ids(one[0]) == [one[1]]
    assert persister.list_app_ids(other[0]) == [other[1]]
    assert persister.delete(other[1], other[0]) == 2
    assert persister.load(*one) is not None


def test_delete_with_a_partition_removes_only_that_partition(persister: Harness) -> None:
    for i in range(3):
        persister.save(None, "x", i, "act", State({"i": i}))
    for i in range(2):
        persister.save("user-1", "x", i, "act", State({"i": i}))
    assert persister.delete("x", partition_key="user-1") == 2
    assert persister.load("user-1", "x") is None
    assert persister.list_app_ids("user-1") == []
    kept = persister.load(None, "x")
    assert kept is not None
    assert kept.sequence_id == 2


def test_delete_without_a_partition_removes_the_app_everywhere(persister: Harness) -> None:
    for i in range(3):
        persister.save(None, "x", i, "act", State({"i": i}))
    persister.save("user-1", "x", 0, "act", State({"i": 0}))
    persister.save(None, "y", 0, "act", State({"i": 0}))
    assert persister.delete("x") == 4
    assert persister.load(None, "x") is None
    assert persister.load("user-1", "x") is None
    assert persister.list_app_ids(None) == ["y"]
    assert persister.delete("never-saved") == 0
    persister.save(None, "x", 0, "act", State({"i": "again"}))  # the id can start over
    again = persister.load(None, "x")
    assert again is not None
    assert again.state["i"] == "again"


# -- retention -----------------------------------------------------------------------------------


def test_prune_keep_last_keeps_the_last_records_and_every_kept_one_loads(
    persister: Harness,
) -> None:
    expected = run_growing(persister, "long", 30)
    run_growing(persister, "other", 12)
    assert persister.prune(keep_last=10, app_id="long") == 20
    assert stored_ids(persister, "long") == list(range(20, 30))
    assert kinds(persister, "long")[20] == "snapshot"  # was a delta: rewritten
    for sequence_id in range(20, 30):
        loaded = persister.load(None, "long", sequence_id)
        assert loaded is not None
        assert loaded.state.get_all() == expected[sequence_id]
    assert persister.load(None, "long", 19) is None
    assert stored_ids(persister, "other") == list(range(12))  # another app: untouched
    assert persister.prune(keep_last=5) == 7 + 5  # both apps
    assert stored_ids(persister, "other") == list(range(7, 12))
    assert stored_ids(persister, "long") == list(range(25, 30))


def test_prune_keep_last_limited_to_a_partition(persister: Harness) -> None:
    for partition_key in (None, "user-1"):
        for i in range(4):
            persister.save(partition_key, "p", i, "act", State({"i": i}))
    assert persister.prune(keep_last=1, partition_key="user-1") == 3
    assert stored_ids(persister, "p", "user-1") == [3]
    assert stored_ids(persister, "p") == [0, 1, 2, 3]


def test_prune_older_than_keeps_each_apps_latest_record(persister: Harness) -> None:
    expected = run_growing(persister, "a", 10)
    run_growing(persister, "b", 3)
    cutoff = dt.datetime.now(dt.UTC)
    assert persister.prune(older_than=dt.timedelta(days=1)) == 0
    assert persister.prune(older_than=cutoff) == 9 + 2
    assert stored_ids(persister, "a") == [9]
    assert stored_ids(persister, "b") == [2]
    loaded = persister.load(None, "a")
    assert loaded is not None
    assert loaded.state.get_all() == expected[9]


def test_prune_older_than_a_time_between_steps(persister: Harness) -> None:
    for i in range(5):
        persister.save(None, "t", i, "act", State({"i": i}))
    cutoff = dt.datetime.now(dt.UTC)
    for i in range(5, 10):
        persister.save(None, "t", i, "act", State({"i": i}))
    persister.prune(older_than=cutoff)
    kept = stored_ids(persister, "t")
    assert kept[-5:] == [5, 6, 7, 8, 9]
    assert not {0, 1, 2, 3} & set(kept)
    for sequence_id in kept:
        loaded = persister.load(None, "t", sequence_id)
        assert loaded is not None
        assert loaded.state["i"] == sequence_id


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"keep_last": 2, "older_than": dt.timedelta(0)}, {"keep_last": 0}],
    ids=["neither", "both", "keep-none"],
)
def test_prune_refuses_ambiguous_arguments(persister: Harness, kwargs: dict[str, Any]) -> None:
    persister.save(None, "safe", 0, "act", State({"i": 0}))
    with pytest.raises(ValueError, match="prune"):
        persister.prune(**kwargs)
    assert persister.load(None, "safe") is not None


# -- concurrency ---------------------------------------------------------------------------------


def test_saving_a_sequence_id_twice_raises_concurrency_error(persister: Harness) -> None:
    persister.save("user-1", "dup", 0, "act", State({"v": "first"}))
    persister.save("user-1", "dup", 1, "act", State({"v": "second"}))
    with pytest.raises(ConcurrencyError) as info:
        persister.save("user-1", "dup", 1, "act", State({"v": "intruder"}))
    assert (info.value.app_id, info.value.sequence_id) == ("dup", 1)
    assert "dup" in str(info.value)
    with pytest.raises(ConcurrencyError):
        persister.save("user-1", "dup", 0, "act", State({"v": "older"}))
    loaded = persister.load("user-1", "dup")
    assert loaded is not None
    assert loaded.state["v"] == "second"
    earlier = persister.load("user-1", "dup", 0)
    assert earlier is not None
    assert earlier.state["v"] == "first"


def test_a_delta_that_does_not_follow_the_latest_record_is_refused(persister: Harness) -> None:
    state = State({"n": 0})
    persister.save(None, "chain", 0, "act", state)
    persister.save(None, "chain", 1, "act", state.update(n=1))
    changes = [Change("set", "n", 99)]
    with pytest.raises(ConcurrencyError):
        persister.save(
            None, "chain", 3, "act", State({"n": 99}), changes=changes, previous_sequence_id=2
        )
    assert stored_ids(persister, "chain") == [0, 1]


def test_second_application_on_the_same_app_id_gets_concurrency_error(persister: Harness) -> None:
    app = new_cycle(persister, "shared")
    persister.step(app)
    other = persister.open()
    one, two = resumed(persister, "shared"), resumed(persister, "shared", other)
    persister.step(one)
    with pytest.raises(ConcurrencyError) as info:
        persister.step(two)
    assert info.value.sequence_id == 1
    loaded = persister.load(None, "shared")
    assert loaded is not None
    assert (loaded.sequence_id, loaded.state["trail"]) == (1, ["first", "second"])
    assert stored_ids(persister, "shared") == [0, 1]


def test_racing_applications_on_one_app_id_exactly_one_wins(persister: Harness) -> None:
    persister.step(new_cycle(persister, "race"))
    others = [persister.open() for _ in range(2)]
    for round_number in range(1, 6):
        apps = [resumed(persister, "race", p) for p in others]
        outcomes = persister.race(*apps)
        assert sum(o is None for o in outcomes) == 1, outcomes
        assert sum(isinstance(o, ConcurrencyError) for o in outcomes) == 1, outcomes
        assert stored_ids(persister, "race") == list(range(round_number + 1))
    loaded = persister.load(None, "race")
    assert loaded is not None
    assert len(loaded.state["trail"]) == 6


# -- resuming and forking ------------------------------------------------------------------------


def test_resume_after_a_completed_step_follows_its_transition(persister: Harness) -> None:
    app = new_cycle(persister, "resume")
    persister.step(app)
    persister.step(app)
    again = resumed(persister, "resume")
    assert again.sequence_id == 1
    ran, _result, state = persister.step(again)
    assert ran.name == "third"
    assert state["trail"] == ["first", "second", "third"]
    assert kinds(persister, "resume") == {0: "snapshot", 1: "delta", 2: "delta"}


class RaisesOnce:
    """An action that fails the first time it runs."""

    def __init__(self) -> None:
        self.calls = 0

    def action(self) -> Any:
        @action(reads=["trail"], writes=["trail"])
        def flaky(state: State) -> State:
            self.calls += 1
            if self.calls == 1:
                raise RuntimeError("flaky failed once")
            return state.append(trail="flaky")

        return flaky


def test_resume_after_a_failed_step_runs_the_failed_action_again(persister: Harness) -> None:
    flaky = RaisesOnce().action()

    def builder() -> ApplicationBuilder:
        return (
            ApplicationBuilder()
            .with_actions(first, flaky, third)
            .with_transitions(("first", "flaky"), ("flaky", "third"), ("third", "first"))
            .with_identifiers(app_id="failing")
        )

    app = persister.build(
        builder()
        .with_state(trail=[])
        .with_entrypoint("first")
        .with_state_persister(persister.persister)
    )
    persister.step(app)
    with pytest.raises(RuntimeError, match="flaky failed once"):
        persister.step(app)
    failed = persister.load(None, "failing")
    assert failed is not None
    assert (failed.sequence_id, failed.status, failed.position) == (1, "failed", "flaky")
    assert failed.state["trail"] == ["first"]
    again = persister.build(
        builder()
        .initialize_from(
            persister.persister, default_state={"trail": []}, default_entrypoint="first"
        )
        .with_state_persister(persister.persister)
    )
    assert persister.step(again)[0].name == "flaky"
    assert persister.step(again)[0].name == "third"
    loaded = persister.load(None, "failing")
    assert loaded is not None
    assert (loaded.sequence_id, loaded.status) == (3, "completed")
    assert loaded.state["trail"] == ["first", "flaky", "third"]


def test_resume_at_next_action_false_starts_at_the_default_entrypoint(persister: Harness) -> None:
    app = new_cycle(persister, "restart")
    persister.step(app)
    persister.step(app)
    again = resumed(persister, "restart", resume_at_next_action=False)
    ran, _result, state = persister.step(again)
    assert ran.name == "first"
    assert state["trail"] == ["first", "second", "first"]


def test_nothing_stored_starts_from_the_defaults(persister: Harness) -> None:
    app = resumed(
        persister, "fresh", default_state={"trail": ["seed"]}, default_entrypoint="second"
    )
    assert app.sequence_id is None
    assert app.state["trail"] == ["seed"]
    ran, _result, _state = persister.step(app)
    assert ran.name == "second"
    loaded = persister.load(None, "fresh")
    assert loaded is not None
    assert (loaded.sequence_id, loaded.state["trail"]) == (0, ["seed", "second"])
    assert kinds(persister, "fresh") == {0: "snapshot"}


def test_fork_starts_from_the_parents_state_and_records_the_parent(persister: Harness) -> None:
    parent = new_cycle(persister, "parent")
    for _ in range(3):
        persister.step(parent)
    fork = resumed(persister, "child", fork_from_app_id="parent", fork_from_sequence_id=1)
    assert fork.state["trail"] == ["first", "second"]
    ran, _result, _state = persister.step(fork)
    assert ran.name == "third"
    persister.step(fork)
    loaded = persister.load(None, "child")
    assert loaded is not None
    assert loaded.parent == ParentPointer(app_id="parent", partition_key=None, sequence_id=1)
    assert loaded.state["trail"] == ["first", "second", "third", "first"]
    assert kinds(persister, "child")[2] == "snapshot"  # a fork never starts with a delta
    assert stored_ids(persister, "parent") == [0, 1, 2]
    assert set(persister.list_app_ids(None)) == {"parent", "child"}


def test_fork_from_another_partition_and_the_latest_record(persister: Harness) -> None:
    parent = new_cycle(persister, "origin", partition_key="user-1")
    persister.step(parent)
    persister.step(parent)
    fork = resumed(
        persister,
        "copy",
        partition_key="user-2",
        fork_from_app_id="origin",
        fork_from_partition_key="user-1",
    )
    assert fork.state["trail"] == ["first", "second"]
    persister.step(fork)
    loaded = persister.load("user-2", "copy")
    assert loaded is not None
    assert loaded.parent == ParentPointer(app_id="origin", partition_key="user-1", sequence_id=1)
    assert persister.list_app_ids("user-2") == ["copy"]


def test_forking_into_the_same_app_id_is_an_error(persister: Harness) -> None:
    persister.step(new_cycle(persister, "self"))
    with pytest.raises(GraphSetupError, match="same app id"):
        resumed(persister, "self", fork_from_app_id="self")
    assert stored_ids(persister, "self") == [0]


def test_override_state_values_apply_and_the_next_save_is_a_snapshot(persister: Harness) -> None:
    app = new_cycle(persister, "edited")
    persister.step(app)
    persister.step(app)
    again = resumed(persister, "edited", override_state_values={"trail": ["edited"]})
    assert again.state["trail"] == ["edited"]
    persister.step(again)
    assert kinds(persister, "edited")[2] == "snapshot"
    for sequence_id, trail in [(1, ["first", "second"]), (2, ["edited", "third"])]:
        loaded = persister.load(None, "edited", sequence_id)
        assert loaded is not None
        assert loaded.state["trail"] == trail


# -- what a step saves ---------------------------------------------------------------------------


def test_a_cancelled_async_step_saves_nothing(persister: Harness) -> None:
    started = asyncio.Event()

    @action(reads=[], writes=[])
    async def hang(state: State) -> State:
        started.set()
        await asyncio.get_running_loop().create_future()  # never resolves
        return state

    app = persister.build(
        ApplicationBuilder()
        .with_actions(first, hang)
        .with_transitions(("first", "hang"))
        .with_state(trail=[])
        .with_entrypoint("first")
        .with_identifiers(app_id="cancelled")
        .with_state_persister(persister.persister)
    )

    async def scenario() -> None:
        await app.astep()
        task = asyncio.ensure_future(app.astep())
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    persister.run(scenario())
    assert stored_ids(persister, "cancelled") == [0]
    loaded = persister.load(None, "cancelled")
    assert loaded is not None
    assert loaded.position == "first"


def test_a_retried_step_saves_once(persister: Harness) -> None:
    attempts: list[int] = []

    @action(reads=["n"], writes=["n"], retry=RetryPolicy(max_attempts=3, initial_delay=0, jitter=0))
    def shaky(state: State) -> State:
        attempts.append(state["n"])
        if len(attempts) < 3:
            raise ConnectionError("try again")
        return state.increment(n=1)

    app = persister.build(
        ApplicationBuilder()
        .with_actions(shaky)
        .with_transitions(("shaky", "shaky"))
        .with_state(n=0)
        .with_entrypoint("shaky")
        .with_identifiers(app_id="retried")
        .with_state_persister(persister.persister)
    )
    persister.step(app)
    assert attempts == [0, 0, 0]
    [record] = persister.records(None, "retried")
    assert (record.sequence_id, record.status) == (0, "completed")
    loaded = persister.load(None, "retried")
    assert loaded is not None
    assert loaded.state["n"] == 1


def test_a_failure_routed_by_on_exception_saves_failed_with_the_error(persister: Harness) -> None:
    @action(reads=[], writes=[])
    def risky(state: State) -> State:
        raise ValueError("bad input 42")

    @action(reads=["error"], writes=["handled"])
    def handler(state: State) -> State:
        return state.update(handled=state["error"]["type"])

    app = persister.build(
        ApplicationBuilder()
        .with_actions(risky, handler)
        .with_transitions(("risky", "handler", on_exception(ValueError)), ("handler", "risky"))
        .with_state(handled=None)
        .with_entrypoint("risky")
        .with_identifiers(app_id="routed")
        .with_state_persister(persister.persister)
    )
    persister.step(app)
    failed = persister.load(None, "routed")
    assert failed is not None
    assert (failed.sequence_id, failed.status, failed.position) == (0, "failed", "risky")
    assert failed.state["error"]["type"] == "ValueError"
    assert "bad input 42" in failed.state["error"]["message"]
    persister.step(app)
    handled = persister.load(None, "routed")
    assert handled is not None
    assert (handled.status, handled.state["handled"]) == ("completed", "ValueError")


def test_a_run_saves_every_step_with_its_position(persister: Harness) -> None:
    app = new_cycle(persister, "positions")
    if persister.is_async:
        persister.run(app.arun(halt_after=["third"]))
    else:
        app.run(halt_after=["third"])
    positions = [r.position for r in persister.records(None, "positions")]
    assert positions == ["first", "second", "third"]


# -- sync and async ------------------------------------------------------------------------------


def test_abuild_saves_to_and_resumes_from_an_async_persister(async_persister: Harness) -> None:
    h = async_persister
    app = new_cycle(h, "async-app")
    h.run(app.arun(halt_after=["second"]))
    again = h.run(
        cycle("async-app")
        .initialize_from(h.persister, default_state={"trail": []}, default_entrypoint="first")
        .with_state_persister(h.persister)
        .abuild()
    )
    action_run, _result, state = h.run(again.astep())
    assert action_run.name == "third"
    loaded = h.load(None, "async-app")
    assert loaded is not None
    assert (loaded.sequence_id, loaded.state["trail"]) == (2, state["trail"])


def test_a_sync_application_refuses_an_async_persister(async_persister: Harness) -> None:
    h = async_persister
    with pytest.raises(AsyncRequiredError, match="abuild"):  # at build, as Burr checks
        cycle("sync-app").with_state(trail=[]).with_entrypoint("first").with_state_persister(
            h.persister
        ).build()
    with pytest.raises(AsyncRequiredError, match="abuild"):
        cycle("sync-app").initialize_from(
            h.persister, default_state={"trail": []}, default_entrypoint="first"
        ).build()
    assert h.load(None, "sync-app") is None


def test_racing_processes_on_one_app_id_exactly_one_wins(process_backend: Harness) -> None:
    h = process_backend
    h.save(None, "procs", 0, "tick", State({"history": [0]}))
    for round_number in range(1, 4):
        spec = h.spec(mode="race", app_id="procs")
        with Child(spec) as one, Child(spec) as two:
            assert (one.line(), two.line()) == ("ready", "ready"), one.stderr + two.stderr
            one.send("go")
            two.send("go")
            outcomes = sorted([one.line(), two.line()], key=str)
            assert outcomes == ["lost", "won"], one.stderr + two.stderr
            assert (one.wait(), two.wait()) == (0, 0)
        assert stored_ids(h, "procs") == list(range(round_number + 1))
    loaded = h.load(None, "procs")
    assert loaded is not None
    assert loaded.state["history"] == [0, 1, 2, 3]
