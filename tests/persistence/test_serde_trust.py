"""Stored data is untrusted: loading it produces values and never calls anything it names.

Crafted payloads (the issue's ``subprocess:Popen``, ``os:system``, ``builtins:eval``, look-alikes
in a registered module) are refused with ``SerdeError`` before anything is called, whether they
reach ``Serde.decode`` directly, a persister's row or a tracking log; malformed payloads of every
shape raise ``SerdeError``, never a raw built-in error.
"""

from __future__ import annotations

import json
import pickle
import sqlite3
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import pytest

from tests.persistence import serde_sentinels as sentinels
from tests.persistence.samples import Model, Point
from turnout import ApplicationBuilder, State, action
from turnout.core.errors import PersistenceError, SerdeError, TurnoutError
from turnout.core.serde import DEFAULT_SERDE, MAX_DEPTH, Serde, type_name
from turnout.core.sqlite import SQLitePersister
from turnout.core.tracking import LocalTracker
from turnout.core.tracklog import dump_line

SENTINELS = "tests.persistence.serde_sentinels"

INT_TEXT_LIMIT = getattr(sys, "get_int_max_str_digits", lambda: 0)()  # 0: no limit
needs_int_limit = pytest.mark.skipif(
    not INT_TEXT_LIMIT, reason="this Python writes ints of any length as text"
)


@pytest.fixture
def calls() -> list[str]:
    sentinels.CALLS.clear()
    return sentinels.CALLS


def trusting_serde() -> Serde:
    """A registry that vouches for the sentinel module and for the modules the payloads name."""
    serde = Serde()
    serde.register_module(SENTINELS, "subprocess", "os", "builtins")
    return serde


def touch_payload(target: Path, kind: str = "enum", name: str = "subprocess:Popen") -> Any:
    return {"__turnout__": kind, "type": name, "v": ["touch", str(target)]}


# -- the issue's payload and its relatives ------------------------------------------------------


def test_the_issue_payload_creates_no_file_and_raises(tmp_path: Path) -> None:
    target = tmp_path / "x"
    with pytest.raises(SerdeError, match="subprocess:Popen"):
        DEFAULT_SERDE.decode(touch_payload(target))
    assert not target.exists()


@pytest.mark.parametrize("kind", ["enum", "dataclass", "pydantic"])
@pytest.mark.parametrize(
    "name",
    ["subprocess:Popen", "os:system", "builtins:eval", "builtins:exec", "subprocess:run"],
)
@pytest.mark.parametrize("serde", [DEFAULT_SERDE, trusting_serde()], ids=["default", "trusting"])
def test_a_payload_naming_a_callable_is_refused_even_in_a_registered_module(
    tmp_path: Path, kind: str, name: str, serde: Serde
) -> None:
    target = tmp_path / "x"
    data = touch_payload(target, kind, name)
    if name.startswith("builtins"):
        data["v"] = f"open({str(target)!r}, 'w')"
    with pytest.raises(SerdeError, match=name):
        serde.decode({"state": [data]})
    assert not target.exists()


@pytest.mark.parametrize(
    ("kind", "name"),
    [
        ("dataclass", "NotAnything"),
        ("enum", "NotAnything"),
        ("pydantic", "NotAnything"),  # has model_validate, is no BaseModel
        ("pydantic", "Shaped"),
        ("dataclass", "NotAnything.Inner"),
        ("dataclass", "function"),
        ("enum", "WithMeta"),
        ("dataclass", "WithMeta"),
        ("enum", "thing"),
        ("dataclass", "Popen"),  # re-exported there: not the class's own name
        ("enum", "ImportedColor"),  # an enum, but named through another module
        ("enum", "Spot"),  # a dataclass stored as an enum
        ("dataclass", "Mood"),
        ("enum", "missing"),  # reaches the module's __getattr__ if looked up with getattr
        ("enum", "CALLS"),
    ],
)
def test_a_registered_module_yields_only_plain_enums_dataclasses_and_models(
    calls: list[str], kind: str, name: str
) -> None:
    serde = trusting_serde()
    with pytest.raises(SerdeError, match=f"{SENTINELS}:{name}"):
        serde.decode({"__turnout__": kind, "type": f"{SENTINELS}:{name}", "v": {}})
    assert calls == []


