"""``ApplicationContext.suspend`` and ``Application.resume``: a step ends as suspended and
runs again with the answer, in sync, async and streaming actions; wrong resumes change
nothing; durable side effects before a suspend happen once; hooks and the tracker see it."""

from __future__ import annotations

import asyncio
from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest

from turnout import ApplicationBuilder, State, action, streaming_action
from turnout.core.application import Application
from turnout.core.context import ApplicationContext
from turnout.core.errors import AnswerValidationError, SuspensionError
from turnout.core.memory import AsyncInMemoryPersister, InMemoryPersister
from turnout.core.suspension import SuspensionRecord
from turnout.core.tracking import LocalTracker
from turnout.core.tracklog import EndRecord, read_records

SCHEMA = {
    "type": "object",
    "properties": {"approved": {"type": "boolean"}, "note": {"type": "string"}},
    "required": ["approved"],
}
sent: list[str] = []


def _send(to: str) -> str:
    sent.append(to)
    return f"sent to {to}"


@action(reads=["draft"], writes=["decision", "receipt"])
def review(state: State, __context: ApplicationContext) -> State:
    receipt = __context.durable("notify", _send, "reviewer")
    answer = __context.suspend("approval", schema=SCHEMA, metadata={"draft": state["draft"]})
    return state.update(decision=answer["approved"], receipt=receipt)


@action(reads=["draft"], writes=["decision", "receipt"])
async def areview(state: State, __context: ApplicationContext) -> State:
    receipt = await __context.adurable("notify", _send, "reviewer")
    answer = __context.suspend("approval", schema=SCHEMA, metadata={"draft": state["draft"]})
    return state.update(decision=answer["approved"], receipt=receipt)


@action(reads=["decision"], writes=["published"])
def publish(state: State) -> State:
    return state.update(published=state["decision"])


def build(review_action: Any = review, persister: Any = None, **extra: Any) -> Application:
    builder = (
        ApplicationBuilder()
        .with_actions(review=review_action, publish=publish)
        .with_transitions(("review", "publish"))
        .with_state({"draft": "hello"})
        .with_entrypoint("review")
        .with_identifiers(app_id="approval")
    )
    if persister is not None:
        builder = builder.with_state_persister(persister)
    for name, value in extra.items():
        builder = getattr(builder, name)(*value)
    return builder.build()


@pytest.fixture(autouse=True)
def _clear_sent() -> None:
    sent.clear()


def test_a_suspended_run_returns_the_suspension_and_keeps_the_entry_state() -> None:
    app = build(persister=InMemoryPersister())
    action_, result, state = app.run(halt_after=["publish"])
    assert action_.name == "review"
    assert isinstance(result, SuspensionRecord)
    assert (result["channel"], result["schema"], result["metadata"]) == (
        "approval",
        SCHEMA,
        {"draft": "hello"},
    )
    assert state.get_all() == {"draft": "hello"}
    assert app.suspension == result
    assert app.sequence_id == 0


def test_resume_reruns_the_action_with_the_answer_and_the_durable_call_happens_once() -> None:
    app = build(persister=InMemoryPersister())
    app.run(halt_after=["publish"])
    _, _, state = app.resume("approval", {"approved": True})
    assert state["decision"] is True
    assert state["receipt"] == "sent to reviewer"
    assert sent == ["reviewer"]
    assert app.suspension is None
    assert app.run(halt_after=["publish"])[2]["published"] is True


def test_a_suspended_app_does_not_run_its_action_again_until_resumed() -> None:
    app = build(persister=InMemoryPersister())
    first = app.run(halt_after=["publish"])
    assert app.step() == first
    assert app.run(halt_after=["publish"]) == first
    assert sent == ["reviewer"]


def test_async_actions_suspend_and_aresume() -> None:
    async def scenario() -> State:
        app = (
            await ApplicationBuilder()
            .with_actions(review=areview, publish=publish)
            .with_transitions(("review", "publish"))
            .with_state({"draft": "hello"})
            .with_entrypoint("review")
            .with_state_persister(AsyncInMemoryPersister())
            .abuild()
        )
        _, result, _ = await app.arun(halt_after=["publish"])
        assert isinstance(result, SuspensionRecord)
        await app.aresume("approval", {"approved": False})
        return (await app.arun(halt_after=["publish"]))[2]

    state = asyncio.run(scenario())
    assert state["published"] is False
    assert sent == ["reviewer"]


def test_a_streaming_action_suspends_its_stream_and_resumes() -> None:
    @streaming_action(reads=["draft"], writes=["decision"])
    def stream_review(
        state: State, __context: ApplicationContext
    ) -> Generator[tuple[dict[str, Any], State | None], None, None]:
        yield {"token": "thinking"}, None
        answer = __context.suspend("approval", schema=SCHEMA)
        yield {"token": "done"}, state.update(decision=answer["approved"])

    app = build(stream_review, InMemoryPersister())
    _, container = app.stream_result(halt_after=["review"])
    assert [item["token"] for item in container] == ["thinking"]
    result, state = container.get()
    assert isinstance(result, SuspensionRecord)
    assert state.get_all() == {"draft": "hello"}
    _, again = app.stream_result(halt_after=["review"])  # still waiting: nothing runs
    assert isinstance(again.get()[0], SuspensionRecord)
    assert app.resume("approval", {"approved": True})[2]["decision"] is True


