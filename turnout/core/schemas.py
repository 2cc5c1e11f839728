"""JSON Schemas (draft 2020-12) of typed state and of action inputs, from type annotations.

``graph.state_schema()`` and ``action.input_schema()`` use these so the UI can show types and a
server can describe (and check) what it accepts. A ``TypedDict`` or dataclass becomes an
``object`` schema (nested classes under ``$defs``; required keys from ``NotRequired``/``total=``
or the fields without defaults; descriptions from docstrings, ``field(metadata={"description":
...})`` or a string in ``Annotated[...]``). An annotation this module does not know becomes ``{}``
(anything), never an error.
"""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import enum
import inspect
import pathlib
import types
import typing
import uuid
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from typing import Any

from turnout.core._annotations import class_hints, is_typed_dict, required_keys, strip_qualifiers

__all__ = [
    "DIALECT",
    "annotation_schema",
    "class_schema",
    "inputs_schema",
    "keys_schema",
]

DIALECT = "https://json-schema.org/draft/2020-12/schema"
"""The ``$schema`` every generated schema names."""

_SIMPLE: dict[type[Any], dict[str, Any]] = {
    bool: {"type": "boolean"},
    int: {"type": "integer"},
    float: {"type": "number"},
    str: {"type": "string"},
    bytes: {"type": "string", "contentEncoding": "base64"},
    datetime.datetime: {"type": "string", "format": "date-time"},
    datetime.date: {"type": "string", "format": "date"},
    datetime.time: {"type": "string", "format": "time"},
    datetime.timedelta: {"type": "string", "format": "duration"},
    uuid.UUID: {"type": "string", "format": "uuid"},
    decimal.Decimal: {"type": "string", "format": "decimal"},
    pathlib.Path: {"type": "string", "format": "path"},
}
_JSON_SCALARS = (str, int, float, bool, type(None))


def class_schema(cls: type[Any]) -> dict[str, Any]:
    """The JSON Schema of a ``TypedDict`` or dataclass (or a pydantic model, through its own
    ``model_json_schema``), with ``$schema`` and, when nested classes appear, ``$defs``."""
    model_schema = getattr(cls, "model_json_schema", None)
    if callable(model_schema):
        return {"$schema": DIALECT, **model_schema()}
    generator = _Generator(root=cls)
    return generator.finish(generator.object_schema(cls))


def annotation_schema(annotation: Any) -> dict[str, Any]:
    """The JSON Schema of one annotation (``list[int]`` -> ``{"type": "array", ...}``)."""
    generator = _Generator(root=None)
    return generator.finish(generator.of(annotation))


def keys_schema(keys: Iterable[str], *, title: str | None = None) -> dict[str, Any]:
    """The schema of an untyped state: an object listing ``keys``, each of any type."""
    schema: dict[str, Any] = {"$schema": DIALECT, "type": "object"}
    if title:
        schema["title"] = title
    schema["properties"] = {key: {} for key in sorted(set(keys))}
    return schema


def inputs_schema(
    name: str,
    required: Collection[str],
    optional: Collection[str],
    functions: Sequence[Callable[..., Any]],
) -> dict[str, Any]:
    """The schema of an action's inputs: an object with one property per input, typed by the
    first of ``functions`` that declares a parameter of that name (its annotation and
    default), ``required`` listed; no other property allowed."""
    parameters: dict[str, tuple[Any, Any]] = {}
    for function in functions:
        for param_name, found in _parameters(function).items():
            parameters.setdefault(param_name, found)
    wanted = set(required) | set(optional)
    order = [key for key in parameters if key in wanted]
    order += sorted(wanted - set(order))
    generator = _Generator(root=None)
    properties: dict[str, Any] = {}
    for key in order:
        annotation, default = parameters.get(key, (Any, inspect.Parameter.empty))
        prop = generator.field(annotation)
        if default is not inspect.Parameter.empty and _is_json(default):
            prop["default"] = default
        properties[key] = prop
    body: dict[str, Any] = {"title": f"{name} inputs", "type": "object", "properties": properties}
    body["required"] = [key for key in order if key in required]
    body["additionalProperties"] = False
    return generator.finish(body)


def _parameters(function: Callable[..., Any]) -> dict[str, tuple[Any, Any]]:
    """``name -> (annotation, default)`` of a function's keyword-passable parameters."""
    function = inspect.unwrap(function)
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):
        return {}
    try:
        hints = typing.get_type_hints(function, include_extras=True)
    except (NameError, TypeError, AttributeError):
        hints = {}
    found: dict[str, tuple[Any, Any]] = {}
    for param in signature.parameters.values():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD, param.POSITIONAL_ONLY):
            continue
        annotation = hints.get(param.name, param.annotation)
        if annotation is inspect.Parameter.empty:
            annotation = Any
        found[param.name] = (annotation, param.default)
    return found


def _is_json(value: Any) -> bool:
    if isinstance(value, _JSON_SCALARS):
        return not isinstance(value, float) or (value == value and abs(value) != float("inf"))
    if isinstance(value, list | tuple):
        return all(_is_json(item) for item in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _is_json(v) for k, v in value.items())
    return False


def _description(annotation: Any) -> str | None:
    """The first string in ``Annotated[..., "text"]`` (or a ``Doc``-like ``.documentation``)."""
    if typing.get_origin(annotation) is not typing.Annotated:
        return None
    for meta in annotation.__metadata__:
        if isinstance(meta, str):
            return meta
        documentation = getattr(meta, "documentation", None)
        if isinstance(documentation, str):
            return documentation
    return None


