"""Burr's serialisation API on turnout: ``serialize``/``deserialize`` with their registries,
``register_field_serde``, ``State.serialize/deserialize``, and custom codecs honoured when a
persister or the tracker stores the state."""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from turnout.core import ApplicationBuilder, State, action
from turnout.core import serde as burr_serde
from turnout.core._burr_serde import field_serde
from turnout.core.burr_layout import burr_state
from turnout.core.errors import PersistenceError, PersistenceWarning, SerdeError
from turnout.core.persistence import SQLitePersister
from turnout.core.serde import DEFAULT_SERDE, KEY
from turnout.core.state import register_field_serde
from turnout.core.tracking import LocalTracker


class Money:
    """A type no built-in codec knows."""

    def __init__(self, cents: int) -> None:
        self.cents = cents

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Money) and other.cents == self.cents

    def __hash__(self) -> int:
        return hash(self.cents)


@pytest.fixture
def money_codec() -> Any:
    @burr_serde.serialize.register(Money)
    def _encode(value: Money, **kwargs: Any) -> dict[str, Any]:
        return {KEY: "test.money", "cents": value.cents}

    def _decode(data: dict[str, Any], **kwargs: Any) -> Money:
        return Money(data["cents"])

    burr_serde.deserializer.register("test.money")(_decode)
    yield
    burr_serde.deserializer.func_map.pop("test.money", None)
    burr_serde.serialize.register(Money)(burr_serde.serialize.dispatch(object))


@pytest.fixture
def clean_field_serde() -> Any:
    saved = dict(field_serde)
    yield
    field_serde.clear()
    field_serde.update(saved)


def test_plain_values_pass_through_and_unknown_types_become_text() -> None:
    value = {"a": [1, 2.5, "x", True, None], "b": {"c": 3}}
    assert burr_serde.serialize(value) == value
    assert burr_serde.deserialize(value) == value
    assert burr_serde.serialize(Money(3)).startswith("<")  # str(value), as Burr does


def test_a_registered_codec_round_trips_through_state_serialize(money_codec: Any) -> None:
    state = State({"price": Money(250), "items": [Money(1), {"n": Money(2)}], "note": "hi"})
    data = state.serialize()
    assert data["price"] == {KEY: "test.money", "cents": 250}
    json.dumps(data)  # plain JSON
    back = State.deserialize(data)
    assert back.get_all() == state.get_all()


def test_a_plain_dict_holding_the_key_loads_as_itself() -> None:
    value = {KEY: "not a codec", "inner": {KEY: 1}, "items": [{KEY: None}]}
    assert burr_serde.deserialize(burr_serde.serialize(value)) == value


def test_an_unregistered_key_names_itself_and_the_registered_ones(money_codec: Any) -> None:
    with pytest.raises(ValueError, match="'nope'") as info:
        burr_serde.deserialize({"x": [{KEY: "nope"}]})
    assert "test.money" in str(info.value)
    assert "imported" in str(info.value)


def test_deeply_nested_data_is_refused_not_a_recursion_error() -> None:
    data: Any = 1
    for _ in range(5_000):
        data = [data]
    with pytest.raises(SerdeError, match="deeper than"):
        burr_serde.deserialize(data)


def test_field_serde_applies_to_its_field_only(clean_field_serde: Any) -> None:
    def encode(value: str, **kwargs: Any) -> dict[str, Any]:
        return {"reversed": value[::-1]}

    def decode(data: dict[str, Any], **kwargs: Any) -> str:
        return str(data["reversed"])[::-1]

    register_field_serde("secret", encode, decode)
    state = State({"secret": "abc", "other": "abc"})
    assert state.serialize() == {"secret": {"reversed": "cba"}, "other": "abc"}
    assert State.deserialize(state.serialize()).get_all() == state.get_all()


def test_field_serde_must_take_kwargs_and_return_a_dict(clean_field_serde: Any) -> None:
    with pytest.raises(ValueError, match=r"\*\*kwargs"):
        register_field_serde("f", lambda value: {}, lambda data, **kw: data)
    with pytest.raises(ValueError, match=r"\*\*kwargs"):
        register_field_serde("f", lambda value, **kw: {}, lambda data: data)
    register_field_serde("f", lambda value, **kw: "text", lambda data, **kw: data)
    with pytest.raises(ValueError, match="must return a dict"):
        State({"f": 1}).serialize()


@action(reads=[], writes=["price"])
def charge(state: State) -> State:
    return state.update(price=Money(999))


