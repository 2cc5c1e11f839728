"""Tools for the model: JSON schemas from Python functions, and running the calls it requests."""

from __future__ import annotations

import dataclasses
import enum
import inspect
import json
import re
import types
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import (
    Annotated,
    Any,
    Literal,
    Union,
    get_args,
    get_origin,
    get_type_hints,
    is_typeddict,
)

from turnout.core.errors import ActionDefinitionError, TurnoutError

__all__ = ["Tool", "ToolCallError", "ToolSchemaError", "function_tool"]

_TYPES = "str, int, float, bool, None, list[...], dict[str, ...], Literal[...], an Enum, a "
_TYPES += "TypedDict, a dataclass or a pydantic model"


class ToolSchemaError(ActionDefinitionError):
    """A function cannot be described to the model as a tool (a parameter without a type hint,
    a type with no JSON schema, ``*args``)."""


class ToolCallError(TurnoutError, ValueError):
    """The model asked for a tool that does not exist, or sent arguments that do not fit it."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Tool:
    """A function the model may call, with its JSON schema.

    Attributes:
        name: the name the model calls it by.
        description: what it does (the docstring's summary by default).
        parameters: the JSON schema of its keyword arguments.
        fn: the function (sync or ``async def``).
        strict: ask the model to follow the schema exactly (OpenAI structured outputs).
    """

    name: str
    description: str
    parameters: dict[str, Any]
    fn: Callable[..., Any]
    strict: bool = False

    def chat_schema(self) -> dict[str, Any]:
        """The entry for ``chat.completions.create(tools=[...])``."""
        function: dict[str, Any] = {
            "name": self.name,
            "description": self.description,
            "parameters": self.parameters,
        }
        if self.strict:
            function["strict"] = True
        return {"type": "function", "function": function}

    def responses_schema(self) -> dict[str, Any]:
        """The entry for ``responses.create(tools=[...])``."""
        return {
            "type": "function",
            "name": self.name,
            "description": self.description,
            "parameters": self.parameters,
            "strict": self.strict,
        }

    @property
    def is_async(self) -> bool:
        return inspect.iscoroutinefunction(self.fn)

    def arguments(self, raw: str) -> dict[str, Any]:
        """The keyword arguments for ``fn`` from the model's JSON ``raw``."""
        try:
            data = json.loads(raw or "{}")
        except ValueError as exc:
            raise ToolCallError(f"tool {self.name!r}: arguments are not JSON: {raw!r}") from exc
        if not isinstance(data, dict):
            raise ToolCallError(f"tool {self.name!r}: arguments must be an object, got {raw!r}")
        hints = _hints(self.fn)
        signature = inspect.signature(self.fn).parameters
        known = set(self.parameters.get("properties", {}))
        unknown = sorted(set(data) - known)
        needed = {name for name, p in signature.items() if p.default is inspect.Parameter.empty}
        missing = sorted(needed - set(data))
        if unknown or missing:
            raise ToolCallError(
                f"tool {self.name!r}: arguments {raw!r} do not fit its parameters "
                f"{sorted(known)} (unknown: {unknown}, missing: {missing})"
            )
        out = {}
        for key, value in data.items():
            hint = hints.get(key, Any)
            if value is None and key not in needed and not _admits_none(hint):
                continue  # strict mode sends null for an omitted optional: its default applies
            out[key] = _coerce(hint, _drop_defaulted_nulls(hint, value))
        return out


def function_tool(
    fn: Callable[..., Any] | Tool,
    *,
    name: str | None = None,
    description: str | None = None,
    strict: bool = False,
) -> Tool:
    """Describe ``fn`` to the model: its name, its docstring and a JSON schema of its
    parameters built from their type hints and defaults (descriptions from a Google-style
    ``Args:`` section).

    Raises:
        ToolSchemaError: a parameter has no type hint or a type with no JSON schema, or the
            function takes ``*args``/``**kwargs``.
    """
    if isinstance(fn, Tool):
        return fn
    if not callable(fn):
        raise ToolSchemaError(f"a tool must be a function, got {fn!r}")
    label = getattr(fn, "__qualname__", repr(fn))
    summary, docs = _parse_docstring(inspect.getdoc(fn) or "")
    hints = _hints(fn)
    properties: dict[str, Any] = {}
    required: list[str] = []
    defs: dict[str, Any] = {}  # pydantic models' $defs, hoisted to the root their $refs name
    for param in inspect.signature(fn).parameters.values():
        if param.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
            raise ToolSchemaError(
                f"tool {label}: parameter {param.name!r} is *args/**kwargs, which the model "
                f"cannot fill; list the parameters one by one"
            )
        if param.name not in hints:
            raise ToolSchemaError(
                f"tool {label}: parameter {param.name!r} has no type hint; annotate it "
                f"(e.g. {param.name}: str) so the model knows what to send"
            )
        schema = _schema(hints[param.name], f"tool {label}: parameter {param.name!r}", defs)
        if param.name in docs:
            schema = {**schema, "description": docs[param.name]}
        if param.default is inspect.Parameter.empty:
            required.append(param.name)
        elif _is_json(param.default):
            schema = {**schema, "default": param.default}
        properties[param.name] = schema
    parameters: dict[str, Any] = {
        "type": "object",
        "properties": properties,
        "required": required,
    }
    if defs:
        parameters["$defs"] = defs
    if strict:
        parameters = _strict(parameters, f"tool {label}")
    tool_name = str(name or getattr(fn, "__name__", ""))
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", tool_name):
        raise ToolSchemaError(
            f"tool {label}: the name {tool_name!r} is not allowed by OpenAI (letters, digits, "
            f"_ and -, up to 64); pass name='...'"
        )
    return Tool(
        name=tool_name,
        description=description if description is not None else summary,
        parameters=parameters,
        fn=fn,
        strict=strict,
    )


def as_tools(tools: Iterable[Callable[..., Any] | Tool], owner: str) -> dict[str, Tool]:
    """Tools by name; functions are described with ``function_tool``."""
    if isinstance(tools, Mapping) or callable(tools):
        raise ToolSchemaError(f"{owner}: tools= takes a list of functions or Tool, got {tools!r}")
    out: dict[str, Tool] = {}
    for item in tools:
        tool = function_tool(item)
        if tool.name in out:
            raise ToolSchemaError(
                f"{owner}: two tools are named {tool.name!r}; give one another name with "
                f"function_tool(fn, name='...')"
            )
        out[tool.name] = tool
    return out


def _hints(fn: Callable[..., Any]) -> dict[str, Any]:
    try:
        return get_type_hints(fn, include_extras=True)
    except Exception as exc:
        raise ToolSchemaError(
            f"tool {getattr(fn, '__qualname__', fn)!r}: its type hints cannot be resolved ({exc}); "
            f"define the types they name at module level"
        ) from exc


_SIMPLE = {str: "string", int: "integer", float: "number", bool: "boolean"}


def _schema(tp: Any, where: str, defs: dict[str, Any]) -> dict[str, Any]:
    if tp is Any:
        return {}
    if tp in _SIMPLE:
        return {"type": _SIMPLE[tp]}
    if tp is None or tp is type(None):
        return {"type": "null"}
    origin, args = get_origin(tp), get_args(tp)
    if origin is Annotated:
        notes = [a for a in args[1:] if isinstance(a, str)]
        base = _schema(args[0], where, defs)
        return {**base, "description": " ".join(notes)} if notes else base
    if origin is Literal:
        kinds = {_SIMPLE.get(type(v)) for v in args}
        out: dict[str, Any] = {"enum": list(args)}
        return {"type": kinds.pop(), **out} if len(kinds) == 1 and None not in kinds else out
    if origin in (Union, types.UnionType):
        return {"anyOf": [_schema(a, where, defs) for a in args]}
    if origin in (list, set, frozenset, Sequence, Iterable) or tp in (list, set, frozenset):
        return (
            {"type": "array", "items": _schema(args[0], where, defs)} if args else {"type": "array"}
        )
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return {"type": "array", "items": _schema(args[0], where, defs)}
        items = [_schema(a, where, defs) for a in args]
        return {"type": "array", "prefixItems": items, "minItems": len(args), "maxItems": len(args)}
    if origin in (dict, Mapping) or tp is dict:
        if args and args[0] is not str:
            raise ToolSchemaError(f"{where}: JSON object keys are strings; use dict[str, ...]")
        return (
            {"type": "object", "additionalProperties": _schema(args[1], where, defs)}
            if args
            else {"type": "object"}
        )
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return {"enum": [member.value for member in tp]}
    if is_typeddict(tp):
        hints = get_type_hints(tp)
        props = {
            key: _schema(value, f"{where} field {key!r}", defs) for key, value in hints.items()
        }
        return {"type": "object", "properties": props, "required": sorted(tp.__required_keys__)}
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        hints = get_type_hints(tp)
        fields = dataclasses.fields(tp)
        props = {f.name: _schema(hints[f.name], f"{where} field {f.name!r}", defs) for f in fields}
        required = [
            f.name
            for f in fields
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        ]
        return {"type": "object", "properties": props, "required": required}
    if isinstance(tp, type) and callable(getattr(tp, "model_json_schema", None)):
        schema: dict[str, Any] = dict(tp.model_json_schema())  # type: ignore[attr-defined]
        # A nested model is a "$ref": "#/$defs/Name", resolved against the root of the
        # tool's parameters: the definitions move there.
        for name, definition in schema.pop("$defs", {}).items():
            if defs.setdefault(name, definition) != definition:
                raise ToolSchemaError(
                    f"{where}: two different models are named {name!r}; rename one (the "
                    f"JSON schema refers to models by class name)"
                )
        return schema
    raise ToolSchemaError(f"{where}: the type {tp!r} has no JSON schema; use {_TYPES}")


def _strict(schema: dict[str, Any], where: str) -> dict[str, Any]:
    """``schema`` as OpenAI strict mode accepts it, at every level: each object lists all its
    properties in ``required`` (the optional ones become nullable), forbids other properties,
    and no ``default`` is left."""
    if not isinstance(schema, dict):
        return schema
    out = {key: value for key, value in schema.items() if key != "default"}
    if out.get("type") == "object" or "properties" in out:
        if "properties" not in out or isinstance(out.get("additionalProperties"), dict):
            raise ToolSchemaError(
                f"{where}: strict=True needs objects with fixed fields, and a dict or an "
                f"untyped object has none; use a TypedDict, a dataclass or a pydantic model, "
                f"or strict=False"
            )
        required = set(out.get("required", ()))
        properties = {}
        for name, sub in out["properties"].items():
            sub = _strict(sub, where)
            properties[name] = sub if name in required else _nullable(sub)
        out["properties"] = properties
        out["required"] = list(properties)
        out["additionalProperties"] = False
    for key in ("items", "not"):
        if isinstance(out.get(key), dict):
            out[key] = _strict(out[key], where)
    for key in ("anyOf", "allOf", "oneOf", "prefixItems"):
        if isinstance(out.get(key), list):
            out[key] = [_strict(sub, where) for sub in out[key]]
    if isinstance(out.get("$defs"), dict):
        out["$defs"] = {name: _strict(sub, where) for name, sub in out["$defs"].items()}
    return out


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` admitting ``null`` too (how strict mode says a field may be left out)."""
    kind = schema.get("type")
    if kind == "null" or (isinstance(kind, list) and "null" in kind):
        return schema
    if any(sub.get("type") == "null" for sub in schema.get("anyOf", ())):
        return schema
    if isinstance(kind, str) and "$ref" not in schema:
        out = {**schema, "type": [kind, "null"]}
        if "enum" in out and None not in out["enum"]:
            out["enum"] = [*out["enum"], None]
        return out
    if "anyOf" in schema:
        return {**schema, "anyOf": [*schema["anyOf"], {"type": "null"}]}
    notes = {k: v for k, v in schema.items() if k in ("description", "title")}
    inner = {k: v for k, v in schema.items() if k not in notes}
    return {"anyOf": [inner, {"type": "null"}], **notes}


def _admits_none(tp: Any) -> bool:
    if tp is Any or tp is None or tp is type(None):
        return True
    origin = get_origin(tp)
    if origin is Annotated:
        return _admits_none(get_args(tp)[0])
    if origin in (Union, types.UnionType):
        return any(_admits_none(arg) for arg in get_args(tp))
    return origin is Literal and None in get_args(tp)


def _drop_defaulted_nulls(tp: Any, value: Any) -> Any:
    """``value`` without the nulls that strict mode makes the model send for the optional
    fields of nested records (TypedDict, dataclass, pydantic model), so their defaults apply."""
    origin, args = get_origin(tp), get_args(tp)
    if origin is Annotated:
        return _drop_defaulted_nulls(args[0], value)
    if origin in (Union, types.UnionType):
        records = [a for a in args if a is not type(None)]
        return _drop_defaulted_nulls(records[0], value) if len(records) == 1 else value
    if isinstance(value, list) and args and origin in (list, set, frozenset, Sequence, Iterable):
        return [_drop_defaulted_nulls(args[0], item) for item in value]
    if not isinstance(value, dict) or not isinstance(tp, type):
        return value
    fields = _record_fields(tp)
    if fields is None:
        return value
    out = {}
    for key, item in value.items():
        hint, optional = fields.get(key, (Any, False))
        if item is None and optional and not _admits_none(hint):
            continue
        out[key] = _drop_defaulted_nulls(hint, item)
    return out


def _record_fields(tp: type) -> dict[str, tuple[Any, bool]] | None:
    """A record type's fields by JSON name: (type, whether it may be left out)."""
    model_fields = getattr(tp, "model_fields", None)
    if isinstance(model_fields, dict):  # pydantic
        return {
            (f.alias or name): (f.annotation, not f.is_required())
            for name, f in model_fields.items()
        }
    if dataclasses.is_dataclass(tp):
        hints = get_type_hints(tp)
        return {
            f.name: (
                hints.get(f.name, Any),
                f.default is not dataclasses.MISSING
                or f.default_factory is not dataclasses.MISSING,
            )
            for f in dataclasses.fields(tp)
        }
    if is_typeddict(tp):
        hints = get_type_hints(tp)
        required: frozenset[str] = getattr(tp, "__required_keys__", frozenset())
        return {key: (hint, key not in required) for key, hint in hints.items()}
    return None


def _coerce(tp: Any, value: Any) -> Any:
    """The argument for a parameter of type ``tp`` from its JSON value (top level only)."""
    if get_origin(tp) is Annotated:
        tp = get_args(tp)[0]
    if isinstance(tp, type):
        if issubclass(tp, enum.Enum):
            return tp(value)
        if dataclasses.is_dataclass(tp) and isinstance(value, dict):
            return tp(**value)
        validate = getattr(tp, "model_validate", None)
        if callable(validate):
            return validate(value)
        if tp is float and isinstance(value, int):
            return float(value)
    return value


def _is_json(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True


def _parse_docstring(doc: str) -> tuple[str, dict[str, str]]:
    """The summary (first paragraph) and the ``Args:`` descriptions of a Google docstring."""
    summary = " ".join(doc.split("\n\n", 1)[0].split()) if doc else ""
    params: dict[str, str] = {}
    section = False
    current: str | None = None
    params_indent = 0
    for line in doc.splitlines():
        stripped = line.strip()
        if stripped in ("Args:", "Arguments:", "Parameters:"):
            section, current = True, None
            continue
        if not section:
            continue
        if stripped and not line.startswith(" "):
            break  # the next section
        match = re.match(r"^\s{1,8}(\w+)\s*(\([^)]*\))?\s*:\s*(.*)$", line)
        indent = len(line) - len(line.lstrip())
        if match and (current is None or indent <= params_indent):
            current = match.group(1)
            params_indent = indent
            params[current] = match.group(3).strip()
        elif current is not None and stripped:
            params[current] = f"{params[current]} {stripped}".strip()
    return summary, params
