"""Typed state with pydantic models: decorators, class actions, validation errors, persistence."""

from __future__ import annotations

import asyncio
import dataclasses
import enum
from collections.abc import AsyncGenerator, Generator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("pydantic")

import pydantic

from tests.integrations.missing_extra import import_without
from turnout import Action, ApplicationBuilder, State, StreamingAction, action, streaming_action
from turnout.core.errors import (
    ActionDefinitionError,
    GraphSetupError,
    InvalidActionReturnError,
    SerdeError,
    StateValidationError,
)
from turnout.core.serde import DEFAULT_SERDE, Serde
from turnout.core.sqlite import SQLitePersister
from turnout.integrations.pydantic import (
    PydanticActionSchema,
    PydanticTypingSystem,
    pydantic_action,
    subset_model,
)


class Post(pydantic.BaseModel):
    title: str
    words: int = 0


class Chat(pydantic.BaseModel):
    prompt: str = ""
    count: int = 0
    post: Post | None = None
    history: list[str] = pydantic.Field(default_factory=list)


class Chunk(pydantic.BaseModel):
    text: str


class Done(pydantic.BaseModel):
    total: int


@action.pydantic(reads=["count"], writes=["count"])
def count(state: Chat, step: int = 1) -> Chat:
    state.count += step
    return state


@action.pydantic(reads=["count"], writes=["count"])
async def acount(state: Chat, step: int = 1) -> Chat:
    await asyncio.sleep(0)
    state.count += step
    return state


def _app(state: Chat | None = None, **named: Any) -> Any:
    """A typed application of the ``named`` actions, starting at the first."""
    return (
        ApplicationBuilder()
        .with_actions(**named)
        .with_typing(PydanticTypingSystem(Chat))
        .with_state(state if state is not None else Chat())
        .with_entrypoint(next(iter(named)))
        .build()
    )


def test_function_action_reads_and_writes_models_and_state_data_is_the_model() -> None:
    app = _app(count=count)
    _, _, state = app.step(inputs={"step": 2})
    assert state["count"] == 2
    assert isinstance(state.data, Chat)
    assert state.data.count == 2
    assert app.state.data == Chat(count=2)


def test_async_function_action_runs_under_arun() -> None:
    app = _app(acount=acount)
    _, _, state = asyncio.run(app.astep(inputs={"step": 3}))
    assert state.data.count == 3


def test_inputs_come_from_the_users_function_and_bind_fixes_them() -> None:
    assert count.action_function.inputs == ([], ["step"])
    bound = count.bind(step=5)
    assert bound.action_function.inputs == ([], [])
    app = _app(count=bound)
    _, _, state = app.step()
    assert state.data.count == 5


def test_the_model_an_action_gets_holds_only_its_reads_and_writes() -> None:
    @action.pydantic(reads=["count"], writes=["count"])
    def sneaky(state: Chat) -> Chat:
        assert set(type(state).model_fields) == {"count"}
        state.prompt = "not declared"
        return state

    with pytest.raises(ValueError, match='no field "prompt"'):
        _app(sneaky=sneaky, state=Chat(prompt="kept")).step()


def test_a_written_value_of_the_wrong_type_names_action_field_and_types() -> None:
    @action.pydantic(reads=[], writes=["count"])
    def bad(state: Chat) -> Chat:
        state.count = "many"  # type: ignore[assignment]
        return state

    app = _app(broken=bad)
    with pytest.raises(StateValidationError) as info:
        app.step()
    message = str(info.value)
    assert "action 'broken' wrote" in message
    assert "count: got str 'many', expected int" in message
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value.__cause__, pydantic.ValidationError)
    assert app.state.data.count == 0  # nothing applied


def test_an_initial_state_that_does_not_fit_is_refused_at_build() -> None:
    builder = (
        ApplicationBuilder()
        .with_actions(count)
        .with_transitions()
        .with_typing(PydanticTypingSystem(Chat))
        .with_state(count="three")
        .with_entrypoint("count")
    )
    with pytest.raises(StateValidationError, match=r"(?s)the state holds values .*count: got str"):
        builder.build()


def test_without_a_typing_system_a_pydantic_action_checks_what_it_reads() -> None:
    app = (
        ApplicationBuilder()
        .with_actions(count)
        .with_transitions()
        .with_state(count="three")
        .with_entrypoint("count")
        .build()
    )
    with pytest.raises(StateValidationError, match=r"(?s)action 'count' reads .*count: got str"):
        app.step()


def test_a_plain_action_of_a_typed_app_has_its_writes_checked() -> None:
    @action(reads=[], writes=["count"])
    def plain(state: State) -> State:
        return state.update(count="lots")

    app = _app(plain=plain)
    with pytest.raises(StateValidationError, match=r"(?s)action 'plain' wrote .*count: got str"):
        app.step()
    assert app.state["count"] == 0


def test_returning_something_other_than_a_model_is_an_invalid_return() -> None:
    @action.pydantic(reads=[], writes=["count"])
    def wrong(state: Chat) -> Chat:
        return {"count": 1}  # type: ignore[return-value]

    with pytest.raises(InvalidActionReturnError, match="must return a Chat model, got dict"):
        _app(wrong=wrong).step()


