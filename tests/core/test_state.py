"""Tests for ``turnout.core.state``: the immutable ``State``, its change log and growing lists."""

from __future__ import annotations

import copy
import pickle
import random
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from turnout.core import state as _state_module
from turnout.core.errors import StateKeyError, StateOperationError, TurnoutError
from turnout.core.state import Change, State, apply_changes

# -- construction and reading ----------------------------------------------------------------------


def test_empty_state_has_no_keys() -> None:
    assert len(State()) == 0
    assert State().keys() == []
    assert State(None) == {}


def test_state_reads_like_a_dict() -> None:
    state = State({"count": 3, "name": "x"})
    assert state["count"] == 3
    assert state.get("name") == "x"
    assert len(state) == 2
    assert list(state) == ["count", "name"]


def test_get_returns_default_for_absent_key() -> None:
    state = State({"a": 1})
    assert state.get("missing") is None
    assert state.get("missing", 42) == 42
    assert state.get("a", 42) == 1


def test_get_returns_stored_falsy_value_rather_than_default() -> None:
    assert State({"a": None}).get("a", 5) is None
    assert State({"a": 0}).get("a", 5) == 0


def test_contains_reports_key_presence() -> None:
    state = State({"a": None})
    assert "a" in state
    assert "b" not in state


def test_keys_returns_a_list_in_insertion_order() -> None:
    keys = State({"b": 1, "a": 2, "c": 3}).keys()
    assert type(keys) is list
    assert keys == ["b", "a", "c"]


def test_iteration_yields_keys_in_insertion_order() -> None:
    assert list(iter(State({"z": 1, "y": 2}))) == ["z", "y"]


def test_get_all_returns_a_new_dict_of_every_value() -> None:
    state = State({"a": 1, "b": [2]})
    everything = state.get_all()
    assert type(everything) is dict
    assert everything == {"a": 1, "b": [2]}
    everything["a"] = 99
    everything["new"] = 1
    assert state == {"a": 1, "b": [2]}


def test_items_and_values_come_from_the_mapping_interface() -> None:
    state = State({"a": 1, "b": 2})
    assert list(state.items()) == [("a", 1), ("b", 2)]
    assert list(state.values()) == [1, 2]


def test_state_copies_the_initial_mapping() -> None:
    initial: dict[str, Any] = {"a": 1}
    state = State(initial)
    initial["a"] = 2
    initial["b"] = 3
    assert state == {"a": 1}


def test_state_built_from_a_state_is_equal_to_it() -> None:
    original = State({"a": 1}).append(h="x")
    assert State(original) == {"a": 1, "h": ["x"]}


def test_state_rejects_a_non_mapping() -> None:
    with pytest.raises(StateOperationError, match=r"State\(\) takes a mapping.*list"):
        State([("a", 1)])  # type: ignore[arg-type]


# -- errors on reading -----------------------------------------------------------------------------


def test_missing_key_raises_state_key_error_which_is_a_key_error() -> None:
    state = State({"a": 1})
    with pytest.raises(KeyError):
        state["missing"]
    with pytest.raises(StateKeyError) as info:
        state["missing"]
    assert isinstance(info.value, TurnoutError)
    assert info.value.key == "missing"
    assert info.value.present == ["a"]


def test_state_key_error_message_lists_present_keys_and_hints_at_declaring_the_read() -> None:
    with pytest.raises(StateKeyError) as info:
        State({"b": 1, "a": 2})["count"]
    message = str(info.value)
    assert "state has no key 'count'" in message
    assert "keys present: 'a', 'b'" in message
    assert "@action(reads=[..., 'count'])" in message
    assert "with_state(count=...)" in message


def test_state_key_error_message_says_none_when_state_is_empty() -> None:
    with pytest.raises(StateKeyError, match=r"keys present: none"):
        State()["x"]


# -- equality, repr, hashing, copying --------------------------------------------------------------


def test_state_equals_dict_with_same_items() -> None:
    assert State({"a": 1, "b": [1]}) == {"b": [1], "a": 1}
    assert {"a": 1} == State({"a": 1})  # noqa: SIM300  # the reflected comparison


def test_state_differs_from_dict_with_other_items() -> None:
    assert State({"a": 1}) != {"a": 2}
    assert State({"a": 1}) != {"a": 1, "b": 2}
    assert State({"a": 1}) != {}


def test_state_equals_state_with_same_items() -> None:
    assert State({"a": 1}) == State({"a": 1})
    assert State({"a": 1}) != State({"a": 2})


def test_state_is_not_equal_to_non_mappings() -> None:
    assert State({"a": 1}) != [("a", 1)]
    assert State() != 0
    assert State() != None  # noqa: E711