def test_a_wrong_channel_is_refused_and_changes_nothing() -> None:
    app = build(persister=InMemoryPersister())
    pending = app.run(halt_after=["publish"])[1]
    with pytest.raises(SuspensionError, match="waits on channel 'approval'"):
        app.resume("payment", {"approved": True})
    assert app.suspension == pending
    assert app.state.get_all() == {"draft": "hello"}


@pytest.mark.parametrize(
    ("answer", "path"),
    [
        ({"approved": "yes"}, "$.approved"),
        ({}, "$.approved"),
        ({"approved": True, "note": 3}, "$.note"),
    ],
    ids=["wrong-type", "missing", "nested"],
)  # fmt: skip
def test_an_invalid_answer_names_its_path_and_changes_nothing(answer: Any, path: str) -> None:
    app = build(persister=InMemoryPersister())
    pending = app.run(halt_after=["publish"])[1]
    with pytest.raises(AnswerValidationError) as caught:
        app.resume("approval", answer)
    assert caught.value.path == path
    assert path in str(caught.value)
    assert app.suspension == pending
    assert app.resume("approval", {"approved": True})[2]["decision"] is True


def test_resume_of_an_app_that_is_not_suspended_is_refused() -> None:
    app = build(persister=InMemoryPersister())
    with pytest.raises(SuspensionError, match="is not suspended"):
        app.resume("approval", {"approved": True})


def test_a_second_resume_is_refused() -> None:
    app = build(persister=InMemoryPersister())
    app.run(halt_after=["publish"])
    app.resume("approval", {"approved": True})
    with pytest.raises(SuspensionError, match="not suspended"):
        app.resume("approval", {"approved": False})
    assert app.state["decision"] is True


def test_an_app_without_persister_suspends_and_resumes_in_process() -> None:
    @action(reads=["draft"], writes=["decision"])
    def plain(state: State, __context: ApplicationContext) -> State:
        return state.update(decision=__context.suspend("approval")["approved"])

    app = build(plain)
    assert isinstance(app.run(halt_after=["publish"])[1], SuspensionRecord)
    assert app.resume("approval", {"approved": True})[2]["decision"] is True


def test_several_suspends_in_one_action_get_their_own_answers() -> None:
    @action(reads=[], writes=["who", "amount", "decision"])
    def ask_twice(state: State, __context: ApplicationContext) -> State:
        who = __context.suspend("who", schema={"type": "string"})
        amount = __context.suspend("amount", schema={"type": "integer"}, metadata={"who": who})
        return state.update(who=who, amount=amount, decision=True)

    app = build(ask_twice, InMemoryPersister())
    assert app.run(halt_after=["review"])[1]["channel"] == "who"
    second = app.resume("who", "ada")[1]
    assert isinstance(second, SuspensionRecord)
    assert (second.channel, second.call_index, second.metadata) == ("amount", 1, {"who": "ada"})
    with pytest.raises(AnswerValidationError, match=r"\$ must be integer"):
        app.resume("amount", "ten")
    state = app.resume("amount", 10)[2]
    assert (state["who"], state["amount"]) == ("ada", 10)


def test_a_schema_outside_the_subset_fails_the_step_at_suspend() -> None:
    @action(reads=[], writes=["decision"])
    def bad(state: State, __context: ApplicationContext) -> State:
        __context.suspend("x", schema={"type": "object", "patternProperties": {}})
        return state

    with pytest.raises(AnswerValidationError, match="patternProperties"):
        build(bad).step()


class Recorder:
    def __init__(self) -> None:
        self.seen: list[Any] = []

    def post_run_step(self, *, exception: Any, **kwargs: Any) -> None:
        self.seen.append((exception, kwargs.get("suspension")))


def test_post_run_step_hooks_see_the_suspension_and_the_persister_saves_suspended() -> None:
    recorder = Recorder()
    persister = InMemoryPersister()
    app = build(persister=persister, with_hooks=(recorder,))
    pending = app.run(halt_after=["publish"])[1]
    assert recorder.seen == [(None, pending)]
    loaded = persister.load(None, "approval")
    assert loaded is not None
    assert (loaded.status, loaded.position, loaded.state.get_all()) == (
        "suspended",
        "review",
        {"draft": "hello"},
    )


def test_the_local_tracker_records_the_suspended_status_and_channel(tmp_path: Path) -> None:
    tracker = LocalTracker("suspend", storage_dir=str(tmp_path))
    app = build(persister=InMemoryPersister(), with_tracker=(tracker,))
    app.run(halt_after=["publish"])
    app.resume("approval", {"approved": True})
    log = read_records(tracker.log_path("approval"))
    ends = [r for r in log.records if isinstance(r, EndRecord)]
    assert [(e.seq, e.status) for e in ends] == [(0, "suspended"), (1, "completed")]
    assert ends[0].suspension is not None
    assert ends[0].suspension["channel"] == "approval"
    assert ends[0].finished
