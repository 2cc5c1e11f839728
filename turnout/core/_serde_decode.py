"""Decoding: stored JSON back into values, refusing anything malformed or not vouched for.

Paths in its errors name places in the stored JSON (``$.history.v[2]``). Nothing a payload names
is called: tags map to fixed decoders, registered codecs, or classes the ``TypeRegistry``
resolved (and checked) first; the only code that runs is those decoders and those classes.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import decimal
import pathlib
import pickle
import re
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from turnout.core._artifact_ref import ArtifactRef
from turnout.core._burr_serde import BURR_TAG, UnregisteredKeyError
from turnout.core._burr_serde import deserialize as burr_deserialize
from turnout.core._serde_fields import FIELD_TAG, field_deserializer
from turnout.core._serde_plugins import plugin_decoder, why_missing_tag
from turnout.core._serde_types import MissingCodeError, TypeRegistry, type_name
from turnout.core._serde_walk import (
    MAX_DEPTH,
    TAG,
    Frame,
    Walker,
    call,
    check_depth,
    path_of,
    safe_repr,
)
from turnout.core.errors import SerdeError

__all__ = ["DECODED_AS_IS", "Decoder"]

DECODED_AS_IS: frozenset[type] = frozenset({str, int, float, bool, type(None)})

# Tags an adapter registers start with its name; the message names the module to import. Only
# the name: the core never imports an adapter.
_ADAPTER_TAG_PREFIXES = {
    "langchain": "turnout.integrations.langchain",
    "llamaindex": "turnout.integrations.llamaindex",
}


def _value_label(_index: int) -> str:
    return ".v"


def _tagged_index(index: int) -> str:
    return f".v[{index}]"


_SEQUENCE_TYPES: dict[str, Callable[[list[Any]], Any]] = {
    "list": list,
    "tuple": tuple,
    "set": set,
    "frozenset": frozenset,
}


class Decoder(Walker):
    """One ``decode`` call. Paths name places in the stored JSON (``$.x.v[2]``)."""

    __slots__ = ("allow_pickle", "burr_kwargs", "decoders", "types")
    loading = True

    def __init__(
        self,
        decoders: dict[str, Callable[[Any], Any]],
        types: TypeRegistry,
        allow_pickle: bool,
        burr_kwargs: dict[str, Any] | None = None,
    ) -> None:
        self.decoders = decoders
        self.types = types
        self.allow_pickle = allow_pickle
        self.burr_kwargs = burr_kwargs or {}

    def visit(self, data: Any, parent: Frame, index: int) -> Any:
        kind = type(data)
        if kind is list:
            if parent.level < MAX_DEPTH and _flat(data):  # the common case, without a frame
                return list(data)
            return self.frame(None, data, None, None, 1, parent, index)
        if kind is dict:
            if TAG in data:
                return self.tagged(data, parent, index)
            values = list(data.values())
            if parent.level < MAX_DEPTH and _flat(values):
                return dict(data)
            return self.frame(None, values, None, None, 1, parent, index, list(data))
        return data

    def tagged(self, data: dict[str, Any], parent: Frame, index: int) -> Any:
        path = path_of(parent, index)
        tag = data[TAG]
        if type(tag) is not str:
            raise _bad(path, f"its {TAG!r} entry must name a tag (a string), not {_kind(tag)}")
        if "v" not in data:
            raise _bad(path, f"the tagged value {tag[:80]!r} has no 'v' entry")
        raw = data["v"]
        simple = _SIMPLE_DECODERS.get(tag)
        if simple is not None:
            decode, levels = simple
            check_depth(parent.level + levels, MAX_DEPTH, path, None, loading=True)
            try:
                return decode(raw)
            except (ValueError, TypeError, ArithmeticError) as exc:
                raise _bad(f"{path}.v", f"not a stored {tag} value ({exc})") from None
        if tag in _SEQUENCE_TYPES:
            build = _SEQUENCE_TYPES[tag]
            items = _expect(raw, list, f"{path}.v", f"the items of a {tag}")
            return self.frame(
                None, items, _tagged_index, lambda r: _build(build, r, path, tag), 2, parent, index
            )
        if tag == "dict":
            return self.dict_pairs(raw, path, parent, index)
        if tag in ("enum", "dataclass", "pydantic"):
            return self.named(tag, data, raw, path, parent, index)
        if tag == "pickle":
            return self.pickled(raw, path)
        if tag == BURR_TAG:  # made by an @serialize.register function: its decoders read it
            return self.frame(
                None,
                [raw],
                _value_label,
                lambda r: _burr_decode(r[0], path, self.burr_kwargs),
                1,
                parent,
                index,
            )
        if tag == FIELD_TAG:
            return self.field(data.get("key"), raw, path, parent, index)
        decoder = self.decoders.get(tag) or plugin_decoder(tag)
        if decoder is None:
            why = why_missing_tag(tag)
            if why is not None:  # a plugin's tag, whose library is not installed here
                raise MissingCodeError(
                    path, f"{tag!r} is stored by a plugin that is missing: {why}"
                )
            raise MissingCodeError(path, _missing_decoder(tag, self.types.owner))
        what = f"the decoder registered for {tag!r}"
        return self.frame(
            None, [raw], _value_label, lambda r: _call(decoder, r[0], path, what), 1, parent, index
        )

    def field(self, key: Any, raw: Any, path: str, parent: Frame, index: int) -> Frame:
        """A state key stored by its ``register_field_serde`` pair."""
        decode = field_deserializer(key, path)
        kwargs = self.burr_kwargs
        what = f"the field deserializer registered for {key!r}"
        return self.frame(
            None,
            [_expect(raw, dict, f"{path}.v", "a field serializer's data")],
            _value_label,
            lambda r: _call(lambda d: decode(d, **kwargs), r[0], path, what),
            1,
            parent,
            index,
        )

    def dict_pairs(self, raw: Any, path: str, parent: Frame, index: int) -> Frame:
        pairs = _expect(raw, list, f"{path}.v", "the [key, value] pairs of a dict")
        for i, pair in enumerate(pairs):
            if type(pair) is not list or len(pair) != 2:
                reason = f"a dict entry must be [key, value], not {safe_repr(pair)}"
                raise _bad(f"{path}.v[{i}]", reason)
        items = [part for pair in pairs for part in pair]

        def finish(results: list[Any]) -> Any:
            out = {}
            for i in range(0, len(results), 2):
                key = results[i]
                key = tuple(key) if type(key) is list else key
                try:
                    out[key] = results[i + 1]
                except TypeError:
                    raise _bad(f"{path}.v[{i // 2}][0]", f"a dict key must be hashable, not "
                               f"{_kind(key)}") from None  # fmt: skip
            return out

        return self.frame(None, items, lambda i: f".v[{i // 2}][{i % 2}]", finish, 3, parent, index)

    def named(
        self, tag: str, data: dict[str, Any], raw: Any, path: str, parent: Frame, index: int
    ) -> Frame:
        cls: Any = self.types.resolve(data.get("type"), tag, path)  # before any call
        name = type_name(cls)
        if tag == "enum":
            what = f"looking up the {name} member"
            finish: Callable[[list[Any]], Any] = lambda r: call(cls, r[0], path, what)  # noqa: E731
            return self.frame(None, [raw], _value_label, finish, 1, parent, index)
        if tag == "pydantic":
            what = f"{name}.model_validate"
            finish = lambda r: call(cls.model_validate, r[0], path, what)  # noqa: E731
            return self.frame(None, [raw], _value_label, finish, 1, parent, index)
        fields = _expect(raw, dict, f"{path}.v", f"the fields of a {name}")
        keys = list(fields)
        return self.frame(
            None,
            list(fields.values()),
            lambda i: f".v.{keys[i]}",
            lambda r: _build_dataclass(cls, dict(zip(keys, r, strict=True)), path),
            2,
            parent,
            index,
        )

    def pickled(self, raw: Any, path: str) -> Any:
        if not self.allow_pickle:
            raise MissingCodeError(
                path, "this data holds a pickled value; load it with a Serde(allow_pickle=True) "
                "only if you trust where it came from: loading a pickle runs code it names",
            )  # fmt: skip
        text = _expect(raw, str, f"{path}.v", "a pickle")
        try:
            blob = base64.b64decode(text, validate=True)
        except ValueError as exc:
            raise _bad(f"{path}.v", f"not base64 ({exc})") from None
        return call(pickle.loads, blob, path, "pickle.loads")


def _burr_decode(data: Any, path: str, kwargs: dict[str, Any]) -> Any:
    try:
        return call(
            lambda d: burr_deserialize(d, **kwargs),
            data,
            path,
            "the decoder registered on serde.deserializer",
        )
    except UnregisteredKeyError as exc:
        raise MissingCodeError(path, str(exc)) from None
    except SerdeError as exc:
        if exc.path:
            raise
        raise SerdeError(path, None, str(exc), loading=True) from exc


def _call(function: Callable[[Any], Any], data: Any, path: str, what: str) -> Any:
    """``call``, with a ``SerdeError`` the decoder raised without a path placed at ``path``."""
    try:
        return call(function, data, path, what)
    except MissingCodeError as exc:
        if exc.path:
            raise
        raise MissingCodeError(path, str(exc)) from exc
    except SerdeError as exc:
        if exc.path:
            raise
        raise SerdeError(path, None, str(exc), loading=True) from exc


def _flat(items: Sequence[Any]) -> bool:
    return all(type(item) in DECODED_AS_IS for item in items)


def _bad(path: str, reason: str) -> SerdeError:
    return SerdeError(path, None, reason, loading=True)


def _kind(value: Any) -> str:
    return type(value).__qualname__


def _expect(raw: Any, kind: type, path: str, what: str) -> Any:
    if type(raw) is not kind:
        raise _bad(path, f"{what} must be stored as a {kind.__name__}, not {_kind(raw)}")
    return raw


def _build(build: Callable[[list[Any]], Any], items: list[Any], path: str, tag: str) -> Any:
    try:
        return build(items)
    except TypeError:
        raise _bad(f"{path}.v", f"the items of a {tag} must be hashable") from None


def _build_dataclass(cls: Any, fields: dict[str, Any], path: str) -> Any:
    declared = {f.name: f for f in dataclasses.fields(cls)}
    unknown = [key for key in fields if key not in declared]
    if unknown:
        raise _bad(
            f"{path}.v", f"{type_name(cls)} has no field {unknown[0][:80]!r} (it changed since "
            f"the data was saved?): add the field back or migrate the stored state",
        )  # fmt: skip
    init = {k: v for k, v in fields.items() if declared[k].init}
    obj = call(lambda kwargs: cls(**kwargs), init, path, f"building {type_name(cls)}")
    for key, value in fields.items():
        if not declared[key].init:
            try:
                object.__setattr__(obj, key, value)
            except (AttributeError, TypeError) as exc:
                raise _bad(f"{path}.v.{key}", f"cannot set the field ({exc})") from exc
    return obj


def _missing_decoder(tag: str, owner: str) -> str:
    module = _ADAPTER_TAG_PREFIXES.get(tag.partition(":")[0]) if ":" in tag else None
    shown = repr(tag[:100])
    if module is not None:
        return (
            f"no decoder is registered for {shown}; import {module} before loading (importing "
            f"it registers the decoder)"
        )
    return (
        f"no decoder is registered for {shown}; register one with {owner}.register(<type>, "
        f"encode=..., decode=..., name={shown}) before loading"
    )


def _part(raw: Any) -> float:
    """A complex number's part: a JSON number, or the text of a non-finite float."""
    if type(raw) is str:
        return float(raw)
    if type(raw) not in (int, float):
        raise TypeError(f"expected a number, not {_kind(raw)}")
    return float(raw)


