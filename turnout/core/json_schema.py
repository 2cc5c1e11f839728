"""A JSON Schema subset, checked with the standard library: the answers to ``suspend``.

``ApplicationContext.suspend(channel, schema=...)`` states what the answer must look like and
``Application.resume`` checks the answer against it before anything changes. The subset covers
what describes an answer from a person or a service:

* ``type`` (``object array string number integer boolean null``, or a list of them),
* ``properties``, ``required``, ``additionalProperties`` (a bool or a schema),
* ``items`` (one schema for every item), ``minItems``, ``maxItems``,
* ``enum``, ``const``,
* ``minimum``, ``maximum``, ``exclusiveMinimum``, ``exclusiveMaximum`` (numbers),
* ``minLength``, ``maxLength``, ``pattern`` (found anywhere in the string, as JSON Schema's
  ``pattern`` is: anchor it with ``^...$`` to match the whole string),
* ``anyOf``, ``oneOf``, ``allOf``, ``$ref`` to ``#/$defs/<name>`` (or ``#/definitions/...``),
* and the annotations ``title``, ``description``, ``default``, ``examples``, ``$schema``,
  ``$id``, ``$comment``, ``format`` (not checked, as JSON Schema's default), ``$defs``.

A keyword outside the subset is refused when the schema is checked (``check_schema``, called by
``suspend``), never silently accepted: a schema that says more than is checked would let answers
through that its author meant to refuse. As in JSON Schema, ``true``/``false`` are not numbers
(``1`` is not a ``boolean``, ``True`` is not an ``integer``) and ``1.0`` is an ``integer``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from turnout.core.errors import AnswerValidationError

__all__ = ["check_schema", "validate"]

_TYPES = ("object", "array", "string", "number", "integer", "boolean", "null")
_ANNOTATIONS = frozenset(
    {"title", "description", "default", "examples", "$schema", "$id", "$comment", "format"}
)
_CHECKED = frozenset(
    {
        "type", "properties", "required", "additionalProperties", "items", "enum", "const",
        "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "minLength", "maxLength",
        "pattern", "minItems", "maxItems", "anyOf", "oneOf", "allOf", "$ref", "$defs",
        "definitions",
    }
)  # fmt: skip


def check_schema(schema: Any, *, path: str = "#") -> None:
    """Refuse a schema that uses keywords outside the subset, or uses one wrongly.

    Raises:
        AnswerValidationError: naming the keyword and where it sits in the schema.
    """
    if isinstance(schema, bool):
        return
    if not isinstance(schema, Mapping):
        raise _bad_schema(path, f"a schema must be an object or a bool, got {schema!r}")
    for key, value in schema.items():
        here = f"{path}/{key}"
        if key in _ANNOTATIONS:
            continue
        if key not in _CHECKED:
            raise _bad_schema(
                here,
                f"the keyword {key!r} is outside the JSON Schema subset turnout checks "
                f"({', '.join(sorted(_CHECKED))}); drop it or express it with those",
            )
        if key == "type":
            names = value if isinstance(value, list) else [value]
            if not names or any(name not in _TYPES for name in names):
                raise _bad_schema(here, f"type must be one of {_TYPES} or a list of them")
        elif key in ("properties", "$defs", "definitions"):
            if not isinstance(value, Mapping):
                raise _bad_schema(here, f"{key} must be an object of schemas")
            for name, sub in value.items():
                check_schema(sub, path=f"{here}/{name}")
        elif key in ("items", "additionalProperties"):
            check_schema(value, path=here)
        elif key in ("anyOf", "oneOf", "allOf"):
            if not isinstance(value, list) or not value:
                raise _bad_schema(here, f"{key} must be a non-empty list of schemas")
            for index, sub in enumerate(value):
                check_schema(sub, path=f"{here}/{index}")
        elif key == "required":
            if not isinstance(value, list) or not all(isinstance(n, str) for n in value):
                raise _bad_schema(here, "required must be a list of property names")
        elif key == "enum":
            if not isinstance(value, list):
                raise _bad_schema(here, "enum must be a list")
        elif key in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
            if not _is_number(value):
                raise _bad_schema(here, f"{key} must be a number")
        elif key in ("minLength", "maxLength", "minItems", "maxItems"):
            if not _is_integer(value) or value < 0:
                raise _bad_schema(here, f"{key} must be a non-negative integer")
        elif key == "pattern":
            try:
                re.compile(value)
            except (re.error, TypeError) as exc:
                why = f"pattern {value!r} is not a regular expression: {exc}"
                raise _bad_schema(here, why) from None
        elif key == "$ref" and (
            not isinstance(value, str) or not value.startswith(("#/$defs/", "#/definitions/"))
        ):
            raise _bad_schema(here, "$ref must point into the schema: '#/$defs/<name>'")


def validate(value: Any, schema: Any) -> None:
    """Check ``value`` against ``schema`` (already accepted by ``check_schema``).

    Raises:
        AnswerValidationError: naming the path of the first mismatch (``$.approved``) and what
            was expected there; also when a ``$ref`` cycle (``#/$defs/a`` naming itself) or
            an answer nested past Python's recursion limit leaves no answer to give (a stored
            schema is untrusted: it must not end a resume with a ``RecursionError``).
    """
    try:
        _check(value, schema, "$", schema if isinstance(schema, Mapping) else {})
    except RecursionError:
        raise AnswerValidationError(
            "the answer cannot be checked: the schema's $ref chain loops, or the answer nests "
            "too deeply; give a schema whose $refs end and a flatter answer",
            path="$",
        ) from None


def _check(value: Any, schema: Any, path: str, root: Mapping[str, Any]) -> None:
    if schema is True:
        return
    if schema is False:
        raise _mismatch(path, "nothing (the schema is false)", value)
    ref = schema.get("$ref")
    if ref is not None:
        _check(value, _resolve(ref, root), path, root)
    kinds = schema.get("type")
    if kinds is not None:
        names = kinds if isinstance(kinds, list) else [kinds]
        if not any(_is_type(value, name) for name in names):
            raise _mismatch(path, " or ".join(names), value)
    if "const" in schema and not _equal(value, schema["const"]):
        raise _mismatch(path, f"the constant {schema['const']!r}", value)
    if "enum" in schema and not any(_equal(value, option) for option in schema["enum"]):
        raise _mismatch(path, f"one of {schema['enum']!r}", value)
    if _is_number(value):
        _check_number(value, schema, path)
    elif isinstance(value, str):
        _check_string(value, schema, path)
    elif isinstance(value, list):
        _check_array(value, schema, path, root)
    elif isinstance(value, Mapping):
        _check_object(value, schema, path, root)
    for sub in schema.get("allOf", ()):
        _check(value, sub, path, root)
    if "anyOf" in schema and not any(_fits(value, sub, path, root) for sub in schema["anyOf"]):
        raise _mismatch(path, "a value matching at least one schema of anyOf", value)
    if "oneOf" in schema:
        matched = sum(1 for sub in schema["oneOf"] if _fits(value, sub, path, root))
        if matched != 1:
            raise _mismatch(
                path, f"a value matching exactly one schema of oneOf ({matched} do)", value
            )


def _check_number(value: float, schema: Mapping[str, Any], path: str) -> None:
    if "minimum" in schema and not value >= schema["minimum"]:
        raise _mismatch(path, f"a number at least {schema['minimum']!r}", value)
    if "maximum" in schema and not value <= schema["maximum"]:
        raise _mismatch(path, f"a number at most {schema['maximum']!r}", value)
    if "exclusiveMinimum" in schema and not value > schema["exclusiveMinimum"]:
        raise _mismatch(path, f"a number more than {schema['exclusiveMinimum']!r}", value)
    if "exclusiveMaximum" in schema and not value < schema["exclusiveMaximum"]:
        raise _mismatch(path, f"a number less than {schema['exclusiveMaximum']!r}", value)


def _check_string(value: str, schema: Mapping[str, Any], path: str) -> None:
    # JSON Schema counts code points, as len() does.
    if "minLength" in schema and len(value) < schema["minLength"]:
        raise _mismatch(path, f"a string of at least {schema['minLength']} characters", value)
    if "maxLength" in schema and len(value) > schema["maxLength"]:
        raise _mismatch(path, f"a string of at most {schema['maxLength']} characters", value)
    if "pattern" in schema and re.search(schema["pattern"], value) is None:
        raise _mismatch(path, f"a string matching {schema['pattern']!r}", value)


def _check_array(
    value: list[Any], schema: Mapping[str, Any], path: str, root: Mapping[str, Any]
) -> None:
    if "minItems" in schema and len(value) < schema["minItems"]:
        raise _mismatch(path, f"an array of at least {schema['minItems']} items", value)
    if "maxItems" in schema and len(value) > schema["maxItems"]:
        raise _mismatch(path, f"an array of at most {schema['maxItems']} items", value)
    if "items" in schema:
        for index, item in enumerate(value):
            _check(item, schema["items"], f"{path}[{index}]", root)


def _check_object(
    value: Mapping[str, Any], schema: Mapping[str, Any], path: str, root: Mapping[str, Any]
) -> None:
    for name in schema.get("required", ()):
        if name not in value:
            raise AnswerValidationError(
                f"the answer at {_join(path, name)} is missing: the schema requires "
                f"{name!r} in the object at {path}",
                path=_join(path, name),
            )
    properties = schema.get("properties", {})
    extra = schema.get("additionalProperties", True)
    for name, item in value.items():
        if name in properties:
            _check(item, properties[name], _join(path, name), root)
        elif extra is False:
            raise AnswerValidationError(
                f"the answer at {_join(path, name)} is not allowed: the object at {path} takes "
                f"only {sorted(properties)!r} (additionalProperties is false)",
                path=_join(path, name),
            )
        elif extra is not True:
            _check(item, extra, _join(path, name), root)


def _fits(value: Any, schema: Any, path: str, root: Mapping[str, Any]) -> bool:
    try:
        _check(value, schema, path, root)
    except AnswerValidationError:
        return False
    return True


def _resolve(ref: str, root: Mapping[str, Any]) -> Any:
    _, section, name = ref.split("/", 2)
    target = root.get(section, {}).get(name.replace("~1", "/").replace("~0", "~"))
    if target is None:
        raise AnswerValidationError(f"the schema's $ref {ref!r} points at nothing", path="$")
    return target


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_integer(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, float) and value.is_integer())


def _is_type(value: Any, name: str) -> bool:
    if name == "object":
        return isinstance(value, Mapping)
    if name == "array":
        return isinstance(value, list)
    if name == "string":
        return isinstance(value, str)
    if name == "number":
        return _is_number(value)
    if name == "integer":
        return _is_integer(value)
    if name == "boolean":
        return isinstance(value, bool)
    return value is None


def _equal(a: Any, b: Any) -> bool:
    """JSON equality: ``1 == 1.0`` but ``True != 1``, and containers compared the same way."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if _is_number(a) and _is_number(b):
        return bool(a == b)
    return type(a) is type(b) and bool(a == b)


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if name.isidentifier() else f"{path}[{name!r}]"


def _mismatch(path: str, expected: str, value: Any) -> AnswerValidationError:
    shown = repr(value)
    if len(shown) > 80:
        shown = shown[:77] + "..."
    return AnswerValidationError(f"the answer at {path} must be {expected}, got {shown}", path=path)


def _bad_schema(path: str, why: str) -> AnswerValidationError:
    return AnswerValidationError(f"the answer schema at {path} is not usable: {why}", path=path)
