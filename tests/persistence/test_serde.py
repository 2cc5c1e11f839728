"""The serde registry: every built-in type round trips, custom codecs, types found by name (and
never by importing), pydantic-shaped models, opt-in pickle, and errors that name the path of the
value that cannot be saved."""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import json
import math
import subprocess
import sys
from typing import Any

import pytest

from tests.persistence.samples import SAMPLES, Model, Point, same
from turnout.core.errors import SerdeError
from turnout.core.serde import DEFAULT_SERDE, Serde, type_name


class Opaque:
    """Not saveable without help: not a dataclass, not registered."""


class Picklable:
    def __init__(self, value: int) -> None:
        self.value = value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Picklable) and other.value == self.value

    __hash__ = None  # type: ignore[assignment]


class Money:
    def __init__(self, cents: int, currency: str) -> None:
        self.cents, self.currency = cents, currency

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Money) and (self.cents, self.currency) == (
            other.cents,
            other.currency,
        )

    __hash__ = None  # type: ignore[assignment]


class Euros(Money):
    def __init__(self, cents: int) -> None:
        super().__init__(cents, "EUR")


def round_trip(value: Any, serde: Serde = DEFAULT_SERDE) -> Any:
    return serde.loads(serde.dumps(value))


# -- built-in types ------------------------------------------------------------------------------


@pytest.mark.parametrize("key", list(SAMPLES), ids=list(SAMPLES))
def test_built_in_types_round_trip_with_their_type(key: str) -> None:
    value = SAMPLES[key]
    assert same(value, round_trip(value))


def test_nan_round_trips_and_json_never_holds_a_bare_nan() -> None:
    values = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}
    encoded = json.dumps(DEFAULT_SERDE.encode(values), allow_nan=False)  # strict JSON
    decoded = DEFAULT_SERDE.decode(json.loads(encoded))
    assert math.isnan(decoded["nan"])
    assert (decoded["inf"], decoded["-inf"]) == (math.inf, -math.inf)


def test_a_dict_holding_the_tag_key_is_not_mistaken_for_a_tagged_value() -> None:
    value = {"__turnout__": "bytes", "v": "AAAA"}
    assert round_trip(value) == value
    assert round_trip([value, {"__turnout__": "tuple", "v": [1]}])[1] == {
        "__turnout__": "tuple",
        "v": [1],
    }


def test_dicts_with_non_string_keys_keep_their_keys() -> None:
    value = {1: "a", 2.5: "b", (1, "x"): "c", None: "d", frozenset({3}): "e", "s": "f"}
    back = round_trip(value)
    assert back == value
    assert {type(k) for k in back} == {int, float, tuple, type(None), frozenset, str}
    assert round_trip({False: 0, True: 1}) == {False: 0, True: 1}
    assert {type(k) for k in round_trip({False: 0, True: 1})} == {bool}


def test_nested_and_frozen_dataclasses_rebuild_fields_not_in_init() -> None:
    nested = SAMPLES["nested_dataclass"]
    back = round_trip(nested)
    assert back == nested
    assert back.computed == 7
    frozen = round_trip(SAMPLES["frozen_dataclass"])
    assert frozen.tags == ("a", "b")
    with pytest.raises(dataclasses.FrozenInstanceError):
        frozen.name = "changed"


def test_encoded_data_is_plain_json_and_dumps_keeps_non_ascii() -> None:
    text = DEFAULT_SERDE.dumps({"word": "naïve", "tuple": (1, 2)})
    assert "naïve" in text
    assert " " not in text.replace("naïve", "")  # compact separators
    assert json.loads(text)["tuple"] == {"__turnout__": "tuple", "v": [1, 2]}


def test_type_name_is_module_and_qualified_name() -> None:
    assert type_name(Point) == "tests.persistence.samples:Point"


# -- registered codecs ---------------------------------------------------------------------------


def test_register_adds_a_codec_for_a_type_and_its_subclasses() -> None:
    serde = Serde()
    serde.register(
        Money,
        encode=lambda m: {"cents": m.cents, "currency": m.currency},
        decode=lambda d: Money(d["cents"], d["currency"]),
    )
    value = {"price": Money(150, "USD"), "list": [Money(1, "GBP")], "sub": Euros(99)}
    back = round_trip(value, serde)
    assert back["price"] == Money(150, "USD")
    assert back["list"] == [Money(1, "GBP")]
    assert back["sub"] == Money(99, "EUR")


