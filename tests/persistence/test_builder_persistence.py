"""The builder's persistence options, checked with the in-memory persister (backend-independent
rules): argument checks of ``with_state_persister`` and ``initialize_from``, loaders other than
turnout's (Burr's dict records), resuming into another persister, the fork's parent pointer in
``post_application_create``, and the build-time serde check."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import pytest

from turnout import ApplicationBuilder, State, action
from turnout.core.errors import ConcurrencyError, GraphSetupError, PersistenceError, SerdeError
from turnout.core.memory import InMemoryPersister
from turnout.core.persistence import ParentPointer, Status, StepRecord
from turnout.core.serde import Serde


@action(reads=["n"], writes=["n"])
def count(state: State) -> State:
    return state.increment(n=1)


@action(reads=["n"], writes=["n"])
def double(state: State) -> State:
    return state.update(n=state["n"] * 2)


def builder(app_id: str | None = "app") -> ApplicationBuilder:
    built = (
        ApplicationBuilder()
        .with_actions(count, double)
        .with_transitions(("count", "double"), ("double", "count"))
    )
    return built.with_identifiers(app_id=app_id) if app_id else built


def records(persister: InMemoryPersister, app_id: str) -> list[StepRecord]:
    found: list[StepRecord] = asyncio.run(persister.core.store.records("", app_id))
    return found


def started(persister: InMemoryPersister, steps: int, app_id: str = "app") -> None:
    app = (
        builder(app_id)
        .with_state(n=1)
        .with_entrypoint("count")
        .with_state_persister(persister)
        .build()
    )
    for _ in range(steps):
        app.step()


@pytest.mark.parametrize(
    ("configure", "message"),
    [
        (lambda b: b.with_state_persister(object()), "takes a persister"),
        (lambda b: b.with_state_persister(InMemoryPersister(), on_every="run"), "only 'step'"),
        (
            lambda b: b.initialize_from(object(), default_entrypoint="count"),
            "takes a loader",
        ),
        (lambda b: b.initialize_from(InMemoryPersister()), "needs default_entrypoint"),
        (
            lambda b: b.initialize_from(InMemoryPersister(), default_entrypoint="count").with_state(
                n=1
            ),
            "remove with_state",
        ),
    ],
    ids=["not-a-persister", "on-every", "not-a-loader", "no-default-entrypoint", "with-state"],
)
def test_wrong_persistence_options_fail_the_build(configure: Any, message: str) -> None:
    with pytest.raises(GraphSetupError, match=message):
        configure(builder()).build()


def test_initialize_from_without_an_app_id_starts_a_new_app_from_the_defaults() -> None:
    persister = InMemoryPersister()
    app = (
        builder(app_id=None)
        .initialize_from(persister, default_state={"n": 5}, default_entrypoint="count")
        .with_state_persister(persister)
        .build()
    )
    app.step()
    assert persister.list_app_ids(None) == [app.uid]
    loaded = persister.load(None, app.uid)
    assert loaded is not None
    assert loaded.state["n"] == 6


def test_a_hook_object_passed_to_with_state_persister_is_added_as_a_hook() -> None:
    seen: list[int] = []

    class Saver:
        def post_run_step(self, *, sequence_id: int, **future_kwargs: Any) -> None:
            seen.append(sequence_id)

    app = builder().with_state(n=1).with_entrypoint("count").with_state_persister(Saver()).build()
    app.step()
    app.step()
    assert seen == [0, 1]


def test_a_loader_returning_burr_dict_records_resumes() -> None:
    class BurrLoader:
        def load(
            self,
            partition_key: str | None,
            app_id: str,
            sequence_id: int | None = None,
            **kwargs: Any,
        ) -> dict[str, Any] | None:
            return {
                "partition_key": partition_key,
                "app_id": app_id,
                "sequence_id": 4,
                "position": "count",
                "state": State({"n": 10}),
                "created_at": dt.datetime.now(dt.UTC).isoformat(),
                "status": "completed",
            }

        def list_app_ids(self, partition_key: str | None, **kwargs: Any) -> list[str]:
            return ["app"]

    persister = InMemoryPersister()
    app = (
        builder()
        .initialize_from(BurrLoader(), default_state={"n": 0}, default_entrypoint="count")
        .with_state_persister(persister)
        .build()
    )
    assert app.sequence_id == 4
    outcome = app.step()
    assert outcome is not None
    ran, _result, state = outcome
    assert (ran.name, state["n"]) == ("double", 20)
    [record] = records(persister, "app")
    assert (record.sequence_id, record.kind) == (5, "snapshot")


def test_resuming_from_one_persister_into_another_saves_a_full_snapshot_first() -> None:
    source, target = InMemoryPersister(), InMemoryPersister()
    started(source, 3)
    app = (
        builder()
        .initialize_from(source, default_state={"n": 0}, default_entrypoint="count")
        .with_state_persister(target)
        .build()
    )
    app.step()
    app.step()
    assert [(r.sequence_id, r.kind) for r in records(target, "app")] == [
        (3, "snapshot"),
        (4, "delta"),
    ]
    loaded = [target.load(None, "app", i) for i in (3, 4)]
    assert [r.state["n"] for r in loaded if r is not None] == [10, 11]
    assert source.load(None, "app") == source.load(None, "app", 2)


def test_resuming_an_older_sequence_id_cannot_overwrite_later_records() -> None:
    persister = InMemoryPersister()
    started(persister, 3)
    app = (
        builder()
        .with_identifiers(sequence_id=0)
        .initialize_from(persister, default_state={"n": 0}, default_entrypoint="count")
        .with_state_persister(persister)
        .build()
    )
    assert (app.sequence_id, app.state["n"]) == (0, 2)
    with pytest.raises(ConcurrencyError):
        app.step()
    latest = persister.load(None, "app")
    assert latest is not None
    assert (latest.sequence_id, latest.state["n"]) == (2, 5)


def test_post_application_create_receives_the_forks_parent_pointer() -> None:
    seen: list[Any] = []

    class Watcher:
        def post_application_create(self, *, parent_pointer: Any, **future_kwargs: Any) -> None:
            seen.append(parent_pointer)

    persister = InMemoryPersister()
    started(persister, 2, app_id="parent")
    (
        builder("child")
        .initialize_from(persister, default_entrypoint="count", fork_from_app_id="parent")
        .with_state_persister(persister)
        .with_hooks(Watcher())
        .build()
    )
    assert seen == [ParentPointer(app_id="parent", partition_key=None, sequence_id=1)]


def test_the_build_checks_the_initial_state_with_the_persisters_own_serde() -> None:
    class Opaque:
        pass

    default = builder().with_state(n=1, thing=Opaque()).with_entrypoint("count")
    with pytest.raises(SerdeError, match=r"\$\.thing"):
        default.with_state_persister(InMemoryPersister()).build()
    serde = Serde()
    serde.register(Opaque, encode=lambda _o: None, decode=lambda _d: Opaque())
    custom = builder().with_state(n=1, thing=Opaque()).with_entrypoint("count")
    app = custom.with_state_persister(InMemoryPersister(serde=serde)).build()
    app.step()


@action(reads=[], writes=["done"])
def flaky_work(state: State) -> State:
    raise ValueError("the upstream service refused")


@action(reads=["error"], writes=["done"])
def handle(state: State) -> State:
    return state.update(done=f"handled {state['error']['type']}")


def routed(persister: InMemoryPersister) -> Any:
    from turnout import on_exception

    return (
        ApplicationBuilder()
        .with_actions(work=flaky_work, handle=handle)
        .with_transitions(("work", "handle", on_exception(ValueError)), ("handle", "work"))
        .with_identifiers(app_id="routed")
        .with_state_persister(persister)
        .initialize_from(persister, default_state={}, default_entrypoint="work")
        .build()
    )


def test_resuming_after_a_routed_failure_follows_the_route() -> None:
    persister = InMemoryPersister()
    first = routed(persister)
    first.step()
    assert persister.load(None, "routed").status == "failed"
    resumed = routed(persister)
    assert resumed.get_next_action().name == "handle"
    _, _, state = resumed.step()
    assert state["done"] == "handled ValueError"


def test_resuming_after_an_unrouted_failure_runs_the_failed_action_again() -> None:
    persister = InMemoryPersister()
    app = (
        ApplicationBuilder()
        .with_actions(work=flaky_work)
        .with_transitions(("work", "work"))
        .with_identifiers(app_id="plain")
        .with_state_persister(persister)
        .initialize_from(persister, default_state={}, default_entrypoint="work")
        .build()
    )
    with pytest.raises(ValueError, match="refused"):
        app.step()
    again = (
        ApplicationBuilder()
        .with_actions(work=flaky_work)
        .with_transitions(("work", "work"))
        .with_identifiers(app_id="plain")
        .with_state_persister(persister)
        .initialize_from(persister, default_state={}, default_entrypoint="work")
        .build()
    )
    assert persister.load(None, "plain").status == "failed"
    assert again.get_next_action().name == "work"


def test_a_locked_sqlite_database_gives_a_persistence_error_naming_the_file(tmp_path: Any) -> None:
    import sqlite3

    from turnout.core.errors import PersistenceError
    from turnout.core.sqlite import SQLitePersister

    path = tmp_path / "locked.db"
    with SQLitePersister(path, timeout=0.05) as persister:
        app = builder().with_state(n=1).with_entrypoint("count").with_state_persister(persister)
        built = app.build()
        built.step()
        other = sqlite3.connect(path, isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")
            with pytest.raises(PersistenceError, match=r"locked\.db"):
                built.step()
        finally:
            other.execute("ROLLBACK")
            other.close()
        assert persister.load(None, "app").sequence_id == 0  # what was saved is intact


def test_every_persister_is_a_context_manager_that_closes_what_it_opened(tmp_path: Any) -> None:
    from turnout.core.errors import PersistenceError
    from turnout.core.memory import AsyncInMemoryPersister
    from turnout.core.sqlite import AsyncSQLitePersister, SQLitePersister

    with InMemoryPersister() as memory:
        memory.save(None, "a", 0, "x", State({"n": 1}), "completed")
    with SQLitePersister(tmp_path / "s.db") as sqlite:
        sqlite.save(None, "a", 0, "x", State({"n": 1}), "completed")
    with pytest.raises(PersistenceError, match="closed"):
        sqlite.load(None, "a")

    async def main() -> None:
        async with AsyncInMemoryPersister() as amemory:
            await amemory.save(None, "a", 0, "x", State({"n": 1}), "completed")
        async with AsyncSQLitePersister(tmp_path / "a.db") as asqlite:
            await asqlite.save(None, "a", 0, "x", State({"n": 1}), "completed")
        with pytest.raises(PersistenceError, match="closed"):
            await asqlite.load(None, "a")

    asyncio.run(main())


# -- a loaded record that names what this application does not have ------------------------------


class OneRecord:
    """A loader (Burr's dict shape) holding one record with the given position and status."""

    def __init__(self, position: str | None, status: str) -> None:
        self.position, self.status = position, status

    def load(
        self, partition_key: str | None, app_id: str, sequence_id: int | None = None, **kw: Any
    ) -> dict[str, Any]:
        return {
            "partition_key": partition_key,
            "app_id": app_id,
            "sequence_id": 3,
            "position": self.position,
            "state": State({"n": 5}),
            "status": self.status,
        }

    def list_app_ids(self, partition_key: str | None, **kwargs: Any) -> list[str]:
        return ["app"]


@pytest.mark.parametrize("status", ["completed", "failed"])
def test_a_record_resuming_at_an_unknown_action_fails_the_build(status: Status) -> None:
    persister = InMemoryPersister()
    persister.save(None, "app", 0, "renamed_since", State({"n": 1}), status)
    with pytest.raises(GraphSetupError) as info:
        builder().initialize_from(persister, default_entrypoint="count").build()
    message = str(info.value)
    assert "'renamed_since'" in message
    assert "app 'app' (partition None) at sequence id 0" in message
    assert "resume_at_next_action=False" in message
    restarted = (
        builder()
        .initialize_from(persister, default_entrypoint="count", resume_at_next_action=False)
        .build()
    )
    outcome = restarted.step()
    assert outcome is not None
    assert outcome[0].name == "count"


def test_a_record_with_an_unknown_status_fails_the_build() -> None:
    with pytest.raises(PersistenceError) as info:
        builder().initialize_from(OneRecord("count", "paused"), default_entrypoint="count").build()
    message = str(info.value)
    assert "'paused'" in message
    assert "app 'app' (partition None) at sequence id 3" in message
    assert "resume_at_next_action=False" in message


def test_a_burr_record_with_a_known_position_and_status_still_resumes() -> None:
    app = builder().initialize_from(OneRecord("count", "completed"), default_entrypoint="count")
    outcome = app.build().step()
    assert outcome is not None
    assert (outcome[0].name, outcome[2]["n"]) == ("double", 10)