def test_classes_of_a_registered_module_load_in_a_fresh_registry(calls: list[str]) -> None:
    text = Serde().dumps({"mood": sentinels.Mood.ANGRY, "spot": sentinels.Spot(3, "here")})
    fresh = Serde()
    with pytest.raises(SerdeError, match=r"serde\.register_module\('tests\.persistence"):
        fresh.loads(text)
    fresh.register_module(sentinels)  # a module object works as well as its name
    assert fresh.loads(text) == {"mood": sentinels.Mood.ANGRY, "spot": sentinels.Spot(3, "here")}


def test_register_type_vouches_for_a_pydantic_shaped_class_explicitly(calls: list[str]) -> None:
    text = Serde().dumps({"s": sentinels.Shaped(5)})
    serde = trusting_serde()
    with pytest.raises(SerdeError, match="is a pydantic model, but"):
        serde.loads(text)
    assert calls == []
    serde.register_type(sentinels.Shaped)
    assert serde.loads(text) == {"s": sentinels.Shaped(5)}
    assert calls == ["Shaped.model_validate"]


def test_a_registered_class_is_only_built_as_its_own_kind() -> None:
    serde = Serde()
    serde.register_type(Point)
    with pytest.raises(SerdeError, match="is an enum, but the registered class is not one"):
        serde.decode({"__turnout__": "enum", "type": type_name(Point), "v": 1})


@pytest.mark.parametrize(
    "cls", [sentinels.Tricky, sentinels.function, Path, 3], ids=["class", "function", "path", "int"]
)
def test_register_type_takes_only_enums_dataclasses_and_models(cls: Any) -> None:
    with pytest.raises(SerdeError, match=r"register_type\(\) takes enums"):
        Serde().register_type(cls)


def test_register_module_takes_a_module_or_its_name() -> None:
    with pytest.raises(SerdeError, match="register_module"):
        Serde().register_module(3)  # type: ignore[arg-type]


def test_a_pickled_registry_keeps_its_registered_modules_and_types() -> None:
    """A tracker or persister sent to a process pool takes its Serde along."""
    serde = Serde()
    serde.register_module(sentinels)
    serde.register_type(Point)
    copy = pickle.loads(pickle.dumps(serde))
    text = Serde().dumps([sentinels.Mood.CALM, Point(1, 2)])
    assert copy.loads(text) == [sentinels.Mood.CALM, Point(1, 2)]


def test_a_type_this_registry_encoded_loads_back_in_the_same_process() -> None:
    serde = Serde()
    text = serde.dumps({"p": Point(1, 2), "m": Model("a", 1)})
    assert serde.loads(text) == {"p": Point(1, 2), "m": Model("a", 1)}


def test_a_fresh_process_must_register_the_types_it_loads(tmp_path: Path) -> None:
    """DEFAULT_SERDE remembers what it encoded, never what another process did."""
    db = tmp_path / "apps.db"
    with SQLitePersister(db) as persister:
        persister.save(None, "fresh", 0, "a", State({"p": Point(1, 2)}), "completed")
    code = (
        "import sys\n"
        "from tests.persistence.samples import Point\n"
        "from turnout.core.errors import PersistenceError\n"
        "from turnout.core.serde import DEFAULT_SERDE\n"
        "from turnout.core.sqlite import SQLitePersister\n"
        "with SQLitePersister(sys.argv[1]) as persister:\n"
        "    try:\n"
        "        persister.load(None, 'fresh')\n"
        "    except PersistenceError as exc:\n"
        "        print('refused:', exc)\n"
        "    DEFAULT_SERDE.register_type(Point)\n"
        "    print('loaded:', persister.load(None, 'fresh').state['p'])\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(db)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        cwd=Path(__file__).parents[2],
    )
    refused, loaded = done.stdout.splitlines()
    assert "DEFAULT_SERDE.register_type(Point)" in refused
    assert "The record itself is intact" in refused
    assert loaded == "loaded: Point(x=1, y=2)"


