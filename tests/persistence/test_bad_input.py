"""Bad input gets a clear error and loses nothing already saved: values that cannot be saved
(at build and in the middle of a run), corrupt records, a missing table, an unreachable server,
and table or key names that could inject SQL."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path
from typing import Any

import pytest

from tests.persistence import backends
from tests.persistence.conftest import Harness
from turnout import ApplicationBuilder, State, action
from turnout.core.errors import PersistenceError, SerdeError


class Opaque:
    """Nothing can save this: not a dataclass, not registered."""


@action(reads=["messages"], writes=["messages"])
def talk(state: State) -> State:
    """Appends a message; the fourth one (index 3) carries an unsaveable argument."""
    n = len(state["messages"])
    return state.append(messages={"role": "user", "args": Opaque() if n == 3 else [n]})


def talking(h: Harness, app_id: str, messages: list[Any]) -> ApplicationBuilder:
    return (
        ApplicationBuilder()
        .with_actions(talk)
        .with_transitions(("talk", "talk"))
        .with_state(messages=messages)
        .with_entrypoint("talk")
        .with_identifiers(app_id=app_id)
        .with_state_persister(h.persister)
    )


# -- values that cannot be saved -----------------------------------------------------------------


def test_an_unsaveable_initial_value_fails_the_build_naming_its_path(persister: Harness) -> None:
    messages = [{"args": [1]}, {"args": [2]}, {"args": [3]}, {"args": Opaque()}]
    with pytest.raises(SerdeError, match=r"\$\.messages\[3\]\.args") as info:
        persister.build(talking(persister, "at-build", messages))
    assert info.value.path == "$.messages[3].args"
    assert "Opaque" in str(info.value)
    assert "register" in str(info.value)
    assert persister.load(None, "at-build") is None


def test_an_unsaveable_value_mid_run_fails_that_save_and_keeps_earlier_records(
    persister: Harness,
) -> None:
    app = persister.build(talking(persister, "mid-run", []))
    for _ in range(3):
        persister.step(app)
    with pytest.raises(SerdeError, match="Opaque") as info:
        persister.step(app)
    assert [r.sequence_id for r in persister.records(None, "mid-run")] == [0, 1, 2]
    for sequence_id in range(3):
        loaded = persister.load(None, "mid-run", sequence_id)
        assert loaded is not None
        assert [m["args"] for m in loaded.state["messages"]] == [
            [i] for i in range(sequence_id + 1)
        ]
    assert persister.list_app_ids(None) == ["mid-run"]
    # The delta holds the appended item alone; its path must still be the one in the state.
    assert info.value.path == "$.messages[3].args"


# -- corrupt records -----------------------------------------------------------------------------


@action(reads=["count", "history"], writes=["count", "history"])
def grow(state: State) -> State:
    return state.increment(count=1).append(history=f"entry {state['count']}")


def ten_steps(h: Harness) -> None:
    app = h.build(
        ApplicationBuilder()
        .with_actions(grow)
        .with_transitions(("grow", "grow"))
        .with_state(count=0, history=[])
        .with_entrypoint("grow")
        .with_identifiers(app_id="corrupt")
        .with_state_persister(h.persister)
    )
    for _ in range(10):
        h.step(app)


def corrupt(h: Harness, sequence_id: int, payload: str) -> None:
    [record] = [r for r in h.records(None, "corrupt") if r.sequence_id == sequence_id]
    h.rewrite(dataclasses.replace(record, payload=payload))


@pytest.mark.parametrize(
    "payload",
    [
        '[["increment", "count", 1], ["append", "hist',
        '[["frobnicate", "count", 1]]',
        '{"op": "set"}',
        '[["set", "count", {"__turnout__": "no-such-tag", "v": 1}]]',
        "",
    ],
    ids=["truncated", "unknown-op", "wrong-shape", "unknown-tag", "empty"],
)
def test_a_corrupt_delta_names_the_app_and_sequence_id_and_earlier_ones_load(
    persister: Harness, payload: str
) -> None:
    ten_steps(persister)
    assert persister.records(None, "corrupt")[5].kind == "delta"
    corrupt(persister, 5, payload)
    for sequence_id in (5, 6):  # 6 is rebuilt through 5
        with pytest.raises(PersistenceError, match="sequence id 5") as info:
            persister.load(None, "corrupt", sequence_id)
        assert "'corrupt'" in str(info.value)
    for sequence_id in (0, 4, 7, 9):  # before it, or after the next snapshot
        loaded = persister.load(None, "corrupt", sequence_id)
        assert loaded is not None
        assert loaded.state["count"] == sequence_id + 1
    latest = persister.load(None, "corrupt")
    assert latest is not None
    assert latest.sequence_id == 9


@pytest.mark.parametrize(
    "payload",
    ["{not json", '{"count": {"__turnout__": "dataclass", "type": "nowhere:Gone", "v": {}}}', "[]"],
    ids=["not-json", "unknown-type", "not-a-mapping"],
)
def test_a_corrupt_snapshot_fails_the_records_built_on_it_only(
    persister: Harness, payload: str
) -> None:
    ten_steps(persister)
    assert persister.records(None, "corrupt")[7].kind == "snapshot"
    corrupt(persister, 7, payload)
    for sequence_id in (7, 8, None):
        with pytest.raises(PersistenceError, match="sequence id 7"):
            persister.load(None, "corrupt", sequence_id)
    loaded = persister.load(None, "corrupt", 6)
    assert loaded is not None
    assert loaded.state["history"][-1] == "entry 6"


# -- storage that is gone or unreachable ---------------------------------------------------------


def test_a_missing_table_gives_a_clear_persistence_error(sql_persister: Harness) -> None:
    h = sql_persister
    h.save(None, "gone", 0, "act", State({"x": 1}))
    backends.drop_tables(h.kind, h.location, [f"{h.prefix}_steps"])
    with pytest.raises(PersistenceError, match=f"{h.prefix}") as info:
        h.load(None, "gone")
    assert "unchanged" in str(info.value)
    with pytest.raises(PersistenceError, match=f"{h.prefix}"):
        h.save(None, "gone", 1, "act", State({"x": 2}))


def dead_location(kind: str, port: int) -> Any:
    if kind == "postgres":
        return f"postgresql://postgres@127.0.0.1:{port}/test"
    if kind == "mysql":
        return {**backends.MYSQL_KWARGS, "port": port}
    return f"redis://127.0.0.1:{port}/0"


def test_an_unreachable_server_gives_a_clear_error_and_loses_nothing(
    service_persister: Harness,
) -> None:
    h = service_persister
    h.save(None, "safe", 0, "act", State({"x": 1}))
    port = backends.free_port()
    location = dead_location(h.kind, port)

    async def attempt() -> PersistenceError:
        persister = None
        try:
            if h.is_async:
                persister = await backends.open_async(h.kind, location, h.prefix)
                await persister.load(None, "safe")
            else:
                persister = backends.open_sync(h.kind, location, h.prefix)
                persister.load(None, "safe")
        except PersistenceError as exc:
            return exc
        finally:
            if persister is not None:
                await backends.aclose(persister)
        raise AssertionError(f"no error from a {h.id} persister at port {port}")

    error = h.run(attempt())
    assert str(port) in str(error)
    loaded = h.load(None, "safe")
    assert loaded is not None
    assert loaded.state["x"] == 1


@pytest.mark.parametrize(
    "name",
    [
        "x; DROP TABLE users; --",
        "t'--",
        'quo"te',
        "has space",
        "",
        "1starts_with_digit",
        "é",
        "turnout\n",
    ],
    ids=["statement", "quote", "double-quote", "space", "empty", "digit", "non-ascii", "newline"],
)
def test_a_table_or_key_prefix_with_injection_characters_is_refused(
    named_persister: Harness, name: str
) -> None:
    h = named_persister

    async def construct() -> None:
        if h.is_async:
            made = await backends.open_async(h.kind, h.location, name)
        else:
            made = backends.open_sync(h.kind, h.location, name)
        await backends.aclose(made)

    with pytest.raises(ValueError, match="letters, digits and underscores"):
        h.run(construct())


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_refused_sqlite_table_name_creates_no_database_file(mode: str, tmp_path: Path) -> None:
    path = tmp_path / "refused.db"

    async def construct() -> None:
        if mode == "async":
            await backends.aclose(await backends.open_async("sqlite", str(path), "bad name"))
        else:
            backends.close_sync(backends.open_sync("sqlite", str(path), "bad name"))

    with pytest.raises(ValueError, match="'bad name'"):
        asyncio.run(construct())
    assert not path.exists()
