"""Which classes stored data may name, and how a name becomes a class without running code.

Stored data names enums, dataclasses and pydantic models by ``"module:QualName"``. A name is
only ever looked up among classes the process vouched for:

* registered one by one (``Serde.register_type``);
* remembered because this ``Serde`` encoded an instance of it in this process (the process put
  that value in state itself, so loading it back is no new trust);
* found in a module registered whole (``Serde.register_module``), and only if it is plainly what
  the stored data says: an ``Enum`` subclass, a dataclass, or a pydantic ``BaseModel`` subclass.

The checks read class dictionaries and method resolution orders through ``type``'s own
descriptors, so neither the lookup nor the checks call anything a registered module defines
(no ``__getattr__``, metaclass hook or property runs); only a class that passed them is then
called, the way the stored data's kind says (``Enum(value)``, ``cls(**fields)``,
``cls.model_validate(data)``).
"""

from __future__ import annotations

import enum
import importlib
from collections.abc import Mapping
from types import ModuleType
from typing import Any

from turnout.core.errors import SerdeError

__all__ = ["KINDS", "MissingCodeError", "TypeRegistry", "type_name"]

KINDS = ("enum", "dataclass", "pydantic")
"""The tags whose stored data names a class."""

# type's own descriptors, read without going through a class's (or its metaclass's) attribute
# lookup, which a class may override.
_own_dict: Any = type.__dict__["__dict__"].__get__
_own_mro: Any = type.__dict__["__mro__"].__get__
_own_module: Any = type.__dict__["__module__"].__get__
_own_qualname: Any = type.__dict__["__qualname__"].__get__


def type_name(cls: type) -> str:
    """``"module:QualName"``, how a type is named in stored data."""
    return f"{_own_module(cls)}:{_own_qualname(cls)}"


