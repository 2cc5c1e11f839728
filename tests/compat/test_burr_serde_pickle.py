"""Burr's pickle serde plugin (``turnout.integrations.serde.pickle``): registered classes are
pickled by Burr's serde API and by turnout's persisters, and loaded back only through an
allowlist, so a crafted pickle cannot run code."""

from __future__ import annotations

import pickle
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from turnout.core import ApplicationBuilder, State, action
from turnout.core.errors import SecurityWarning, SerdeError
from turnout.core.serde import KEY
from turnout.core.sqlite import SQLitePersister
from turnout.core.tracking import LocalTracker
from turnout.integrations.serde import pickle as pickle_serde
from turnout.integrations.serde.pickle import (
    _is_allowed,
    register_type_to_pickle,
    set_pickle_serde_allowlist,
)


class Customer:
    def __init__(self, name: str) -> None:
        self.name = name


class Ticket:
    def __init__(self, owner: Customer) -> None:
        self.owner = owner


class Item:
    def __init__(self, label: str) -> None:
        self.label = label


class Box:
    def __init__(self, item: Item) -> None:
        self.item = item


class _RunsCode:
    def __reduce__(self) -> tuple[Any, ...]:
        return (int, ("7",))  # stands for any callable a crafted pickle could name


@pytest.fixture(autouse=True)
def _fresh_plugin() -> Iterator[None]:
    set_pickle_serde_allowlist(None)
    pickle_serde._warned_call_sites.clear()
    yield
    set_pickle_serde_allowlist(None)
    pickle_serde._warned_call_sites.clear()


def _crafted() -> dict[str, Any]:
    return {"c": {KEY: "pickle", "value": pickle.dumps(_RunsCode())}}


def test_a_registered_class_round_trips_with_one_security_warning() -> None:
    register_type_to_pickle(Customer)
    data = State({"c": Customer("ann")}).serialize()
    assert data["c"][KEY] == "pickle"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first = State.deserialize(data)
        second = State.deserialize(data)
    assert (first["c"].name, second["c"].name) == ("ann", "ann")
    assert [w.category for w in caught] == [SecurityWarning]
    assert "allowlist" in str(caught[0].message)


def test_without_an_allowlist_only_the_registered_class_itself_loads() -> None:
    register_type_to_pickle(Customer)
    with pytest.raises(SerdeError, match=r"builtins\.int, which is not in the pickle serde"):
        State.deserialize(_crafted())


def test_a_crafted_pickle_is_refused_before_anything_runs() -> None:
    register_type_to_pickle(Customer, allowlist=[(__name__, "Customer")])
    with pytest.raises(ValueError, match="not in the pickle serde allowlist"):
        State.deserialize(_crafted())


def test_objects_of_other_classes_inside_need_the_allowlist() -> None:
    register_type_to_pickle(Box)  # Item is registered nowhere
    data = State({"b": Box(Item("bo"))}).serialize()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SecurityWarning)
        with pytest.raises(SerdeError, match=r"Item, which is not in the pickle serde allowlist"):
            State.deserialize(data)
    register_type_to_pickle(Box, allowlist=[(__name__, "*")])
    assert State.deserialize(data)["b"].item.label == "bo"


def test_the_process_allowlist_applies_to_registrations_without_one() -> None:
    set_pickle_serde_allowlist([(__name__, "*")])
    register_type_to_pickle(Ticket)
    data = State({"t": Ticket(Customer("cy"))}).serialize()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an allowlist is configured: no warning
        assert State.deserialize(data)["t"].owner.name == "cy"
    with pytest.raises(SerdeError, match="not in the pickle serde allowlist"):
        State.deserialize(_crafted())


def test_an_allowlist_given_when_loading_wins() -> None:
    register_type_to_pickle(Customer, allowlist=[(__name__, "Customer")])
    data = State({"c": Customer("di")}).serialize()
    with pytest.raises(SerdeError, match="not in the pickle serde allowlist"):
        State.deserialize(data, allowlist=[("elsewhere", "Other")])
    assert State.deserialize(data, allowlist=[(__name__, "Customer")])["c"].name == "di"


