"""Burr's ``register_field_serde`` honoured by turnout's persisters and the tracker: the key is
stored through its pair (appends and extends stored whole), reloads through it, and a process
without the pair is told which call it lacks."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from turnout.core import ApplicationBuilder, State, action
from turnout.core._burr_serde import field_serde
from turnout.core.errors import PersistenceError, SerdeError
from turnout.core.serde import DEFAULT_SERDE, TAG
from turnout.core.sqlite import AsyncSQLitePersister, SQLitePersister
from turnout.core.state import register_field_serde
from turnout.core.tracking import LocalTracker


class Secret:
    """A type no codec knows: only its field serde stores it."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other.text == self.text

    def __hash__(self) -> int:
        return hash(self.text)


seen_kwargs: list[dict[str, Any]] = []


def _encode(value: list[Secret], **kwargs: Any) -> dict[str, Any]:
    seen_kwargs.append(kwargs)
    return {"reversed": [secret.text[::-1] for secret in value]}


def _decode(data: dict[str, Any], **kwargs: Any) -> list[Secret]:
    return [Secret(text[::-1]) for text in data["reversed"]]


@pytest.fixture
def secrets_serde() -> Iterator[None]:
    saved = dict(field_serde)
    seen_kwargs.clear()
    register_field_serde("secrets", _encode, _decode)
    yield
    field_serde.clear()
    field_serde.update(saved)


@action(reads=[], writes=["secrets", "n"])
def start(state: State) -> State:
    return state.update(secrets=[Secret("alpha")], n=1)


@action(reads=["n"], writes=["secrets", "n"])
def more(state: State) -> State:
    return state.append(secrets=Secret(f"beta{state['n']}")).increment(n=1)


def _builder(app_id: str = "vault") -> ApplicationBuilder:
    return (
        ApplicationBuilder()
        .with_actions(start=start, more=more)
        .with_transitions(("start", "more"), ("more", "more"))
        .with_identifiers(app_id=app_id)
    )


EXPECTED = [Secret("alpha"), Secret("beta1"), Secret("beta2")]


def test_a_sqlite_persister_stores_the_key_through_its_pair_and_resumes(
    tmp_path: Path, secrets_serde: None
) -> None:
    with SQLitePersister(tmp_path / "state.db") as persister:
        app = _builder().with_entrypoint("start").with_state_persister(persister).build()
        for _ in range(3):
            app.step()
    stored = (tmp_path / "state.db").read_bytes()
    assert b"ahpla" in stored
    assert b"alpha" not in stored
    with SQLitePersister(tmp_path / "state.db") as persister:
        resumed = _builder().initialize_from(persister, True, {}, "start").build()
    assert resumed.state["secrets"] == EXPECTED
    assert resumed.state["n"] == 3


def test_an_async_sqlite_persister_stores_the_key_through_its_pair_and_resumes(
    tmp_path: Path, secrets_serde: None
) -> None:
    async def main() -> Any:
        persister = await AsyncSQLitePersister.from_values(str(tmp_path / "state.db"))
        async with persister:
            app = await _builder().with_entrypoint("start").with_state_persister(persister).abuild()
            for _ in range(3):
                await app.astep()
            resumed = await _builder().initialize_from(persister, True, {}, "start").abuild()
            return resumed.state

    state = asyncio.run(main())
    assert state["secrets"] == EXPECTED


def test_the_tracker_logs_the_key_through_its_pair_and_loads_it_back(
    tmp_path: Path, secrets_serde: None
) -> None:
    tracker = LocalTracker("fields", storage_dir=tmp_path / "tracking")
    app = _builder().with_entrypoint("start").with_tracker(tracker).build()
    for _ in range(3):
        app.step()
    log = next((tmp_path / "tracking").rglob("log.jsonl")).read_text()
    assert "ahpla" in log
    assert '"alpha"' not in log
    resumed = _builder().initialize_from(tracker, True, {}, "start").build()
    assert resumed.state["secrets"] == EXPECTED


def test_persister_serde_kwargs_reach_the_field_serializer(
    tmp_path: Path, secrets_serde: None
) -> None:
    with SQLitePersister(tmp_path / "state.db", serde_kwargs={"tenant": "t1"}) as persister:
        _builder().with_entrypoint("start").with_state_persister(persister).build().step()
    assert {"tenant": "t1"} in seen_kwargs


def test_loading_without_the_pair_names_the_register_call(
    tmp_path: Path, secrets_serde: None
) -> None:
    with SQLitePersister(tmp_path / "state.db") as persister:
        _builder().with_entrypoint("start").with_state_persister(persister).build().step()
        del field_serde["secrets"]
        with pytest.raises(PersistenceError, match=r"register_field_serde\('secrets'") as info:
            persister.load("", "vault")
    assert "intact" in str(info.value)


def test_a_serializer_returning_no_dict_is_named_with_the_key(secrets_serde: None) -> None:
    register_field_serde("secrets", lambda value, **kw: "text", _decode)
    with pytest.raises(SerdeError, match=r"\$\.secrets: .*must return a dict"):
        DEFAULT_SERDE.encode_state({"secrets": [Secret("a")]})


def test_a_state_key_named_like_the_tag_round_trips() -> None:
    values = {TAG: "not a tag", "n": 1}
    assert DEFAULT_SERDE.loads(DEFAULT_SERDE.dumps_state(values)) == values
