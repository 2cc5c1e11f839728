"""Burr's persister and tracker API on turnout, standard library only: SQLite persisters built
the way Burr builds them (``connect_kwargs``, ``serde_kwargs``, ``from_values``, ``from_config``,
``initialize``/``is_initialized``/``cleanup``), users' persisters written against Burr's base
classes with only ``load``/``save``/``list_app_ids``, and ``LocalTracker`` built like Burr's
``LocalTrackingClient``. The server-backed persisters are in test_burr_persisters_servers.py."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import pickle
import sqlite3
import warnings
from pathlib import Path
from typing import Any

import pytest

from turnout import ApplicationBuilder, State, action
from turnout.core import serde
from turnout.core.errors import (
    ConcurrencyError,
    PersistenceError,
    PersistenceWarning,
    UnsupportedOperationError,
)
from turnout.core.persistence import (
    AsyncBaseStateLoader,
    AsyncBaseStatePersister,
    AsyncBaseStateSaver,
    BaseStateLoader,
    BaseStatePersister,
    BaseStateSaver,
)
from turnout.core.sqlite import AsyncSQLitePersister, SQLitePersister
from turnout.core.tracking import LocalTracker
from turnout.integrations.persisters import b_aiosqlite


@action(reads=["n"], writes=["n"])
def count(state: State) -> State:
    return state.increment(n=1)


def builder(app_id: str) -> ApplicationBuilder:
    return (
        ApplicationBuilder()
        .with_actions(count)
        .with_transitions(("count", "count"))
        .with_identifiers(app_id=app_id)
    )


def resumable(persister: Any, app_id: str) -> ApplicationBuilder:
    return (
        builder(app_id)
        .with_state_persister(persister)
        .initialize_from(
            persister,
            resume_at_next_action=True,
            default_state={"n": 0},
            default_entrypoint="count",
        )
    )


# -- SQLite, built the way Burr builds it ----------------------------------------------------------


def test_connect_kwargs_check_same_thread_false_is_accepted(tmp_path: Path) -> None:
    """Burr's documented ``connect_kwargs={"check_same_thread": False}`` used to raise
    ``TypeError: got multiple values for keyword argument 'check_same_thread'``."""
    db = tmp_path / "state.db"
    with SQLitePersister(db, "t", connect_kwargs={"check_same_thread": False}) as persister:
        app = resumable(persister, "a").build()
        app.step()
        app.step()
    with SQLitePersister(str(db), "t") as persister:
        loaded = persister.load(None, "a")
        assert loaded is not None
        assert (loaded.state["n"], loaded.sequence_id) == (2, 1)


def test_connect_kwargs_timeout_replaces_the_timeout_argument(tmp_path: Path) -> None:
    with SQLitePersister(tmp_path / "s.db", connect_kwargs={"timeout": 0.5}) as persister:
        row = persister.connection._connection.execute("PRAGMA busy_timeout").fetchone()
        assert row == (500,)


def test_from_values_takes_burrs_positional_arguments_and_from_config_a_mapping(
    tmp_path: Path,
) -> None:
    db = str(tmp_path / "burr.db")
    first = SQLitePersister.from_values(db, "burr_state", None, {"check_same_thread": False})
    with first:
        assert isinstance(first, SQLitePersister)
        assert (first.db_path, first.table_name) == (db, "burr_state")
        first.initialize()
        resumable(first, "app").build().step()
    config = {"db_path": db, "table_name": "burr_state", "serde_kwargs": {}, "connect_kwargs": {}}
    with SQLitePersister.from_config(config) as second:
        assert resumable(second, "app").build().state["n"] == 1  # resumed from the first


def test_is_initialized_is_false_until_initialize_creates_the_tables(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    with SQLitePersister(db, "fresh") as persister:
        assert persister.is_initialized() is False
        persister.initialize()
        persister.initialize()  # twice is harmless, as in Burr
        assert persister.is_initialized() is True
    with SQLitePersister(db, "fresh") as other, SQLitePersister(db, "other") as unrelated:
        assert other.is_initialized() is True  # another persister created them
        assert unrelated.is_initialized() is False  # another prefix has no tables yet


def test_a_first_save_initializes_the_tables_too(tmp_path: Path) -> None:
    with SQLitePersister(tmp_path / "s.db") as persister:
        persister.save(None, "a", 0, "count", State({"n": 1}), "completed")
        assert persister.is_initialized() is True


def test_cleanup_closes_the_connection(tmp_path: Path) -> None:
    persister = SQLitePersister(tmp_path / "s.db")
    persister.initialize()
    persister.cleanup()
    with pytest.raises(Exception, match="closed"):
        persister.list_app_ids(None)


def test_empty_serde_kwargs_are_accepted_silently_as_the_third_positional_argument(
    tmp_path: Path,
) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with SQLitePersister(tmp_path / "s.db", "t", {}) as persister:
            assert persister.serde_kwargs == {}


def test_non_empty_serde_kwargs_reach_codecs_registered_burrs_way(tmp_path: Path) -> None:
    seen: list[dict[str, Any]] = []

    @serde.serialize.register(_Tagged)
    def _encode(value: _Tagged, **kwargs: Any) -> dict[str, Any]:
        seen.append(kwargs)
        return {serde.KEY: "test.tagged", "v": value.v}

    def _decode(data: dict[str, Any], **kwargs: Any) -> _Tagged:
        seen.append(kwargs)
        return _Tagged(data["v"])

    serde.deserializer.register("test.tagged")(_decode)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            persister = SQLitePersister(tmp_path / "s.db", serde_kwargs={"opt": {"x": 1}})
        with persister:
            assert persister.serde_kwargs == {"opt": {"x": 1}}
            persister.save(None, "a", 0, "count", State({"t": _Tagged(3)}), "completed")
            loaded = persister.load(None, "a")
        assert loaded is not None
        assert loaded["state"]["t"].v == 3
        assert seen == [{"opt": {"x": 1}}, {"opt": {"x": 1}}]
    finally:
        serde.deserializer.func_map.pop("test.tagged", None)
        serde.serialize.register(_Tagged)(serde.serialize.dispatch(object))


class _Tagged:
    def __init__(self, v: int) -> None:
        self.v = v


def test_async_sqlite_from_values_is_awaitable_and_an_async_context_manager(
    tmp_path: Path,
) -> None:
    db = str(tmp_path / "a.db")

    async def main() -> tuple[bool, bool, int]:
        async with b_aiosqlite.AsyncSQLitePersister.from_values(db, "t") as persister:
            before = await persister.is_initialized()
            await persister.initialize()
            after = await persister.is_initialized()
            app = await resumable(persister, "x").abuild()
            await app.astep()
            await app.astep()
        persister = await AsyncSQLitePersister.from_config({"db_path": db, "table_name": "t"})
        try:
            loaded = await persister.load(None, "x")
        finally:
            await persister.cleanup()
        assert loaded is not None
        return before, after, loaded.state["n"]

    assert asyncio.run(main()) == (False, True, 2)


def test_async_sqlite_accepts_burrs_connect_kwargs(tmp_path: Path) -> None:
    async def main() -> list[str]:
        opening = AsyncSQLitePersister.from_values(
            tmp_path / "a.db", connect_kwargs={"check_same_thread": False}
        )
        persister = await opening
        try:
            await persister.save(None, "a", 0, "count", State({"n": 1}), "completed")
            return await persister.list_app_ids(None)
        finally:
            await persister.close()

    assert asyncio.run(main()) == ["a"]


# -- a user's persister written against Burr's base classes --------------------------------------


class DictPersister(BaseStatePersister):
    """Burr's contract only: load/save/list_app_ids, records as Burr's dicts."""

    def __init__(self) -> None:
        self.rows: dict[tuple[str | None, str], list[dict[str, Any]]] = {}

    def load(
        self, partition_key: str | None, app_id: str, sequence_id: int | None = None, **kwargs: Any
    ) -> dict[str, Any] | None:
        rows = self.rows.get((partition_key, app_id), [])
        if sequence_id is not None:
            rows = [r for r in rows if r["sequence_id"] == sequence_id]
        return rows[-1] if rows else None

    def list_app_ids(self, partition_key: str | None, **kwargs: Any) -> list[str]:
        return [app for (pk, app) in self.rows if pk == partition_key]

    def save(
        self,
        partition_key: str | None,
        app_id: str,
        sequence_id: int,
        position: str | None,
        state: State,
        status: Any,
        **kwargs: Any,
    ) -> None:
        self.rows.setdefault((partition_key, app_id), []).append(
            {
                "partition_key": partition_key,
                "app_id": app_id,
                "sequence_id": sequence_id,
                "position": position,
                "state": state,
                "created_at": dt.datetime.now(dt.UTC).isoformat(),
                "status": status,
            }
        )


class SplitPersister(BaseStateLoader, BaseStateSaver):
    """Burr's other shape: a loader and a saver in one class."""

    def __init__(self) -> None:
        self.inner = DictPersister()

    def load(
        self, partition_key: str | None, app_id: str, sequence_id: int | None = None, **kwargs: Any
    ) -> Any:
        return self.inner.load(partition_key, app_id, sequence_id)

    def list_app_ids(self, partition_key: str | None, **kwargs: Any) -> list[str]:
        return self.inner.list_app_ids(partition_key)

    def save(self, *args: Any, **kwargs: Any) -> None:
        self.inner.save(*args, **kwargs)


