"""JSON Schemas: ``graph.state_schema()`` for typed and untyped state, ``action.input_schema()``,
each a valid draft 2020-12 schema that accepts what the application holds."""

from __future__ import annotations

import dataclasses
import enum
from typing import Annotated, Any, Literal, NotRequired, TypedDict

import pytest

from turnout import Action, ApplicationBuilder, GraphBuilder, State, action
from turnout.core.application import Application
from turnout.core.schemas import DIALECT, annotation_schema, class_schema
from turnout.core.typing import TypedDictTypingSystem

jsonschema = pytest.importorskip("jsonschema")


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Post(TypedDict):
    """A blog post."""

    title: str
    words: int


class Chat(TypedDict):
    count: int
    prompt: Annotated[str, "what the user asked"]
    post: NotRequired[Post | None]
    posts: NotRequired[list[Post]]


@dataclasses.dataclass
class Settings:
    color: Color
    ratio: float = 0.5
    tags: list[str] = dataclasses.field(
        default_factory=list, metadata={"description": "free-form labels"}
    )
    mode: Literal["fast", "slow"] = "fast"
    pair: tuple[int, str] | None = None
    scores: dict[str, float] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class Node:
    name: str
    children: list[Node] = dataclasses.field(default_factory=list)


def _valid(schema: dict[str, Any], instance: Any) -> bool:
    jsonschema.Draft202012Validator.check_schema(schema)
    return bool(jsonschema.Draft202012Validator(schema).is_valid(instance))


@action(reads=["count"], writes=["count"])
def count(state: State, step: int = 1, note: str | None = None) -> State:
    return state.update(count=state["count"] + step)


def _app(typing: Any = None) -> Any:
    builder = ApplicationBuilder().with_actions(count).with_transitions(("count", "count"))
    if typing is not None:
        builder = builder.with_typing(typing)
    return builder.with_state(count=0, prompt="").with_entrypoint("count").build()


def test_typed_dict_schema_lists_required_keys_nested_defs_and_descriptions() -> None:
    schema = _app(Chat).graph.state_schema()
    assert schema["$schema"] == DIALECT
    assert schema["title"] == "Chat"
    assert schema["required"] == ["count", "prompt"]
    assert schema["properties"]["prompt"] == {
        "type": "string",
        "description": "what the user asked",
    }
    assert schema["properties"]["post"] == {"anyOf": [{"$ref": "#/$defs/Post"}, {"type": "null"}]}
    assert schema["$defs"]["Post"]["description"] == "A blog post."
    assert _valid(schema, {"count": 1, "prompt": "hi", "posts": [{"title": "t", "words": 2}]})
    assert not _valid(schema, {"count": "1", "prompt": "hi"})
    assert not _valid(schema, {"count": 1, "prompt": "hi", "post": {"title": "t"}})


def test_dataclass_schema_has_defaults_enums_literals_tuples_and_maps() -> None:
    schema = class_schema(Settings)
    assert schema["required"] == ["color"]
    properties = schema["properties"]
    assert properties["color"] == {"enum": ["red", "blue"]}
    assert properties["ratio"] == {"type": "number", "default": 0.5}
    assert properties["tags"]["description"] == "free-form labels"
    assert properties["mode"] == {"enum": ["fast", "slow"], "default": "fast"}
    assert _valid(schema, {"color": "red", "pair": [1, "a"], "scores": {"a": 1.5}})
    assert not _valid(schema, {"color": "green"})
    assert not _valid(schema, {"color": "red", "pair": [1, 2]})
    assert not _valid(schema, {"color": "red", "scores": {"a": "x"}})


def test_a_recursive_dataclass_refers_to_the_root() -> None:
    schema = class_schema(Node)
    assert schema["properties"]["children"] == {"type": "array", "items": {"$ref": "#"}}
    assert _valid(schema, {"name": "a", "children": [{"name": "b", "children": []}]})
    assert not _valid(schema, {"name": "a", "children": [{"name": 1}]})


