"""Serde: turning state values into JSON and back, for persisters and trackers.

``Serde.encode`` maps a value to JSON-compatible data (``None``, ``bool``, ``int``, ``float``,
``str``, lists and string-keyed dicts); ``Serde.decode`` maps it back. Values JSON has no form
for become tagged objects ``{"__turnout__": <kind>, ...}``:

* built in: tuples, sets, frozensets, bytes, dicts with non-string keys, non-finite floats,
  ``datetime``/``date``/``time``/``timedelta``, ``Decimal``, ``UUID``, ``Path``, complex numbers,
  enums, dataclasses, and pydantic models (recognised by shape: no pydantic import here);
* registered: ``serde.register(MyType, encode=..., decode=...)`` for anything else (adapters
  register LangChain messages, LlamaIndex nodes, ...);
* pickled: only when created with ``Serde(allow_pickle=True)``, which has its usual risks.

Dataclasses, enums and pydantic models are stored with their type's name and found again by
name when loading: among types registered with ``register_type``, or in modules already
imported. Loading never imports a module, so stored data cannot make the process run code it
did not load itself.

A value that cannot be encoded raises ``SerdeError`` naming where it sits (``$.messages[3].args``)
and how to make it saveable.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import decimal
import enum
import json
import math
import pathlib
import pickle
import sys
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from turnout.core.errors import SerdeError

__all__ = ["DEFAULT_SERDE", "Serde", "type_name"]

TAG = "__turnout__"
_PLAIN = (str, int, bool, type(None))


def type_name(cls: type) -> str:
    """``"module:QualName"``, how a type is named in stored data."""
    return f"{cls.__module__}:{cls.__qualname__}"


# Tags an adapter registers start with its name; the message names the module to import. Only
# the name: the core never imports an adapter.
_ADAPTER_TAG_PREFIXES = {
    "langchain": "turnout.integrations.langchain",
    "llamaindex": "turnout.integrations.llamaindex",
}


class _MissingDecoderError(SerdeError):
    """No decoder is registered for a stored value's tag: the data is intact, the process lacks
    the code that reads it (``PersistenceError`` then says so rather than blaming the data)."""

    def __init__(self, tag: str) -> None:
        self.tag = tag
        module = _ADAPTER_TAG_PREFIXES.get(tag.partition(":")[0]) if ":" in tag else None
        if module is not None:
            fix = f"import {module} before loading (importing it registers the decoder)"
        else:
            fix = (
                f"register one with serde.register(<type>, encode=..., decode=..., "
                f"name={tag!r}) before loading"
            )
        super().__init__("$", None, f"no decoder is registered for {tag!r}; {fix}")


class Serde:
    """A registry of codecs; see the module docstring. ``DEFAULT_SERDE`` is shared by default.

    Args:
        allow_pickle: encode values nothing else handles with pickle (and decode them).
    """

    def __init__(self, *, allow_pickle: bool = False) -> None:
        self.allow_pickle = allow_pickle
        self._codecs: dict[type, tuple[str, Callable[[Any], Any]]] = {}
        self._decoders: dict[str, Callable[[Any], Any]] = {}
        self._types: dict[str, type] = {}

    def register(
        self,
        cls: type,
        *,
        encode: Callable[[Any], Any],
        decode: Callable[[Any], Any],
        name: str | None = None,
    ) -> None:
        """Save instances of ``cls`` (and subclasses) as ``encode(value)``, which may return any
        encodable value; load them with ``decode``. ``name`` defaults to ``type_name(cls)``."""
        key = name or type_name(cls)
        self._codecs[cls] = (key, encode)
        self._decoders[key] = decode

    def register_type(self, *classes: type) -> None:
        """Allow loading these dataclasses, enums or pydantic models even when their module is
        not the one named in the stored data (or not imported yet)."""
        for cls in classes:
            self._types[type_name(cls)] = cls

    # -- encoding --------------------------------------------------------------------------------

    def dumps(self, value: Any) -> str:
        """``value`` as compact JSON text."""
        return json.dumps(self.encode(value), separators=(",", ":"), ensure_ascii=False)

    def loads(self, text: str | bytes) -> Any:
        return self.decode(json.loads(text))

    def encode(self, value: Any, path: str = "$") -> Any:
        """JSON-compatible data for ``value``; ``SerdeError`` names ``path`` if impossible."""
        kind = type(value)
        if kind in _PLAIN:
            return value
        if kind is float:
            return value if math.isfinite(value) else {TAG: "float", "v": repr(value)}
        if kind is list:
            return [self.encode(item, f"{path}[{i}]") for i, item in enumerate(value)]
        if kind is dict:
            return self._encode_dict(value, path)
        return self._encode_other(value, path)

    def _encode_dict(self, value: dict[Any, Any], path: str) -> Any:
        if all(type(k) is str for k in value) and TAG not in value:
            return {k: self.encode(v, f"{path}.{k}") for k, v in value.items()}
        pairs = [
            [self.encode(k, f"{path}<key {k!r}>"), self.encode(v, f"{path}[{k!r}]")]
            for k, v in value.items()
        ]
        return {TAG: "dict", "v": pairs}

    def _encode_other(self, value: Any, path: str) -> Any:
        for cls in type(value).__mro__:
            codec = self._codecs.get(cls)
            if codec is not None:
                key, encode = codec
                return {TAG: key, "v": self.encode(encode(value), f"{path}")}
        builtin = self._encode_builtin(value, path)
        if builtin is not None:
            return builtin
        if self.allow_pickle:
            try:
                data = pickle.dumps(value)
            except Exception as exc:
                raise SerdeError(path, value, f"pickle failed: {exc}") from exc
            return {TAG: "pickle", "v": base64.b64encode(data).decode("ascii")}
        raise SerdeError(path, value)

    def _encode_builtin(self, value: Any, path: str) -> dict[str, Any] | None:
        if isinstance(value, enum.Enum):
            return {
                TAG: "enum",
                "type": type_name(type(value)),
                "v": self.encode(value.value, path),
            }
        if isinstance(value, (bool, int, float, str)):  # subclasses of the plain types
            return {TAG: "as", "type": type(value).__name__, "v": _plain_base(value)}
        if isinstance(value, (list, tuple, set, frozenset)):
            items = [self.encode(item, f"{path}[{i}]") for i, item in enumerate(value)]
            kind = {list: "list", tuple: "tuple", set: "set", frozenset: "frozenset"}
            return {TAG: next(v for k, v in kind.items() if isinstance(value, k)), "v": items}
        if isinstance(value, dict):
            encoded: dict[str, Any] = self._encode_dict(dict(value), path)
            return encoded
        if isinstance(value, (bytes, bytearray)):
            return {TAG: "bytes", "v": base64.b64encode(bytes(value)).decode("ascii")}
        if isinstance(value, dt.datetime):
            return {TAG: "datetime", "v": value.isoformat()}
        if isinstance(value, dt.date):
            return {TAG: "date", "v": value.isoformat()}
        if isinstance(value, dt.time):
            return {TAG: "time", "v": value.isoformat()}
        if isinstance(value, dt.timedelta):
            return {TAG: "timedelta", "v": [value.days, value.seconds, value.microseconds]}
        if isinstance(value, decimal.Decimal):
            return {TAG: "decimal", "v": str(value)}
        if isinstance(value, uuid.UUID):
            return {TAG: "uuid", "v": str(value)}
        if isinstance(value, pathlib.PurePath):
            return {TAG: "path", "v": str(value)}
        if isinstance(value, complex):
            return {TAG: "complex", "v": [value.real, value.imag]}
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            fields = {
                f.name: self.encode(getattr(value, f.name), f"{path}.{f.name}")
                for f in dataclasses.fields(value)
            }
            return {TAG: "dataclass", "type": type_name(type(value)), "v": fields}
        if _is_pydantic_model(value):
            data = value.model_dump(mode="json")
            return {TAG: "pydantic", "type": type_name(type(value)), "v": data}
        return None

    # -- decoding --------------------------------------------------------------------------------

    def decode(self, data: Any) -> Any:
        """The value ``encode`` produced ``data`` from."""
        kind = type(data)
        if kind is list:
            return [self.decode(item) for item in data]
        if kind is dict:
            tag = data.get(TAG)
            if tag is None:
                return {k: self.decode(v) for k, v in data.items()}
            return self._decode_tagged(tag, data)
        return data

    def _decode_tagged(self, tag: str, data: dict[str, Any]) -> Any:
        raw: Any = data.get("v")
        simple = _SIMPLE_DECODERS.get(tag)
        if simple is not None:
            return simple(raw)
        if tag in ("list", "tuple", "set", "frozenset"):
            items = [self.decode(item) for item in raw]
            return {"list": list, "tuple": tuple, "set": set, "frozenset": frozenset}[tag](items)
        if tag == "dict":
            return {self._hashable(self.decode(k)): self.decode(v) for k, v in raw}
        if tag == "enum":
            return self._resolve(data["type"])(self.decode(raw))
        if tag == "dataclass":
            return _build_dataclass(self._resolve(data["type"]), self.decode(raw))
        if tag == "pydantic":
            return self._resolve(data["type"]).model_validate(raw)  # type: ignore[attr-defined]
        if tag == "pickle":
            if not self.allow_pickle:
                raise SerdeError(
                    "$", None, "this data holds a pickled value; load it with a "
                    "Serde(allow_pickle=True) if you trust where it came from"
                )  # fmt: skip
            return pickle.loads(base64.b64decode(raw))
        decoder = self._decoders.get(tag)
        if decoder is None:
            raise _MissingDecoderError(tag)
        return decoder(self.decode(raw))

    @staticmethod
    def _hashable(key: Any) -> Any:
        return tuple(key) if isinstance(key, list) else key

    def _resolve(self, name: str) -> type:
        found = self._types.get(name)
        if found is not None:
            return found
        module_name, _, qualname = name.partition(":")
        target: Any = sys.modules.get(module_name)
        for part in qualname.split("."):
            target = getattr(target, part, None) if target is not None else None
        if not isinstance(target, type):
            raise SerdeError(
                "$", None, f"the stored data names the type {name!r}, which is not loaded: "
                f"import {module_name!r} first, or call serde.register_type(<the class>)"
            )  # fmt: skip
        return target


def _plain_base(value: Any) -> Any:
    for base in (bool, int, float, str):
        if isinstance(value, base):
            return base(value)
    return value


def _is_pydantic_model(value: Any) -> bool:
    kind = type(value)
    return callable(getattr(value, "model_dump", None)) and callable(
        getattr(kind, "model_validate", None)
    )


def _build_dataclass(cls: type, fields: Mapping[str, Any]) -> Any:
    init = {f.name for f in dataclasses.fields(cls) if f.init}
    obj = cls(**{k: v for k, v in fields.items() if k in init})
    for key, value in fields.items():
        if key not in init:
            object.__setattr__(obj, key, value)
    return obj


_SIMPLE_DECODERS: dict[str, Callable[[Any], Any]] = {
    "float": float,
    "as": lambda raw: raw,
    "bytes": base64.b64decode,
    "datetime": dt.datetime.fromisoformat,
    "date": dt.date.fromisoformat,
    "time": dt.time.fromisoformat,
    "timedelta": lambda raw: dt.timedelta(days=raw[0], seconds=raw[1], microseconds=raw[2]),
    "decimal": decimal.Decimal,
    "uuid": uuid.UUID,
    "path": pathlib.Path,
    "complex": lambda raw: complex(raw[0], raw[1]),
}

DEFAULT_SERDE = Serde()
"""The registry persisters and trackers use unless given another; adapters register here."""