@pytest.mark.parametrize("make", [DictPersister, SplitPersister], ids=["persister", "split"])
def test_a_burr_style_user_persister_saves_every_step_and_resumes(make: Any) -> None:
    persister = make()
    app = resumable(persister, "u").build()
    for _ in range(3):
        app.step()
    assert persister.list_app_ids(None) == ["u"]
    resumed = resumable(persister, "u").build()
    assert (resumed.state["n"], resumed.sequence_id) == (3, 2)
    resumed.step()
    assert persister.load(None, "u")["state"]["n"] == 4


@pytest.mark.parametrize(
    ("call", "method"),
    [
        (lambda p: p.delete("u"), "delete"),
        (lambda p: p.prune(keep_last=1), "prune"),
        (lambda p: p.is_initialized(), "is_initialized"),
    ],
    ids=["delete", "prune", "is_initialized"],
)
def test_optional_methods_missing_on_a_user_persister_raise_a_clear_error(
    call: Any, method: str
) -> None:
    persister = DictPersister()
    with pytest.raises(
        UnsupportedOperationError, match=rf"DictPersister\.{method}\(\).*def {method}"
    ):
        call(persister)
    with pytest.raises(NotImplementedError):  # what Burr's users catch
        call(persister)
    with pytest.raises(PersistenceError):
        call(persister)


