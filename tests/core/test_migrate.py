"""``turnout migrate`` (``turnout.core.migrate`` and the command): a dry run changes nothing, an
applied run rewrites every old record as a snapshot at the new version, a second run changes
nothing, an interrupted run leaves every record loadable and finishes when run again, apps
already current or outside the filter are untouched, newer records refuse the run."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from tests.core.versioned import SCHEMA, add_label, run_v1, stored, v3_builder
from turnout.cli import main
from turnout.core._chain import snapshot_version
from turnout.core.errors import SchemaVersionError, UnsupportedOperationError
from turnout.core.memory import InMemoryPersister
from turnout.core.migrate import amigrate, migrate
from turnout.core.persistence import StepRecord
from turnout.core.sqlite import AsyncSQLitePersister, SQLitePersister
from turnout.core.versions import StateSchema


def expected(seq: int) -> dict[str, Any]:
    """The version 3 state after step ``seq`` of ``run_v1``."""
    return {"total": seq + 1, "label": f"total={seq + 1}"}


def loads_as_v3(persister: Any, app_id: str, steps: int) -> None:
    """Every step of the app loads, migrated by version 3 code, as the right state."""
    for seq in range(steps):
        app = (
            v3_builder(app_id)
            .with_identifiers(sequence_id=seq)
            .initialize_from(persister, default_entrypoint="bump")
            .build()
        )
        assert app.state.get_all() == expected(seq), seq


def v3_app(persister: Any, app_id: str, steps: int) -> None:
    app = (
        v3_builder(app_id)
        .with_state(total=0)
        .with_entrypoint("bump")
        .with_state_persister(persister)
        .build()
    )
    for _ in range(steps):
        app.step()


@pytest.fixture
def db(tmp_path: Path) -> Path:
    """An SQLite file with a version 1 app of 5 steps (snapshot every 2) and a version 3 one."""
    path = tmp_path / "state.db"
    with SQLitePersister(path, snapshot_every=2) as persister:
        run_v1(persister, 5, app_id="old")
        v3_app(persister, "new", 2)
    return path


def test_dry_run_reports_and_changes_nothing(db: Path) -> None:
    with SQLitePersister(db) as persister:
        before = stored(persister, "old")
        report = migrate(persister, SCHEMA)
        assert stored(persister, "old") == before
    assert not report.applied
    assert [(a.app_id, a.old, a.records, a.versions) for a in report.pending] == [
        ("old", 5, 5, (1,))
    ]
    assert report.pending[0].describe(3) == (
        "app 'old' (partition None): would rewrite 5 of 5 records, version 1 -> 3"
    )
    assert "2 apps, 1 with older records" in report.summary()


def test_apply_rewrites_old_records_as_v3_snapshots_and_leaves_current_apps(db: Path) -> None:
    with SQLitePersister(db) as persister:
        new_before = stored(persister, "new")
        report = migrate(persister, SCHEMA, apply=True)
        records = stored(persister, "old")
        assert stored(persister, "new") == new_before
        assert [r.kind for r in records] == ["snapshot"] * 5
        assert {snapshot_version(r.payload) for r in records} == {3}
        for seq in range(5):
            loaded = persister.load(None, "old", seq)
            assert loaded is not None
            assert loaded.schema_version == 3
            assert loaded.state.get_all() == expected(seq)
    assert report.applied
    assert report.pending[0].rewritten


def test_a_second_run_changes_nothing(db: Path) -> None:
    with SQLitePersister(db) as persister:
        migrate(persister, SCHEMA, apply=True)
        after = stored(persister, "old")
        report = migrate(persister, SCHEMA, apply=True)
        assert stored(persister, "old") == after
    assert report.pending == ()
    assert "nothing to do" in report.summary()


def test_the_migrated_app_resumes_with_deltas_after_its_last_snapshot(db: Path) -> None:
    with SQLitePersister(db) as persister:
        migrate(persister, SCHEMA, apply=True)
        app = (
            v3_builder("old")
            .initialize_from(persister, default_entrypoint="bump")
            .with_state_persister(persister)
            .build()
        )
        app.step()
        assert stored(persister, "old")[-1].kind == "delta"  # same version: no migration
        assert app.state.get_all() == expected(5)


def test_filters_leave_other_apps_untouched(tmp_path: Path) -> None:
    with SQLitePersister(tmp_path / "s.db") as persister:
        run_v1(persister, 2, app_id="a")
        run_v1(persister, 2, app_id="b")
        b_before = stored(persister, "b")
        report = migrate(persister, SCHEMA, apply=True, app_ids=["a"])
        assert stored(persister, "b") == b_before
        assert snapshot_version(stored(persister, "a")[1].payload) == 3
        assert migrate(persister, SCHEMA, partition_key="elsewhere").apps == ()
    assert [a.app_id for a in report.apps] == ["a"]


def test_a_newer_record_refuses_the_whole_run_before_writing(db: Path) -> None:
    older = StateSchema(version=2, migrations={1: lambda s: s})
    with SQLitePersister(db) as persister:
        before = stored(persister, "old")
        with pytest.raises(SchemaVersionError, match=r"app 'new' \(partition None\) has version 3"):
            migrate(persister, older, apply=True)
        assert stored(persister, "old") == before


def test_a_failing_migration_writes_nothing_of_its_app(db: Path) -> None:
    def broken(state: dict[str, Any]) -> dict[str, Any]:
        if state["count"] == 4:
            raise ValueError("cannot")
        return {"total": state["count"]}

    schema = StateSchema(version=3, migrations={1: broken, 2: add_label})
    with SQLitePersister(db) as persister:
        before = stored(persister, "old")
        with pytest.raises(SchemaVersionError, match=r"migrations\[1\].*sequence id 3.*cannot"):
            migrate(persister, schema, apply=True)
        assert stored(persister, "old") == before


def test_an_sql_app_is_rewritten_in_one_transaction(db: Path) -> None:
    with SQLitePersister(db) as persister:
        before = stored(persister, "old")
        connection: Any = persister.core.store.connection
        execute = connection.execute
        updates = 0

        async def failing(sql: str, params: Any = ()) -> Any:
            nonlocal updates
            if sql.startswith("UPDATE"):
                updates += 1
                if updates == 3:
                    raise OSError("disk gone")
            return await execute(sql, params)

        connection.execute = failing
        with pytest.raises(Exception, match="disk gone"):
            migrate(persister, SCHEMA, apply=True)
        connection.execute = execute
        assert stored(persister, "old") == before  # rolled back: all or nothing
        migrate(persister, SCHEMA, apply=True)
        loads_as_v3(persister, "old", 5)


def test_an_interrupted_record_by_record_run_stays_loadable_and_resumes() -> None:
    persister = InMemoryPersister(snapshot_every=2)
    run_v1(persister, 6)
    store: Any = persister.core.store
    rewrite = store.rewrite
    written: list[StepRecord] = []

    async def interrupted(record: StepRecord) -> None:
        if len(written) == 3:
            raise KeyboardInterrupt
        written.append(record)
        await rewrite(record)

    store.rewrite = interrupted
    with pytest.raises(KeyboardInterrupt):
        migrate(persister, SCHEMA, apply=True)
    store.rewrite = rewrite
    assert [r.sequence_id for r in written] == [5, 4, 3]  # newest first
    versions = [
        snapshot_version(r.payload) if r.kind == "snapshot" else None for r in stored(persister)
    ]
    assert versions == [1, None, 1, 3, 3, 3]
    loads_as_v3(persister, "app", 6)  # old ones migrate on load, new ones are v3
    report = migrate(persister, SCHEMA, apply=True)
    assert [a.old for a in report.pending] == [3]
    assert {snapshot_version(r.payload) for r in stored(persister)} == {3}
    loads_as_v3(persister, "app", 6)


def test_async_persister_variant(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    with SQLitePersister(path) as persister:
        run_v1(persister, 3)

    async def scenario() -> tuple[int, int]:
        persister = await AsyncSQLitePersister.from_values(str(path))
        try:
            first = await amigrate(persister, SCHEMA, apply=True)
            second = await amigrate(persister, SCHEMA, apply=True)
        finally:
            await persister.close()
        return len(first.pending), len(second.pending)

    assert asyncio.run(scenario()) == (1, 0)
    with SQLitePersister(path) as persister:
        loads_as_v3(persister, "app", 3)


def test_a_persister_without_a_store_is_refused() -> None:
    with pytest.raises(UnsupportedOperationError, match="keeps its own"):
        migrate(object(), SCHEMA)


# -- the command ---------------------------------------------------------------------------------

SPEC = "tests.core.versioned:SCHEMA"


def test_command_dry_run_apply_and_rerun(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with SQLitePersister(db) as persister:
        before = stored(persister, "old")
    assert main(["migrate", SPEC, "--sqlite", str(db)]) == 0
    out, err = capsys.readouterr()
    assert "would rewrite 5 of 5 records, version 1 -> 3" in out
    assert "dry run" in out
    assert "[" in err
    assert "2/2" in err
    with SQLitePersister(db) as persister:
        assert stored(persister, "old") == before
    assert main(["migrate", SPEC, "--sqlite", str(db), "--apply"]) == 0
    assert "rewrote 5 of 5 records" in capsys.readouterr().out
    assert main(["migrate", SPEC, "--sqlite", str(db), "--apply"]) == 0
    assert "nothing to do" in capsys.readouterr().out
    with SQLitePersister(db) as persister:
        loads_as_v3(persister, "old", 5)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("tests.core.versioned", "is not MODULE:ATTR"),
        ("tests.core.versioned:NOPE", "has no attribute 'NOPE'"),
        ("tests.core.versioned:MIGRATIONS", "is a dict, not a StateSchema"),
        ("tests.core.no_such_module:X", "No module named"),
    ],
    ids=["no-colon", "no-attribute", "not-a-schema", "no-module"],
)
def test_command_refuses_a_bad_schema_spec(
    db: Path, capsys: pytest.CaptureFixture[str], spec: str, message: str
) -> None:
    assert main(["migrate", spec, "--sqlite", str(db)]) == 1
    assert message in capsys.readouterr().err


def test_command_refuses_newer_records_and_a_missing_database(
    db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    module = tmp_path / "older_schema.py"
    module.write_text(
        "from turnout.core.versions import StateSchema\n"
        "SCHEMA = StateSchema(version=2, migrations={1: dict})\n"
    )
    import sys

    sys.path.insert(0, str(tmp_path))
    try:
        assert main(["migrate", "older_schema:SCHEMA", "--sqlite", str(db), "--apply"]) == 1
    finally:
        sys.path.remove(str(tmp_path))
    assert "newer than version 2" in capsys.readouterr().err
    assert main(["migrate", SPEC, "--sqlite", str(tmp_path / "none.db")]) == 1
    assert "no SQLite database" in capsys.readouterr().err