def _class_description(cls: type[Any]) -> str | None:
    doc = inspect.getdoc(cls)
    if not doc or doc.startswith(f"{cls.__name__}("):  # the dataclass's generated signature
        return None
    if is_typed_dict(cls) and doc == inspect.getdoc(dict):
        return None
    return doc


class _Generator:
    """One schema in the making: nested classes collected under ``$defs`` by name."""

    def __init__(self, root: type[Any] | None) -> None:
        self.root = root
        self.defs: dict[str, dict[str, Any]] = {}
        self.refs: dict[type[Any], str] = {}

    def finish(self, body: dict[str, Any]) -> dict[str, Any]:
        schema = {"$schema": DIALECT, **body}
        if self.defs:
            schema["$defs"] = self.defs
        return schema

    def field(self, annotation: Any) -> dict[str, Any]:
        prop = dict(self.of(annotation))
        description = _description(annotation)
        if description is None and typing.get_origin(annotation) in (
            typing.Required,
            typing.NotRequired,
        ):
            description = _description(typing.get_args(annotation)[0])
        if description:
            prop["description"] = description
        return prop

    def of(self, annotation: Any) -> dict[str, Any]:
        annotation = strip_qualifiers(annotation)
        if annotation is None or annotation is type(None):
            return {"type": "null"}
        if isinstance(annotation, typing.NewType):
            return self.of(annotation.__supertype__)
        origin = typing.get_origin(annotation)
        args = typing.get_args(annotation)
        if origin is None:
            return self._class(annotation) if isinstance(annotation, type) else {}
        if origin in (typing.Union, types.UnionType):
            members = [self.of(arg) for arg in args]
            return {} if {} in members else {"anyOf": members}
        if origin is typing.Literal:
            values = [_enum_value(arg) for arg in args]
            return {"const": values[0]} if len(values) == 1 else {"enum": values}
        if origin is tuple:
            if len(args) == 2 and args[1] is Ellipsis:
                return {"type": "array", "items": self.of(args[0])}
            items = [self.of(arg) for arg in args if arg != ()]
            return {
                "type": "array",
                "prefixItems": items,
                "minItems": len(items),
                "maxItems": len(items),
            }
        if isinstance(origin, type) and issubclass(origin, Mapping):
            values_schema = self.of(args[1]) if len(args) == 2 else {}
            return {"type": "object", "additionalProperties": values_schema}
        if isinstance(origin, type) and issubclass(origin, Iterable) and origin is not str:
            schema: dict[str, Any] = {"type": "array"}
            if args:
                schema["items"] = self.of(args[0])
            if issubclass(origin, (set, frozenset, typing.AbstractSet)):
                schema["uniqueItems"] = True
            return schema
        return {}

    def _class(self, cls: type[Any]) -> dict[str, Any]:
        for kind in cls.__mro__:
            simple = _SIMPLE.get(kind)
            if simple is not None:
                return dict(simple)
        if issubclass(cls, enum.Enum):
            return {"enum": [member.value for member in cls]}
        if cls in (list, tuple, set, frozenset):
            return {"type": "array"}
        if cls is dict:
            return {"type": "object"}
        if is_typed_dict(cls) or dataclasses.is_dataclass(cls):
            return self._ref(cls)
        if callable(getattr(cls, "model_json_schema", None)):
            return self._model_ref(cls)
        return {}

    def _name(self, cls: type[Any]) -> str:
        name, number = cls.__name__, 2
        taken = set(self.refs.values())
        while name in taken:
            name, number = f"{cls.__name__}{number}", number + 1
        return name

    def _ref(self, cls: type[Any]) -> dict[str, Any]:
        if cls is self.root:
            return {"$ref": "#"}
        name = self.refs.get(cls)
        if name is None:
            name = self.refs[cls] = self._name(cls)
            self.defs[name] = {}  # reserved first: a field may name the class again
            self.defs[name] = self.object_schema(cls)
        return {"$ref": f"#/$defs/{name}"}

    def _model_ref(self, cls: type[Any]) -> dict[str, Any]:
        """A pydantic model nested in a stdlib class: its own schema, its ``$defs`` merged."""
        name = self.refs.get(cls)
        if name is None:
            name = self.refs[cls] = self._name(cls)
            schema = dict(cls.model_json_schema(ref_template="#/$defs/{model}"))
            self.defs.update(schema.pop("$defs", {}))
            self.defs[name] = schema
        return {"$ref": f"#/$defs/{name}"}

    def object_schema(self, cls: type[Any]) -> dict[str, Any]:
        """A TypedDict or dataclass as an ``object`` schema (not wrapped in ``$schema``)."""
        hints = class_hints(cls)
        schema: dict[str, Any] = {"title": cls.__name__, "type": "object"}
        description = _class_description(cls)
        if description:
            schema["description"] = description
        properties: dict[str, Any] = {}
        required: list[str] = []
        if dataclasses.is_dataclass(cls):
            for field in dataclasses.fields(cls):
                prop = self.field(hints.get(field.name, Any))
                meta = field.metadata.get("description")
                if isinstance(meta, str):
                    prop["description"] = meta
                if field.default is not dataclasses.MISSING:
                    if _is_json(field.default):
                        prop["default"] = field.default
                elif field.default_factory is dataclasses.MISSING:
                    required.append(field.name)
                properties[field.name] = prop
        else:
            needed = required_keys(cls)
            for key, annotation in hints.items():
                properties[key] = self.field(annotation)
            required = [key for key in properties if key in needed]
        schema["properties"] = properties
        if required:
            schema["required"] = required
        return schema


def _enum_value(value: Any) -> Any:
    return value.value if isinstance(value, enum.Enum) else value
