"""A suspension whose schema is a pydantic model: the answer is checked by the model (the path
of a bad field named, nothing changed) and the resumed action receives a model instance."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

pytest.importorskip("pydantic")

import pydantic

from turnout import ApplicationBuilder, State, action
from turnout.core.context import ApplicationContext
from turnout.core.errors import AnswerValidationError
from turnout.core.memory import InMemoryPersister


class Reviewer(pydantic.BaseModel):
    name: str


class Approval(pydantic.BaseModel):
    approved: bool
    reviewers: list[Reviewer] = []


received: list[Any] = []


@action(reads=["draft"], writes=["decision"])
def review(state: State, __context: ApplicationContext) -> State:
    answer = __context.suspend("approval", schema=Approval, metadata={"draft": state["draft"]})
    received.append(answer)
    return state.update(decision=answer.approved)


def _app() -> Any:
    return (
        ApplicationBuilder()
        .with_actions(review)
        .with_transitions(("review", "review"))
        .with_state(draft="hello")
        .with_entrypoint("review")
        .with_state_persister(InMemoryPersister())
        .with_identifiers(app_id="pydantic-suspend")
        .build()
    )


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_the_resumed_action_receives_the_answer_as_a_model(mode: str) -> None:
    received.clear()
    app = _app()
    _, suspension, _ = app.step()
    assert suspension.channel == "approval"
    assert suspension.schema == Approval.model_json_schema()
    answer = {"approved": True, "reviewers": [{"name": "ada"}]}
    if mode == "sync":
        app.resume("approval", answer)
    else:
        asyncio.run(app.aresume("approval", answer))
    assert received == [Approval(approved=True, reviewers=[Reviewer(name="ada")])]
    assert isinstance(received[0], Approval)
    assert app.state["decision"] is True


def test_a_model_instance_is_accepted_as_the_answer() -> None:
    received.clear()
    app = _app()
    app.step()
    app.resume("approval", Approval(approved=False))
    assert received == [Approval(approved=False)]


def test_an_answer_the_model_refuses_names_the_path_and_changes_nothing() -> None:
    app = _app()
    app.step()
    before = (app.sequence_id, app.state, app.suspension)
    with pytest.raises(AnswerValidationError, match=r"\$\.reviewers\[0\]\.name") as caught:
        app.resume("approval", {"approved": True, "reviewers": [{"name": 5}]})
    assert caught.value.path == "$.reviewers[0].name"
    assert (app.sequence_id, app.state, app.suspension) == before
    app.resume("approval", {"approved": True})
    assert app.state["decision"] is True
