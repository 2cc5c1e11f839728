"""Serde: turning state values into JSON and back, for persisters and trackers.

``Serde.encode`` maps a value to JSON-compatible data (``None``, ``bool``, ``int``, ``float``,
``str``, lists and string-keyed dicts); ``Serde.decode`` maps it back. Values JSON has no form
for become tagged objects ``{"__turnout__": <kind>, ...}``:

* built in: tuples, sets, frozensets, bytes, dicts with non-string keys, non-finite floats,
  ``datetime``/``date``/``time``/``timedelta``, ``Decimal``, ``UUID``, ``Path``, complex numbers,
  enums, dataclasses, pydantic models (recognised by shape: no pydantic import here), and
  ``ArtifactRef`` (``turnout.core.artifacts``: the ref alone, never the blob it names);
* registered: ``serde.register(MyType, encode=..., decode=...)`` for anything else (adapters
  register LangChain messages, LlamaIndex nodes, ...), or Burr's ``@serialize.register``;
* turnout's plugins: pandas ``DataFrame``/``Series`` and numpy arrays, stored inline by codecs
  of ``turnout.integrations.serde`` that every ``Serde`` uses (imported when first met);
* a state key with Burr's ``register_field_serde`` pair, by ``encode_state``/``encode_field``;
* pickled: only with ``Serde(allow_pickle=True)``. Loading a pickle runs whatever code the
  pickle names, so that opt-in trusts the stored data completely.

**Stored data is untrusted.** Without pickle, decoding produces values and calls nothing the
data names: enums, dataclasses and pydantic models are stored with their class's name, and a
name is only looked up among classes the process vouched for (``register_type``,
``register_module``, or a class this ``Serde`` encoded in this process); see
``turnout.core._serde_types``. Loading never imports a module the data names: a tag of
turnout's own plugins (``"pandas:DataFrame"``) imports that plugin, from a map fixed when
``turnout`` is imported.

Encoding and decoding walk the value with an explicit stack, never recursion, so no input can
raise ``RecursionError``: the stored JSON nests at most ``MAX_DEPTH`` levels, a value that
contains itself is refused, and so is an ``int`` too long for Python to write as text. Every
failure is a ``SerdeError`` naming where it sits (``$.messages[3].args``) and how to fix it.
"""

from __future__ import annotations

import base64
import copy
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
from collections.abc import Callable, Mapping, Sequence
from types import ModuleType
from typing import Any

from turnout.core._artifact_ref import ArtifactRef
from turnout.core._burr_serde import (
    BURR_TAG,
    KEY,
    StringDispatch,
    custom_serializer,
    deserialize,
    deserializer,
    serialize,
    serialize_dict,
    serialize_list,
    serialize_primitive,
    serialize_with_option,
    state_serialize_only,
)
from turnout.core._serde_decode import DECODED_AS_IS, Decoder
from turnout.core._serde_fields import FIELD_TAG, serialize_field
from turnout.core._serde_plugins import PLUGIN_CODECS, load_for_type, register_plugin_codec
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
    same_label,
    walk,
)
from turnout.core.errors import SerdeError

__all__ = [
    "DEFAULT_SERDE",
    "KEY",
    "MAX_DEPTH",
    "TAG",
    "MissingCodeError",
    "Serde",
    "StringDispatch",
    "deserialize",
    "deserializer",
    "register_plugin_codec",
    "serialize",
    "serialize_dict",
    "serialize_list",
    "serialize_primitive",
    "serialize_with_option",
    "state_serialize_only",
    "type_name",
]


# Every int with fewer digits than this converts to text whatever sys.set_int_max_str_digits
# allows (its smallest setting is 640), so only longer ones need the real check.
_SAFE_INT = 10**639

_ENCODED_AS_IS: frozenset[type] = frozenset({str, bool, type(None)})

# Kept for the persisters, which tell "this process lacks the code" from "the record is damaged".
_MissingDecoderError = MissingCodeError


