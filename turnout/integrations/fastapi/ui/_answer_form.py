"""A form for the answer a suspended application waits for, built from the channel's JSON
Schema, and the answer read back from the submitted form.

Supported as form fields: strings (with ``format`` hints none of which are checked), numbers,
integers, booleans (a checkbox), enums (a select), nested objects (a fieldset per object) and
arrays of strings, numbers or integers (a textarea, one item a line). Anything else — a
schema with ``anyOf``/``oneOf``/``allOf``/``$ref``, an array of objects, several types, no
schema at all — is one JSON textarea. The answer is checked against the schema afterwards
(``turnout.core.json_schema.validate``), so the form only has to build the value.
Nothing here produces markup; field names and labels are traced text, escaped by the template.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["MAX_FIELDS", "Field", "FormError", "build_fields", "read_answer"]

MAX_FIELDS = 200  # past this, the whole answer is one JSON textarea
MAX_NESTING = 6
_SIMPLE = ("string", "number", "integer")
_COMBINERS = ("anyOf", "oneOf", "allOf", "$ref", "not", "if")


class FormError(ValueError):
    """A field that does not hold a value of its kind: names the field (its ``path``)."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message


@dataclass(frozen=True, kw_only=True, slots=True)
class Field:
    """One input of the form, or a fieldset (``kind`` ``"object"``) of inputs.

    Attributes:
        name: the input's form name: positions from the root (``f``, ``f.0``, ``f.0.2``), so
            no traced property name ends up in one.
        key: the property it fills in the object above (``""`` for the root).
        path: where it sits, for messages (``$.address.city``).
        label: the property's title or name.
        kind: ``string``, ``number``, ``integer``, ``boolean``, ``enum``, ``list``, ``object``
            or ``json``.
        required: the object above requires it.
        description: the schema's description.
        options: an enum's values, as JSON text (the select's values) and as shown.
        item: a list's item type.
        initial: the input's initial text (the schema's default).
        children: an object's fields.
    """

    name: str
    key: str
    path: str
    label: str
    kind: str
    required: bool = False
    description: str = ""
    options: tuple[tuple[str, str], ...] = ()
    item: str = ""
    initial: str = ""
    children: tuple[Field, ...] = field(default_factory=tuple)


def _kind(schema: Mapping[str, Any], depth: int) -> str:
    if any(key in schema for key in _COMBINERS):
        return "json"
    if "enum" in schema and isinstance(schema["enum"], list) and schema["enum"]:
        return "enum"
    kind = schema.get("type")
    if kind == "boolean" or kind in _SIMPLE:
        return str(kind)
    if kind == "object" and isinstance(schema.get("properties"), dict) and depth < MAX_NESTING:
        return "object"
    if kind == "array":
        items = schema.get("items")
        if isinstance(items, Mapping) and items.get("type") in _SIMPLE and len(items) <= 3:
            return "list"
    return "json"


def _initial(schema: Mapping[str, Any], kind: str) -> str:
    if "default" not in schema:
        return ""
    default = schema["default"]
    if kind == "string" and isinstance(default, str):
        return default
    if kind == "list" and isinstance(default, list):
        return "\n".join(str(v) for v in default)
    if kind == "boolean":
        return "true" if default is True else ""
    return json.dumps(default)


@dataclass(frozen=True, kw_only=True, slots=True)
class _Where:
    name: str
    key: str
    path: str
    required: bool
    depth: int


def _placed(at: _Where, **rest: Any) -> Field:
    return Field(name=at.name, key=at.key, path=at.path, required=at.required, **rest)


def _field(at: _Where, schema: Any, count: list[int]) -> Field:
    count[0] += 1
    if not isinstance(schema, Mapping):
        return _placed(at, label=at.key or "answer", kind="json")
    kind = _kind(schema, at.depth)
    description = str(schema.get("description") or "")
    title = str(schema.get("title") or at.key or "answer")
    if kind == "object":
        needed = schema.get("required")
        needed = set(needed) if isinstance(needed, list) else set()
        children = tuple(
            _field(
                _Where(name=f"{at.name}.{i}", key=str(key), path=f"{at.path}.{key}",
                       required=key in needed, depth=at.depth + 1),
                sub,
                count,
            )
            for i, (key, sub) in enumerate(schema["properties"].items())
        )  # fmt: skip
        return _placed(at, label=title, kind=kind, description=description, children=children)
    options: tuple[tuple[str, str], ...] = ()
    if kind == "enum":
        options = tuple((json.dumps(v), v if isinstance(v, str) else json.dumps(v))
                        for v in schema["enum"])  # fmt: skip
    item = str(schema["items"]["type"]) if kind == "list" else ""
    return _placed(
        at, label=title, kind=kind, description=description,
        options=options, item=item, initial=_initial(schema, kind),
    )  # fmt: skip


def build_fields(schema: Any) -> Field:
    """The form for ``schema`` (``None``: any JSON value): one root field, a fieldset for an
    object schema. A schema of more than ``MAX_FIELDS`` inputs is one JSON textarea."""
    count = [0]
    root = _field(_Where(name="f", key="", path="$", required=True, depth=0), schema, count)
    if count[0] > MAX_FIELDS:
        return Field(name="f", key="", path="$", label="answer", kind="json", required=True)
    return root


def _number(path: str, text: str, kind: str) -> int | float:
    try:
        value = float(text) if kind == "number" else int(text)
    except ValueError:
        what = "a number" if kind == "number" else "an integer"
        raise FormError(path, f"{text!r} is not {what}") from None
    if isinstance(value, float) and not math.isfinite(value):
        raise FormError(path, f"{text!r} is not a finite number")
    return value


def _read(spec: Field, form: Mapping[str, str]) -> tuple[bool, Any]:
    """(present, value) of ``spec`` in ``form``; an empty optional input is absent."""
    text = form.get(spec.name, "")
    path = spec.path
    if spec.kind == "object":
        value: dict[str, Any] = {}
        for child in spec.children:
            present, item = _read(child, form)
            if present:
                value[child.key] = item
        return True, value
    if spec.kind == "boolean":
        return True, text in ("true", "on")
    if text.strip() == "" and spec.kind != "string":
        if spec.required:
            raise FormError(path, "is required: fill it in")
        return False, None
    if spec.kind == "string":
        return (bool(text) or spec.required), text
    if spec.kind in ("number", "integer"):
        return True, _number(path, text.strip(), spec.kind)
    if spec.kind == "enum":
        allowed = {raw for raw, _shown in spec.options}
        if text not in allowed:
            raise FormError(path, "pick one of the listed values")
        return True, json.loads(text)
    if spec.kind == "list":
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        if spec.item == "string":
            return True, lines
        return True, [_number(f"{path}[{i}]", line, spec.item) for i, line in enumerate(lines)]
    try:
        return True, json.loads(text)
    except ValueError as error:
        raise FormError(path, f"is not valid JSON ({error})") from None


def read_answer(spec: Field, form: Mapping[str, str]) -> Any:
    """The answer the submitted ``form`` holds for the fields ``spec`` (``build_fields``).

    Raises:
        FormError: a field whose text is not a value of its kind, or a required one left empty.
    """
    return _read(spec, form)[1]