# -- crafted data reached through the stores ---------------------------------------------------


def crafted_row(tmp_path: Path, app_id: str, payload: str) -> Path:
    """A SQLite database whose step 0 of ``app_id`` holds ``payload`` (JSON text) as an attacker
    with write access to it would leave it."""
    db = tmp_path / "apps.db"
    with SQLitePersister(db) as persister:
        persister.save(None, app_id, 0, "a", State({"v": 1}), "completed")
    with sqlite3.connect(db) as connection:
        connection.execute(
            "UPDATE turnout_steps SET payload = ? WHERE app_id = ?", (payload, app_id)
        )
    connection.close()
    return db


def test_a_crafted_persister_row_creates_no_file(tmp_path: Path) -> None:
    target = tmp_path / "x"
    db = crafted_row(tmp_path, "crafted", json.dumps({"v": touch_payload(target)}))
    with SQLitePersister(db) as persister, pytest.raises(TurnoutError, match="subprocess:Popen"):
        persister.load(None, "crafted")
    assert not target.exists()


@action(reads=["v"], writes=["v"])
def bump(state: State) -> State:
    return state.update(v=state["v"] + 1)


def test_a_crafted_tracking_log_creates_no_file(tmp_path: Path) -> None:
    target = tmp_path / "x"
    home = tmp_path / "home"
    app = (
        ApplicationBuilder()
        .with_actions(bump)
        .with_transitions(("bump", "bump"))
        .with_state(v=1)
        .with_entrypoint("bump")
        .with_tracker(LocalTracker("trust", home))
        .with_identifiers(app_id="crafted-log")
        .build()
    )
    app.step()
    log = home / "trust" / "crafted-log" / "log.jsonl"
    crafted = json.dumps(touch_payload(target), separators=(",", ":"))
    log.write_bytes(rewrite_log(log, '"snapshot":{"v":2}', f'"snapshot":{{"v":{crafted}}}'))
    with pytest.raises(TurnoutError, match="subprocess:Popen"):
        (
            ApplicationBuilder()
            .with_actions(bump)
            .with_transitions(("bump", "bump"))
            .initialize_from(
                LocalTracker("trust", home),
                resume_at_next_action=True,
                default_state={"v": 0},
                default_entrypoint="bump",
            )
            .with_identifiers(app_id="crafted-log")
            .build()
        )
    assert not target.exists()


# -- malformed payloads -------------------------------------------------------------------------

