"""Burr's pydantic serde plugin: a pydantic model in state, by registered class only.

``State.serialize()`` stores a ``BaseModel`` as Burr does: its fields (``model_dump``, in JSON
mode here so the result is always JSON) plus ``"__burr_serde__": "pydantic"`` and
``"__pydantic_class": "module.ClassName"``.

**Loading never imports or calls a class the stored data names.** Burr 0.43 imports whatever
module the payload names (an allowlist only narrows that). turnout looks the name up among the
classes ``turnout.core.serde.DEFAULT_SERDE`` may load: those registered with
``DEFAULT_SERDE.register_type(MyModel)`` or ``register_module("myapp.models")``, and those this
process serialised itself. Any other name is refused with a ``SerdeError`` naming the class and
the call that allows it. Burr's ``set_allowlist([...])`` registers the listed modules (each
imported now: the program's request, not the data's) and keeps Burr's narrowing: with an
allowlist, a class whose module it does not list is refused even when registered. Burr's
``allowlist=`` keyword of ``State.deserialize`` narrows one call the same way.

Persisters and trackers keep storing pydantic models in turnout's own form (see
``turnout.core.serde``); this format is ``State.serialize()``'s. turnout imports this module by
itself the first time it meets a pydantic model or this key. Needs
``pip install "turnout[pydantic]"``.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Any

from turnout.integrations._guard import missing_extra

try:
    import pydantic
except ImportError as _error:  # pragma: no cover - exercised in a subprocess
    raise missing_extra(
        "turnout.integrations.serde.pydantic", 'pip install "turnout[pydantic]"', _error
    ) from _error

# Burr's warning for loading without an allowlist: turnout's one (the pickle plugin's too). This
# module never issues it, since it never imports a class stored data names; the name is here
# for programs that filter it.
from turnout.core.errors import SecurityWarning, SerdeError
from turnout.core.serde import DEFAULT_SERDE, KEY, deserializer, serialize
from turnout.core.serde import state_serialize_only as _state_only

__all__ = [
    "CLASS_KEY",
    "KEY_PYDANTIC",
    "SecurityWarning",
    "deserialize_pydantic",
    "serialize_pydantic",
    "set_allowlist",
]

KEY_PYDANTIC = "pydantic"
"""The ``"__burr_serde__"`` key of a stored pydantic model (Burr's)."""

CLASS_KEY = "__pydantic_class"
"""Where Burr's format names the model's class, ``"module.ClassName"``."""

MAX_CLASS_NAME = 1000
"""The longest ``"module.ClassName"`` a stored model may give; a longer one is refused."""


_allowlist: list[str] | None = None


def set_allowlist(allowlist: Sequence[str] | None) -> None:
    """Burr's global allowlist: register these modules' models for loading
    (``DEFAULT_SERDE.register_module``, which imports each now) and refuse classes of any other
    module. ``None`` clears the narrowing (registrations stay). Unlike Burr, a package name does
    not cover its submodules' classes: list each module that defines models."""
    global _allowlist
    if allowlist is None:
        _allowlist = None
        return
    if isinstance(allowlist, str):
        raise SerdeError(
            "", None, f"set_allowlist() takes a list of module names, not one string: "
            f"set_allowlist([{allowlist!r}])",
        )  # fmt: skip
    names = list(allowlist)
    DEFAULT_SERDE.register_module(*names)
    _allowlist = names


def _allowed(module: str, allowlist: Sequence[str]) -> bool:
    return any(module == entry or module.startswith(entry + ".") for entry in allowlist)


@_state_only
@serialize.register(pydantic.BaseModel)
def serialize_pydantic(value: pydantic.BaseModel, **kwargs: Any) -> dict[str, Any]:
    """The model's fields, tagged with Burr's key and its class name. The class becomes
    loadable in this process (it put the value in state), as for turnout's own serde."""
    cls = type(value)
    if _langchain_plugin_loaded(cls):  # a LangChain message is a pydantic model: its own form
        encoded: dict[str, Any] = serialize(value, **kwargs)
        return encoded
    data: dict[str, Any] = value.model_dump(mode="json")
    DEFAULT_SERDE.register_type(cls)
    data[KEY] = KEY_PYDANTIC
    data[CLASS_KEY] = f"{cls.__module__}.{cls.__qualname__}"
    return data


_langchain_tried = False


def _langchain_plugin_loaded(cls: type) -> bool:
    """Import Burr's LangChain plugin for a LangChain class the first time one arrives here
    (the lazy loading in turnout.core reaches only values no plugin claims yet)."""
    global _langchain_tried
    if _langchain_tried or not any(
        str(base.__module__).startswith("langchain_core.") for base in cls.__mro__
    ):
        return False
    _langchain_tried = True
    try:
        importlib.import_module("turnout.integrations.serde.langchain")
    except ImportError:
        return False
    return serialize.dispatch(cls) is not serialize_pydantic


@deserializer.register(KEY_PYDANTIC)
def deserialize_pydantic(
    value: dict[str, Any], allowlist: Sequence[str] | None = None, **kwargs: Any
) -> pydantic.BaseModel:
    """The model ``value`` stores, if its class is one this process may load; see the module
    docstring. ``allowlist`` narrows this call to classes of those modules (Burr's keyword)."""
    if not isinstance(value, dict):
        raise SerdeError("", None, f"a stored pydantic model must be a dict, not {type(value)}")
    fields = {k: v for k, v in value.items() if k not in (KEY, CLASS_KEY)}
    name = value.get(CLASS_KEY)
    if not isinstance(name, str) or "." not in name:
        raise SerdeError(
            "", None, f"a stored pydantic model must name its class as 'module.ClassName' in "
            f"{CLASS_KEY!r}, found {name!r}: the data is damaged or was not written by Burr",
        )  # fmt: skip
    if len(name) > MAX_CLASS_NAME:  # each split into module and class is a lookup: bound them
        raise SerdeError(
            "", None, f"a stored pydantic model's {CLASS_KEY!r} is {len(name):,} characters "
            f"long ({name[:60]!r}...), more than the {MAX_CLASS_NAME:,} a module and class "
            f"name take: the data is damaged or was crafted",
        )  # fmt: skip
    cls = _registered_class(name)
    narrowing = allowlist if allowlist is not None else _allowlist
    if narrowing is not None and not _allowed(cls.__module__, narrowing):
        raise SerdeError(
            "", None, f"Pydantic deserialization blocked: module {cls.__module__!r} (class "
            f"{name!r}) is not in the allowlist {list(narrowing)!r}. Add it to the allowlist "
            f"or use set_allowlist() to permit it.",
        )  # fmt: skip
    model: pydantic.BaseModel = cls.model_validate(fields)  # type: ignore[attr-defined]
    return model


def _registered_class(name: str) -> type:
    """The registered class ``"a.b.C"`` (or ``"a.b.Outer.Inner"``) stands for: each split of
    module and qualified name is looked up, none imported; the error names the plainest one."""
    parts = name.split(".")
    candidates = [
        f"{'.'.join(parts[:cut])}:{'.'.join(parts[cut:])}" for cut in range(len(parts) - 1, 0, -1)
    ]
    for candidate in candidates[1:]:  # a nested class: Outer.Inner
        try:
            return DEFAULT_SERDE.registered_type(candidate, "pydantic")
        except SerdeError:
            pass
    return DEFAULT_SERDE.registered_type(candidates[0], "pydantic")