def _text(raw: Any) -> str:
    if type(raw) is not str:
        raise TypeError(f"expected a string, not {_kind(raw)}")
    return raw


def _ints(raw: Any, count: int) -> list[int]:
    if type(raw) is not list or len(raw) != count or any(type(x) is not int for x in raw):
        raise TypeError(f"expected a list of {count} ints, not {safe_repr(raw, 80)}")
    return raw


def _plain(raw: Any) -> Any:
    if type(raw) not in (bool, int, float, str):
        raise TypeError(f"expected a bool, int, float or string, not {_kind(raw)}")
    return raw


def _complex(raw: Any) -> complex:
    if type(raw) is not list or len(raw) != 2:
        raise TypeError(f"expected [real, imag], not {safe_repr(raw, 80)}")
    return complex(_part(raw[0]), _part(raw[1]))


# ``fromisoformat`` of Python 3.11 reads an offset with microseconds (``+00:00:00.000001``, which
# ``isoformat`` writes) as UTC; such an offset is parsed here, the rest by ``fromisoformat``.
_FINE_OFFSET = re.compile(r"([+-])(\d\d):(\d\d):(\d\d)\.(\d{6})")


def _iso(kind: type[dt.datetime] | type[dt.time], raw: Any) -> Any:
    text = _text(raw)
    fine = _FINE_OFFSET.search(text)
    if fine is None or fine.end() != len(text):
        return kind.fromisoformat(text)
    sign, hours, minutes, seconds, micros = fine.groups()
    offset = dt.timedelta(
        hours=int(hours), minutes=int(minutes), seconds=int(seconds), microseconds=int(micros)
    )
    naive = kind.fromisoformat(text[: fine.start()])
    return naive.replace(tzinfo=dt.timezone(-offset if sign == "-" else offset))


def _timedelta(raw: Any) -> dt.timedelta:
    days, seconds, microseconds = _ints(raw, 3)
    return dt.timedelta(days=days, seconds=seconds, microseconds=microseconds)


# tag -> (decoder of the "v" entry, JSON levels the stored form takes)
_SIMPLE_DECODERS: dict[str, tuple[Callable[[Any], Any], int]] = {
    "float": (lambda raw: float(_text(raw)), 1),
    "as": (_plain, 1),
    "bytes": (lambda raw: base64.b64decode(_text(raw), validate=True), 1),
    "datetime": (lambda raw: _iso(dt.datetime, raw), 1),
    "date": (lambda raw: dt.date.fromisoformat(_text(raw)), 1),
    "time": (lambda raw: _iso(dt.time, raw), 1),
    "timedelta": (_timedelta, 2),
    "decimal": (lambda raw: decimal.Decimal(_text(raw)), 1),
    "uuid": (lambda raw: uuid.UUID(_text(raw)), 1),
    "path": (lambda raw: pathlib.Path(_text(raw)), 1),
    "complex": (_complex, 2),
    "artifact": (ArtifactRef.from_json, 2),  # the ref only: decoding never reads the blob
}