MALFORMED = {
    "tag-not-a-string": {"__turnout__": 3, "v": 1},
    "tag-null": {"__turnout__": None},
    "no-v": {"__turnout__": "tuple"},
    "unknown-tag": {"__turnout__": "nope", "v": 1},
    "tuple-of-a-dict": {"__turnout__": "tuple", "v": {"a": 1}},
    "set-of-lists": {"__turnout__": "set", "v": [[1]]},
    "frozenset-of-dicts": {"__turnout__": "frozenset", "v": [{}]},
    "dict-not-pairs": {"__turnout__": "dict", "v": [[1, 2, 3]]},
    "dict-of-a-string": {"__turnout__": "dict", "v": "ab"},
    "dict-unhashable-key": {"__turnout__": "dict", "v": [[{"a": 1}, 2]]},
    "dict-nested-list-key": {"__turnout__": "dict", "v": [[[[1]], 2]]},
    "float-number": {"__turnout__": "float", "v": 1},
    "float-text": {"__turnout__": "float", "v": "lots"},
    "bytes-not-base64": {"__turnout__": "bytes", "v": "***"},
    "bytes-list": {"__turnout__": "bytes", "v": [1]},
    "datetime-bad": {"__turnout__": "datetime", "v": "yesterday"},
    "date-int": {"__turnout__": "date", "v": 20240101},
    "time-bad": {"__turnout__": "time", "v": "25:99"},
    "timedelta-short": {"__turnout__": "timedelta", "v": [1]},
    "timedelta-huge": {"__turnout__": "timedelta", "v": [10**12, 0, 0]},
    "timedelta-text": {"__turnout__": "timedelta", "v": ["1", 0, 0]},
    "decimal-bad": {"__turnout__": "decimal", "v": "one"},
    "uuid-bad": {"__turnout__": "uuid", "v": "not-a-uuid"},
    "path-int": {"__turnout__": "path", "v": 5},
    "complex-text": {"__turnout__": "complex", "v": ["a", "b"]},
    "complex-short": {"__turnout__": "complex", "v": [1]},
    "as-a-list": {"__turnout__": "as", "v": [1]},
    "enum-no-type": {"__turnout__": "enum", "v": 1},
    "enum-type-int": {"__turnout__": "enum", "type": 5, "v": 1},
    "enum-type-no-colon": {"__turnout__": "enum", "type": "Mood", "v": 1},
    "enum-no-member": {"__turnout__": "enum", "type": f"{SENTINELS}:Mood", "v": "sad"},
    "enum-unhashable-value": {"__turnout__": "enum", "type": f"{SENTINELS}:Mood", "v": [1]},
    "dataclass-fields-list": {"__turnout__": "dataclass", "type": f"{SENTINELS}:Spot", "v": [1]},
    "dataclass-missing-field": {"__turnout__": "dataclass", "type": f"{SENTINELS}:Spot", "v": {}},
    "dataclass-unknown-field": {
        "__turnout__": "dataclass",
        "type": f"{SENTINELS}:Spot",
        "v": {"x": 1, "__class__": 2},
    },
    "pickle-without-opt-in": {"__turnout__": "pickle", "v": "gASVAAAA"},
    "codec-raises": {"__turnout__": "money", "v": "not cents"},
}


@pytest.mark.parametrize("payload", list(MALFORMED.values()), ids=list(MALFORMED))
def test_a_malformed_payload_raises_serde_error_naming_where(payload: Any) -> None:
    serde = trusting_serde()
    serde.register(complex, encode=repr, decode=lambda cents: 1 / int(cents), name="money")
    with pytest.raises(SerdeError) as info:
        serde.decode({"state": {"deep": [payload]}})
    assert info.value.path.startswith("$.state.deep[0]")
    assert "cannot load stored data at $.state.deep[0]" in str(info.value)


def test_a_pickle_payload_with_bad_base64_is_refused_even_when_pickle_is_allowed() -> None:
    with pytest.raises(SerdeError, match="base64"):
        Serde(allow_pickle=True).decode({"__turnout__": "pickle", "v": "***"})


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 3_000, 100_000])
def test_stored_json_nested_too_deep_is_refused(depth: int) -> None:
    text = "[" * depth + "]" * depth
    with pytest.raises(SerdeError, match=f"deeper than {MAX_DEPTH}"):
        DEFAULT_SERDE.loads(text)
    data: Any = []
    for _ in range(depth - 1):
        data = [data]
    with pytest.raises(SerdeError, match=f"deeper than {MAX_DEPTH}"):
        DEFAULT_SERDE.decode(data)


def test_stored_text_that_is_not_json_is_refused() -> None:
    with pytest.raises(SerdeError, match="not JSON"):
        DEFAULT_SERDE.loads("{not json")


@needs_int_limit
def test_stored_json_holding_an_int_too_long_to_read_is_refused() -> None:
    with pytest.raises(SerdeError, match="not JSON"):
        DEFAULT_SERDE.loads("1" * (INT_TEXT_LIMIT + 1))


# -- values a persister must refuse, with the path ------------------------------------------------


class BadRepr:
    def __repr__(self) -> str:
        raise RuntimeError("no repr")

    def __hash__(self) -> int:
        return 1


def self_containing() -> list[Any]:
    items: list[Any] = [1]
    items.append(items)
    return items


def nested(depth: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth - 1):
        value = [value]
    return value