def test_states_built_differently_with_the_same_items_are_equal() -> None:
    built = State().append(h=1).append(h=2).update(n=1)
    assert built == State({"h": [1, 2], "n": 1})


def test_state_is_unhashable() -> None:
    with pytest.raises(TypeError):
        hash(State())


def test_repr_shows_the_items() -> None:
    assert repr(State({"a": 1, "b": "x"})) == "State({'a': 1, 'b': 'x'})"
    assert repr(State()) == "State({})"


def test_repr_of_an_older_state_shows_its_own_list_length() -> None:
    older = State().append(h=1)
    older.append(h=2)
    assert repr(older) == "State({'h': [1]})"


def test_pickle_round_trip_preserves_items() -> None:
    state = State({"a": 1, "nested": {"x": [1, 2]}}).append(h="m")
    restored = pickle.loads(pickle.dumps(state))
    assert type(restored) is State
    assert restored == {"a": 1, "nested": {"x": [1, 2]}, "h": ["m"]}


def test_pickle_of_an_older_state_keeps_its_own_list_length() -> None:
    older = State().append(h=1)
    newer = older.append(h=2).append(h=3)
    assert pickle.loads(pickle.dumps(older)) == {"h": [1]}
    assert pickle.loads(pickle.dumps(newer)) == {"h": [1, 2, 3]}


def test_shallow_copy_returns_the_same_immutable_state() -> None:
    state = State({"a": [1]})
    assert copy.copy(state) is state


def test_deepcopy_copies_values() -> None:
    state = State({"a": [1, [2]]}).append(h=[3])
    clone = copy.deepcopy(state)
    assert type(clone) is State
    assert clone == state
    assert clone["a"] is not state["a"]
    assert clone["a"][1] is not state["a"][1]
    assert clone["h"][0] is not state["h"][0]


def test_deepcopy_of_an_older_state_keeps_its_own_list_length() -> None:
    older = State().append(h=1)
    older.append(h=2)
    assert copy.deepcopy(older) == {"h": [1]}


# -- update ----------------------------------------------------------------------------------------


def test_update_sets_existing_and_new_keys() -> None:
    state = State({"a": 1, "b": 2}).update(a=10, c=3)
    assert state == {"a": 10, "b": 2, "c": 3}
    assert state.keys() == ["a", "b", "c"]


def test_update_replaces_a_grown_list() -> None:
    state = State().append(h=1).update(h=["fresh"]).append(h=2)
    assert state["h"] == ["fresh", 2]


def test_update_with_nothing_returns_an_equal_new_state() -> None:
    state = State({"a": 1})
    updated = state.update()
    assert updated == state
    assert updated is not state


# -- append and extend -----------------------------------------------------------------------------


def test_append_creates_a_list_for_an_absent_key() -> None:
    assert State().append(h="x")["h"] == ["x"]


def test_append_adds_one_item_to_an_existing_list() -> None:
    assert State({"h": [1]}).append(h=[2])["h"] == [1, [2]]


def test_append_to_several_keys_at_once() -> None:
    state = State({"a": [1]}).append(a=2, b=3)
    assert state == {"a": [1, 2], "b": [3]}


def test_extend_adds_every_item_of_an_iterable() -> None:
    state = State({"h": [0]}).extend(h=[1, 2])
    state = state.extend(h=(3,)).extend(h=range(4, 6)).extend(h=(i for i in (6, 7)))
    assert state["h"] == [0, 1, 2, 3, 4, 5, 6, 7]


def test_extend_creates_a_list_for_an_absent_key() -> None:
    assert State().extend(h=iter([1, 2]))["h"] == [1, 2]
    assert State().extend(h=[])["h"] == []


@pytest.mark.parametrize(
    ("initial", "call"),
    [
        ({"h": 1}, lambda s: s.append(h=2)),
        ({"h": "text"}, lambda s: s.append(h="more")),
        ({"h": (1,)}, lambda s: s.append(h=2)),
        ({"h": None}, lambda s: s.append(h=2)),
        ({"h": {"a": 1}}, lambda s: s.append(h=2)),
        ({"h": 1}, lambda s: s.extend(h=[2])),
        ({"h": "text"}, lambda s: s.extend(h=["x"])),
        ({}, lambda s: s.extend(h="abc")),
        ({}, lambda s: s.extend(h=b"abc")),
        ({}, lambda s: s.extend(h={"a": 1})),
        ({}, lambda s: s.extend(h=5)),
        ({"h": [1]}, lambda s: s.extend(h=None)),
    ],
    ids=[
        "append-to-int",
        "append-to-str",
        "append-to-tuple",
        "append-to-none",
        "append-to-dict",
        "extend-int",
        "extend-str-value",
        "extend-with-str",
        "extend-with-bytes",
        "extend-with-mapping",
        "extend-with-int",
        "extend-with-none",
    ],
)
def test_append_and_extend_reject_wrong_types(
    initial: dict[str, Any], call: Callable[[State], State]
) -> None:
    state = State(initial)
    with pytest.raises(StateOperationError):
        call(state)
    assert state == initial


