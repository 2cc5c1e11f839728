"""Values of every type the built-in serde handles, shared by the serde and contract tests.

The classes live at module level so that loading finds them by name (``tests.persistence.samples``
is imported by whoever loads them).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import enum
import math
import pathlib
import uuid
from typing import Any


class Color(enum.Enum):
    RED = "red"
    GREEN = "green"


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 2


@dataclasses.dataclass
class Point:
    x: int
    y: int


@dataclasses.dataclass(frozen=True)
class Frozen:
    name: str
    tags: tuple[str, ...] = ()


@dataclasses.dataclass
class Nested:
    point: Point
    frozen: Frozen
    when: dt.datetime
    items: list[Point] = dataclasses.field(default_factory=list)
    computed: int = dataclasses.field(init=False, default=0)

    def __post_init__(self) -> None:
        self.computed = self.point.x + self.point.y


class Model:
    """Shaped like a pydantic model (``model_dump`` / ``model_validate``) without pydantic."""

    def __init__(self, name: str, size: int) -> None:
        self.name = name
        self.size = size

    def model_dump(self, mode: str = "python") -> dict[str, Any]:
        return {"name": self.name, "size": self.size}

    @classmethod
    def model_validate(cls, data: dict[str, Any]) -> Model:
        return cls(data["name"], data["size"])

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Model) and (self.name, self.size) == (other.name, other.size)

    __hash__ = None  # type: ignore[assignment]


class Text(str):
    """A ``str`` subclass: saved as its plain value."""


AWARE = dt.datetime(2024, 5, 17, 10, 30, 15, 123456, tzinfo=dt.timezone(dt.timedelta(hours=2)))

SAMPLES: dict[str, Any] = {
    "none": None,
    "bool": True,
    "int": 12345678901234567890,
    "float": 3.25,
    "str": "naïve ☃ \u0000 text",
    "list": [1, "two", [3.0]],
    "dict": {"a": 1, "b": {"c": [1, 2]}},
    "tuple": (1, "two", (3, 4)),
    "set": {1, 2, 3},
    "frozenset": frozenset({"a", "b"}),
    "bytes": b"\x00\xffbinary",
    "datetime": AWARE,
    "naive_datetime": dt.datetime(2024, 1, 2, 3, 4, 5),
    "date": dt.date(2024, 2, 29),
    "time": dt.time(23, 59, 58, 1000),
    "timedelta": dt.timedelta(days=-3, seconds=5, microseconds=7),
    "decimal": decimal.Decimal("1234.5678901234567890"),
    "uuid": uuid.UUID("12345678-1234-5678-1234-567812345678"),
    "path": pathlib.Path("/tmp/some/where.txt"),
    "complex": complex(1.5, -2.0),
    "enum": Color.GREEN,
    "int_enum": Level.HIGH,
    "dataclass": Point(1, 2),
    "frozen_dataclass": Frozen("f", ("a", "b")),
    "nested_dataclass": Nested(Point(3, 4), Frozen("g"), AWARE, [Point(5, 6)]),
    "pydantic_shaped": Model("m", 3),
    "int_keys": {1: "one", 2: "two"},
    "tuple_keys": {(1, 2): "pair", (3, 4): "other"},
    "mixed_keys": {"a": 1, 2: "b", None: "none"},
    "tag_key": {"__turnout__": "not a tag", "v": 1},
    "inf": math.inf,
    "-inf": -math.inf,
    "str_subclass": Text("plain"),
    "deep": {"messages": [{"role": "user", "args": (1, {2, 3}, b"x")}]},
}


def same(left: Any, right: Any) -> bool:
    """Equality that also treats NaN as equal to NaN, and checks exact types."""
    if isinstance(left, float) and isinstance(right, float):
        return (math.isnan(left) and math.isnan(right)) or left == right
    if type(left) is not type(right) and not isinstance(left, Text):
        return False
    if isinstance(left, dict):
        return left.keys() == right.keys() and all(same(left[k], right[k]) for k in left)
    if isinstance(left, (list, tuple)):
        return len(left) == len(right) and all(map(same, left, right))
    return bool(left == right)