@pytest.mark.parametrize(
    ("reads", "writes"),
    [(["nope"], ["count"]), (["count"], ["nope"])],
    ids=["unknown-read", "unknown-write"],
)
def test_reads_and_writes_must_be_fields_of_the_model(reads: list[str], writes: list[str]) -> None:
    def fn(state: Chat) -> Chat:
        return state

    with pytest.raises(ActionDefinitionError, match=r"\['nope'\] are not present in the model"):
        pydantic_action(reads=reads, writes=writes)(fn)


def test_model_types_come_from_annotations_or_both_arguments() -> None:
    def untyped(state):  # type: ignore[no-untyped-def]
        return state

    with pytest.raises(ActionDefinitionError, match="'state' parameter must be annotated"):
        action.pydantic(reads=[], writes=[])(untyped)
    with pytest.raises(ActionDefinitionError, match="give both"):
        action.pydantic(reads=[], writes=[], state_input_type=Chat)(untyped)
    typed = action.pydantic(reads=[], writes=[], state_input_type=Chat, state_output_type=Chat)
    assert typed(untyped).action_function.schema.state_input_type().__name__.startswith("Chat")


def test_with_state_of_a_model_needs_with_typing_first() -> None:
    with pytest.raises(GraphSetupError, match=r"with_typing\(PydanticTypingSystem\(Chat\)\)"):
        ApplicationBuilder().with_actions(count).with_state(Chat()).with_entrypoint("count").build()


def test_typing_system_types_before_and_after_each_action() -> None:
    system = PydanticTypingSystem(Chat)
    assert system.state_type() is Chat
    schema = count.action_function.schema
    assert system.state_pre_action_run_type(count.action_function, None) is (  # type: ignore[arg-type]
        schema.state_input_type()
    )
    plain = State({"count": 1}).with_typing_system(system)
    assert plain.data == Chat(count=1)
    with pytest.raises(StateValidationError, match="count: got str"):
        system.validate_state(State({"count": "x"}))


def test_subset_model_makes_writes_optional_and_keeps_defaults() -> None:
    subset = subset_model(Chat, ["count"], ["post", "prompt"], "Sub")
    assert subset.__name__ == "ChatSub"
    made = subset(count=1)
    assert (made.count, made.post, made.prompt) == (1, None, "")
    assert "history" not in subset.model_fields


# -- streaming -----------------------------------------------------------------------------------


@streaming_action.pydantic(
    reads=["prompt"],
    writes=["post"],
    state_input_type=Chat,
    state_output_type=Chat,
    stream_type=Chunk | Done,
)
def write_post(state: Chat) -> Generator[tuple[Chunk | Done, Chat | None], None, None]:
    words = state.prompt.split()
    for word in words:
        yield Chunk(text=word), None
    state.post = Post(title=state.prompt, words=len(words))
    yield Done(total=len(words)), state


@streaming_action.pydantic(
    reads=["prompt"],
    writes=["post"],
    state_input_type=Chat,
    state_output_type=Chat,
    stream_type=Chunk | Done,
)
async def awrite_post(state: Chat) -> AsyncGenerator[tuple[Chunk | Done, Chat | None], None]:
    words = state.prompt.split()
    for word in words:
        await asyncio.sleep(0)
        yield Chunk(text=word), None
    state.post = Post(title=state.prompt, words=len(words))
    yield Done(total=len(words)), state


def test_streaming_action_yields_models_of_a_union_and_merges_the_final_model() -> None:
    app = _app(state=Chat(prompt="two words"), write=write_post)
    _, container = app.stream_result(halt_after=["write"])
    items = list(container)
    result, state = container.get()
    assert items == [Chunk(text="two"), Chunk(text="words")]
    assert result == Done(total=2)
    assert state.data.post == Post(title="two words", words=2)


def test_async_streaming_action_yields_models_and_merges_the_final_model() -> None:
    async def run() -> tuple[list[Any], Any, Any]:
        app = _app(state=Chat(prompt="a b c"), write=awrite_post)
        _, container = await app.astream_result(halt_after=["write"])
        items = [item async for item in container]
        result, state = await container.get()
        return items, result, state

    items, result, state = asyncio.run(run())
    assert [item.text for item in items] == ["a", "b", "c"]
    assert result == Done(total=3)
    assert state.data.post.words == 3


@pytest.mark.parametrize("bad", [int, Chunk | int, list[Chunk], "Chunk"], ids=repr)
def test_stream_type_must_be_a_model_a_union_of_models_or_dict(bad: Any) -> None:
    def gen(state: Chat) -> Generator[Any, None, None]:
        yield {}, state

    decorator = streaming_action.pydantic(
        reads=[], writes=[], state_input_type=Chat, state_output_type=Chat, stream_type=bad
    )
    with pytest.raises(ActionDefinitionError, match="stream_type must be"):
        decorator(gen)


# -- class actions -------------------------------------------------------------------------------


