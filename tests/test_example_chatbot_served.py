"""The served chatbot example end to end: its script started as a uvicorn process on a free
port, driven over HTTP with httpx (Server-Sent Events read as they arrive): two turns, and a
second message sent while the first reply streams (queued by the example's ``on_busy``, then
answered). Replies are held before their last token until the test creates a file
(``--hold-until-file``), so nothing here depends on timing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
pytest.importorskip("sse_starlette")

import httpx

from examples.chatbot_served import application as chatbot
from tests.served_script import ServedScript

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "examples" / "chatbot_served" / "application.py"
RUN = {"halt_after": ["respond"]}


class ChatServer(ServedScript):
    """The example's script serving on a free port (offline: no OpenAI key reaches it), its
    log drained so it never blocks. Replies wait for ``hold`` to exist before their last token."""

    def __init__(self, tmp: Path) -> None:
        self.hold = tmp / "release"
        args = ["--db", str(tmp / "chat.db"), "--token-delay", "0"]
        super().__init__(
            SCRIPT,
            [*args, "--hold-until-file", str(self.hold)],
            unset=("OPENAI_API_KEY", "OPENAI_BASE_URL"),
        )

    def release(self) -> None:
        """Let every held reply (and every later one) finish."""
        self.hold.touch()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ChatServer]:
    started = ChatServer(tmp_path)
    try:
        yield started
    finally:
        started.stop()


def events_of(response: httpx.Response) -> Iterator[tuple[str, Any]]:
    """The ``(event, data)`` of an SSE response, as they arrive."""
    name = "message"
    for line in response.iter_lines():
        if line.startswith("event:"):
            name = line.partition(":")[2].strip()
        elif line.startswith("data:"):
            yield name, json.loads(line.partition(":")[2].strip())


def _reply(*prompts: str) -> str:
    conversation: list[dict[str, str]] = []
    for prompt in prompts:
        conversation.append({"role": "user", "content": prompt})
        text = chatbot.ScriptedModel().reply(conversation)
        conversation.append({"role": "assistant", "content": text})
    return text


def _items(events: list[tuple[str, Any]], sequence_id: int) -> list[str]:
    return [
        d["item"]["delta"] for n, d in events if n == "item" and d["sequence_id"] == sequence_id
    ]


@pytest.mark.slow
def test_two_turns_stream_their_replies_token_by_token(server: ChatServer) -> None:
    server.release()
    with httpx.Client(base_url=server.url, timeout=60) as client:
        app_id = client.post("/api/apps", json={}).json()["app_id"]
        first, _ = chatbot.chat(client, app_id, "hello")
        second, view = chatbot.chat(client, app_id, "and again")
    assert first == chatbot.ScriptedModel().tokens([{"role": "user", "content": "hello"}])
    assert "".join(second) == _reply("hello", "and again")
    assert [m["role"] for m in view["state"]["messages"]] == ["user", "assistant"] * 2
    assert view["next_action"] == "user_input"


@pytest.mark.slow
def test_a_message_sent_while_a_reply_streams_is_queued_then_answered(server: ChatServer) -> None:
    with (
        httpx.Client(base_url=server.url, timeout=60) as one,
        httpx.Client(base_url=server.url, timeout=60) as two,
    ):
        app_id = one.post("/api/apps", json={}).json()["app_id"]
        turn = {"inputs": {"prompt": "hello"}, **RUN}
        with one.stream("POST", f"/api/apps/{app_id}/stream", json=turn) as first:
            events = events_of(first)
            seen = []
            for name, data in events:  # up to the first token: the reply is streaming
                seen.append((name, data))
                if name == "item":
                    break
            # The example rejects nothing: the second message takes its place in the queue
            # (its stream answers once the request holds its ticket).
            again = {"inputs": {"prompt": "second"}, **RUN}
            with two.stream("POST", f"/api/apps/{app_id}/stream", json=again) as second:
                assert second.status_code == 200
                busy = two.get(f"/api/apps/{app_id}").json()
                assert (busy["running"], busy["sequence_id"]) == (True, 1)
                server.release()
                later = list(events_of(second))
            seen.extend(events)
    hello = _reply("hello")
    assert "".join(_items(seen, 2)) == hello  # the first reply, whole, in its stream
    assert "".join(_items(later, 4)) == _reply("hello", "second")
    # Both streams follow the app until no request is queued: each ends with the last state.
    for stream in (seen, later):
        final = [d for n, d in stream if n == "state"][-1]
        assert [m["content"] for m in final["state"]["messages"]] == [
            "hello", hello, "second", _reply("hello", "second"),
        ]  # fmt: skip


def test_the_readme_mermaid_graph_is_the_served_graph() -> None:
    from turnout.integrations.fastapi import ServedBuilder

    respond = chatbot.scripted_respond.bind(model=chatbot.ScriptedModel())
    graph = chatbot.make_factory(respond)(ServedBuilder()).shape()
    readme = (ROOT / "examples" / "chatbot_served" / "README.md").read_text(encoding="utf-8")
    drawn = readme.split("```mermaid\n", 1)[1].split("```", 1)[0]
    assert drawn.strip() == graph.to_mermaid().strip()


def test_the_page_is_served_with_a_policy_allowing_only_its_own_script(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    with TestClient(chatbot.create_api(str(tmp_path / "chat.db"))) as client:
        page = client.get("/")
    policy = page.headers["content-security-policy"]
    assert "script-src 'sha256-" in policy
    assert "default-src 'none'" in policy
    assert "connect-src 'self'" in policy
    assert "innerHTML" not in page.text  # server text goes in with textContent only


def test_with_an_openai_key_the_reply_streams_from_the_openai_api(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The OpenAI path, against the local fake OpenAI server standing in for the API."""
    pytest.importorskip("openai")
    from fastapi.testclient import TestClient

    from turnout.testing import FakeOpenAIServer

    with FakeOpenAIServer(["Hi there, how can I help?"]) as fake:
        monkeypatch.setenv("OPENAI_API_KEY", "test")
        monkeypatch.setenv("OPENAI_BASE_URL", fake.base_url)
        monkeypatch.setenv("OPENAI_MODEL", "fake-chat")
        with TestClient(chatbot.create_api(str(tmp_path / "chat.db"))) as client:
            app_id = client.post("/api/apps", json={}).json()["app_id"]
            tokens, view = chatbot.chat(client, app_id, "hello")
    assert tokens == ["Hi ", "there, ", "how ", "can ", "I ", "help?"]
    assert view["state"]["messages"][-1] == {
        "role": "assistant", "content": "Hi there, how can I help?",
    }  # fmt: skip
    request = fake.requests[0]
    assert (request.model, request.stream) == ("fake-chat", True)
    assert request.messages is not None
    assert request.messages[0] == {"role": "system", "content": chatbot.SYSTEM}