def test_initialize_of_a_user_persister_does_nothing_by_default() -> None:
    persister = DictPersister()
    persister.initialize()
    assert persister.rows == {}


class AsyncDictPersister(AsyncBaseStateLoader, AsyncBaseStateSaver):
    """An async user persister from Burr's two async base classes."""

    def __init__(self) -> None:
        self.inner = DictPersister()

    async def load(
        self, partition_key: str | None, app_id: str, sequence_id: int | None = None, **kwargs: Any
    ) -> Any:
        return self.inner.load(partition_key, app_id, sequence_id)

    async def list_app_ids(self, partition_key: str | None, **kwargs: Any) -> list[str]:
        return self.inner.list_app_ids(partition_key)

    async def save(self, *args: Any, **kwargs: Any) -> None:
        self.inner.save(*args, **kwargs)


class AsyncOnlyRequired(AsyncBaseStatePersister):
    async def load(self, *args: Any, **kwargs: Any) -> Any:
        return None

    async def list_app_ids(self, partition_key: str | None, **kwargs: Any) -> list[str]:
        return []

    async def save(self, *args: Any, **kwargs: Any) -> None:
        return None


def test_an_async_user_persister_from_burrs_async_base_classes_saves_and_resumes() -> None:
    persister = AsyncDictPersister()

    async def main() -> tuple[int, int]:
        app = await resumable(persister, "u").abuild()
        await app.astep()
        await app.astep()
        resumed = await resumable(persister, "u").abuild()
        return resumed.state["n"], len(persister.inner.rows[(None, "u")])

    assert asyncio.run(main()) == (2, 2)


