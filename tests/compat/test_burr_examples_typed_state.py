"""The pattern of Burr's ``typed-state`` example, run on turnout.

Burr's example (``application.py``) ran on turnout with only ``burr`` replaced by ``turnout`` in
its imports, with instructor's client against a fake OpenAI server and a stubbed transcript. This
program of our own keeps what it depends on: a pydantic state model with a nested model field,
``@action.pydantic`` actions taking an input and a bound client, a ``@streaming_action.pydantic``
(sync and async) yielding partial models, ``with_typing(...).with_state(Model())``, a tracker,
``Application[Model]`` and ``StreamingResultContainer[Model, Item]`` annotations (evaluated at
run time, as module-level annotations of Burr's ``server.py`` are), ``state.data`` read as the
model, and partial items as instructor streams them (instances of a subclass of the stream type
whose unset fields are ``None``).
"""

from __future__ import annotations

import asyncio
import typing
from collections.abc import AsyncGenerator, Generator, Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("pydantic")

from pydantic import BaseModel, Field, create_model
from pydantic.json_schema import SkipJsonSchema

from turnout.core import Application, ApplicationBuilder, action
from turnout.core.action import (
    AsyncStreamingResultContainer,
    StreamingResultContainer,
    streaming_action,
)
from turnout.core.tracking import read_log
from turnout.integrations.pydantic import PydanticTypingSystem


class Concept(BaseModel):
    term: str = Field(description="A key term.")
    definition: str = Field(description="What it means.")


class SocialMediaPost(BaseModel):
    topic: str = Field(description="Main topic.")
    body: str = ""
    concepts: list[Concept] = Field(default_factory=list, max_length=3)
    youtube_url: SkipJsonSchema[str | None] = None


class ApplicationState(BaseModel):
    transcript: str | None = Field(description="The transcript.", default=None)
    post: SocialMediaPost | None = Field(description="The post.", default=None)


class FakeClient:
    """Stands for instructor's client: a post, or its partials one field at a time."""

    def create(self, transcript: str) -> SocialMediaPost:
        return SocialMediaPost(topic=transcript.split()[0], body=transcript)

    def create_partial(self, transcript: str) -> Iterator[SocialMediaPost]:
        yield SocialMediaPost(topic="")
        yield SocialMediaPost(topic=transcript.split()[0])
        yield SocialMediaPost(topic=transcript.split()[0], body=transcript)


@action.pydantic(reads=[], writes=["transcript"])
def get_youtube_transcript(state: ApplicationState, youtube_url: str) -> ApplicationState:
    _, _, video_id = youtube_url.partition("?v=")
    state.transcript = f"burr video {video_id}"
    return state


@action.pydantic(reads=["transcript"], writes=["post"])
def generate_post(state: ApplicationState, llm_client: Any) -> ApplicationState:
    state.post = llm_client.create(state.transcript)
    return state


@streaming_action.pydantic(
    reads=["transcript"],
    writes=["post"],
    state_input_type=ApplicationState,
    state_output_type=ApplicationState,
    stream_type=SocialMediaPost,
)
def generate_post_streaming(
    state: ApplicationState, llm_client: Any
) -> Generator[tuple[SocialMediaPost, ApplicationState | None], None, None]:
    final_post: SocialMediaPost | None = None
    for post in llm_client.create_partial(state.transcript):
        final_post = post
        yield post, None
    # As in Burr's example: the state yielded last is the input model, whose post is unset.
    yield final_post, state  # type: ignore[misc]


@streaming_action.pydantic(
    reads=["transcript"],
    writes=["post"],
    state_input_type=ApplicationState,
    state_output_type=ApplicationState,
    stream_type=SocialMediaPost,
)
async def generate_post_streaming_async(
    state: ApplicationState, llm_client: Any
) -> AsyncGenerator[tuple[SocialMediaPost, ApplicationState | None], None]:
    final_post = None
    for post in llm_client.create_partial(state.transcript):
        await asyncio.sleep(0)
        final_post = post
        yield post, None
    state.post = final_post
    yield final_post, state  # type: ignore[misc]


# As instructor's Partial[SocialMediaPost]: a subclass whose fields may all be unset (None).
PartialSocialMediaPost = create_model(
    "PartialSocialMediaPost", __base__=SocialMediaPost, topic=(str | None, None)
)