UNSAVEABLE = {
    "huge-int": pytest.param(
        10**5000, "bits, more digits than Python writes as text", marks=needs_int_limit
    ),
    "self-containing": (self_containing(), "contains itself"),
    "dict-containing-itself": (None, "contains itself"),
    "nested-3000": (nested(3_000), f"deeper than {MAX_DEPTH} levels"),
    "bad-repr": (BadRepr(), "BadRepr values are not supported"),
    "bad-repr-key": ({BadRepr(): 1, "x": object()}, "values are not supported"),
}


@pytest.mark.parametrize(("value", "message"), list(UNSAVEABLE.values()), ids=list(UNSAVEABLE))
def test_a_persister_refuses_an_unsaveable_value_naming_its_path(
    tmp_path: Path, value: Any, message: str
) -> None:
    if value is None:
        value = {"a": 1}
        value["self"] = value
    with SQLitePersister(tmp_path / "apps.db") as persister:
        persister.save(None, "refuse", 0, "a", State({"v": 1}), "completed")
        with pytest.raises(SerdeError, match=message) as info:
            persister.save(None, "refuse", 1, "a", State({"v": value}), "completed")
        assert info.value.path.startswith("$.v")
        assert f"at {info.value.path[:40]}" in str(info.value)
        loaded = persister.load(None, "refuse")
        assert loaded is not None
        assert loaded.sequence_id == 0  # nothing was written


def test_the_cycle_error_names_where_the_container_first_appears() -> None:
    with pytest.raises(SerdeError, match=r"container at \$\.v\[1\]\)") as info:
        DEFAULT_SERDE.encode({"v": (0, self_containing())})
    assert info.value.path == "$.v[1][1]"


def test_values_nested_up_to_the_limit_round_trip() -> None:
    deepest = nested(MAX_DEPTH)
    assert DEFAULT_SERDE.loads(DEFAULT_SERDE.dumps(deepest)) == deepest
    with pytest.raises(SerdeError, match="deeper than"):
        DEFAULT_SERDE.dumps([deepest])


def test_a_shared_but_acyclic_value_is_saved_twice() -> None:
    shared = [1, 2]
    assert DEFAULT_SERDE.loads(DEFAULT_SERDE.dumps({"a": shared, "b": shared})) == {
        "a": [1, 2],
        "b": [1, 2],
    }


def test_a_codec_that_raises_names_the_path() -> None:
    serde = Serde()
    serde.register(Point, encode=lambda p: 1 / 0, decode=lambda d: d)
    with pytest.raises(SerdeError, match=r"at \$\.p: the encoder of .* raised ZeroDivisionError"):
        serde.encode({"p": Point(1, 2)})


@needs_int_limit
def test_a_step_writing_a_huge_int_fails_its_save_with_the_path(tmp_path: Path) -> None:
    @action(reads=["v"], writes=["v"])
    def explode(state: State) -> State:
        return state.update(v=10**5000)

    with SQLitePersister(tmp_path / "apps.db") as persister:
        app = (
            ApplicationBuilder()
            .with_actions(explode)
            .with_transitions(("explode", "explode"))
            .with_state(v=1)
            .with_entrypoint("explode")
            .with_state_persister(persister)
            .with_identifiers(app_id="huge")
            .build()
        )
        with pytest.raises(SerdeError, match=r"at \$\.v: this int has"):
            app.step()


def test_persistence_errors_of_crafted_rows_are_turnout_errors(tmp_path: Path) -> None:
    db = crafted_row(tmp_path, "deep", '{"v":' + "[" * 5_000 + "]" * 5_000 + "}")
    with SQLitePersister(db) as persister, pytest.raises(PersistenceError, match="sequence id 0"):
        persister.load(None, "deep")


# -- the other readers of stored data: test cases and OpenTelemetry export ----------------------