class Remember(Action):
    """A two-step class action that receives and returns models."""

    @property
    def reads(self) -> list[str]:
        return ["prompt"]

    @property
    def writes(self) -> list[str]:
        return ["history"]

    @property
    def schema(self) -> PydanticActionSchema[Chat]:
        return PydanticActionSchema(Chat, Chat, dict)

    def run(self, state: Chat, **run_kwargs: Any) -> dict[str, Any]:  # type: ignore[override]
        assert isinstance(state, Chat)
        return {"said": state.prompt.upper()}

    def update(self, result: dict[str, Any], state: Chat) -> Chat:  # type: ignore[override]
        assert isinstance(state, Chat)
        state.history = [*state.history, result["said"]]
        return state


class AsyncRemember(Remember):
    async def run(self, state: Chat, **run_kwargs: Any) -> dict[str, Any]:  # type: ignore[override]
        await asyncio.sleep(0)
        return {"said": state.prompt}


class StreamWords(StreamingAction):
    """A class streaming action whose stream_run and update receive models."""

    @property
    def reads(self) -> list[str]:
        return ["prompt"]

    @property
    def writes(self) -> list[str]:
        return ["count"]

    @property
    def schema(self) -> PydanticActionSchema[Chat]:
        return PydanticActionSchema(Chat, Chat, dict)

    def stream_run(self, state: Chat, **run_kwargs: Any) -> Generator[dict[str, Any], None, None]:  # type: ignore[override]
        words = state.prompt.split()
        for word in words:
            yield {"word": word}
        yield {"n": len(words)}

    def update(self, result: dict[str, Any], state: Chat) -> Chat:  # type: ignore[override]
        state.count = result["n"]
        return state


def test_class_action_receives_models_in_run_and_update() -> None:
    app = _app(state=Chat(prompt="hi", history=["before"]), remember=Remember())
    _, result, state = app.step()
    assert result == {"said": "HI"}
    assert state.data.history == ["before", "HI"]


def test_async_class_action_receives_models() -> None:
    app = _app(state=Chat(prompt="hey"), remember=AsyncRemember())
    _, _, state = asyncio.run(app.astep())
    assert state.data.history == ["hey"]


def test_class_streaming_action_receives_models() -> None:
    app = _app(state=Chat(prompt="one two"), words=StreamWords())
    _, container = app.stream_result(halt_after=["words"])
    assert list(container) == [{"word": "one"}, {"word": "two"}]
    _, state = container.get()
    assert state.data.count == 2


def test_class_action_writing_a_wrong_type_names_the_action_and_field() -> None:
    class Bad(Remember):
        def update(self, result: dict[str, Any], state: Chat) -> Chat:  # type: ignore[override]
            state.history = "not a list"  # type: ignore[assignment]
            return state

    with pytest.raises(StateValidationError, match=r"(?s)action 'bad' wrote .*history: got str"):
        _app(state=Chat(prompt="x"), bad=Bad()).step()


# -- persistence and the extra -------------------------------------------------------------------


def test_typed_state_with_a_nested_model_persists_and_resumes(tmp_path: Path) -> None:
    persister = SQLitePersister(str(tmp_path / "typed.db"), "state")
    persister.initialize()

    def build() -> Any:
        return (
            ApplicationBuilder()
            .with_actions(write=write_post, count=count)
            .with_transitions(("write", "count"), ("count", "write"))
            .with_typing(PydanticTypingSystem(Chat))
            .initialize_from(
                persister,
                resume_at_next_action=True,
                default_state={"prompt": "saved post"},
                default_entrypoint="write",
            )
            .with_state_persister(persister)
            .with_identifiers(app_id="typed-1")
            .build()
        )

    build().run(halt_after=["write"])
    resumed = build()
    assert resumed.state.data.post == Post(title="saved post", words=2)
    assert resumed.get_next_action().name == "count"
    persister.cleanup()


class Shade(enum.Enum):
    DARK = "dark"


@dataclasses.dataclass
class Spot:
    x: int
    shade: Shade


class Leaf(pydantic.BaseModel):
    spot: Spot


class Branch(pydantic.BaseModel):
    leaves: list[Leaf] = pydantic.Field(default_factory=list)
    side: dict[str, Leaf | None] = pydantic.Field(default_factory=dict)


def test_typing_system_lets_the_default_serde_load_the_types_its_model_declares() -> None:
    """What another process saved loads once the typing system is built: the model and the
    models, dataclasses and enums its fields name (nested, in lists, unions and dicts)."""
    leaf = Leaf(spot=Spot(x=1, shade=Shade.DARK))
    stored = Serde().encode({"branch": Branch(leaves=[leaf], side={"a": None}), "leaf": leaf})
    with pytest.raises(SerdeError, match="has not registered"):
        DEFAULT_SERDE.decode(stored)
    PydanticTypingSystem(Branch)
    loaded = DEFAULT_SERDE.decode(stored)
    assert loaded == {"branch": Branch(leaves=[leaf], side={"a": None}), "leaf": leaf}
    assert type(loaded["leaf"].spot.shade) is Shade


def test_adapter_without_pydantic_names_the_extra() -> None:
    printed = import_without("pydantic", "turnout.integrations.pydantic")
    assert "MissingExtraError" in printed
    assert 'pip install "turnout[pydantic]"' in printed
