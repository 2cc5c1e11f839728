"""The JSON Schema subset of ``turnout.core.json_schema``: it accepts and refuses what the
``jsonschema`` package does on every keyword it covers, names the path of a mismatch, and
refuses keywords outside the subset."""

from __future__ import annotations

from typing import Any

import pytest

from turnout.core.errors import AnswerValidationError
from turnout.core.json_schema import check_schema, validate

PERSON = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "minLength": 1, "maxLength": 5, "pattern": "^[a-z]+$"},
        "age": {"type": "integer", "minimum": 0, "exclusiveMaximum": 150},
        "tags": {"type": "array", "items": {"enum": ["a", "b"]}, "minItems": 1, "maxItems": 2},
        "kind": {"const": "person"},
        "score": {"type": ["number", "null"], "maximum": 1, "exclusiveMinimum": 0},
    },
    "required": ["name"],
    "additionalProperties": False,
}
ITEMS = {
    "$defs": {"item": {"type": "object", "required": ["id"]}},
    "type": "array",
    "items": {"$ref": "#/$defs/item"},
}
CASES: list[tuple[Any, Any]] = [
    (PERSON, {"name": "ada"}),
    (PERSON, {"name": "ada", "age": 36, "tags": ["a"], "kind": "person", "score": 0.5}),
    (PERSON, {"name": "ada", "age": 36.0}),
    (PERSON, {"name": "ada", "age": 150}),
    (PERSON, {"name": "ada", "age": True}),
    (PERSON, {"name": "ada", "age": -1}),
    (PERSON, {"name": ""}),
    (PERSON, {"name": "toolong"}),
    (PERSON, {"name": "Ada"}),
    (PERSON, {"name": "ada", "tags": []}),
    (PERSON, {"name": "ada", "tags": ["a", "b", "a"]}),
    (PERSON, {"name": "ada", "tags": ["c"]}),
    (PERSON, {"name": "ada", "kind": "robot"}),
    (PERSON, {"name": "ada", "score": None}),
    (PERSON, {"name": "ada", "score": 0}),
    (PERSON, {"name": "ada", "score": 1}),
    (PERSON, {"name": "ada", "extra": 1}),
    (PERSON, {}),
    (PERSON, ["ada"]),
    ({"type": "boolean"}, True),
    ({"type": "boolean"}, 1),
    ({"type": "integer"}, 1.5),
    ({"type": "number"}, False),
    ({"type": "null"}, None),
    ({"type": "null"}, 0),
    ({"enum": [1, "x", None]}, 1.0),
    ({"enum": [1]}, True),
    ({"const": [1, {"a": False}]}, [1, {"a": False}]),
    ({"const": [1, {"a": False}]}, [1, {"a": 0}]),
    ({"pattern": "b"}, "abc"),  # found anywhere, as JSON Schema's pattern is
    ({"pattern": "^b"}, "abc"),
    ({"minLength": 2}, 5),  # string keywords ignore other types
    ({"additionalProperties": {"type": "integer"}}, {"a": 1, "b": "x"}),
    ({"additionalProperties": {"type": "integer"}}, {"a": 1}),
    ({"anyOf": [{"type": "string"}, {"type": "integer"}]}, 3),
    ({"anyOf": [{"type": "string"}, {"type": "integer"}]}, 3.5),
    ({"oneOf": [{"type": "integer"}, {"type": "number"}]}, 3),
    ({"oneOf": [{"type": "integer"}, {"type": "number"}]}, 3.5),
    ({"allOf": [{"minimum": 1}, {"maximum": 3}]}, 2),
    ({"allOf": [{"minimum": 1}, {"maximum": 3}]}, 4),
    (
        {
            "$defs": {"item": {"type": "object", "required": ["id"]}},
            "type": "array",
            "items": {"$ref": "#/$defs/item"},
        },
        [{"id": 1}, {"id": 2}],
    ),
    (
        {
            "$defs": {"item": {"type": "object", "required": ["id"]}},
            "type": "array",
            "items": {"$ref": "#/$defs/item"},
        },
        [{"id": 1}, {}],
    ),
    (True, {"anything": 1}),
    (False, 1),
    ({"title": "T", "description": "d", "default": 1, "format": "email"}, "not an email"),
]


def _ours(schema: Any, value: Any) -> bool:
    check_schema(schema)
    try:
        validate(value, schema)
    except AnswerValidationError:
        return False
    return True


@pytest.mark.parametrize(("schema", "value"), CASES, ids=[str(i) for i in range(len(CASES))])
def test_the_subset_agrees_with_the_jsonschema_package(schema: Any, value: Any) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    expected = jsonschema.Draft202012Validator(schema).is_valid(value)
    assert _ours(schema, value) is expected


def test_the_subset_agrees_with_jsonschema_on_generated_values() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    hypothesis = pytest.importorskip("hypothesis")
    from hypothesis import strategies as st

    scalars = (
        st.none()
        | st.booleans()
        | st.integers(-200, 200)
        | st.floats(-2, 2)
        | st.text("abAB", max_size=7)
    )
    values = st.recursive(
        scalars,
        lambda inner: (
            st.lists(inner, max_size=3)
            | st.dictionaries(st.sampled_from(["name", "age", "tags", "kind", "score", "x"]), inner)
        ),
        max_leaves=8,
    )
    checker = jsonschema.Draft202012Validator(PERSON)

    @hypothesis.settings(max_examples=400, deadline=None, database=None)
    @hypothesis.given(values)
    def agree(value: Any) -> None:
        assert _ours(PERSON, value) is checker.is_valid(value)

    agree()


@pytest.mark.parametrize(
    ("value", "path"),
    [
        ({"name": "ada", "age": "old"}, "$.age"),
        ({"name": "ada", "tags": ["a", "z"]}, "$.tags[1]"),
        ({}, "$.name"),
        ({"name": "ada", "extra": 1}, "$.extra"),
    ],
    ids=["wrong-type", "array-item", "missing", "additional"],
)
def test_a_mismatch_names_its_path(value: Any, path: str) -> None:
    with pytest.raises(AnswerValidationError) as caught:
        validate(value, PERSON)
    assert caught.value.path == path
    assert path in str(caught.value)


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "object", "patternProperties": {}},
        {"properties": {"a": {"uniqueItems": True}}},
        {"type": "date"},
        {"minLength": -1},
        {"pattern": "("},
        {"$ref": "http://example.com/schema"},
        {"anyOf": []},
        "string",
    ],
    ids=["unknown", "nested-unknown", "bad-type", "negative", "bad-regex", "remote-ref",
         "empty-anyof", "not-a-schema"],
)  # fmt: skip
def test_a_schema_outside_the_subset_is_refused(schema: Any) -> None:
    with pytest.raises(AnswerValidationError, match="answer schema"):
        check_schema(schema)


def test_a_ref_cycle_in_a_stored_schema_is_an_answer_error_not_a_recursion_error() -> None:
    looping = {"$defs": {"a": {"$ref": "#/$defs/a"}}, "$ref": "#/$defs/a"}
    with pytest.raises(AnswerValidationError, match=r"\$ref chain loops") as caught:
        validate({"approved": True}, looping)
    assert caught.value.path == "$"