def crafted_log(home: Path, target: Path, app_id: str) -> None:
    """A tracked app whose logged state and attribute are replaced by the Popen payload."""

    @action(reads=["v"], writes=["v"])
    def note(state: State, __tracer: Any) -> State:
        __tracer.log_attributes(meta={"marker": 1})
        return state.update(v={"marker": 1})

    tracker = LocalTracker("trust", home)
    app = (
        ApplicationBuilder()
        .with_actions(note)
        .with_transitions(("note", "note"))
        .with_state(v={"marker": 0})
        .with_entrypoint("note")
        .with_tracker(tracker)
        .with_identifiers(app_id=app_id)
        .build()
    )
    app.step()
    tracker.close()
    log = home / "trust" / app_id / "log.jsonl"
    crafted = json.dumps(touch_payload(target), separators=(",", ":"))
    data = rewrite_log(log, '{"marker":1}', crafted, '{"marker":0}', crafted)
    assert data.count(b'"subprocess:Popen"') >= 3  # the initial state, the attribute, the step
    log.write_bytes(data)


def rewrite_log(log: Path, *replacements: str) -> bytes:
    """``log``'s lines with each ``old, new`` pair of ``replacements`` applied to their JSON
    text and checksummed again, as someone forging a log would; asserts each ``old`` occurs."""
    pairs = list(zip(replacements[::2], replacements[1::2], strict=True))
    found = {old: 0 for old, _ in pairs}
    lines = []
    for line in log.read_text().splitlines():
        data = json.loads(line)
        data.pop("crc", None)
        text = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
        for old, new in pairs:
            found[old] += text.count(old)
            text = text.replace(old, new)
        lines.append(dump_line(json.loads(text)))
    assert all(found.values()), found
    return b"".join(lines)


def test_turnout_test_case_on_a_crafted_log_creates_no_file(tmp_path: Path) -> None:
    from turnout.cli import main

    target = tmp_path / "x"
    crafted_log(tmp_path / "home", target, "crafted-case")
    argv = ["test-case", "--dir", str(tmp_path / "home"), "--project", "trust"]
    argv += ["--app-id", "crafted-case", "--sequence-id", "0", "--out", str(tmp_path / "c.json")]
    with pytest.raises(SystemExit, match="subprocess:Popen"):
        main(argv)
    assert not target.exists()


def test_run_case_on_a_crafted_case_creates_no_file(tmp_path: Path) -> None:
    from turnout.testing import run_case

    target = tmp_path / "x"
    case = {"action": "bump", "input_state": {"v": touch_payload(target)}, "inputs": {}}
    with pytest.raises(SerdeError, match="subprocess:Popen"):
        run_case(bump, case)
    assert not target.exists()


def test_export_otel_of_a_crafted_log_creates_no_file(tmp_path: Path) -> None:
    pytest.importorskip("opentelemetry.exporter.otlp.proto.http")
    from tests.integrations.otlp_sink import OTLPSink
    from turnout.cli import main

    target = tmp_path / "x"
    crafted_log(tmp_path / "home", target, "crafted-export")
    with OTLPSink() as sink:
        argv = ["export-otel", "--dir", str(tmp_path / "home"), "--project", "trust"]
        assert main([*argv, "--endpoint", sink.endpoint]) == 0
        assert sink.by_name("note")
    assert not target.exists()


def test_a_registered_module_yields_real_pydantic_models_only() -> None:
    pydantic = pytest.importorskip("pydantic")
    module = types.ModuleType("trust_models")
    exec(  # classes whose __module__ is the module registered below
        "import pydantic\n"
        "class User(pydantic.BaseModel):\n"
        "    name: str\n"
        "    tags: list[str] = []\n"
        "class Impostor:\n"
        "    calls = []\n"
        "    @classmethod\n"
        "    def model_validate(cls, data):\n"
        "        cls.calls.append(data)\n",
        module.__dict__,
    )
    assert issubclass(module.User, pydantic.BaseModel)
    text = Serde().dumps({"user": module.User(name="ada", tags=["x"])})
    serde = Serde()
    serde.register_module(module)
    assert serde.loads(text) == {"user": module.User(name="ada", tags=["x"])}
    with pytest.raises(SerdeError, match="is a pydantic model, but"):
        serde.decode({"__turnout__": "pydantic", "type": "trust_models:Impostor", "v": {}})
    assert module.Impostor.calls == []
