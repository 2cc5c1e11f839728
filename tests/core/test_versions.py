"""Versioned state (``turnout.core.versions``): declarations checked at build, records of an
older version migrated on load (SQLite, in-memory, the local tracker; sync and async), newer
ones refused, and the first save after a migration a snapshot at the new version."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from tests.core.versioned import (
    SCHEMA,
    add_label,
    rename_count,
    run_v1,
    stored,
    v1_builder,
    v3_builder,
)
from turnout import ApplicationBuilder, State, action
from turnout.core._chain import snapshot_version
from turnout.core.context import ApplicationContext
from turnout.core.errors import ChildApplicationError, GraphSetupError, SchemaVersionError
from turnout.core.memory import AsyncInMemoryPersister, InMemoryPersister
from turnout.core.parallel import MapStates
from turnout.core.persistence import PersistedStateData
from turnout.core.sqlite import AsyncSQLitePersister, SQLitePersister
from turnout.core.tracking import LocalTracker
from turnout.core.versions import StateSchema, check_declaration, migrate_state

# -- declarations --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("version", "migrations", "message"),
    [
        (0, {}, "integer >= 1"),
        (True, {}, "integer >= 1"),
        ("2", {}, "integer >= 1"),
        (3, [rename_count], "must be a mapping"),
        (3, {1: rename_count}, "skip version 2"),
        (4, {1: rename_count, 3: add_label}, "skip version 2"),
        (3, {1: rename_count, 2: add_label, 3: add_label}, "from version 3 cannot exist"),
        (3, {0: rename_count, 1: rename_count, 2: add_label}, "from version 0 cannot exist"),
        (2, {"1": rename_count}, "integers"),
        (2, {1: "rename"}, "migrations[1] must be a function"),
    ],
    ids=[
        "zero", "bool", "str-version", "not-mapping", "gap-at-end", "gap-inside", "key-at-version",
        "key-zero", "str-key", "not-callable",
    ],
)  # fmt: skip
def test_bad_declarations_are_refused_at_build_and_by_state_schema(
    version: Any, migrations: Any, message: str
) -> None:
    assert any(message in p for p in check_declaration(version, migrations))
    with pytest.raises(GraphSetupError, match=re.escape(message)):
        StateSchema(version=version, migrations=migrations)
    builder = v3_builder().with_typing(None, version=version, migrations=migrations)
    with pytest.raises(GraphSetupError, match=re.escape(message)):
        builder.with_state(total=0).with_entrypoint("bump").build()


@pytest.mark.parametrize(
    ("version", "migrations"),
    [(1, {}), (3, {1: rename_count, 2: add_label}), (3, {2: add_label}), (5, {})],
    ids=["v1", "all-steps", "from-v2-only", "no-migrations"],
)
def test_sound_declarations_pass(version: int, migrations: dict[int, Any]) -> None:
    assert check_declaration(version, migrations) == []
    assert StateSchema(version=version, migrations=migrations).version == version


def test_migrations_without_a_version_are_refused() -> None:
    builder = v3_builder().with_typing(migrations={1: rename_count})
    with pytest.raises(GraphSetupError, match="needs version="):
        builder.with_state(total=0).with_entrypoint("bump").build()


def test_a_state_schema_and_separate_version_keywords_are_refused_together() -> None:
    builder = v3_builder().with_typing(SCHEMA, version=3)
    with pytest.raises(GraphSetupError, match="takes its version and migrations"):
        builder.with_state(total=0).with_entrypoint("bump").build()


def test_a_persister_that_cannot_record_versions_is_refused_for_version_above_1() -> None:
    class BurrStyle:
        def load(self, *args: Any, **kwargs: Any) -> None:
            return None

        def save(self, *args: Any, **kwargs: Any) -> None:
            pass

    builder = v3_builder().with_state(total=0).with_entrypoint("bump")
    with pytest.raises(GraphSetupError, match="BurrStyle cannot record the state schema version"):
        builder.with_state_persister(BurrStyle()).build()


# -- migrate_state -------------------------------------------------------------------------------


def test_migrate_state_runs_each_step_in_order() -> None:
    assert migrate_state({"count": 2}, 1, SCHEMA, source="x") == {"total": 2, "label": "total=2"}
    assert migrate_state({"total": 2}, 2, SCHEMA, source="x") == {"total": 2, "label": "total=2"}


@pytest.mark.parametrize(
    ("stored_version", "schema", "message"),
    [
        (4, SCHEMA, "written under state schema version 4, but this code declares version 3"),
        (1, StateSchema(version=3, migrations={2: add_label}), "has migrations from version 2"),
        (1, StateSchema(version=2, migrations={1: lambda s: 1 / 0}), "ZeroDivisionError"),
        (1, StateSchema(version=2, migrations={1: lambda s: [s]}), "returned list"),
    ],
    ids=["newer", "older-than-oldest-migration", "migration-raises", "migration-returns-list"],
)
def test_migrate_state_refuses_what_it_cannot_migrate(
    stored_version: int, schema: StateSchema, message: str
) -> None:
    with pytest.raises(SchemaVersionError, match=message):
        migrate_state({"count": 1}, stored_version, schema, source="app 'a'")


# -- resuming through a persister ----------------------------------------------------------------


def test_v1_app_on_sqlite_resumes_under_v3_code_migrated(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    with SQLitePersister(db) as persister:
        run_v1(persister, 3)
    assert [r.kind for r in stored(SQLitePersister(db))] == ["snapshot", "delta", "delta"]
    with SQLitePersister(db) as persister:
        app = (
            v3_builder()
            .initialize_from(persister, default_entrypoint="bump", default_state={"total": 0})
            .with_state_persister(persister)
            .build()
        )
        assert app.state.get_all() == {"total": 3, "label": "total=3"}
        assert app.sequence_id == 2
        app.step()
        app.step()
        records = stored(persister)
        loaded = persister.load(None, "app")
    # The first save after the migration is a snapshot at version 3; deltas follow it.
    assert [(r.sequence_id, r.kind) for r in records[3:]] == [(3, "snapshot"), (4, "delta")]
    assert snapshot_version(records[3].payload) == 3
    assert snapshot_version(records[0].payload) == 1
    assert loaded is not None
    assert loaded.schema_version == 3
    assert loaded.state.get_all() == {"total": 5, "label": "total=5"}


def test_a_v3_app_resumed_by_v3_code_runs_no_migration_and_saves_deltas() -> None:
    persister = InMemoryPersister()
    calls: list[int] = []

    def counted(state: dict[str, Any]) -> dict[str, Any]:
        calls.append(1)
        return add_label(state)

    app = (
        v3_builder()
        .with_typing(None, version=3, migrations={1: rename_count, 2: counted})
        .with_state(total=0)
        .with_entrypoint("bump")
        .with_state_persister(persister)
        .build()
    )
    app.step()
    resumed = (
        v3_builder()
        .with_typing(None, version=3, migrations={1: rename_count, 2: counted})
        .initialize_from(persister, default_entrypoint="bump")
        .with_state_persister(persister)
        .build()
    )
    resumed.step()
    assert calls == []
    assert [r.kind for r in stored(persister)] == ["snapshot", "delta"]


def test_a_newer_record_is_refused_naming_app_versions_and_fix() -> None:
    persister = InMemoryPersister()
    app = (
        v3_builder()
        .with_state(total=0)
        .with_entrypoint("bump")
        .with_state_persister(persister)
        .build()
    )
    app.step()
    older_code = v1_builder().initialize_from(persister, default_entrypoint="bump")
    with pytest.raises(SchemaVersionError) as caught:
        older_code.build()
    message = str(caught.value)
    assert "app 'app'" in message
    assert "version 3" in message
    assert "version 1" in message
    assert "version=3" in message


def test_override_state_values_apply_after_the_migration() -> None:
    persister = InMemoryPersister()
    run_v1(persister, 2)
    app = (
        v3_builder()
        .initialize_from(
            persister, default_entrypoint="bump", override_state_values={"label": "manual"}
        )
        .build()
    )
    assert app.state.get_all() == {"total": 2, "label": "manual"}


def test_a_fork_of_a_v1_record_is_migrated_into_the_new_app() -> None:
    persister = InMemoryPersister()
    run_v1(persister, 2, app_id="old")
    fork = (
        v3_builder(app_id="new")
        .initialize_from(persister, default_entrypoint="bump", fork_from_app_id="old")
        .with_state_persister(persister)
        .build()
    )
    fork.step()
    loaded = persister.load(None, "new")
    assert loaded is not None
    assert loaded.schema_version == 3
    assert loaded.state.get_all() == {"total": 3, "label": "total=3"}


def test_a_state_holding_the_version_key_itself_round_trips_at_version_1() -> None:
    persister = InMemoryPersister()
    persister.save(None, "a", 0, "x", State({"__turnout_schema__": 7, "state": 1}), "completed")
    loaded = persister.load(None, "a")
    assert loaded is not None
    assert loaded.schema_version == 1
    assert loaded.state.get_all() == {"__turnout_schema__": 7, "state": 1}


def test_prune_keeps_the_version_of_the_snapshot_it_rewrites() -> None:
    persister = InMemoryPersister()
    app = (
        v3_builder()
        .with_state(total=0)
        .with_entrypoint("bump")
        .with_state_persister(persister)
        .build()
    )
    for _ in range(4):
        app.step()
    persister.prune(keep_last=2)
    records = stored(persister)
    assert records[0].kind == "snapshot"
    assert snapshot_version(records[0].payload) == 3
    loaded = persister.load(None, "app", 2)
    assert loaded is not None
    assert loaded.schema_version == 3


def test_records_written_before_versions_existed_load_as_version_1() -> None:
    persister = InMemoryPersister()
    persister.save(None, "a", 0, "bump", State({"count": 4}), "completed")
    record = stored(persister, "a")[0]
    assert json.loads(record.payload) == {"count": 4}  # the plain, unversioned layout
    loaded = persister.load(None, "a")
    assert isinstance(loaded, PersistedStateData)
    assert loaded.schema_version == 1


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_async_persister_resume_migrates_and_snapshots(tmp_path: Path, kind: str) -> None:
    async def scenario() -> tuple[dict[str, Any], list[str], int]:
        persister: Any = (
            AsyncInMemoryPersister()
            if kind == "memory"
            else await AsyncSQLitePersister.from_values(str(tmp_path / "a.db"))
        )
        old = await (
            v1_builder()
            .with_state(count=0)
            .with_entrypoint("bump")
            .with_state_persister(persister)
            .abuild()
        )
        await old.astep()
        await old.astep()
        app = await (
            v3_builder()
            .initialize_from(persister, default_entrypoint="bump")
            .with_state_persister(persister)
            .abuild()
        )
        state = app.state.get_all()
        await app.astep()
        records = await persister.core.store.records("", "app")
        loaded = await persister.load(None, "app")
        await persister.close()
        return state, [r.kind for r in records], loaded.schema_version

    state, kinds, version = asyncio.run(scenario())
    assert state == {"total": 2, "label": "total=2"}
    assert kinds == ["snapshot", "delta", "snapshot"]
    assert version == 3


# -- the local tracker ---------------------------------------------------------------------------


def test_tracker_resume_of_a_v1_log_is_migrated_and_the_new_run_is_versioned(
    tmp_path: Path,
) -> None:
    tracker = LocalTracker("p", storage_dir=tmp_path)
    old = v1_builder().with_state(count=0).with_entrypoint("bump").with_tracker(tracker).build()
    old.step()
    old.step()
    app = (
        v3_builder()
        .initialize_from(tracker, default_entrypoint="bump")
        .with_tracker(tracker)
        .build()
    )
    assert app.state.get_all() == {"total": 2, "label": "total=2"}
    app.step()
    lines = [json.loads(line) for line in tracker.log_path("app").read_text().splitlines()]
    app_lines = [line for line in lines if line["t"] == "app"]
    assert "schema_version" not in app_lines[0]
    assert app_lines[1]["schema_version"] == 3
    loaded = tracker.load(None, "app")
    assert loaded is not None
    assert loaded.schema_version == 3
    assert loaded.state.get_all() == {"total": 3, "label": "total=3"}
    # Loading a step of the version 1 run still reports version 1.
    first = tracker.load(None, "app", 0)
    assert first is not None
    assert first.schema_version == 1
    assert first.state["count"] == 1


def test_tracker_refuses_a_newer_tracked_state(tmp_path: Path) -> None:
    tracker = LocalTracker("p", storage_dir=tmp_path)
    app = v3_builder().with_state(total=0).with_entrypoint("bump").with_tracker(tracker).build()
    app.step()
    with pytest.raises(SchemaVersionError, match="version 3"):
        v1_builder().initialize_from(tracker, default_entrypoint="bump").build()


# -- parallel children ---------------------------------------------------------------------------

_BROKEN: set[int] = set()


def _halver(version: int) -> Any:
    """The child action ``halve``: version 1 writes ``value``, version 2 ``result``."""
    key = "value" if version == 1 else "result"

    @action(reads=["item"], writes=[key])
    def halve(state: State) -> State:
        if state["item"] in _BROKEN:
            raise RuntimeError(f"item {state['item']} failed")
        return state.update(**{key: state["item"] / 2})

    return halve


class _HalveAll(MapStates):
    """Halves each item in its own child; version 1 children write ``value``, version 2
    children ``result`` (the migration renames one to the other)."""

    def __init__(self, version: int) -> None:
        super().__init__()
        self._version = version

    @property
    def reads(self) -> list[str]:
        return ["items"]

    @property
    def writes(self) -> list[str]:
        return ["halves"]

    def action(self, state: State, inputs: dict[str, Any]) -> Any:
        return _halver(self._version)

    def states(
        self, state: State, context: ApplicationContext, inputs: dict[str, Any]
    ) -> Iterable[State]:
        for item in state["items"]:
            yield State({"item": item})

    def reduce(self, state: State, states: Iterable[State]) -> State:
        key = "value" if self._version == 1 else "result"
        return state.update(halves=[s[key] for s in states])


def _rename_value(state: dict[str, Any]) -> dict[str, Any]:
    if "value" in state:
        state["result"] = state.pop("value")
    return state


def _halving_app(db: Path, version: int) -> tuple[ApplicationBuilder, SQLitePersister]:
    persister = SQLitePersister(db)
    builder = (
        ApplicationBuilder()
        .with_actions(fan=_HalveAll(version))
        .with_transitions(("fan", "fan"))
        .with_identifiers(app_id="parent", partition_key="pk")
        .with_state_persister(persister)
        .initialize_from(persister, default_state={"items": [2, 4, 6]}, default_entrypoint="fan")
        .with_typing(None, version=version, migrations={1: _rename_value} if version > 1 else {})
    )
    return builder, persister


def test_finished_children_of_an_older_version_are_migrated_when_the_parent_resumes(
    tmp_path: Path,
) -> None:
    db = tmp_path / "db.sqlite"
    _BROKEN.add(6)
    try:
        builder, persister = _halving_app(db, 1)
        with pytest.raises(ChildApplicationError):
            builder.build().step()
        persister.close()
    finally:
        _BROKEN.clear()
    builder, persister = _halving_app(db, 2)
    resumed = builder.build()
    _, _, state = resumed.step()  # type: ignore[misc]
    persister.close()
    assert state["halves"] == [1.0, 2.0, 3.0]
    fresh = SQLitePersister(db)
    first = ApplicationContext(
        app_id="parent", partition_key="pk", sequence_id=0, action_name="fan"
    )
    children = [fresh.load("pk", _HalveAll(2).child_app_id(first, i)) for i in range(3)]
    fresh.close()
    # The children the version 2 parent ran saved under its version; the one finished under
    # version 1 kept its record.
    assert [child.schema_version for child in children] == [1, 1, 2]  # type: ignore[union-attr]