class MissingCodeError(SerdeError):
    """Stored data needs a decoder or a class this process has not registered. The data is
    intact: the process lacks the code (or the permission) to read it, so persisters say so
    rather than calling the record damaged."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(path, None, reason, loading=True)


def _is_class(obj: object) -> bool:
    return issubclass(type(obj), type)  # not isinstance: that may read obj.__class__


def _in_mro(cls: type, test: Any) -> bool:
    return any(test(base) for base in _own_mro(cls))


def _is_dataclass(cls: type) -> bool:
    return _in_mro(cls, lambda base: "__dataclass_fields__" in _own_dict(base))


def _is_pydantic_model(cls: type) -> bool:
    """A real pydantic (v2) ``BaseModel`` subclass, judged without importing pydantic."""
    return _in_mro(
        cls,
        lambda base: _own_qualname(base) == "BaseModel" and _own_module(base) == "pydantic.main",
    )


def _has_model_validate(cls: type) -> bool:
    return _in_mro(cls, lambda base: "model_validate" in _own_dict(base))


def fits(cls: type, kind: str, *, vouched: bool) -> bool:
    """Whether ``cls`` may be built as a ``kind`` value. A class the user registered (or this
    process encoded) may be pydantic-*shaped*; one found in a registered module must be a real
    ``BaseModel`` subclass."""
    if kind == "enum":
        return issubclass(cls, enum.Enum)
    if kind == "dataclass":
        return _is_dataclass(cls)
    if vouched:
        return _has_model_validate(cls)
    return _is_pydantic_model(cls)


def kind_of(cls: type) -> str | None:
    """The kind an instance of ``cls`` is stored as, or ``None``."""
    if issubclass(cls, enum.Enum):
        return "enum"
    if _is_dataclass(cls):
        return "dataclass"
    if _has_model_validate(cls):
        return "pydantic"
    return None


class TypeRegistry:
    """The classes one ``Serde`` may build from stored data; see the module docstring."""

    def __init__(self, owner: str) -> None:
        self.owner = owner  # how messages name the Serde in the calls they suggest
        self._registered: dict[str, type] = {}
        self._seen: dict[str, type] = {}
        self._seen_classes: set[type] = set()
        self._modules: dict[str, Mapping[str, Any]] = {}

    def __getstate__(self) -> dict[str, Any]:
        """A copy sent to another process (a process pool, Ray, Dask) names the registered
        modules and imports them there: a module's namespace does not pickle."""
        state = dict(self.__dict__)
        state["_modules"] = sorted(self._modules)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        modules = state.pop("_modules")
        self.__dict__.update(state, _modules={})
        for name in modules:
            self.add_module(name)

    def add(self, cls: Any) -> None:
        if not _is_class(cls) or kind_of(cls) is None:
            shown = type_name(cls) if _is_class(cls) else type(cls).__qualname__ + " instance"
            raise SerdeError(
                "",
                cls,
                f"register_type() takes enums, dataclasses and pydantic models; {shown} is none "
                f"of them. For another class use {self.owner}.register(<the class>, encode=..., "
                f"decode=...)",
            )
        self._registered[type_name(cls)] = cls

    def add_module(self, module: ModuleType | str) -> None:
        if isinstance(module, str):
            module = importlib.import_module(module)  # the caller's own request, not data's
        if not isinstance(module, ModuleType):
            raise SerdeError(
                "",
                module,
                f"register_module() takes a module or its dotted name, not "
                f"{type(module).__qualname__}; e.g. {self.owner}.register_module('myapp.models')",
            )
        self._modules[module.__name__] = vars(module)

    def remember(self, cls: type) -> None:
        """Called when an instance of ``cls`` is encoded; cheap after the first time."""
        if cls not in self._seen_classes:
            self._seen_classes.add(cls)
            self._seen[type_name(cls)] = cls

    def resolve(self, name: Any, kind: str, path: str) -> type:
        """The class ``name`` stands for, fit to be built as ``kind``; never calls it."""
        if type(name) is not str or name.count(":") != 1 or not all(name.split(":")):
            raise SerdeError(
                path, None, f"a {kind} value must name its class as 'module:QualName', "
                f"found {_short(name)}", loading=True,
            )  # fmt: skip
        vouched = self._registered.get(name) or self._seen.get(name)
        if vouched is not None:
            if not fits(vouched, kind, vouched=True):
                raise SerdeError(path, None, _wrong_kind(name, kind, "registered"), loading=True)
            return vouched
        module_name, _, qualname = name.partition(":")
        namespace = self._modules.get(module_name)
        if namespace is None:
            raise MissingCodeError(path, self._unregistered(name, kind))
        found: Any = namespace.get(qualname.split(".")[0])
        for part in qualname.split(".")[1:]:
            found = _own_dict(found).get(part) if _is_class(found) else None
        if found is None:
            raise MissingCodeError(path, self._unregistered(name, kind))
        if not _is_class(found) or type_name(found) != name or not fits(found, kind, vouched=False):
            raise SerdeError(path, None, _wrong_kind(name, kind, "module"), loading=True)
        cls: type = found
        return cls

    def _unregistered(self, name: str, kind: str) -> str:
        module_name, _, qualname = name.partition(":")
        short = qualname.rpartition(".")[2]
        return (
            f"the stored data names the class {name!r} (as {_KIND_NAMES[kind]}), which this "
            f"process has not registered for loading. If it is your class, register it before "
            f"loading: "
            f"{self.owner}.register_type({short}) (after `from {module_name} import "
            f"{qualname.split('.')[0]}`), or {self.owner}.register_module({module_name!r}) for "
            f"every enum, dataclass and pydantic model of that module"
        )


_KIND_NAMES = {"enum": "an enum", "dataclass": "a dataclass", "pydantic": "a pydantic model"}


def _wrong_kind(name: str, kind: str, where: str) -> str:
    source = "the registered class" if where == "registered" else "the class of that name"
    return (
        f"the stored data says {name!r} is {_KIND_NAMES[kind]}, but {source} is not one (or the "
        f"name is not the class's own); stored data may only name enums, dataclasses and "
        f"pydantic models, so this data is damaged or was crafted"
    )


def _short(value: Any) -> str:
    if isinstance(value, str):
        return repr(value[:100])
    return type(value).__qualname__
