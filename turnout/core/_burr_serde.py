"""Burr's serialisation API, for programs that register their own codecs the way Burr documents.

Burr serialises state with a ``functools.singledispatch`` function, ``serialize``, whose
registrations return plain JSON data; a value that needs its own decoder comes out as a dict with
the key ``"__burr_serde__"`` naming a decoder registered on ``deserializer`` (a registry keyed by
string). ``deserialize`` walks the data and hands each tagged dict to its decoder. A field can
have its own pair instead (``register_field_serde``). ``State.serialize()`` and
``State.deserialize()`` use all of this.

Stored data names a *key*, never code: a key selects one of the functions the loading process
registered itself, and an unknown key is a ``SerdeError`` naming the registered ones. The walk
stops at ``MAX_DEPTH`` (200) levels with a ``SerdeError`` instead of running out of stack.

Burr's plugins (pandas, pydantic, LangChain: ``turnout.integrations.serde``) are imported the
first time a value or a key of theirs is met; see ``turnout.core._serde_plugins``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from functools import singledispatch
from typing import Any, TypeVar

from turnout.core._serde_plugins import load_for_key, load_for_type, why_missing
from turnout.core.errors import SerdeError

__all__ = [
    "KEY",
    "StringDispatch",
    "deserialize",
    "deserializer",
    "field_serde",
    "register_field_serde",
    "serialize",
    "serialize_dict",
    "serialize_list",
    "serialize_primitive",
    "serialize_with_option",
    "state_serialize_only",
]

MAX_DEPTH = 200
"""How deep ``deserialize`` walks (it recurses, as Burr's does) before refusing the data."""

BURR_TAG = "burr"
"""turnout's tag (``{"__turnout__": "burr", "v": ...}``) for what ``@serialize.register``
functions made, when a persister or tracker stores such a value."""

KEY = "__burr_serde__"
"""The key of a serialised dict that names the decoder to turn it back into a value."""

F = TypeVar("F", bound=Callable[..., Any])


class UnregisteredKeyError(SerdeError):
    """Serialised data names a ``__burr_serde__`` key no decoder is registered for."""


class StringDispatch:
    """Decoders registered under a string key, the counterpart of ``serialize``'s registrations.

    ``@deserializer.register("my_type")`` registers a function called as
    ``fn(data, **kwargs)`` for every dict whose ``"__burr_serde__"`` is ``"my_type"``.
    """

    def __init__(self) -> None:
        self.func_map: dict[str, Callable[..., Any]] = {}

    def register(self, key: str) -> Callable[[F], F]:
        if not isinstance(key, str) or not key:
            raise SerdeError(
                "", None, f"a deserializer key must be a non-empty string, got {key!r}"
            )

        def decorator(func: F) -> F:
            self.func_map[key] = func
            return func

        return decorator

    def lookup(self, key: Any) -> Callable[..., Any] | None:
        """The decoder registered for ``key``, or ``None``."""
        return self.func_map.get(key) if isinstance(key, str) else None

    def call(self, key: str, *args: Any, **kwargs: Any) -> Any:
        func = self.lookup(key)
        if func is None:
            raise UnregisteredKeyError("", None, self._unregistered(key))
        return func(*args, **kwargs)

    def _unregistered(self, key: Any) -> str:
        return (
            f"no deserializer is registered for {KEY}={key!r} (registered: "
            f"{sorted(self.func_map)}). Has the module that registers it been imported? "
            f"@deserializer.register({key!r}) must run before loading"
        )


class _PluginDispatch(StringDispatch):
    """``deserializer``: a key one of Burr's plugins decodes imports that plugin on first use."""

    def lookup(self, key: Any) -> Callable[..., Any] | None:
        func = super().lookup(key)
        if func is None and load_for_key(key):
            func = super().lookup(key)
        return func

    def _unregistered(self, key: Any) -> str:
        why = why_missing(key)
        if why is None:
            return super()._unregistered(key)
        return f"{KEY}={key!r} is a key of Burr's serde plugins, whose plugin is missing: {why}"


deserializer: StringDispatch = _PluginDispatch()


def deserialize(value: Any, **kwargs: Any) -> Any:
    """Turn data made by ``serialize`` back into values, calling registered decoders only."""
    return _deserialize(value, kwargs, 0)


def _deserialize(value: Any, kwargs: dict[str, Any], depth: int) -> Any:
    if depth > MAX_DEPTH:
        raise SerdeError("", None, f"serialised data nests deeper than {MAX_DEPTH} levels")
    if isinstance(value, dict):
        key = value.get(KEY)
        if key == _PLAIN_DICT:  # serialize_dict's wrapping of a dict that holds KEY itself
            value = value.get("value")
            if not isinstance(value, dict):
                raise SerdeError("", None, f"a {KEY}={_PLAIN_DICT!r} record needs a dict 'value'")
        elif key is not None:
            return deserializer.call(key, value, **kwargs)
        return {k: _deserialize(v, kwargs, depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        return [_deserialize(v, kwargs, depth + 1) for v in value]
    return value


@singledispatch
def serialize(value: Any, **kwargs: Any) -> Any:
    """Turn a value into JSON data; register more types with ``@serialize.register(MyType)``.

    A registration returns JSON data, and a dict with ``"__burr_serde__"`` set when it needs a
    decoder of its own. Unregistered types become ``str(value)`` (``None`` stays ``None``), as on
    Burr: register a type whose text form cannot be loaded back.
    """
    if value is None:
        return None
    if load_for_type(type(value)):  # a pandas/pydantic/LangChain value: its plugin, then retry
        func = serialize.dispatch(type(value))
        if func is not _fallback:
            return func(value, **kwargs)
    return str(value)


_fallback = serialize.dispatch(object)


@serialize.register(str)
@serialize.register(int)
@serialize.register(float)
@serialize.register(bool)
def serialize_primitive(value: Any, **kwargs: Any) -> Any:
    return value


@serialize.register(dict)
def serialize_dict(value: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    out = {k: serialize(v, **kwargs) for k, v in value.items()}
    if KEY in value:  # a plain dict that happens to hold the key: wrapped, so it loads as itself
        return {KEY: _PLAIN_DICT, "value": out}
    return out


_PLAIN_DICT = "turnout.plain_dict"


@serialize.register(list)
def serialize_list(value: list[Any], **kwargs: Any) -> list[Any]:
    return [serialize(v, **kwargs) for v in value]


_BUILT_IN = frozenset({_fallback, serialize_primitive, serialize_dict, serialize_list})

_STATE_ONLY: set[Callable[..., Any]] = set()


def state_serialize_only(func: F) -> F:
    """Mark a ``@serialize.register`` function as Burr's format for ``State.serialize()`` only:
    persisters and trackers keep storing such values in turnout's own form (they store
    pydantic models and LangChain messages already, with their type checks on loading)."""
    _STATE_ONLY.add(func)
    return func


_OPTION_ONLY: dict[Callable[..., Any], str] = {}


def serialize_with_option(option: str) -> Callable[[F], F]:
    """Mark a ``@serialize.register`` function as the form persisters and trackers store only
    when their ``serde_kwargs`` hold ``option``: Burr's pandas plugin writes parquet files when
    given ``pandas_kwargs={"path": ...}``, and otherwise turnout's own codec stores a frame
    inline. ``State.serialize()`` always uses the function."""

    def mark(func: F) -> F:
        _OPTION_ONLY[func] = option
        return func

    return mark


field_serde: dict[str, tuple[Callable[..., dict[str, Any]], Callable[..., Any]]] = {}
"""Per-field serialisers and deserialisers, by state key (``register_field_serde``)."""


def _takes_kwargs(fn: Callable[..., Any]) -> bool:
    try:
        parameters = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters)


def register_field_serde(
    field_name: str,
    serializer: Callable[..., dict[str, Any]],
    deserializer: Callable[..., Any],
) -> None:
    """Serialise the state key ``field_name`` with ``serializer`` and load it with ``deserializer``.

    ``serializer(value, **kwargs)`` must return a dict; ``deserializer(data, **kwargs)`` turns that
    dict back into the value. Both must accept ``**kwargs`` (the options passed to
    ``State.serialize``/``deserialize``). A later registration for the same field replaces it.
    """
    for role, fn in (("serializer", serializer), ("deserializer", deserializer)):
        if not _takes_kwargs(fn):
            name = getattr(fn, "__qualname__", repr(fn))
            raise SerdeError(
                "",
                None,
                f"the {role} registered for field {field_name!r} ({name}) must accept **kwargs: "
                f"def {getattr(fn, '__name__', 'fn')}(value, **kwargs): ...",
            )
    field_serde[field_name] = (serializer, deserializer)


def serialize_state(values: Mapping[str, Any], **kwargs: Any) -> dict[str, Any]:
    """``State.serialize``: every key through its field serde, else ``serialize``. A failure
    is a ``SerdeError`` (a ``ValueError``, as on Burr) naming the field, the cause chained."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        try:
            out[key] = _serialize_field(key, value, kwargs)
        except Exception as exc:
            raise _field_error(
                key,
                exc,
                f"Failed to serialize state field {key!r} (value of type "
                f"{type(value).__name__}): {exc}",
            ) from exc
    return out


def _serialize_field(key: str, value: Any, kwargs: dict[str, Any]) -> Any:
    pair = field_serde.get(key)
    if pair is None:
        return serialize(value, **kwargs)
    data = pair[0](value, **kwargs)
    if not isinstance(data, dict):
        raise SerdeError(
            f"$.{key}",
            value,
            f"the field serializer for {key!r} returned {type(data).__name__}, but it must "
            f"return a dict (e.g. {{'value': ...}}) that its deserializer reads back",
        )
    return data


def _field_error(key: str, exc: Exception, message: str) -> SerdeError:
    error = SerdeError("", None, message)
    error.path = getattr(exc, "path", "") or f"$.{key}"
    return error


def decode_registered(data: Mapping[str, Any]) -> dict[str, Any]:
    """Burr's stored state with what this process can decode decoded: fields with a field serde,
    and values tagged with a key registered on ``deserializer`` (or a plain dict
    ``serialize_dict`` wrapped). Values tagged with other keys, or that a decoder refuses with a
    ``SerdeError``, stay the stored dicts. Plugins are not imported for this read-only path."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        pair = field_serde.get(key)
        try:
            out[key] = pair[1](value) if pair is not None else _decode_known(value, 0)
        except Exception as exc:  # a decoder meeting damaged data, or data nested too deep
            raise SerdeError(
                f"$.{key}", None, f"{type(exc).__name__}: {exc}", loading=True
            ) from exc
    return out


def _decode_known(value: Any, depth: int) -> Any:
    if depth > MAX_DEPTH:
        raise SerdeError("", None, f"serialised data nests deeper than {MAX_DEPTH} levels")
    if isinstance(value, dict):
        key = value.get(KEY)
        if key is None or key == _PLAIN_DICT:
            if key == _PLAIN_DICT and isinstance(value.get("value"), dict):
                value = value["value"]
            return {k: _decode_known(v, depth + 1) for k, v in value.items()}
        if isinstance(key, str) and key in deserializer.func_map:
            try:
                return deserializer.func_map[key](value)
            except SerdeError:  # a plugin refusing it (an unregistered class): kept as stored,
                return value  # and the Burr reader warns about it like any undecoded value
        return value
    if isinstance(value, list):
        return [_decode_known(v, depth + 1) for v in value]
    return value


def custom_serializer(
    kind: type, options: Mapping[str, Any] | None = None
) -> Callable[..., Any] | None:
    """The function a program registered with ``@serialize.register(kind)`` (or for a base of
    it), or ``None`` when only the built-in ones apply. A function marked with
    ``serialize_with_option(name)`` counts only when ``options`` (the ``serde_kwargs``) hold
    ``name``."""
    fn = serialize.dispatch(kind)
    if fn in _BUILT_IN or fn in _STATE_ONLY:
        return None
    option = _OPTION_ONLY.get(fn)
    if option is not None and (options is None or option not in options):
        return None
    return fn


def deserialize_state(data: Mapping[str, Any], **kwargs: Any) -> dict[str, Any]:
    """``State.deserialize``: every key through its field serde, else ``deserialize``."""
    if not isinstance(data, Mapping):
        raise SerdeError(
            "", None, f"State.deserialize needs a dict of keys to data, got {type(data).__name__}"
        )
    out: dict[str, Any] = {}
    for key, value in data.items():
        pair = field_serde.get(key)
        try:
            out[key] = (
                pair[1](value, **kwargs) if pair is not None else deserialize(value, **kwargs)
            )
        except Exception as exc:
            raise _field_error(
                key, exc, f"Failed to deserialize state field {key!r}: {exc}"
            ) from exc
    return out