def test_untyped_state_schema_lists_every_key_the_actions_read_or_write() -> None:
    @action(reads=["prompt"], writes=["answer", "__internal"])
    def answer(state: State) -> State:
        return state.update(answer=state["prompt"], __internal=1)

    graph = (
        GraphBuilder()
        .with_actions(count, answer)
        .with_transitions(("count", "answer"), ("answer", "count"))
        .build()
    )
    schema = graph.state_schema()
    assert schema == {
        "$schema": DIALECT,
        "type": "object",
        "properties": {"answer": {}, "count": {}, "prompt": {}},
    }
    assert _valid(schema, {"count": object.__name__, "answer": [1]})
    assert _app().graph.state_schema()["properties"] == {"count": {}}


def test_function_action_input_schema_has_types_defaults_and_required() -> None:
    @action(reads=[], writes=[])
    def ask(state: State, question: str, retries: int = 2, __context: Any = None) -> State:
        return state

    schema = ask.action_function.input_schema()
    assert schema == {
        "$schema": DIALECT,
        "title": "ask inputs",
        "type": "object",
        "properties": {
            "question": {"type": "string"},
            "retries": {"type": "integer", "default": 2},
        },
        "required": ["question"],
        "additionalProperties": False,
    }
    assert _valid(schema, {"question": "why?"})
    assert not _valid(schema, {"retries": 1})
    assert not _valid(schema, {"question": "why?", "extra": 1})


def test_bound_inputs_are_left_out_of_the_input_schema() -> None:
    bound = count.bind(step=3)
    schema = bound.action_function.input_schema()
    assert schema["properties"] == {
        "note": {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None}
    }
    assert schema["required"] == []


def test_an_action_in_an_application_names_its_schema() -> None:
    schema = _app().graph.get_action("count").input_schema()
    assert schema["title"] == "count inputs"
    assert list(schema["properties"]) == ["step", "note"]


class Multiply(Action):
    @property
    def reads(self) -> list[str]:
        return ["n"]

    @property
    def writes(self) -> list[str]:
        return ["n"]

    @property
    def inputs(self) -> tuple[list[str], list[str]]:
        return ["factor"], []

    def run(self, state: State, **run_kwargs: Any) -> dict[str, Any]:
        return {"n": state["n"] * run_kwargs["factor"]}

    def update(self, result: dict[str, Any], state: State) -> State:
        return state.update(**result)


def test_class_action_inputs_without_annotations_accept_any_value() -> None:
    schema = Multiply().inputs_json_schema()
    assert schema["properties"] == {"factor": {}}
    assert schema["required"] == ["factor"]


ANNOTATIONS = [
    (int, {"type": "integer"}),
    (bool, {"type": "boolean"}),
    (None, {"type": "null"}),
    (Any, {}),
    (frozenset[int], {"type": "array", "items": {"type": "integer"}, "uniqueItems": True}),
    (tuple[str, ...], {"type": "array", "items": {"type": "string"}}),
    (Literal["only"], {"const": "only"}),
    (int | Any, {}),
    (object, {}),
]


@pytest.mark.parametrize(
    ("annotation", "expected"), ANNOTATIONS, ids=[str(a) for a, _ in ANNOTATIONS]
)
def test_annotation_schemas(annotation: Any, expected: dict[str, Any]) -> None:
    assert annotation_schema(annotation) == {"$schema": DIALECT, **expected}


def test_an_application_built_directly_takes_the_schema_from_its_state() -> None:
    graph = GraphBuilder().with_actions(count).with_transitions(("count", "count")).build()
    state = State({"count": 0, "prompt": ""}, typing_system=TypedDictTypingSystem(Chat))
    app = Application(graph=graph, state=state, uid="direct", entrypoint="count")
    assert app.graph.state_schema()["title"] == "Chat"