class Serde:
    """A registry of codecs and loadable types; see the module docstring. ``DEFAULT_SERDE`` is
    shared by default.

    Args:
        allow_pickle: encode values nothing else handles with pickle, and decode pickles.
            Loading a pickle runs code the stored data chooses: only for data you trust.
    """

    def __init__(self, *, allow_pickle: bool = False) -> None:
        self.allow_pickle = allow_pickle
        self.burr_kwargs: dict[str, Any] = {}
        self._codecs: dict[type, tuple[str, Callable[[Any], Any]]] = {}
        self._decoders: dict[str, Callable[[Any], Any]] = {}
        self._types = TypeRegistry("serde")
        self._encoder = _Encoder(self)

    def register(
        self,
        cls: type,
        *,
        encode: Callable[[Any], Any],
        decode: Callable[[Any], Any],
        name: str | None = None,
    ) -> None:
        """Save instances of ``cls`` (and subclasses) as ``encode(value)``, which may return any
        encodable value; load them with ``decode``. ``name`` defaults to ``type_name(cls)``.
        ``decode`` receives decoded data only, so it decides what the stored data may build."""
        key = name or type_name(cls)
        self._codecs[cls] = (key, encode)
        self._decoders[key] = decode

    def register_type(self, *classes: type) -> None:
        """Allow loading these enums, dataclasses or pydantic models (or pydantic-shaped
        classes with ``model_dump``/``model_validate``). A process that loads data another
        process saved registers its types here (or with ``register_module``) first."""
        for cls in classes:
            self._types.add(cls)

    def register_module(self, *modules: ModuleType | str) -> None:
        """Allow loading the enums, dataclasses and pydantic ``BaseModel`` subclasses defined in
        these modules (a module object or its dotted name, which is imported now). A class of
        such a module is loaded only if it is plainly the kind the stored data says, which is
        checked before it is called; functions and other classes there are never called."""
        for module in modules:
            self._types.add_module(module)

    def with_kwargs(self, **kwargs: Any) -> Serde:
        """A ``Serde`` sharing this one's registrations that passes ``kwargs`` to the functions
        registered Burr's way (``@serialize.register``, ``@deserializer.register``): Burr's
        ``serde_kwargs``, e.g. ``pandas_kwargs={"path": "/data/frames"}``. Persisters and
        trackers given ``serde_kwargs=`` use one. turnout's own codecs take no arguments."""
        bound = copy.copy(self)
        bound.burr_kwargs = dict(kwargs)
        bound._encoder = _Encoder(bound)
        return bound

    def registered_type(self, name: str, kind: str, path: str = "$") -> type:
        """The class stored data names as ``name`` (``"module:QualName"``), looked up among the
        classes this ``Serde`` may load (``register_type``, ``register_module``, or encoded by it
        in this process) and checked to be a ``kind`` (``"enum"``, ``"dataclass"`` or
        ``"pydantic"``). Nothing is imported or called; an unknown class is a ``SerdeError``
        naming the ``register_type`` call that allows it. For codecs that store class names."""
        return self._types.resolve(name, kind, path)

    # -- encoding --------------------------------------------------------------------------------

    def dumps(self, value: Any) -> str:
        """``value`` as compact JSON text."""
        data = self.encode(value)
        try:
            return json.dumps(data, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        except (ValueError, RecursionError) as exc:  # the encoder's limits make this unlikely
            raise SerdeError("$", value, f"the json module could not write it ({exc})") from exc

    def loads(self, text: str | bytes) -> Any:
        """The value ``dumps`` wrote as ``text``; ``SerdeError`` if it is not such text."""
        try:
            data = json.loads(text)
        except RecursionError:
            raise SerdeError(
                "$", None, f"the stored JSON nests deeper than {MAX_DEPTH} levels", loading=True
            ) from None
        except ValueError as exc:
            raise SerdeError(
                "$", None, f"the stored text is not JSON ({exc})", loading=True
            ) from exc
        return self.decode(data)

    def encode_field(self, key: str, value: Any) -> Any:
        """JSON-compatible data for the state key ``key`` holding ``value``: through the pair
        ``register_field_serde(key, ...)`` registered, if any, else ``encode``."""
        data = serialize_field(key, value, self.burr_kwargs)
        if data is None:
            return self.encode(value, f"$.{key}")
        return {TAG: FIELD_TAG, "key": key, "v": self.encode(data, f"$.{key}")}

    def encode_state(self, values: Mapping[str, Any]) -> Any:
        """JSON-compatible data for a whole state (``decode`` reads it back): each key through
        ``encode_field``. What persisters and trackers store."""
        encoded = {key: self.encode_field(key, value) for key, value in values.items()}
        if TAG in encoded:  # a state key named like the tag: stored as tagged pairs instead
            return {TAG: "dict", "v": [[key, value] for key, value in encoded.items()]}
        return encoded

    def dumps_state(self, values: Mapping[str, Any]) -> str:
        """``encode_state(values)`` as compact JSON text; ``loads`` reads it back."""
        data = self.encode_state(values)
        try:
            return json.dumps(data, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        except (ValueError, RecursionError) as exc:
            raise SerdeError("$", None, f"the json module could not write it ({exc})") from exc

    def encode(self, value: Any, path: str = "$") -> Any:
        """JSON-compatible data for ``value``; ``SerdeError`` names ``path`` if impossible."""
        kind = type(value)
        if kind in _ENCODED_AS_IS or (kind is int and -_SAFE_INT < value < _SAFE_INT):
            return value  # most values of a delta: no walk to set up
        return walk(value, path, self._encoder.visit, _ENCODED_AS_IS)

    # -- decoding --------------------------------------------------------------------------------

    def decode(self, data: Any) -> Any:
        """The value ``encode`` produced ``data`` from. Malformed data raises ``SerdeError``
        naming where it sits in ``data`` (``$.v[2]``)."""
        kind = type(data)
        if kind is not list and kind is not dict:
            return data
        decoder = Decoder(self._decoders, self._types, self.allow_pickle, self.burr_kwargs)
        return walk(data, "$", decoder.visit, DECODED_AS_IS)

    @property
    def _owner(self) -> str:
        return self._types.owner


class _Encoder(Walker):
    """Visits each value of one ``encode`` call; containers become ``Frame``s."""

    __slots__ = ("serde",)

    def __init__(self, serde: Serde) -> None:
        self.serde = serde

    def visit(self, value: Any, parent: Frame, index: int) -> Any:
        kind = type(value)
        if kind is int:
            return value if -_SAFE_INT < value < _SAFE_INT else self.big_int(value, parent, index)
        if kind is float:
            if math.isfinite(value):
                return value
            return self.leaf({TAG: "float", "v": repr(value)}, 1, value, parent, index)
        if kind is list:
            if parent.level < MAX_DEPTH and _flat(value):  # the common case, without a frame
                return list(value)
            return self.frame(value, value, None, None, 1, parent, index)
        if kind is dict:
            return self.dict_frame(value, value, parent, index)
        return self.other(value, kind, parent, index)

    def leaf(self, out: Any, levels: int, value: Any, parent: Frame, index: int) -> Any:
        if parent.level + levels > MAX_DEPTH:
            check_depth(parent.level + levels, MAX_DEPTH, path_of(parent, index), value)
        return out

    def big_int(self, value: int, parent: Frame, index: int) -> int:
        try:
            str(value)
        except ValueError as exc:
            raise SerdeError(
                path_of(parent, index), value, f"this int has {value.bit_length():,} bits, more "
                f"digits than Python writes as text (sys.get_int_max_str_digits() is "
                f"{getattr(sys, 'get_int_max_str_digits', lambda: 0)()}); keep it in the state "
                f"as text (hex(n)) or "
                f"bytes (n.to_bytes(...)), or raise that limit with sys.set_int_max_str_digits() "
                f"in every process that saves or loads it",
            ) from exc  # fmt: skip
        return value

    def dict_frame(self, value: Any, mapping: dict[Any, Any], parent: Frame, index: int) -> Any:
        if TAG not in mapping and all(type(k) is str for k in mapping):
            values = list(mapping.values())
            if parent.level < MAX_DEPTH and _flat(values):
                return dict(mapping)
            return self.frame(value, values, None, None, 1, parent, index, list(mapping))
        pairs = list(mapping.items())

        def label(i: int) -> str:
            key = safe_repr(pairs[i // 2][0])
            return f"<key {key}>" if i % 2 == 0 else f"[{key}]"

        def finish(results: list[Any]) -> Any:
            return {TAG: "dict", "v": [results[i : i + 2] for i in range(0, len(results), 2)]}

        items = [part for pair in pairs for part in pair]
        return self.frame(value, items, label, finish, 3, parent, index)

    def other(
        self, value: Any, kind: type, parent: Frame, index: int, retried: bool = False
    ) -> Any:
        # Precedence: this Serde's registrations, then Burr's @serialize.register (a program's
        # own, or a plugin's when serde_kwargs ask for it), then turnout's plugin codecs.
        codec = _codec_for(self.serde._codecs, kind)
        if codec is not None:
            return self.codec(value, codec, parent, index)
        burr_encode = custom_serializer(kind, self.serde.burr_kwargs)
        if burr_encode is not None:
            return self.burr(value, kind, burr_encode, parent, index)
        codec = _codec_for(PLUGIN_CODECS, kind)
        if codec is not None:
            return self.codec(value, codec, parent, index)
        return self.builtin(value, kind, parent, index, retried)

    def codec(
        self, value: Any, codec: tuple[str, Callable[[Any], Any]], parent: Frame, index: int
    ) -> Frame:
        key, encode = codec
        path = path_of(parent, index)
        try:
            out = call(encode, value, path, f"the encoder of {key!r}", loading=False)
        except SerdeError as exc:
            if exc.path:
                raise
            raise SerdeError(path, value, str(exc)) from exc  # say where the value sits
        return self.frame(
            value, [out], same_label, lambda r: {TAG: key, "v": r[0]}, 1, parent, index
        )

    def burr(
        self, value: Any, kind: type, encode: Callable[..., Any], parent: Frame, index: int
    ) -> Frame:
        path = path_of(parent, index)
        what = f"the function registered with @serialize.register({kind.__name__})"
        kwargs = self.serde.burr_kwargs
        try:
            out = call(lambda v: encode(v, **kwargs), value, path, what, loading=False)
        except SerdeError as exc:
            if exc.path:
                raise
            raise SerdeError(path, value, str(exc)) from exc  # say where the value sits
        return self.frame(
            value, [out], same_label, lambda r: {TAG: BURR_TAG, "v": r[0]}, 1, parent, index
        )

    def builtin(
        self, value: Any, kind: type, parent: Frame, index: int, retried: bool = False
    ) -> Any:
        if isinstance(value, enum.Enum):
            return self.named(value, "enum", [value.value], same_label, 1, parent, index)
        if isinstance(value, (bool, int, float, str)):  # subclasses of the plain types
            base = _plain_base(value)
            if type(base) is float and not math.isfinite(base):
                return self.leaf({TAG: "float", "v": repr(base)}, 1, value, parent, index)
            if type(base) is int and not -_SAFE_INT < base < _SAFE_INT:
                self.big_int(base, parent, index)
            return self.leaf({TAG: "as", "type": kind.__name__, "v": base}, 1, value, parent, index)
        if isinstance(value, (list, tuple, set, frozenset)):
            tag = next(t for c, t in _SEQUENCES if isinstance(value, c))
            items = value if isinstance(value, (list, tuple)) else list(value)
            finish: Callable[[list[Any]], Any] = lambda r: {TAG: tag, "v": r}  # noqa: E731
            return self.frame(value, items, None, finish, 2, parent, index)
        if isinstance(value, dict):
            return self.dict_frame(value, dict(value), parent, index)
        simple = _encode_simple(value)
        if simple is not None:
            out, levels = simple
            return self.leaf(out, levels, value, parent, index)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            names = [f.name for f in dataclasses.fields(value)]
            path = path_of(parent, index)
            items = [
                call(lambda n: getattr(value, n), n, f"{path}.{n}", "reading it", loading=False)
                for n in names
            ]
            return self.named(
                value, "dataclass", items, lambda i: f".{names[i]}", 2, parent, index, names
            )
        if _looks_pydantic(value):
            dump = value.model_dump
            path = path_of(parent, index)
            data = call(lambda _: dump(mode="json"), None, path, "model_dump", loading=False)
            return self.named(value, "pydantic", [data], same_label, 1, parent, index)
        if not retried and load_for_type(kind):  # a pandas or numpy value: its plugin, then retry
            return self.other(value, kind, parent, index, retried=True)
        if self.serde.allow_pickle:
            try:
                data = pickle.dumps(value)
            except Exception as exc:
                raise SerdeError(path_of(parent, index), value, f"pickle failed: {exc}") from exc
            out = {TAG: "pickle", "v": base64.b64encode(data).decode("ascii")}
            return self.leaf(out, 1, value, parent, index)
        raise SerdeError(path_of(parent, index), value)

    def named(
        self,
        value: Any,
        tag: str,
        items: list[Any],
        label: Callable[[int], str],
        wrap: int,
        parent: Frame,
        index: int,
        names: list[str] | None = None,
    ) -> Frame:
        """A value stored with its class's name, which this process may now load back."""
        cls = type(value)
        self.serde._types.remember(cls)
        name = type_name(cls)

        def finish(results: list[Any]) -> Any:
            data = results[0] if names is None else dict(zip(names, results, strict=True))
            return {TAG: tag, "type": name, "v": data}

        return self.frame(value, items, label, finish, wrap, parent, index)


# -- helpers -------------------------------------------------------------------------------------

_SEQUENCES: tuple[tuple[type, str], ...] = (
    (list, "list"),
    (tuple, "tuple"),
    (set, "set"),
    (frozenset, "frozenset"),
)


def _codec_for(
    codecs: dict[type, tuple[str, Callable[[Any], Any]]], kind: type
) -> tuple[str, Callable[[Any], Any]] | None:
    if not codecs:
        return None
    return next((codecs[c] for c in kind.__mro__ if c in codecs), None)


def _flat(items: Sequence[Any]) -> bool:
    """Whether every item is stored as itself (so the container needs no frame)."""
    for item in items:
        kind = type(item)
        if kind in _ENCODED_AS_IS:
            continue
        if kind is int and -_SAFE_INT < item < _SAFE_INT:
            continue
        if kind is float and math.isfinite(item):
            continue
        return False
    return True


def _plain_base(value: Any) -> Any:
    for base in (bool, int, float, str):
        if isinstance(value, base):
            return base(value)
    return value


def _looks_pydantic(value: Any) -> bool:
    kind = type(value)
    return callable(getattr(value, "model_dump", None)) and callable(
        getattr(kind, "model_validate", None)
    )


def _finite_or_text(x: float) -> float | str:
    return x if math.isfinite(x) else repr(x)


def _encode_simple(value: Any) -> tuple[dict[str, Any], int] | None:
    """The stored form of a built-in scalar type, and how many JSON levels it takes."""
    if isinstance(value, (bytes, bytearray)):
        return {TAG: "bytes", "v": base64.b64encode(bytes(value)).decode("ascii")}, 1
    if isinstance(value, dt.datetime):
        return {TAG: "datetime", "v": value.isoformat()}, 1
    if isinstance(value, dt.date):
        return {TAG: "date", "v": value.isoformat()}, 1
    if isinstance(value, dt.time):
        return {TAG: "time", "v": value.isoformat()}, 1
    if isinstance(value, dt.timedelta):
        return {TAG: "timedelta", "v": [value.days, value.seconds, value.microseconds]}, 2
    if isinstance(value, decimal.Decimal):
        return {TAG: "decimal", "v": str(value)}, 1
    if isinstance(value, uuid.UUID):
        return {TAG: "uuid", "v": str(value)}, 1
    if isinstance(value, pathlib.PurePath):
        return {TAG: "path", "v": str(value)}, 1
    if isinstance(value, complex):
        parts = [_finite_or_text(value.real), _finite_or_text(value.imag)]
        return {TAG: "complex", "v": parts}, 2
    if isinstance(value, ArtifactRef):
        return {TAG: "artifact", "v": value.to_json()}, 2
    return None


DEFAULT_SERDE = Serde()
"""The registry persisters and trackers use unless given another; adapters register here."""
DEFAULT_SERDE._types.owner = "turnout.core.serde.DEFAULT_SERDE"
