"""Tables and files that turnout did not leave as they are: damaged metadata, a schema version
from a newer (or older) turnout, a file that is not a database, and names with a trailing
newline. Each gives a ``PersistenceError`` naming what is wrong and where, never a raw driver
error or a silently wrong answer."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.persistence import backends
from tests.persistence.conftest import Harness
from turnout import State
from turnout.core.errors import ConcurrencyError, PersistenceError
from turnout.core.sqlite import AsyncSQLitePersister, SQLitePersister


def execute(h: Harness, statement: str, *params: object) -> None:
    backends.execute_sql(h.kind, h.location, statement, params)


def where(h: Harness) -> str:
    """How an error names the storage: the file for SQLite, the tables for the servers."""
    return h.location if h.kind == "sqlite" else f"{h.prefix}"


def three_snapshots(h: Harness, app_id: str) -> None:
    for i in range(3):
        h.save(None, app_id, i, "act", State({"i": i}))


def test_a_garbage_created_at_names_the_table_and_the_value(sql_persister: Harness) -> None:
    h = sql_persister
    three_snapshots(h, "dated")
    execute(
        h, f"UPDATE {h.prefix}_steps SET created_at = ? WHERE sequence_id = ?", "last tuesday", 1
    )
    with pytest.raises(PersistenceError) as info:
        h.load(None, "dated", 1)
    message = str(info.value)
    assert f"{h.prefix}_steps" in message
    assert "created_at 'last tuesday'" in message
    assert where(h) in message
    for sequence_id in (0, 2, None):  # records that do not go through the damaged row
        loaded = h.load(None, "dated", sequence_id)
        assert loaded is not None


def test_a_sequence_id_that_is_not_a_number_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "damaged.db"
    with SQLitePersister(path) as persister:
        for i in range(3):
            persister.save(None, "app", i, "act", State({"i": i}), "completed")
    backends.execute_sql(
        "sqlite", str(path), "UPDATE turnout_steps SET sequence_id = 'abc' WHERE sequence_id = 1"
    )
    with SQLitePersister(path) as persister, pytest.raises(PersistenceError) as info:
        persister.load(None, "app")
    assert "sequence_id 'abc'" in str(info.value)
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    ("stored", "expected"),
    [
        ("abc", "'abc', which is not a version number"),
        ("99", "schema version 99, written by a newer turnout .* reads up to version 2.* upgrade"),
    ],
    ids=["not-a-number", "newer"],
)
def test_a_schema_version_this_turnout_cannot_read_is_refused(
    sql_persister: Harness, stored: str, expected: str
) -> None:
    h = sql_persister
    three_snapshots(h, "versioned")
    execute(h, f"UPDATE {h.prefix}_meta SET value = ? WHERE name = ?", stored, "schema")
    fresh = h.open()
    with pytest.raises(PersistenceError, match=expected) as info:
        h.load(None, "versioned", persister=fresh)
    assert where(h) in str(info.value)


def test_version_1_tables_are_migrated_and_keep_working(sql_persister: Harness) -> None:
    """Version 1 had no latest_sequence_id column: the first use of version 2 code adds it."""
    h = sql_persister
    three_snapshots(h, "old")
    execute(h, f"ALTER TABLE {h.prefix}_apps DROP COLUMN latest_sequence_id")
    execute(h, f"UPDATE {h.prefix}_meta SET value = ? WHERE name = ?", "1", "schema")
    fresh = h.open()
    loaded = h.load(None, "old", persister=fresh)
    assert loaded is not None
    assert loaded.sequence_id == 2
    h.run(fresh.save(None, "old", 3, "act", State({"i": 3}), "completed", previous_sequence_id=2))
    with pytest.raises(ConcurrencyError):
        h.run(fresh.save(None, "old", 4, "act", State({}), "completed", previous_sequence_id=2))
    backends.remove_record(h.kind, h.location, h.prefix, fresh, "old", 3)
    with pytest.raises(PersistenceError, match="sequence id 3 is missing"):
        h.load(None, "old", persister=fresh)


def test_a_file_that_is_not_a_database_is_refused_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "notes.db"
    path.write_text("These are my notes, not a database.\n" * 20)
    with pytest.raises(PersistenceError, match="not a SQLite database") as info:
        SQLitePersister(path)
    assert str(path) in str(info.value)
    with pytest.raises(PersistenceError, match="not a SQLite database"):
        AsyncSQLitePersister(path)
    assert path.read_text().startswith("These are my notes")


@pytest.mark.parametrize("keep", [50, 0.5], ids=["header-cut", "half"])
def test_a_truncated_database_gives_a_persistence_error_naming_the_file(
    tmp_path: Path, keep: float
) -> None:
    path = tmp_path / "cut.db"
    with SQLitePersister(path) as persister:
        for i in range(200):
            persister.save(
                None, f"app{i % 7}", i // 7, "act", State({"text": "x" * 500}), "completed"
            )
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep) if isinstance(keep, float) else keep])

    def use() -> None:
        with SQLitePersister(path) as damaged:
            for i in range(7):
                damaged.load(None, f"app{i}")

    with pytest.raises(PersistenceError) as info:
        use()
    assert str(path) in str(info.value)


# -- names ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_table_name_with_a_trailing_newline_is_refused_before_any_file_exists(
    mode: str, tmp_path: Path
) -> None:
    path = tmp_path / "named.db"

    async def construct() -> None:
        if mode == "async":
            await backends.aclose(await backends.open_async("sqlite", str(path), "turnout\n"))
        else:
            backends.close_sync(backends.open_sync("sqlite", str(path), "turnout\n"))

    with pytest.raises(ValueError, match=r"'turnout\\n' is not allowed"):
        asyncio.run(construct())
    assert not path.exists()