def test_append_error_names_the_key_the_value_and_the_fix() -> None:
    with pytest.raises(StateOperationError) as info:
        State({"h": 5}).append(h=1)
    message = str(info.value)
    assert "'h'" in message
    assert "int: 5" in message
    assert "state.update(h=[...])" in message


def test_extend_error_suggests_append_for_a_single_item() -> None:
    with pytest.raises(StateOperationError, match=r"state\.append\(h=item\)"):
        State().extend(h="abc")


def test_state_operation_error_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        State({"h": 5}).append(h=1)


# -- increment -------------------------------------------------------------------------------------


def test_increment_adds_to_an_existing_number() -> None:
    assert State({"n": 2}).increment(n=3)["n"] == 5
    assert State({"n": 2}).increment(n=-5)["n"] == -3
    assert State({"n": 1.5}).increment(n=1)["n"] == 2.5


def test_increment_starts_an_absent_key_at_the_amount() -> None:
    assert State().increment(n=4)["n"] == 4
    assert State().increment(x=0.5)["x"] == 0.5


def test_increment_several_keys_at_once() -> None:
    assert State({"a": 1}).increment(a=1, b=2) == {"a": 2, "b": 2}


@pytest.mark.parametrize(
    ("initial", "amounts"),
    [
        ({"n": 1}, {"n": "1"}),
        ({"n": 1}, {"n": True}),
        ({"n": 1}, {"n": None}),
        ({"n": 1}, {"n": [1]}),
        ({"n": "1"}, {"n": 1}),
        ({"n": True}, {"n": 1}),
        ({"n": [1]}, {"n": 1}),
        ({"n": None}, {"n": 1}),
    ],
    ids=[
        "str-amount",
        "bool-amount",
        "none-amount",
        "list-amount",
        "str-value",
        "bool-value",
        "list-value",
        "none-value",
    ],
)
def test_increment_rejects_non_numbers(initial: dict[str, Any], amounts: dict[str, Any]) -> None:
    state = State(initial)
    with pytest.raises(StateOperationError, match=r"state\.increment\(n=\.\.\.\)"):
        state.increment(**amounts)
    assert state == initial


def test_increment_rejects_a_list_until_the_key_is_updated_to_a_number() -> None:
    state = State().append(n=1)
    with pytest.raises(StateOperationError):
        state.increment(n=1)
    assert state.update(n=0).increment(n=2)["n"] == 2


# -- wipe ------------------------------------------------------------------------------------------


def test_wipe_delete_removes_listed_keys_and_ignores_absent_ones() -> None:
    state = State({"a": 1, "b": 2, "c": 3}).wipe(delete=["a", "zzz", "c"])
    assert state == {"b": 2}


def test_wipe_keep_removes_every_other_key() -> None:
    state = State({"a": 1, "b": 2, "c": 3}).wipe(keep=["b", "zzz"])
    assert state == {"b": 2}


def test_wipe_without_arguments_deletes_everything() -> None:
    assert State({"a": 1, "b": 2}).wipe() == {}


def test_wipe_accepts_any_iterable_of_keys() -> None:
    state = State({"a": 1, "b": 2})
    assert state.wipe(delete=("a",)) == {"b": 2}
    assert state.wipe(keep={"a"}) == {"a": 1}
    assert state.wipe(delete=iter(["b"])) == {"a": 1}


def test_wipe_with_both_delete_and_keep_raises() -> None:
    with pytest.raises(StateOperationError, match=r"not both"):
        State({"a": 1}).wipe(delete=["a"], keep=["b"])


@pytest.mark.parametrize(
    "kwargs",
    [{"delete": "a"}, {"keep": "a"}],
    ids=["delete-string", "keep-string"],
)
def test_wipe_rejects_a_string_instead_of_a_list(kwargs: dict[str, Any]) -> None:
    with pytest.raises(StateOperationError, match=r"wipe\(delete=\['key'\]\)"):
        State({"a": 1, "b": 2}).wipe(**kwargs)


def test_wipe_then_append_starts_a_new_list() -> None:
    state = State().append(h=1).wipe(delete=["h"]).append(h=2)
    assert state["h"] == [2]


