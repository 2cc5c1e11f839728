"""Burr's pydantic serde plugin on turnout: Burr's stored form, and loading that builds only
classes this process registered (or serialised itself), never one the data names."""

from __future__ import annotations

import json
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import pytest

pydantic = pytest.importorskip("pydantic")

from turnout import ApplicationBuilder, State, action  # noqa: E402
from turnout.core.errors import SerdeError  # noqa: E402
from turnout.core.serde import DEFAULT_SERDE, KEY  # noqa: E402
from turnout.core.sqlite import SQLitePersister  # noqa: E402
from turnout.integrations.serde import pydantic as plugin  # noqa: E402


class Order(pydantic.BaseModel):
    item: str
    quantity: int = 1

    class Line(pydantic.BaseModel):
        sku: str


class NeverSerialised(pydantic.BaseModel):
    """A model no test serialises, so only a registration makes it loadable."""

    name: str


class Registered(pydantic.BaseModel):
    name: str


def _stored(cls: type, **fields: Any) -> dict[str, Any]:
    return {KEY: "pydantic", "__pydantic_class": f"{cls.__module__}.{cls.__qualname__}", **fields}


@pytest.fixture
def no_allowlist() -> Any:
    yield
    plugin.set_allowlist(None)


def test_a_model_is_stored_in_burrs_form_and_loads_back() -> None:
    data = State({"order": Order(item="tea", quantity=2)}).serialize()
    assert data["order"] == {
        "item": "tea",
        "quantity": 2,
        KEY: "pydantic",
        "__pydantic_class": f"{__name__}.Order",
    }
    json.dumps(data)
    assert State.deserialize(data)["order"] == Order(item="tea", quantity=2)


def test_a_nested_model_class_round_trips() -> None:
    data = State({"line": Order.Line(sku="x1")}).serialize()
    assert data["line"]["__pydantic_class"] == f"{__name__}.Order.Line"
    assert State.deserialize(data)["line"] == Order.Line(sku="x1")


def test_an_unregistered_class_is_refused_with_the_call_that_allows_it() -> None:
    with pytest.raises(SerdeError, match="NeverSerialised") as info:
        State.deserialize({"x": _stored(NeverSerialised, name="a")})
    assert "DEFAULT_SERDE.register_type(NeverSerialised)" in str(info.value)
    assert isinstance(info.value, ValueError)


def test_a_class_registered_with_the_serde_loads() -> None:
    with pytest.raises(SerdeError):
        State.deserialize({"x": _stored(Registered, name="a")})
    DEFAULT_SERDE.register_type(Registered)
    assert State.deserialize({"x": _stored(Registered, name="a")})["x"] == Registered(name="a")


@pytest.mark.parametrize(
    "name",
    ["os.system", "subprocess.Popen", "builtins.eval", "no_such_module_xyz.Model", "Order"],
    ids=["function", "class", "builtin", "missing-module", "no-module"],
)
def test_a_payload_naming_other_code_is_refused_and_nothing_is_imported(name: str) -> None:
    before = set(sys.modules)
    with pytest.raises(SerdeError):
        State.deserialize({"x": {KEY: "pydantic", "__pydantic_class": name, "cmd": "true"}})
    assert "no_such_module_xyz" not in sys.modules
    assert set(sys.modules) - before <= {"turnout.integrations.serde.pydantic"}


def test_burrs_allowlist_narrows_loading_to_its_modules(no_allowlist: Any) -> None:
    data = State({"order": Order(item="tea")}).serialize()
    with pytest.raises(SerdeError, match="not in the allowlist"):
        State.deserialize(data, allowlist=["somewhere.else"])
    assert State.deserialize(data, allowlist=[__name__])["order"] == Order(item="tea")
    plugin.set_allowlist([__name__])
    assert State.deserialize(data)["order"] == Order(item="tea")


def test_set_allowlist_registers_its_modules_and_warns_about_nothing(no_allowlist: Any) -> None:
    plugin.set_allowlist([__name__])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loaded = State.deserialize({"x": _stored(NeverSerialised, name="b")})
    assert loaded["x"] == NeverSerialised(name="b")


@action(reads=[], writes=["order"])
def place(state: State) -> State:
    return state.update(order=Order(item="coffee", quantity=3))


def test_persisters_keep_storing_models_in_turnouts_own_form(tmp_path: Path) -> None:
    State({"warm": Order(item="x")}).serialize()  # the plugin is loaded
    with SQLitePersister(tmp_path / "s.db") as persister:
        app = (
            ApplicationBuilder()
            .with_actions(place)
            .with_transitions()
            .with_entrypoint("place")
            .with_state_persister(persister)
            .with_identifiers(app_id="shop")
            .build()
        )
        app.step()
        loaded = persister.load("", "shop")
    assert loaded is not None
    assert loaded["state"]["order"] == Order(item="coffee", quantity=3)
    stored = (tmp_path / "s.db").read_bytes()
    assert b"coffee" in stored  # the record is in the file read
    assert b"__pydantic_class" not in stored


def test_a_huge_dotted_class_name_is_refused_at_once() -> None:
    """Each way of splitting the stored name into module and class is one lookup: a name of
    100,000 parts must be refused by its size, not tried 100,000 times (gigabytes of strings)."""
    name = "a." * 100_000 + "Model"
    stored = {"m": {KEY: "pydantic", "__pydantic_class": name}}
    started = time.perf_counter()
    with pytest.raises(SerdeError, match="characters"):
        State.deserialize(stored)
    assert time.perf_counter() - started < 1


def test_burrs_security_warning_name_is_turnouts_one_warning_class() -> None:
    """A filter on Burr's ``serde.pydantic.SecurityWarning`` is a filter on turnout's (which the
    pickle plugin issues), not on a second class nothing raises."""
    from turnout.core.errors import SecurityWarning
    from turnout.integrations.serde import pickle as pickle_plugin

    assert plugin.SecurityWarning is SecurityWarning is pickle_plugin.SecurityWarning
