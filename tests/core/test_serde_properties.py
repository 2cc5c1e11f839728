"""Property tests of the serde: every JSON-like value and every built-in type round-trips, and
decoding arbitrary JSON (tagged objects with random tags and class names included) returns a
value or raises ``SerdeError``, never anything else, and never calls a function or a class
the data names."""

from __future__ import annotations

import datetime as dt
import json
import pathlib
import sys
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.persistence import serde_sentinels as sentinels
from tests.persistence.samples import Color, Frozen, Level, Point, same
from turnout.core.errors import SerdeError
from turnout.core.serde import DEFAULT_SERDE, Serde

# Bounded: CI runs these on every leg; a failure prints the example to reproduce it.
BOUNDED = settings(max_examples=150, deadline=None, database=None)

TAG = "__turnout__"
KEYS = st.one_of(st.sampled_from([TAG, "v", "type", ""]), st.text(max_size=8))

JSON_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
)

JSON_LIKE = st.recursive(
    JSON_SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(KEYS, children, max_size=4)
    ),
    max_leaves=25,
)


def round_trip(value: Any, serde: Serde = DEFAULT_SERDE) -> Any:
    return serde.decode(json.loads(serde.dumps(value)))


@BOUNDED
@given(JSON_LIKE)
def test_json_like_values_round_trip_whatever_their_keys(value: Any) -> None:
    assert same(round_trip(value), value)


OFFSETS = st.builds(
    dt.timezone, st.timedeltas(min_value=dt.timedelta(hours=-23), max_value=dt.timedelta(hours=23))
)
HASHABLE = st.one_of(
    st.integers(),
    st.text(max_size=6),
    st.none(),
    st.tuples(st.integers(), st.text(max_size=3)),
    st.frozensets(st.integers(), max_size=3),
)
EXTRA_SCALARS = st.one_of(
    JSON_SCALARS,
    st.floats(),  # NaN and the infinities too
    st.integers(min_value=-(10**600), max_value=10**600),
    st.binary(max_size=16),
    st.datetimes(),
    st.datetimes(timezones=OFFSETS),
    st.dates(),
    st.times(),
    st.times(timezones=OFFSETS),
    st.timedeltas(),
    st.decimals(allow_nan=False),
    st.uuids(),
    st.complex_numbers(allow_nan=False),
    st.builds(pathlib.Path, st.text(alphabet="abc/._-", max_size=12)),
    st.sampled_from(Color),
    st.sampled_from(Level),
    st.builds(Point, st.integers(), st.integers()),
    st.builds(Frozen, st.text(max_size=5), st.lists(st.text(max_size=3), max_size=3).map(tuple)),
)
EXTRA = st.recursive(
    EXTRA_SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=3),
        st.lists(children, max_size=3).map(tuple),
        st.sets(HASHABLE, max_size=3),
        st.frozensets(HASHABLE, max_size=3),
        st.dictionaries(KEYS, children, max_size=3),
        st.dictionaries(HASHABLE, children, max_size=3),
    ),
    max_leaves=15,
)


@BOUNDED
@given(EXTRA)
def test_built_in_types_round_trip_with_their_types(value: Any) -> None:
    assert same(round_trip(value), value)


# -- decoding arbitrary JSON ---------------------------------------------------------------------

TAGS = [
    "float", "as", "bytes", "datetime", "date", "time", "timedelta", "decimal", "uuid", "path",
    "complex", "list", "tuple", "set", "frozenset", "dict", "enum", "dataclass", "pydantic",
    "pickle", "langchain:message", "money",
]  # fmt: skip
SENTINELS = "tests.persistence.serde_sentinels"
CLASS_NAMES = [
    "NotAnything", "NotAnything.Inner", "Shaped", "WithMeta", "Meta", "thing", "function",
    "Popen", "ImportedColor", "Mood", "Spot", "missing", "CALLS", "Tricky",
]  # fmt: skip
TYPE_NAMES = [f"{SENTINELS}:{name}" for name in CLASS_NAMES] + [
    "subprocess:Popen",
    "os:system",
    "builtins:eval",
    "builtins:exec",
    "tests.persistence.samples:Point",
]


def tagged(children: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {TAG: st.one_of(st.sampled_from(TAGS), st.text(max_size=6), JSON_SCALARS)},
        optional={
            "v": children,
            "type": st.one_of(st.sampled_from(TYPE_NAMES), st.text(max_size=10), JSON_SCALARS),
        },
    )


def naming_a_class(children: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    """The payloads that matter most: a class-naming tag with a name from the list."""
    return st.fixed_dictionaries(
        {
            TAG: st.sampled_from(["enum", "dataclass", "pydantic"]),
            "type": st.sampled_from(TYPE_NAMES),
            "v": children,
        }
    )


ANY_JSON = st.recursive(
    JSON_SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(KEYS, children, max_size=4),
        tagged(children),
        naming_a_class(children),
    ),
    max_leaves=20,
)


def registries() -> list[Serde]:
    default = DEFAULT_SERDE
    trusting = Serde()
    trusting.register_module(SENTINELS, "subprocess", "os", "builtins")
    trusting.register(complex, encode=repr, decode=lambda raw: 1 / int(raw), name="money")
    return [default, trusting]


@pytest.mark.parametrize("serde", registries(), ids=["default", "trusting"])
@BOUNDED
@given(data=ANY_JSON)
def test_decoding_any_json_gives_a_value_or_serde_error_and_calls_nothing(
    serde: Serde, data: Any
) -> None:
    sentinels.CALLS.clear()
    try:
        serde.decode(data)
        serde.loads(json.dumps(data))
    except SerdeError:
        pass
    assert sentinels.CALLS == []


def too_long(value: Any) -> bool:
    """Whether ``value`` holds an int with more digits than Python writes as text."""
    if isinstance(value, list):
        return any(too_long(item) for item in value)
    limit = getattr(sys, "get_int_max_str_digits", lambda: 0)()  # 0: no limit (or Python < 3.11)
    return bool(limit) and abs(value) >= 10**limit


@BOUNDED
@given(
    st.recursive(
        st.integers() | st.sampled_from([600, 639, 640, 4_299, 4_300, 5_000]).map(lambda n: 10**n),
        lambda children: st.lists(children, max_size=3),
    )
)
def test_encoding_gives_strict_json_or_serde_error_naming_the_path(value: Any) -> None:
    if too_long(value):
        with pytest.raises(SerdeError, match="digits") as info:
            DEFAULT_SERDE.dumps({"v": value})
        assert info.value.path.startswith("$.v")
    else:
        text = DEFAULT_SERDE.dumps({"v": value})
        json.loads(text, parse_constant=lambda name: pytest.fail(f"{name} in stored JSON"))