# -- merge and subset ------------------------------------------------------------------------------


def test_merge_with_a_dict_sets_its_keys() -> None:
    assert State({"a": 1, "b": 2}).merge({"b": 20, "c": 30}) == {"a": 1, "b": 20, "c": 30}


def test_merge_with_a_state_sets_its_keys() -> None:
    other = State({"b": 20}).append(h="x")
    assert State({"a": 1, "b": 2}).merge(other) == {"a": 1, "b": 20, "h": ["x"]}


def test_merge_with_an_older_state_uses_its_own_list_length() -> None:
    older = State().append(h=1)
    older.append(h=2)
    assert State().merge(older)["h"] == [1]


def test_merge_rejects_a_non_mapping() -> None:
    with pytest.raises(StateOperationError, match=r"merge\(\) takes a State or a mapping"):
        State().merge([("a", 1)])  # type: ignore[arg-type]


def test_subset_keeps_only_the_named_keys() -> None:
    state = State({"a": 1, "b": 2, "c": 3})
    assert state.subset("a", "c") == {"a": 1, "c": 3}
    assert state.subset() == {}


def test_subset_ignores_missing_keys_by_default() -> None:
    assert State({"a": 1}).subset("a", "zzz") == {"a": 1}


def test_subset_raises_for_a_missing_key_unless_ignore_missing() -> None:
    with pytest.raises(StateKeyError) as info:
        State({"a": 1}).subset("a", "zzz", ignore_missing=False)
    assert info.value.key == "zzz"
    assert info.value.present == ["a"]


def test_subset_with_every_key_present_and_ignore_missing_false() -> None:
    assert State({"a": 1, "b": 2}).subset("b", ignore_missing=False) == {"b": 2}


# -- immutability ----------------------------------------------------------------------------------

OPERATIONS: list[tuple[str, Callable[[State], State]]] = [
    ("update", lambda s: s.update(a=100, new=1)),
    ("append-existing", lambda s: s.append(h=99)),
    ("append-absent", lambda s: s.append(other=1)),
    ("extend", lambda s: s.extend(h=[7, 8])),
    ("increment", lambda s: s.increment(n=5)),
    ("wipe-delete", lambda s: s.wipe(delete=["a", "h"])),
    ("wipe-keep", lambda s: s.wipe(keep=["n"])),
    ("wipe-all", lambda s: s.wipe()),
    ("merge-dict", lambda s: s.merge({"a": 0, "h": []})),
    ("merge-state", lambda s: s.merge(State({"n": -1}))),
    ("subset", lambda s: s.subset("n")),
    ("get-all", lambda s: State(s.get_all())),
]


@pytest.fixture(params=["plain", "grown"], ids=["plain-lists", "grown-lists"])
def sample_state(request: pytest.FixtureRequest) -> State:
    if request.param == "plain":
        return State({"a": 1, "h": [1, 2], "n": 10, "d": {"k": "v"}})
    return State({"a": 1, "n": 10, "d": {"k": "v"}}).append(h=1).append(h=2)


@pytest.mark.parametrize(("name", "operation"), OPERATIONS, ids=[name for name, _ in OPERATIONS])
def test_operation_leaves_the_original_state_unchanged(
    sample_state: State, name: str, operation: Callable[[State], State]
) -> None:
    expected = {"a": 1, "h": [1, 2], "n": 10, "d": {"k": "v"}}
    keys_before = sample_state.keys()
    result = operation(sample_state)
    assert result is not sample_state
    assert sample_state == expected
    assert sample_state.keys() == keys_before
    assert sample_state["h"] == [1, 2]


def test_operations_return_new_states_for_chaining() -> None:
    state = State({"count": 0, "history": []})
    state = state.increment(count=1).append(history="hi").update(done=True)
    assert state == {"count": 1, "history": ["hi"], "done": True}


# -- the change log --------------------------------------------------------------------------------


def test_new_state_has_no_changes() -> None:
    assert State({"a": 1}).changes == ()