def test_register_with_a_name_and_an_encoding_that_needs_encoding_itself() -> None:
    serde = Serde()
    serde.register(
        Money,
        encode=lambda m: (m.cents, {m.currency}),
        decode=lambda t: Money(t[0], *t[1]),
        name="money/v1",
    )
    data = serde.encode(Money(5, "CHF"))
    assert data["__turnout__"] == "money/v1"
    assert serde.decode(data) == Money(5, "CHF")


def test_loading_a_registered_tag_without_its_codec_names_the_fix() -> None:
    writer = Serde()
    writer.register(Money, encode=lambda m: m.cents, decode=lambda c: Money(c, "USD"))
    text = writer.dumps({"price": Money(1, "USD")})
    with pytest.raises(SerdeError, match="register") as info:
        Serde().loads(text)
    assert type_name(Money) in str(info.value)


def make_local_types() -> tuple[Any, Any, Any]:
    @dataclasses.dataclass
    class Local:
        value: int

    class LocalColor(enum.Enum):
        BLUE = "blue"

    class LocalModel(Model):
        pass

    return Local, LocalColor, LocalModel


def test_a_fresh_registry_loads_stored_types_only_after_register_type() -> None:
    local, color, model = make_local_types()
    values = {"dc": local(3), "enum": color.BLUE, "model": model("x", 1)}
    text = Serde().dumps(values)
    serde = Serde()  # as in a process that did not save them
    with pytest.raises(SerdeError, match=r"serde\.register_type\(Local\)"):
        serde.loads(text)
    serde.register_type(local, color, model)
    back = serde.loads(text)
    assert back["dc"] == local(3)
    assert back["enum"] is color.BLUE
    assert type(back["model"]) is model
    assert back["model"] == model("x", 1)


def test_pydantic_shaped_objects_round_trip_through_model_dump_and_validate() -> None:
    back = round_trip({"m": Model("name", 7), "in_list": [Model("a", 1)]})
    assert back == {"m": Model("name", 7), "in_list": [Model("a", 1)]}
    data = DEFAULT_SERDE.encode(Model("name", 7))
    assert data == {
        "__turnout__": "pydantic",
        "type": type_name(Model),
        "v": {"name": "name", "size": 7},
    }


# -- pickle --------------------------------------------------------------------------------------


def test_pickle_is_used_only_when_allowed() -> None:
    with pytest.raises(SerdeError, match=r"\$\.thing"):
        DEFAULT_SERDE.dumps({"thing": Picklable(1)})
    pickling = Serde(allow_pickle=True)
    text = pickling.dumps({"thing": Picklable(1), "plain": (1, 2)})
    assert json.loads(text)["thing"]["__turnout__"] == "pickle"
    assert pickling.loads(text) == {"thing": Picklable(1), "plain": (1, 2)}


def test_loading_pickled_data_without_allow_pickle_raises() -> None:
    text = Serde(allow_pickle=True).dumps({"thing": Picklable(2)})
    with pytest.raises(SerdeError, match="allow_pickle=True"):
        Serde().loads(text)


def test_a_value_pickle_cannot_handle_names_its_path() -> None:
    with pytest.raises(SerdeError, match=r"\$\.items\[1\].*pickle failed"):
        Serde(allow_pickle=True).dumps({"items": [1, lambda: None]})


# -- errors --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "path"),
    [
        ({"messages": [{}, {}, {}, {"args": Opaque()}]}, "$.messages[3].args"),
        ({"t": (1, (2, Opaque()))}, "$.t[1][1]"),
        ({"s": frozenset({Opaque()})}, "$.s[0]"),
        ({"d": {1: Opaque()}}, "$.d[1]"),
        ({"d": {Opaque(): 1}}, "$.d<key"),
        ({"p": Point(1, Opaque())}, "$.p.y"),  # type: ignore[arg-type]
        ([Opaque()], "$[0]"),
        (Opaque(), "$"),
    ],
    ids=[
        "list-dict",
        "nested-tuple",
        "frozenset",
        "int-key-value",
        "key",
        "dataclass-field",
        "top-list",
        "top",
    ],
)
def test_an_unsupported_value_names_its_path(value: Any, path: str) -> None:
    with pytest.raises(SerdeError) as info:
        DEFAULT_SERDE.dumps(value)
    assert info.value.path.startswith(path)
    assert f"at {info.value.path}:" in str(info.value)
    assert "Opaque" in str(info.value)
    assert isinstance(info.value, TypeError)