@pytest.mark.parametrize(
    ("allowlist", "allowed"),
    [
        ([("m", "C")], True),
        ([("m", "*")], True),
        ([("other", "*")], False),
        ([("m", "D")], False),
        ([], False),
    ],
    ids=["exact", "module-wildcard", "other-module", "other-name", "empty"],
)
def test_is_allowed_matches_module_and_name(
    allowlist: list[tuple[str, str]], allowed: bool
) -> None:
    assert _is_allowed("m", "C", allowlist) is allowed


def test_a_malformed_allowlist_is_refused_at_once() -> None:
    with pytest.raises(SerdeError, match=r"\(module, name\) pairs"):
        register_type_to_pickle(Customer, allowlist=["myapp.models.Customer"])  # type: ignore[list-item]


def test_a_persister_saves_and_loads_a_registered_class(tmp_path: Path) -> None:
    register_type_to_pickle(Customer, allowlist=[(__name__, "Customer")])
    with SQLitePersister(tmp_path / "app.db") as persister:
        persister.save("pk", "a", 0, "start", State({"c": Customer("ed")}), "completed")
        loaded = persister.load("pk", "a")
    assert loaded is not None
    assert isinstance(loaded.state["c"], Customer)
    assert loaded.state["c"].name == "ed"


class Outer:
    class Inner:
        def __init__(self, label: str) -> None:
            self.label = label


def _calls(module: str, name: str, argument: str) -> bytes:
    """A protocol-4 pickle calling ``module``'s ``name`` (dotted: attributes walked from it)."""

    def text(value: str) -> bytes:
        encoded = value.encode()
        return pickle.SHORT_BINUNICODE + bytes([len(encoded)]) + encoded + pickle.MEMOIZE

    return (
        pickle.PROTO + bytes([4]) + text(module) + text(name) + pickle.STACK_GLOBAL
        + text(argument) + pickle.TUPLE1 + pickle.REDUCE + pickle.STOP
    )  # fmt: skip


@pytest.mark.parametrize(
    "name",
    ["pickle.loads", "warnings.warn", "Path.home", "register_type_to_pickle", "Customer.__init__"],
    ids=["module-attribute", "imported-module", "imported-class", "imported-function", "dunder"],
)
def test_a_module_wildcard_allows_only_what_the_module_defines(name: str) -> None:
    """("module", "*") vouches for the module's own classes, not for everything reachable from
    its namespace: a dotted name walks out of it (this module imports ``pickle``), and a name it
    imported comes from elsewhere."""
    register_type_to_pickle(Customer, allowlist=[(__name__, "*")])
    crafted = {"x": {KEY: "pickle", "value": _calls(__name__, name, "data")}}
    with pytest.raises(SerdeError, match="not in the pickle serde allowlist"):
        State.deserialize(crafted)
    with pytest.raises(SerdeError, match="not in the pickle serde allowlist"):
        State.deserialize(crafted, allowlist=[(__name__, "*")])


def test_a_module_wildcard_still_allows_its_own_nested_classes() -> None:
    register_type_to_pickle(Outer.Inner, allowlist=[(__name__, "*")])
    data = State({"i": Outer.Inner("in")}).serialize()
    assert State.deserialize(data)["i"].label == "in"


def test_the_tracker_logs_and_loads_a_registered_class(tmp_path: Path) -> None:
    register_type_to_pickle(Customer, allowlist=[(__name__, "Customer")])

    @action(reads=[], writes=["c"])
    def sign_up(state: State) -> State:
        return state.update(c=Customer("ann"))

    tracker = LocalTracker("pickles", tmp_path / "tracking")
    app = (
        ApplicationBuilder()
        .with_actions(sign_up)
        .with_transitions()
        .with_entrypoint("sign_up")
        .with_tracker(tracker)
        .with_identifiers(app_id="a")
        .build()
    )
    app.step()
    assert '"pickle:' in next((tmp_path / "tracking").rglob("log.jsonl")).read_text()
    loaded = tracker.load(None, "a")
    assert loaded is not None
    assert isinstance(loaded["state"]["c"], Customer)
    assert loaded["state"]["c"].name == "ann"