@pytest.mark.parametrize(
    ("operation", "expected"),
    [
        (lambda s: s.update(a=2, z=[1]), [Change("set", "a", 2), Change("set", "z", [1])]),
        (lambda s: s.append(h="x"), [Change("append", "h", "x")]),
        (lambda s: s.append(new=[1]), [Change("append", "new", [1])]),
        (lambda s: s.extend(h=[1, 2]), [Change("extend", "h", (1, 2))]),
        (lambda s: s.extend(h=iter([3])), [Change("extend", "h", (3,))]),
        (lambda s: s.increment(n=2), [Change("increment", "n", 2)]),
        (lambda s: s.increment(m=1.5), [Change("increment", "m", 1.5)]),
        (lambda s: s.wipe(delete=["a", "zzz"]), [Change("delete", "a")]),
        (lambda s: s.wipe(keep=["a"]), [Change("delete", "h"), Change("delete", "n")]),
        (
            lambda s: s.wipe(),
            [Change("delete", "a"), Change("delete", "h"), Change("delete", "n")],
        ),
        (lambda s: s.merge({"a": 5}), [Change("set", "a", 5)]),
        (lambda s: s.merge(State({"q": 1})), [Change("set", "q", 1)]),
        (lambda s: s.subset("n"), [Change("delete", "a"), Change("delete", "h")]),
    ],
    ids=[
        "update",
        "append",
        "append-absent",
        "extend",
        "extend-iterator",
        "increment",
        "increment-absent",
        "wipe-delete",
        "wipe-keep",
        "wipe-all",
        "merge-dict",
        "merge-state",
        "subset",
    ],
)
def test_operation_records_its_changes(
    operation: Callable[[State], State], expected: list[Change]
) -> None:
    state = State({"a": 1, "h": [0], "n": 0})
    assert operation(state).changes == tuple(expected)


def test_changes_accumulate_in_order() -> None:
    state = (
        State({"n": 0}).update(a=1).append(h=1).extend(h=[2, 3]).increment(n=1).wipe(delete=["a"])
    )
    assert state.changes == (
        Change("set", "a", 1),
        Change("append", "h", 1),
        Change("extend", "h", (2, 3)),
        Change("increment", "n", 1),
        Change("delete", "a", None),
    )


def test_changes_of_a_parent_are_not_affected_by_its_children() -> None:
    parent = State().update(a=1)
    parent.update(b=2)
    parent.append(h=1)
    assert parent.changes == (Change("set", "a", 1),)


def test_change_is_a_named_tuple_of_op_key_value() -> None:
    change = Change("append", "h", 3)
    assert (change.op, change.key, change.value) == ("append", "h", 3)
    assert change == ("append", "h", 3)
    assert Change("delete", "k").value is None


def test_apply_changes_replays_every_operation() -> None:
    before = State({"n": 1, "gone": True})
    after = before.update(a=1).append(h=1).extend(h=[2]).increment(n=2).wipe(delete=["gone"])
    replayed = apply_changes(before, after.changes)
    assert replayed == after == {"n": 3, "a": 1, "h": [1, 2]}


def test_apply_changes_with_no_changes_returns_an_equal_state() -> None:
    before = State({"a": 1})
    assert apply_changes(before, []) == before


def test_apply_changes_rejects_an_unknown_operation() -> None:
    with pytest.raises(StateOperationError, match=r"unknown change operation 'frobnicate'"):
        apply_changes(State(), [Change("frobnicate", "k", 1)])  # type: ignore[arg-type]


_KEYS = ["a", "b", "h", "n", "x"]


def _random_value(rng: random.Random) -> Any:
    kind = rng.randrange(5)
    if kind == 0:
        return rng.randrange(-5, 50)
    if kind == 1:
        return rng.choice(["s", "t", ""])
    if kind == 2:
        return [rng.randrange(10) for _ in range(rng.randrange(4))]
    if kind == 3:
        return None
    return rng.random()


