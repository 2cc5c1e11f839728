"""A module registered with ``Serde.register_module`` by the trust tests: beside two classes
stored data may name (``Mood``, ``Spot``), it holds callables that record every call, so a test
can prove that decoding crafted data never calls them.
"""

from __future__ import annotations

import dataclasses
import enum
from subprocess import Popen  # re-exported: stored data must not reach it through this module
from typing import Any

from tests.persistence.samples import Color as ImportedColor  # an enum, but not defined here

__all__ = [
    "CALLS",
    "ImportedColor",
    "Meta",
    "Mood",
    "NotAnything",
    "Popen",
    "Shaped",
    "Spot",
    "Tricky",
    "WithMeta",
    "function",
    "thing",
]

CALLS: list[str] = []
"""What was called, in order. Tests clear it before decoding and check it after."""


def function(*args: Any, **kwargs: Any) -> None:
    CALLS.append("function")


class NotAnything:
    """Neither an enum, a dataclass nor a pydantic model; every way in records a call."""

    def __new__(cls, *args: Any, **kwargs: Any) -> NotAnything:
        CALLS.append("NotAnything.__new__")
        return super().__new__(cls)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        CALLS.append("NotAnything.__init__")

    def __init_subclass__(cls, **kwargs: Any) -> None:
        CALLS.append("NotAnything.__init_subclass__")

    @classmethod
    def model_validate(cls, data: Any) -> NotAnything:
        CALLS.append("NotAnything.model_validate")
        return cls()

    def model_dump(self, mode: str = "python") -> dict[str, Any]:
        return {}

    class Inner:
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            CALLS.append("NotAnything.Inner.__init__")


class Shaped:
    """Shaped like a pydantic model (``model_validate``/``model_dump``) but not one: a module
    registration must not accept it; an explicit ``register_type`` may."""

    def __init__(self, value: Any = None) -> None:
        self.value = value

    @classmethod
    def model_validate(cls, data: Any) -> Shaped:
        CALLS.append("Shaped.model_validate")
        return cls(data)

    def model_dump(self, mode: str = "python") -> Any:
        return self.value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Shaped) and other.value == self.value

    __hash__ = None  # type: ignore[assignment]


class Meta(type):
    """A metaclass whose hooks record: checking a class must not go through them."""

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        CALLS.append("Meta.__call__")
        return super().__call__(*args, **kwargs)

    def __getattr__(cls, name: str) -> Any:
        CALLS.append(f"Meta.__getattr__({name})")
        raise AttributeError(name)

    def __instancecheck__(cls, instance: Any) -> bool:
        CALLS.append("Meta.__instancecheck__")
        return False

    def __subclasscheck__(cls, subclass: Any) -> bool:
        CALLS.append("Meta.__subclasscheck__")
        return False


class WithMeta(metaclass=Meta):
    pass


class Tricky:
    """An instance of it sits in the module; reading its ``__class__`` records a call."""

    @property  # type: ignore[misc]
    def __class__(self) -> type:
        CALLS.append("Tricky.__class__")
        return type

    def __call__(self, *args: Any, **kwargs: Any) -> None:
        CALLS.append("Tricky.__call__")


thing = Tricky()


def __getattr__(name: str) -> Any:  # PEP 562: lookups must not reach it
    CALLS.append(f"module __getattr__({name})")
    raise AttributeError(name)


class Mood(enum.Enum):
    CALM = "calm"
    ANGRY = "angry"


@dataclasses.dataclass
class Spot:
    x: int
    label: str = ""
