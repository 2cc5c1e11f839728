"""The served email assistant example over HTTP, in process: Starlette's ``TestClient`` (a sync
httpx client over the ASGI app) makes the requests its page makes — create, stream a draft,
answer the clarifying questions, stream the revision, request changes, approve."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("sse_starlette")

from fastapi.testclient import TestClient

from examples.email_assistant_served import application as assistant

REQUEST = "Invite the team to the launch review"
QUESTIONS = ["Which day should the email propose?", "Should the tone be formal or casual?"]


@pytest.fixture
def db(tmp_path: Path) -> str:
    return str(tmp_path / "assistant.db")


@pytest.fixture
def client(db: str) -> Iterator[TestClient]:
    with TestClient(assistant.create_api(db), base_url="http://assistant") as client:
        yield client


def _start(client: TestClient, request: str = REQUEST) -> tuple[str, str, dict[str, Any]]:
    app_id = client.post("/api/apps", json={}).json()["app_id"]
    text, view = assistant.streamed(client, app_id, inputs={"request": request})
    return app_id, text, view


def _words(answers: list[str] | None = None, feedback: list[str] | None = None) -> list[str]:
    return list(assistant.DraftingModel().words(REQUEST, answers or [], feedback or []))


def _clarified(client: TestClient) -> tuple[str, str, dict[str, Any]]:
    app_id, _, _ = _start(client)
    assistant.answer(client, app_id, "clarifications", {"answers": ["Thursday", "casual"]})
    text, view = assistant.streamed(client, app_id)
    return app_id, text, view


def test_the_first_draft_streams_token_by_token_then_the_assistant_asks(client) -> None:
    app_id = client.post("/api/apps", json={}).json()["app_id"]
    response = client.post(
        f"/api/apps/{app_id}/stream", json={"inputs": {"request": REQUEST}, **assistant.RUN}
    )
    events = assistant.sse_events(response.text)
    tokens = [data["item"]["token"] for name, data in events if name == "item"]
    assert tokens == _words()
    assert len(tokens) > 10  # one word per token, each its own event
    assert [data["action"] for name, data in events if name == "step_begin"] == [
        "receive",
        "draft",
        "clarify",
    ]
    view = events[-1][1]
    assert events[-1][0] == "state"
    assert view["state"]["draft"] == "".join(tokens)
    assert REQUEST in view["state"]["draft"]
    waiting = view["suspension"]
    assert (waiting["channel"], waiting["action"]) == ("clarifications", "clarify")
    assert waiting["metadata"]["questions"] == QUESTIONS
    schema = waiting["answer_schema"]["properties"]["answers"]
    assert (schema["minItems"], schema["maxItems"]) == (2, 2)


def test_answers_that_do_not_fit_the_schema_answer_422_and_change_nothing(client) -> None:
    app_id, _, before = _start(client)
    too_few = client.post(
        f"/api/apps/{app_id}/resume",
        json={"channel": "clarifications", "value": {"answers": ["Thursday"]}},
    )
    assert too_few.status_code == 422
    assert too_few.json()["path"] == "$.answers"
    empty = client.post(
        f"/api/apps/{app_id}/resume",
        json={"channel": "clarifications", "value": {"answers": ["Thursday", ""]}},
    )
    assert (empty.status_code, empty.json()["path"]) == (422, "$.answers[1]")
    wrong_channel = client.post(
        f"/api/apps/{app_id}/resume", json={"channel": "approval", "value": {"approved": True}}
    )
    assert wrong_channel.status_code == 409
    now = client.get(f"/api/apps/{app_id}").json()
    assert (now["sequence_id"], now["suspension"]) == (before["sequence_id"], before["suspension"])


def test_answers_revise_the_streamed_draft_which_then_waits_for_approval(client) -> None:
    _, text, view = _clarified(client)
    assert text == "".join(_words(["Thursday", "casual"]))
    assert "Details: Thursday; casual." in text
    waiting = view["suspension"]
    assert (waiting["channel"], waiting["metadata"]) == ("approval", {"draft": text})
    assert view["state"]["answers"] == ["Thursday", "casual"]
    assert len(view["state"]["drafts"]) == 2


def test_requested_changes_send_the_draft_back_with_the_feedback(client) -> None:
    app_id, _, _ = _clarified(client)
    assistant.answer(
        client, app_id, "approval", {"approved": False, "feedback": "mention the agenda"}
    )
    text, view = assistant.streamed(client, app_id)
    assert text.endswith("".join(_words(["Thursday", "casual"], ["mention the agenda"]))[-60:])
    assert "Revised as asked: mention the agenda." in text
    assert view["suspension"]["channel"] == "approval"  # and it asks again
    assert view["state"]["feedback"] == ["mention the agenda"]
    assert len(view["state"]["drafts"]) == 3


def test_approval_sends_the_approved_draft_and_finishes(client) -> None:
    app_id, draft, _ = _clarified(client)
    assistant.answer(client, app_id, "approval", {"approved": True})
    _, view = assistant.streamed(client, app_id)
    assert view["finished"] is True
    assert view["suspension"] is None
    assert view["state"]["final_email"] == draft
    steps = client.get(f"/api/apps/{app_id}/history").json()["steps"]
    assert [(s["action"], s["status"]) for s in steps] == [
        (None, "completed"),  # the creation record
        ("receive", "completed"),
        ("draft", "completed"),
        ("clarify", "suspended"),  # waiting for the answers...
        ("clarify", "completed"),  # ...then run again with them
        ("draft", "completed"),
        ("review", "suspended"),
        ("review", "completed"),
        ("send", "completed"),
    ]
    assert [s["sequence_id"] for s in steps] == list(range(9))


def test_a_request_that_leaves_nothing_open_goes_straight_to_approval(client) -> None:
    _, text, view = _start(client, "Write a formal note for Friday")
    assert view["suspension"]["channel"] == "approval"
    assert view["state"]["questions"] == []
    assert "Details:" not in text
    assert view["state"]["drafts"] == [text]  # no revision: nothing was asked


def test_another_web_app_on_the_same_database_continues_the_conversation(db, client) -> None:
    app_id, _, _ = _start(client)
    # A second server (another worker, another host) takes the next requests.
    with TestClient(assistant.create_api(db), base_url="http://other") as other:
        assistant.answer(other, app_id, "clarifications", {"answers": ["Monday", "formal"]})
        text, view = assistant.streamed(other, app_id)
    assert "Details: Monday; formal." in text
    assert view["suspension"]["channel"] == "approval"


def test_the_page_runs_only_its_own_inline_script(client) -> None:
    page = client.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    policy = page.headers["content-security-policy"]
    assert "script-src 'sha256-" in policy
    assert "default-src 'none'" in policy
    assert "connect-src 'self'" in policy
    assert "innerHTML" not in page.text  # what the server sends is inserted as text


def test_main_without_serve_prints_the_whole_conversation_offline(capsys) -> None:
    view = assistant.main([])
    assert view is not None
    assert view["finished"] is True
    out = capsys.readouterr().out
    assert f"you: {REQUEST}" in out
    assert f"assistant asks: {QUESTIONS[0]}\nyou: Thursday" in out
    assert "--- sent ---\nHello," in out
    assert out.rstrip().endswith("Your assistant")