def test_async_delete_and_prune_missing_on_a_user_persister_raise_a_clear_error() -> None:
    persister = AsyncOnlyRequired()
    with pytest.raises(UnsupportedOperationError, match=r"async def delete"):
        asyncio.run(persister.delete("u"))
    with pytest.raises(UnsupportedOperationError, match=r"async def prune"):
        asyncio.run(persister.prune(keep_last=1))
    asyncio.run(persister.initialize())  # a no-op, as in Burr


# -- the tracker, built like Burr's LocalTrackingClient --------------------------------------------


def test_local_tracker_takes_burrs_project_storage_dir_and_serde_kwargs(tmp_path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tracker = LocalTracker("burr_project", str(tmp_path), {})
    app = builder("t").with_state(n=0).with_entrypoint("count").with_tracker(tracker).build()
    app.step()
    assert tracker.serde_kwargs == {}
    assert (tmp_path / "burr_project").is_dir()


def test_local_tracker_keeps_non_empty_serde_kwargs_for_its_copies(tmp_path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tracker = LocalTracker("p", tmp_path, serde_kwargs={"x": 1})
    assert tracker.serde_kwargs == {"x": 1}
    assert tracker.copy().serde_kwargs == {"x": 1}
    assert pickle.loads(pickle.dumps(tracker)).serde_kwargs == {"x": 1}


# -- a database Burr wrote -------------------------------------------------------------------------

# tests/compat/data/burr_0_43_sqlite.sql is `sqlite3 burr.db .dump` of a database written by
# apache-burr 0.43's SQLitePersister(db_path="burr.db", table_name="burr_state"): an app with
# actions count (n += 1, appends to chat) and stamp (sets when, nested, tup) alternating,
# stepped 3 times as app-1 in partition "alice" and 2 times as app-2 with no partition key.
BURR_DUMP = Path(__file__).parent / "data" / "burr_0_43_sqlite.sql"


@action(reads=["n"], writes=["when", "nested", "tup"])
def stamp(state: State) -> State:
    return state.update(when=3.5, nested={"a": [1, 2, None]}, tup=(1, 2))


@action(reads=["n", "chat"], writes=["n", "chat"])
def chat_count(state: State) -> State:
    return state.update(n=state["n"] + 1).append(chat={"role": "user", "content": "hi"})


def burr_database(path: Path) -> Path:
    connection = sqlite3.connect(path)
    connection.executescript(BURR_DUMP.read_text(encoding="utf-8"))
    connection.close()
    return path


def burr_rows(path: Path) -> list[tuple[Any, ...]]:
    connection = sqlite3.connect(path)
    rows = connection.execute("SELECT * FROM burr_state ORDER BY app_id, sequence_id").fetchall()
    connection.close()
    return rows


def migrated(persister: Any, app_id: str, partition_key: str | None) -> ApplicationBuilder:
    return (
        ApplicationBuilder()
        .with_actions(count=chat_count, stamp=stamp)
        .with_transitions(("count", "stamp"), ("stamp", "count"))
        .with_state_persister(persister)
        .initialize_from(
            persister,
            resume_at_next_action=True,
            default_state={"n": 0, "chat": []},
            default_entrypoint="count",
        )
        .with_identifiers(app_id=app_id, partition_key=partition_key)
    )


def test_a_burr_written_sqlite_database_loads_without_burrs_control_keys(tmp_path: Path) -> None:
    """Burr's table used to be invisible: load() returned None and migrated apps restarted."""
    db = burr_database(tmp_path / "burr.db")
    with SQLitePersister(db, "burr_state") as persister:
        latest = persister.load("alice", "app-1")
        assert latest is not None
        assert (latest.sequence_id, latest.position, latest.status) == (2, "count", "completed")
        assert latest.state.get_all() == {
            "n": 2,
            "chat": [{"role": "user", "content": "hi"}] * 2,
            "when": 3.5,
            "nested": {"a": [1, 2, None]},
            "tup": "(1, 2)",  # Burr stored the tuple as its text
        }
        assert latest.created_at == dt.datetime(2026, 12, 5, 18, 5, 52, tzinfo=dt.UTC)
        first = persister.load("alice", "app-1", sequence_id=0)
        assert first is not None
        assert first.state.get_all() == {"n": 1, "chat": [{"role": "user", "content": "hi"}]}
        assert persister.load(None, "app-2") is not None
        assert persister.load(None, "app-1") is None  # another partition
        assert persister.load("alice", "app-1", sequence_id=7) is None
        assert persister.list_app_ids("alice") == ["app-1"]
        assert persister.list_app_ids(None) == ["app-2"]


def test_a_migrated_app_resumes_where_burr_left_it_and_burrs_rows_stay_untouched(
    tmp_path: Path,
) -> None:
    db = burr_database(tmp_path / "burr.db")
    before = burr_rows(db)
    with SQLitePersister(db, "burr_state") as persister:
        app = migrated(persister, "app-1", "alice").build()
        assert app.sequence_id == 2
        following = app.get_next_action()
        assert following is not None
        assert following.name == "stamp"  # after Burr's last completed count
        app.step()
        app.step()
        latest = persister.load("alice", "app-1")
        assert latest is not None
        assert (latest.sequence_id, latest.position, latest.state["n"]) == (4, "count", 3)
        old = persister.load("alice", "app-1", sequence_id=1)  # still read from Burr's rows
        assert old is not None
        assert old.position == "stamp"
        assert persister.list_app_ids("alice") == ["app-1"]
        again = migrated(persister, "app-1", "alice").build()  # now from turnout's records
        assert (again.sequence_id, again.state["n"]) == (4, 3)
    assert burr_rows(db) == before


def test_a_migrated_app_resumes_in_an_async_application(tmp_path: Path) -> None:
    db = burr_database(tmp_path / "burr.db")

    async def main() -> tuple[int, int]:
        async with AsyncSQLitePersister.from_values(db, "burr_state") as persister:
            app = await migrated(persister, "app-2", None).abuild()
            await app.astep()  # count: Burr's last record was stamp
            latest = await persister.load(None, "app-2")
            assert latest is not None
            return latest.sequence_id, latest.state["n"]

    assert asyncio.run(main()) == (2, 2)


def test_values_burrs_serde_tagged_load_as_stored_dicts_with_a_warning(tmp_path: Path) -> None:
    db = burr_database(tmp_path / "burr.db")
    model = {"name": "x", "__burr_serde__": "pydantic", "__pydantic_class": "app.Model"}
    connection = sqlite3.connect(db)
    connection.execute(
        "INSERT INTO burr_state VALUES ('', 'typed', 0, 'count', 'completed', ?, "
        "'2026-12-05 18:06:00')",
        [json.dumps({"n": 1, "items": [model], "__SEQUENCE_ID": 0})],
    )
    connection.commit()
    connection.close()
    with SQLitePersister(db, "burr_state") as persister:
        with pytest.warns(PersistenceWarning, match=r"\$\.items\[0\] \(pydantic\)"):
            loaded = persister.load(None, "typed")
        assert loaded is not None
        assert loaded.state["items"] == [model]


def test_a_table_named_like_the_prefix_without_burrs_columns_is_ignored(tmp_path: Path) -> None:
    db = tmp_path / "other.db"
    connection = sqlite3.connect(db)
    connection.execute("CREATE TABLE burr_state (x INTEGER)")
    connection.close()
    with SQLitePersister(db, "burr_state") as persister:
        assert persister.load(None, "a") is None
        assert persister.list_app_ids(None) == []


def test_the_default_table_name_finds_burrs_default_table(tmp_path: Path) -> None:
    """Burr's SQLitePersister("burr.db") wrote to burr_state; turnout's default finds it."""
    db = burr_database(tmp_path / "burr.db")
    with SQLitePersister(db) as persister:
        loaded = persister.load("alice", "app-1")
        assert loaded is not None
        assert loaded.sequence_id == 2
        app = migrated(persister, "app-1", "alice").build()
        app.step()
    with SQLitePersister(db, "other_prefix") as other:
        assert other.load("alice", "app-1") is None  # an explicit prefix reads only its own


@pytest.mark.parametrize("make", [SQLitePersister, AsyncSQLitePersister], ids=["sync", "async"])
def test_a_connection_object_instead_of_a_path_is_refused_naming_the_fix(
    make: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Burr's b_aiosqlite persister takes an aiosqlite connection; str() of one used to create a
    file named after the object."""
    monkeypatch.chdir(tmp_path)
    connection = sqlite3.connect(":memory:")
    with pytest.raises(PersistenceError, match=r"database path.*from_values\('app.db'\)"):
        make(connection)
    connection.close()
    assert list(tmp_path.iterdir()) == []


def test_burrs_connection_argument_is_accepted_and_left_to_its_owner(tmp_path: Path) -> None:
    db = tmp_path / "mine.db"
    mine = sqlite3.connect(db)
    with SQLitePersister(str(db), "t", None, None, mine) as persister:
        persister.save(None, "a", 0, "count", State({"n": 1}), "completed")
    rows = mine.execute("SELECT app_id FROM t_apps").fetchall()  # still open, same file
    mine.close()
    assert rows == [("a",)]


def test_burrs_connection_argument_with_an_in_memory_database_is_refused() -> None:
    mine = sqlite3.connect(":memory:")
    with pytest.raises(PersistenceError, match="cannot share your in-memory database"):
        SQLitePersister(":memory:", connection=mine)
    mine.close()


def test_stepping_on_from_an_older_burr_record_is_a_concurrency_error(tmp_path: Path) -> None:
    """Burr's history goes on past sequence id 0: saving sequence id 1 again is refused, as it
    is for turnout's own records, and the message does not claim the app was deleted."""
    db = burr_database(tmp_path / "burr.db")
    with SQLitePersister(db, "burr_state") as persister:
        app = migrated(persister, "app-1", "alice").with_identifiers(sequence_id=0).build()
        assert app.sequence_id == 0
        with pytest.raises(ConcurrencyError) as caught:
            app.step()
        assert not caught.value.deleted
        assert caught.value.sequence_id == 1


def test_burrs_rows_are_version_1_and_a_versioned_app_migrates_them(tmp_path: Path) -> None:
    """Burr's table holds no state schema version: its rows load as version 1, are migrated, and
    the app goes on at its own version in turnout's tables (Burr's rows stay as they were)."""
    db = burr_database(tmp_path / "burr.db")
    rows = burr_rows(db)
    with SQLitePersister(db, "burr_state") as persister:
        assert persister.stores_schema_version
        app = (
            migrated(persister, "app-1", "alice")
            .with_typing(None, version=2, migrations={1: lambda s: {**s, "chat": len(s["chat"])}})
            .build()
        )
        assert app.state["chat"] == 2
        app.step()  # stamp
        loaded = persister.load("alice", "app-1")
        assert loaded is not None
        assert (loaded.sequence_id, loaded.schema_version) == (3, 2)
    assert burr_rows(db) == rows