def _random_operation(
    rng: random.Random, state: State, model: dict[str, Any]
) -> tuple[State, dict[str, Any], list[Change]]:
    """Apply one random valid operation to ``state`` and to a plain-dict ``model`` of it."""
    model = {k: list(v) if isinstance(v, list) else v for k, v in model.items()}
    lists = [k for k in _KEYS if k not in model or isinstance(model[k], list)]
    numbers = [
        k
        for k in _KEYS
        if k not in model or (isinstance(model[k], (int, float)) and not isinstance(model[k], bool))
    ]
    kind = rng.choice(
        ["update", "append", "extend", "increment", "delete", "keep", "merge", "subset", "all"]
    )
    if kind == "update" or (kind == "increment" and not numbers) or not lists:
        key, value = rng.choice(_KEYS), _random_value(rng)
        model[key] = list(value) if isinstance(value, list) else value
        return state.update(**{key: value}), model, [Change("set", key, value)]
    if kind in ("append", "extend") and lists:
        key = rng.choice(lists)
        if kind == "append":
            item = rng.randrange(100)
            model.setdefault(key, []).append(item)
            return state.append(**{key: item}), model, [Change("append", key, item)]
        items = [rng.randrange(100) for _ in range(rng.randrange(4))]
        model.setdefault(key, []).extend(items)
        arg: Any = rng.choice([list(items), tuple(items), iter(items)])
        return state.extend(**{key: arg}), model, [Change("extend", key, tuple(items))]
    if kind == "increment":
        key = rng.choice(numbers)
        amount = rng.choice([rng.randrange(-3, 4), 0.25])
        model[key] = model.get(key, 0) + amount
        return state.increment(**{key: amount}), model, [Change("increment", key, amount)]
    if kind == "delete":
        delete = rng.sample(_KEYS, rng.randrange(3))
        gone = [k for k in delete if k in model]
        for k in gone:
            del model[k]
        return state.wipe(delete=delete), model, [Change("delete", k) for k in gone]
    if kind in ("keep", "subset"):
        keep = rng.sample(_KEYS, rng.randrange(1, 5))
        gone = [k for k in model if k not in keep]
        for k in gone:
            del model[k]
        new = state.wipe(keep=keep) if kind == "keep" else state.subset(*keep)
        return new, model, [Change("delete", k) for k in gone]
    if kind == "merge":
        values = {k: _random_value(rng) for k in rng.sample(_KEYS, 2)}
        for k, v in values.items():
            model[k] = list(v) if isinstance(v, list) else v
        other: Any = rng.choice([dict(values), State(values)])
        return state.merge(other), model, [Change("set", k, v) for k, v in values.items()]
    if rng.random() < 0.5:
        return state, model, []  # a no-op step: nothing recorded
    gone = list(model)
    return state.wipe(), {}, [Change("delete", k) for k in gone]


def test_random_operation_sequences_replay_and_keep_every_state_intact() -> None:
    """For many random op trees: each state matches its model, replays, and never changes."""
    for seed in range(300):
        rng = random.Random(seed)
        initial_model = {k: _random_value(rng) for k in rng.sample(_KEYS, rng.randrange(4))}
        initial = State(initial_model)
        initial_model = copy.deepcopy(initial_model)
        history: list[tuple[State, dict[str, Any]]] = [(initial, initial_model)]
        reads: list[tuple[list[Any], list[Any]]] = []
        for _ in range(25):
            # Mostly extend the newest state; sometimes branch from an older one.
            base, base_model = history[-1] if rng.random() < 0.75 else rng.choice(history)
            new, model, expected = _random_operation(rng, base, base_model)
            assert new.changes == base.changes + tuple(expected), f"seed {seed}"
            assert new.keys() == list(model), f"seed {seed}"
            history.append((new, model))
            if rng.random() < 0.3 and model:
                key = rng.choice(list(model))
                value = new[key]
                if isinstance(value, list):
                    reads.append((value, list(value)))
        for state, model in history:
            assert state == model, f"seed {seed}"
            assert apply_changes(initial, state.changes) == state, f"seed {seed}"
            for key, value in model.items():
                if isinstance(value, list):
                    assert type(state[key]) is list, f"seed {seed}"
        for value, snapshot in reads:
            assert value == snapshot, f"seed {seed}: a list read from a state changed"


# -- growing lists ---------------------------------------------------------------------------------


def test_older_state_keeps_its_own_list_length_after_many_appends() -> None:
    states = [State({"n": 0})]
    for i in range(200):
        states.append(states[-1].append(h=i))
    for length, state in enumerate(states[1:], start=1):
        assert state["h"] == list(range(length))
    assert "h" not in states[0]


def test_list_read_from_a_state_never_changes_when_that_state_is_appended_to() -> None:
    state = State().append(h=1).append(h=2)
    read = state["h"]
    newer = state.append(h=3)
    newer = newer.append(h=4).extend(h=[5, 6])
    assert read == [1, 2]
    assert newer["h"] == [1, 2, 3, 4, 5, 6]
    assert state["h"] == [1, 2]


def test_list_read_from_an_older_state_never_changes_when_descendants_are_appended_to() -> None:
    older = State().append(h=1)
    newest = older.append(h=2)
    read_old = older["h"]
    read_new = newest["h"]
    newest = newest.append(h=3).append(h=4)
    assert read_old == [1]
    assert read_new == [1, 2]
    assert newest["h"] == [1, 2, 3, 4]


def test_list_read_through_get_and_get_all_never_changes() -> None:
    state = State().append(h=1)
    via_get = state.get("h")
    via_get_all = state.get_all()["h"]
    via_items = dict(state.items())["h"]
    state.append(h=2).append(h=3)
    assert via_get == [1]
    assert via_get_all == [1]
    assert via_items == [1]


def test_reading_between_appends_yields_independent_snapshots() -> None:
    state = State()
    snapshots = []
    for i in range(50):
        state = state.append(h=i)
        snapshots.append(state["h"])
    for length, snapshot in enumerate(snapshots, start=1):
        assert snapshot == list(range(length))