def _app(tmp_path: Path, persister: SQLitePersister) -> Any:
    return (
        ApplicationBuilder()
        .with_actions(charge)
        .with_transitions()
        .with_entrypoint("charge")
        .with_state_persister(persister)
        .with_tracker(LocalTracker("serde", storage_dir=str(tmp_path / "tracking")))
        .with_identifiers(app_id="shop")
        .build()
    )


def test_a_persister_and_the_tracker_store_a_value_through_its_registered_codec(
    tmp_path: Path, money_codec: Any
) -> None:
    persister = SQLitePersister(str(tmp_path / "state.db"))
    persister.initialize()
    _app(tmp_path, persister).step()
    loaded = persister.load("", "shop")
    assert loaded is not None
    assert loaded["state"]["price"] == Money(999)
    log = next((tmp_path / "tracking").rglob("log.jsonl")).read_text()
    assert '"test.money"' in log


def test_loading_without_the_decoder_says_the_code_is_missing_and_the_record_intact(
    tmp_path: Path, money_codec: Any
) -> None:
    persister = SQLitePersister(str(tmp_path / "state.db"))
    persister.initialize()
    _app(tmp_path, persister).step()
    burr_serde.deserializer.func_map.pop("test.money")
    with pytest.raises(PersistenceError, match=r"test\.money") as info:
        persister.load("", "shop")
    assert "intact" in str(info.value)


def test_burr_rows_decode_registered_tags_and_keep_the_others_with_a_warning(
    money_codec: Any,
) -> None:
    stored = json.dumps(
        {
            "price": {KEY: "test.money", "cents": 5},
            "model": {KEY: "pydantic", "pydantic_class": "x.Y", "value": {}},
            "__SEQUENCE_ID": 3,
        }
    )
    with pytest.warns(PersistenceWarning, match=r"\$\.model \(pydantic\)"):
        state = burr_state(stored, where="in test")
    assert state["price"] == Money(5)
    assert state["model"][KEY] == "pydantic"
    assert "__SEQUENCE_ID" not in state
    assert DEFAULT_SERDE.decode(DEFAULT_SERDE.encode(state["price"])) == Money(5)


_SLOW_PLUGIN = """
import time

from turnout.core.serde import deserializer

time.sleep(0.5)  # a plugin whose library takes a while to import


@deserializer.register("tests.slow")
def _decode(value, **kwargs):
    return ("decoded", value["v"])
"""


def test_a_plugin_being_imported_by_another_thread_is_waited_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two threads meeting a plugin's key at once both decode it: the second waits for the
    first one's import instead of reporting the key as unregistered."""
    from turnout.core import _serde_plugins

    (tmp_path / "turnout_test_slow_plugin.py").write_text(_SLOW_PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(_serde_plugins.PLUGIN_KEYS, "tests.slow", "turnout_test_slow_plugin")
    monkeypatch.setattr(_serde_plugins, "_tried", set(_serde_plugins._tried))
    monkeypatch.delitem(burr_serde.deserializer.func_map, "tests.slow", raising=False)
    monkeypatch.delitem(sys.modules, "turnout_test_slow_plugin", raising=False)
    stored = {"x": {KEY: "tests.slow", "v": 1}}
    results: list[Any] = []

    def first() -> None:
        results.append(State.deserialize(stored)["x"])

    thread = threading.Thread(target=first)
    thread.start()
    time.sleep(0.1)  # the first thread is importing the plugin now
    try:
        second = State.deserialize(stored)["x"]
    finally:
        thread.join()
        burr_serde.deserializer.func_map.pop("tests.slow", None)
    assert second == ("decoded", 1)
    assert results == [("decoded", 1)]


def test_a_burr_row_a_decoder_cannot_read_is_a_persistence_error_naming_the_record(
    money_codec: Any,
) -> None:
    """A damaged value under a registered key (the decoder raises KeyError) and data nested too
    deep for the Burr walk are reported as the record they are in, not as a bare error."""
    damaged = json.dumps({"price": {KEY: "test.money", "no_cents": 5}})
    with pytest.raises(PersistenceError, match=r"of app 'a1' at sequence id 3.*price"):
        burr_state(damaged, where="of app 'a1' at sequence id 3")
    deep: Any = 1
    for _ in range(300):
        deep = [deep]
    with pytest.raises(PersistenceError, match=r"of app 'a1' at sequence id 3"):
        burr_state(json.dumps({"deep": deep}), where="of app 'a1' at sequence id 3")