class PartialClient(FakeClient):
    """Streams partial posts the way instructor does: built unvalidated, fields filled in."""

    def create_partial(self, transcript: str) -> Iterator[SocialMediaPost]:
        yield PartialSocialMediaPost.model_construct(topic=None, body="")
        yield PartialSocialMediaPost.model_construct(topic=transcript.split()[0], body="")
        yield PartialSocialMediaPost(topic=transcript.split()[0], body=transcript)


def build(
    generate: Any, project: str, client: FakeClient | None = None
) -> Application[ApplicationState]:
    return (
        ApplicationBuilder()
        .with_actions(
            get_youtube_transcript,
            generate_post=generate.bind(llm_client=client or FakeClient()),
        )
        .with_transitions(
            ("get_youtube_transcript", "generate_post"),
            ("generate_post", "get_youtube_transcript"),
        )
        .with_entrypoint("get_youtube_transcript")
        .with_typing(PydanticTypingSystem(ApplicationState))
        .with_state(ApplicationState())
        .with_tracker(project=project)
        .build()
    )


URL = "https://www.youtube.com/watch?v=abc"


@pytest.fixture(autouse=True)
def _tracking_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TURNOUT_HOME", str(tmp_path))


def test_plain_typed_application_gives_the_post_as_a_model(tmp_path: Path) -> None:
    app = build(generate_post, "youtube-post")
    _, _, state = app.run(halt_after=["generate_post"], inputs={"youtube_url": URL})
    assert isinstance(state.data, ApplicationState)
    assert state.data.post == SocialMediaPost(topic="burr", body="burr video abc")
    assert app.sequence_id == 1
    logs = list(tmp_path.rglob("log.jsonl"))
    assert len(logs) == 1
    assert read_log(logs[0])  # the tracker stored the typed steps


def test_streaming_typed_application_yields_partial_models() -> None:
    app = build(generate_post_streaming, "youtube-post")
    _, container = app.stream_result(halt_after=["generate_post"], inputs={"youtube_url": URL})
    typed: StreamingResultContainer[ApplicationState, SocialMediaPost] = container
    posts = [post.model_dump()["topic"] for post in typed]
    result, state = typed.get()
    assert posts == ["", "burr", "burr"]
    assert result == SocialMediaPost(topic="burr", body="burr video abc")
    assert state.data.post is None  # Burr's example yields its input model, post unset


def test_async_streaming_typed_application_yields_partial_models() -> None:
    async def run() -> tuple[list[SocialMediaPost], Any]:
        app = build(generate_post_streaming_async, "test-youtube-post")
        _, container = await app.astream_result(
            halt_after=["generate_post"], inputs={"youtube_url": URL}
        )
        typed: AsyncStreamingResultContainer[ApplicationState, SocialMediaPost] = container
        posts = [post async for post in typed]
        _, state = await typed.get()
        return posts, state

    posts, state = asyncio.run(run())
    assert len(posts) == 3
    assert state.data.post == SocialMediaPost(topic="burr", body="burr video abc")


def test_partial_items_of_a_subclass_stream_and_the_last_is_the_result(tmp_path: Path) -> None:
    app = build(generate_post_streaming, "youtube-post", PartialClient())
    _, container = app.stream_result(halt_after=["generate_post"], inputs={"youtube_url": URL})
    items = list(container)
    result, state = container.get()
    assert [type(item) for item in items] == [PartialSocialMediaPost] * 3
    assert [item.model_dump()["topic"] for item in items] == [None, "burr", "burr"]
    assert result is items[-1]
    assert isinstance(result, SocialMediaPost)
    assert state.data.post is None
    (log,) = tmp_path.rglob("log.jsonl")
    ends = [record for record in read_log(log) if record.get("t") == "stream_end"]
    assert [record["items"] for record in ends] == [3]


def test_state_and_container_types_subscript_at_run_time() -> None:
    """Burr's ``server.py`` annotates module globals, which Python evaluates."""
    for alias, origin, args in [
        (Application[ApplicationState], Application, (ApplicationState,)),
        (
            StreamingResultContainer[ApplicationState, SocialMediaPost],
            StreamingResultContainer,
            (ApplicationState, SocialMediaPost),
        ),
        (
            AsyncStreamingResultContainer[ApplicationState, SocialMediaPost],
            AsyncStreamingResultContainer,
            (ApplicationState, SocialMediaPost),
        ),
    ]:
        assert typing.get_origin(alias) is origin
        assert typing.get_args(alias) == args