def test_user_list_passed_to_state_is_never_mutated() -> None:
    mine = [1, 2]
    state = State({"h": mine})
    grown = state.append(h=3).extend(h=[4]).append(h=5)
    assert mine == [1, 2]
    assert state["h"] is mine
    assert grown["h"] == [1, 2, 3, 4, 5]


def test_user_list_passed_to_update_or_merge_is_never_mutated() -> None:
    via_update = [1]
    via_merge = [10]
    state = State().update(h=via_update).merge({"m": via_merge})
    state.append(h=2, m=20).extend(h=[3], m=[30])
    assert via_update == [1]
    assert via_merge == [10]


def test_user_iterable_passed_to_extend_is_never_mutated() -> None:
    items = [1, 2]
    state = State().extend(h=items)
    state.append(h=3)
    assert items == [1, 2]


def test_two_branches_from_one_parent_do_not_see_each_others_items() -> None:
    parent = State().append(h="root")
    left = parent.append(h="left").append(h="left-2")
    right = parent.append(h="right")
    right_longer = right.extend(h=["r2", "r3"])
    left_longer = left.append(h="left-3")
    assert parent["h"] == ["root"]
    assert left["h"] == ["root", "left", "left-2"]
    assert right["h"] == ["root", "right"]
    assert right_longer["h"] == ["root", "right", "r2", "r3"]
    assert left_longer["h"] == ["root", "left", "left-2", "left-3"]


def test_branches_from_a_parent_whose_list_was_read_stay_separate() -> None:
    parent = State().append(h=0)
    assert parent["h"] == [0]
    one = parent.append(h=1)
    two = parent.append(h=2)
    assert one["h"] == [0, 1]
    assert two["h"] == [0, 2]
    assert parent["h"] == [0]


def test_branches_from_a_user_list_stay_separate() -> None:
    parent = State({"h": [0]})
    one = parent.append(h=1).append(h=11)
    two = parent.append(h=2).append(h=22)
    assert one["h"] == [0, 1, 11]
    assert two["h"] == [0, 2, 22]


def test_state_built_from_another_state_does_not_see_its_later_appends() -> None:
    original = State().append(h=1)
    copied = State(original)
    original.append(h=2)
    assert copied["h"] == [1]


def test_list_subclass_keeps_its_type_on_append_and_extend() -> None:
    class History(list[Any]):
        pass

    mine = History([1])
    appended = State({"h": mine}).append(h=2)
    extended = appended.extend(h=[3, 4])
    assert type(appended["h"]) is History
    assert type(extended["h"]) is History
    assert appended["h"] == [1, 2]
    assert extended["h"] == [1, 2, 3, 4]
    assert mine == [1]


@pytest.mark.parametrize(
    "read",
    [
        lambda s: s["h"],
        lambda s: s.get("h"),
        lambda s: s.get_all()["h"],
        lambda s: dict(s)["h"],
        lambda s: next(iter(s.values())),
    ],
    ids=["getitem", "get", "get-all", "dict", "values"],
)
def test_grown_lists_read_back_as_plain_lists(read: Callable[[State], Any]) -> None:
    state = State().extend(h=(1, 2)).append(h=3)
    older = state
    newer = state.append(h=4)
    for candidate, expected in ((older, [1, 2, 3]), (newer, [1, 2, 3, 4])):
        value = read(candidate)
        assert type(value) is list
        assert value == expected


@pytest.fixture
def frequent_thread_switches() -> Iterator[None]:
    """Switch threads very often so that concurrent appends interleave."""
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(previous)