@pytest.mark.parametrize(
    "tag",
    [
        {"__turnout__": "dataclass", "type": "this:Zen", "v": {}},
        {"__turnout__": "enum", "type": "this:Zen", "v": 1},
        {"__turnout__": "pydantic", "type": "this:Zen", "v": {}},
        {"__turnout__": "dataclass", "type": "this:Zen.Inner", "v": {}},
    ],
    ids=["dataclass", "enum", "pydantic", "nested-name"],
)
def test_loading_never_imports_a_module(tag: dict[str, Any]) -> None:
    """``this`` prints the Zen of Python when imported: loading must fail instead."""
    code = (
        "import json, sys\n"
        "from turnout.core.serde import Serde\n"
        "from turnout.core.errors import SerdeError\n"
        f"data = json.loads({json.dumps(json.dumps(tag))})\n"
        "try:\n"
        "    Serde(allow_pickle=True).decode(data)\n"
        "except SerdeError as exc:\n"
        "    print('refused:', exc)\n"
        "print('imported' if 'this' in sys.modules else 'not imported')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.splitlines()[-1] == "not imported", done.stdout
    assert "refused:" in done.stdout
    assert "register_module('this')" in done.stdout
    assert "Beautiful is better than ugly" not in done.stdout


def test_an_unknown_tag_is_refused() -> None:
    with pytest.raises(SerdeError, match="no decoder is registered for 'mystery'"):
        DEFAULT_SERDE.loads('{"__turnout__": "mystery", "v": 1}')


@pytest.mark.parametrize(
    ("tag", "module"),
    [
        ("langchain:message", "turnout.integrations.langchain"),
        ("llamaindex:ChatMessage", "turnout.integrations.llamaindex"),
    ],
    ids=["langchain", "llamaindex"],
)
def test_a_missing_adapter_decoder_says_which_adapter_to_import(tag: str, module: str) -> None:
    with pytest.raises(SerdeError, match=f"no decoder is registered for '{tag}'") as info:
        Serde().loads(json.dumps({"__turnout__": tag, "v": {}}))
    assert f"import {module}" in str(info.value)
    assert "serde.register" not in str(info.value)


def test_loading_a_record_without_its_adapter_names_the_import_and_keeps_the_app(
    tmp_path: Any,
) -> None:
    """A record whose value needs an adapter's decoder is intact: no advice to delete the app."""
    from turnout import State
    from turnout.core.errors import PersistenceError
    from turnout.core.sqlite import SQLitePersister

    writer = Serde()
    writer.register(Point, encode=lambda p: [p.x, p.y], decode=tuple, name="langchain:message")
    db = tmp_path / "apps.db"
    with SQLitePersister(db, serde=writer) as persister:
        persister.save(None, "app-1", 0, "a", State({"m": Point(1, 2)}), "completed")
    with SQLitePersister(db, serde=Serde()) as persister, pytest.raises(PersistenceError) as info:
        persister.load(None, "app-1")
    message = str(info.value)
    assert "import turnout.integrations.langchain" in message
    assert "delete the app" not in message
    assert "app-1" in message


@pytest.mark.parametrize(
    "offset",
    [
        dt.timedelta(microseconds=1),
        -dt.timedelta(hours=3, seconds=7, microseconds=5),
        dt.timedelta(hours=5, minutes=30),
    ],
    ids=["one-microsecond", "negative-with-seconds", "whole-minutes"],
)
def test_datetimes_and_times_keep_a_utc_offset_with_microseconds(offset: dt.timedelta) -> None:
    """An offset with seconds and microseconds comes back exactly (found by hypothesis)."""
    tz = dt.timezone(offset)
    for value in (dt.datetime(2000, 1, 1, 2, 3, 4, 5, tzinfo=tz), dt.time(1, 2, 3, 4, tzinfo=tz)):
        back = DEFAULT_SERDE.loads(DEFAULT_SERDE.dumps(value))
        assert back == value
        assert back.utcoffset() == offset