@pytest.mark.usefixtures("frequent_thread_switches")
def test_concurrent_appends_to_branches_of_one_parent_stay_correct() -> None:
    parent = State().extend(h=range(3))
    threads_count, appends = 8, 300
    barrier = threading.Barrier(threads_count)
    results: dict[int, tuple[list[State], list[list[Any]]]] = {}
    errors: list[BaseException] = []

    def grow(tid: int) -> None:
        try:
            barrier.wait()
            states, reads = [], []
            state = parent
            for i in range(appends):
                state = state.append(h=(tid, i))
                states.append(state)
                if i % 7 == 0:
                    reads.append(state["h"])
            results[tid] = (states, reads)
        except BaseException as exc:  # surfaced by the assertion below
            errors.append(exc)

    workers = [threading.Thread(target=grow, args=(tid,)) for tid in range(threads_count)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()

    assert errors == []
    assert parent["h"] == [0, 1, 2]
    for tid, (states, reads) in results.items():
        own = [(tid, i) for i in range(appends)]
        for length, state in enumerate(states, start=1):
            assert state["h"] == [0, 1, 2, *own[:length]]
        for read_index, read in enumerate(reads):
            assert read == [0, 1, 2, *own[: read_index * 7 + 1]]
    assert sorted(results) == list(range(threads_count))


@pytest.mark.usefixtures("frequent_thread_switches")
def test_concurrent_sibling_appends_to_one_parent_stay_correct() -> None:
    parent = State().append(h="root")
    threads_count, siblings = 6, 200
    barrier = threading.Barrier(threads_count)
    results: dict[int, list[State]] = {}

    def branch(tid: int) -> None:
        barrier.wait()
        results[tid] = [parent.append(h=(tid, i)) for i in range(siblings)]

    workers = [threading.Thread(target=branch, args=(tid,)) for tid in range(threads_count)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()

    assert sorted(results) == list(range(threads_count))
    for tid, states in results.items():
        for i, state in enumerate(states):
            assert state["h"] == ["root", (tid, i)]
    assert parent["h"] == ["root"]


# -- step boundaries (used by the engine) ----------------------------------------------------------


def _changes_since(state: State, base: State) -> tuple[Change, ...]:
    """``state._changes_since(base)`` as ``Change`` records (the engine may keep plain tuples)."""
    return tuple(Change._make(change) for change in state._changes_since(base))


def test_tracking_from_here_starts_an_empty_change_log_with_equal_items() -> None:
    state = State().update(a=1).append(h=1)
    boundary = state._tracking_from_here()
    assert boundary.changes == ()
    assert boundary == state
    assert boundary.update(b=2).changes == (Change("set", "b", 2),)


def test_changes_since_a_boundary_are_the_recorded_operations() -> None:
    before = State({"n": 0}).append(h=1)._tracking_from_here()
    after = before.append(h=2).increment(n=1).update(a="x")
    assert _changes_since(after, before) == (
        Change("append", "h", 2),
        Change("increment", "n", 1),
        Change("set", "a", "x"),
    )
    assert apply_changes(before, _changes_since(after, before)) == after


def test_changes_since_a_boundary_returned_unchanged_is_empty() -> None:
    before = State({"a": 1})._tracking_from_here()
    assert before._changes_since(before) == ()


def test_changes_since_falls_back_to_set_and_delete_for_a_fresh_state() -> None:
    shared = {"big": "object"}
    before = State({"keep": shared, "change": 1, "drop": 2}).append(h=1)._tracking_from_here()
    after = State({"keep": shared, "change": 10, "h": [1, 2], "new": 3})
    changes = _changes_since(after, before)
    assert changes == (
        Change("set", "change", 10),
        Change("set", "h", [1, 2]),
        Change("set", "new", 3),
        Change("delete", "drop"),
    )
    assert apply_changes(before, changes) == after


def test_changes_since_reports_a_list_grown_past_the_base_length() -> None:
    before = State().append(h=1)._tracking_from_here()
    grown = before.append(h=2)
    fresh = State(grown)
    changes = _changes_since(fresh, before)
    assert Change("set", "h", [1, 2]) in changes
    assert apply_changes(before, changes) == {"h": [1, 2]}


# -- growing in place: the O(1) path is really taken -------------------------------------------


@pytest.mark.skipif(
    not _state_module._READERS_COUNTED,
    reason="this interpreter has no exact reference counts; reads always force one copy there",
)
def test_a_read_whose_result_is_gone_lets_the_next_append_grow_in_place() -> None:
    first = State().append(h=0)
    assert len(first["h"]) == 1  # read, then the list is dropped
    second = first.append(h=1)
    assert second._data["h"] is first._data["h"]  # the same buffer, grown in place
    assert first["h"] == [0]
    assert second["h"] == [0, 1]


def test_a_list_still_held_makes_the_next_append_copy() -> None:
    first = State().append(h=0)
    held = first["h"]
    second = first.append(h=1)
    assert second._data["h"] is not first._data["h"]
    assert held == [0]
    assert second["h"] == [0, 1]


def test_pick_gives_the_values_held_at_the_keys_asked_and_leaves_out_the_rest() -> None:
    grown = State({"count": 1, "items": []}).append(items="a").append(items="b")
    older = grown.append(items="c")
    picked = grown.pick(["items", "count", "absent"])
    assert picked == {"items": ["a", "b"], "count": 1}
    assert list(picked) == ["items", "count"]
    assert older.pick(["items"]) == {"items": ["a", "b", "c"]}
    assert picked["items"] == ["a", "b"]  # not grown by the later append
