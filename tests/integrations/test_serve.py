"""``serve()`` in process, through httpx's ASGI transport: every resource, the busy policies,
partitions from an auth dependency, and a sweep of bad requests that must answer 4xx."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("sse_starlette")

import httpx
from fastapi import Depends, FastAPI, Header, HTTPException

from tests.integrations import serve_app
from turnout.core.application import Application
from turnout.core.sqlite import AsyncSQLitePersister
from turnout.integrations.fastapi import serve

Body = Callable[[httpx.AsyncClient], Awaitable[None]]
CHAT = {"halt_after": ["reply", "approve", "explode", "slow"]}


def _user(x_user: str = Header(...)) -> str:
    if x_user == "nobody":
        raise HTTPException(401, "who are you?")
    return x_user


def drive(tmp_path: Path, body: Body, **options: Any) -> None:
    async def main() -> None:
        persister = AsyncSQLitePersister(str(tmp_path / "serve.db"))
        app = FastAPI()
        app.include_router(serve(serve_app.factory, persister=persister, **options))
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            await body(client)
        await persister.close()

    asyncio.run(main())


async def _new(client: httpx.AsyncClient, **body: Any) -> str:
    created = await client.post("/apps", json=body)
    assert created.status_code == 201, created.text
    return str(created.json()["app_id"])


def _events(text: str) -> list[tuple[str, Any]]:
    events, name = [], None
    for line in text.splitlines():
        if line.startswith("event:"):
            name = line.partition(":")[2].strip()
        elif line.startswith("data:"):
            events.append((name, json.loads(line.partition(":")[2].strip())))
    return events


def test_a_created_app_runs_to_its_halt_and_shows_state_history_and_next_inputs(tmp_path):
    async def body(client: httpx.AsyncClient) -> None:
        app_id = await _new(client, app_id="a1", state={"turns": 5})
        shown = (await client.get("/apps/a1")).json()
        assert (shown["sequence_id"], shown["next_action"], shown["state"]["turns"]) == (
            0,
            "ask",
            5,
        )
        assert shown["next_inputs"]["required"] == ["message"]
        ran = await client.post(f"/apps/{app_id}/run", json={"inputs": {"message": "hi"}, **CHAT})
        assert ran.status_code == 200
        out = ran.json()
        assert (out["action"], out["result"], out["sequence_id"]) == (
            "reply", {"reply": "you said hi!!"}, 2,
        )  # fmt: skip
        assert out["state"]["history"] == ["user: hi", "bot: you said hi!!"]
        steps = (await client.get(f"/apps/{app_id}/history")).json()["steps"]
        assert [(s["sequence_id"], s["action"]) for s in steps] == [
            (0, None),
            (1, "ask"),
            (2, "reply"),
        ]
        assert (await client.get("/apps")).json() == {"app_ids": ["a1"]}
        stepped = await client.post(f"/apps/{app_id}/step", json={"inputs": {"message": "yo"}})
        assert (stepped.json()["action"], stepped.json()["next_action"]) == ("ask", "reply")

    drive(tmp_path, body)


def test_the_stream_sends_step_begin_items_step_end_with_delta_and_the_final_state(tmp_path):
    async def body(client: httpx.AsyncClient) -> None:
        app_id = await _new(client)
        async with client.stream(
            "POST", f"/apps/{app_id}/stream", json={"inputs": {"message": "hi"}, **CHAT}
        ) as stream:
            events = _events("".join([chunk async for chunk in stream.aiter_text()]))
        names = [name for name, _ in events]
        assert names == ["step_begin", "step_end", "step_begin", "item", "item", "item",
                         "step_end", "state"]  # fmt: skip
        assert [data["item"] for name, data in events if name == "item"] == [
            {"delta": "you said hi"}, {"delta": "!"}, {"delta": "!"},
        ]  # fmt: skip
        assert events[1][1]["delta"][0] == {"op": "append", "key": "history", "value": "user: hi"}
        assert events[-1][1]["state"]["history"][-1] == "bot: you said hi!!"

    drive(tmp_path, body)


def test_a_suspension_is_shown_with_its_schema_and_answered_over_http(tmp_path):
    async def body(client: httpx.AsyncClient) -> None:
        app_id = await _new(client)
        await client.post(f"/apps/{app_id}/run", json={"inputs": {"message": "approve"}, **CHAT})
        waiting = (await client.get(f"/apps/{app_id}")).json()["suspension"]
        assert (waiting["channel"], waiting["metadata"]) == ("approval", {"question": "send it?"})
        assert waiting["answer_schema"]["required"] == ["approved"]
        wrong = await client.post(
            f"/apps/{app_id}/resume", json={"channel": "approval", "value": {"approved": "yes"}}
        )
        assert (wrong.status_code, wrong.json()["path"]) == (422, "$.approved")
        other = await client.post(f"/apps/{app_id}/resume", json={"channel": "x", "value": 1})
        assert other.status_code == 409
        done = await client.post(
            f"/apps/{app_id}/resume", json={"channel": "approval", "value": {"approved": True}}
        )
        assert done.status_code == 200
        assert done.json()["state"]["history"][-1] == "approved: True"
        assert done.json()["suspension"] is None

    drive(tmp_path, body)


def test_a_failing_action_answers_424_with_its_name_and_the_app_stays_usable(tmp_path):
    async def body(client: httpx.AsyncClient) -> None:
        app_id = await _new(client)
        failed = await client.post(
            f"/apps/{app_id}/run", json={"inputs": {"message": "explode"}, **CHAT}
        )
        assert failed.status_code == 424
        assert failed.json() == {
            "error": "action_failed", "message": "the model is down", "action": "explode",
            "error_type": "ValueError", "sequence_id": 2,
        }  # fmt: skip
        fixed = await client.post(f"/apps/{app_id}/run", json={"inputs": {"fix": True}, **CHAT})
        assert fixed.status_code == 200
        assert fixed.json()["state"]["history"][-1] == "fixed"

    drive(tmp_path, body)


def test_fork_copies_a_step_and_delete_removes_the_app(tmp_path):
    async def body(client: httpx.AsyncClient) -> None:
        app_id = await _new(client)
        await client.post(f"/apps/{app_id}/run", json={"inputs": {"message": "one"}, **CHAT})
        await client.post(f"/apps/{app_id}/run", json={"inputs": {"message": "two"}, **CHAT})
        fork = await client.post(f"/apps/{app_id}/fork", json={"sequence_id": 2, "app_id": "f"})
        assert fork.status_code == 201
        assert fork.json()["state"]["history"] == ["user: one", "bot: you said one!!"]
        ran = await client.post("/apps/f/run", json={"inputs": {"message": "3"}, **CHAT})
        assert ran.json()["sequence_id"] == 4
        assert (await client.delete(f"/apps/{app_id}")).status_code == 204
        assert (await client.get(f"/apps/{app_id}")).status_code == 404
        assert (await client.delete(f"/apps/{app_id}")).status_code == 404

    drive(tmp_path, body)


async def _hold_slow(client: httpx.AsyncClient, app_id: str) -> None:
    """Start a background run that waits in the ``slow`` action until its gate opens."""
    serve_app.GATES[app_id] = asyncio.Event()
    serve_app.ENTERED[app_id] = entered = asyncio.Event()
    started = await client.post(
        f"/apps/{app_id}/run", json={"inputs": {"message": "slow"}, "wait": False, **CHAT}
    )
    assert started.status_code == 202
    await entered.wait()


def test_on_busy_reject_answers_409_while_a_run_is_going(tmp_path):
    async def body(client: httpx.AsyncClient) -> None:
        app_id = await _new(client)
        await _hold_slow(client, app_id)
        busy = await client.post(f"/apps/{app_id}/run", json={"inputs": {"message": "x"}, **CHAT})
        assert (busy.status_code, busy.json()["error"]) == (409, "busy")
        assert (await client.get(f"/apps/{app_id}")).json()["running"] is True
        serve_app.GATES[app_id].set()
        after = await client.post(
            f"/apps/{app_id}/run",
            json={"inputs": {"message": "x"}, "on_busy": "enqueue", **CHAT},
        )
        assert after.json()["state"]["history"][:2] == ["user: slow", "slow done"]

    drive(tmp_path, body)


def test_on_busy_enqueue_runs_the_new_input_after_the_current_run(tmp_path):
    async def body(client: httpx.AsyncClient) -> None:
        app_id = await _new(client)
        await _hold_slow(client, app_id)
        queued = asyncio.create_task(
            client.post(f"/apps/{app_id}/run", json={"inputs": {"message": "next"}, **CHAT})
        )
        await asyncio.sleep(0)  # let the request take its place in the queue
        serve_app.GATES[app_id].set()
        history = (await queued).json()["state"]["history"]
        assert history == ["user: slow", "slow done", "user: next", "bot: you said next!!"]

    drive(tmp_path, body, on_busy="enqueue")


def test_on_busy_interrupt_stops_the_run_at_its_next_step_then_runs_the_new_input(
    tmp_path, monkeypatch
):
    asked: list[asyncio.Event] = []
    request_stop = Application.request_stop

    def spy(self: Application) -> None:  # the interrupt reached the running application
        request_stop(self)
        for event in asked:
            event.set()

    monkeypatch.setattr(Application, "request_stop", spy)

    async def body(client: httpx.AsyncClient) -> None:
        asked.append(stop_asked := asyncio.Event())
        app_id = await _new(client)
        serve_app.GATES[app_id] = gate = asyncio.Event()
        serve_app.ENTERED[app_id] = entered = asyncio.Event()
        # No halt: without the interrupt this run would go on asking (and fail for a message).
        started = await client.post(
            f"/apps/{app_id}/run", json={"inputs": {"message": "slow"}, "wait": False,
                                         "halt_before": ["reply"]},
        )  # fmt: skip
        assert started.status_code == 202
        await entered.wait()
        new = asyncio.create_task(
            client.post(
                f"/apps/{app_id}/run",
                json={"inputs": {"message": "new"}, "on_busy": "interrupt", **CHAT},
            )
        )
        # Open the gate only once the interrupt asked the run to stop: opened earlier, the run
        # would go on (to "slow" again, waiting on a gate nobody opens).
        await stop_asked.wait()
        gate.set()
        history = (await new).json()["state"]["history"]
        assert history == ["user: slow", "slow done", "user: new", "bot: you said new!!"]

    drive(tmp_path, body)


def test_another_users_app_answers_404_and_the_auth_dependency_runs(tmp_path):
    async def body(client: httpx.AsyncClient) -> None:
        ann = {"x-user": "ann"}
        created = await client.post("/apps", json={"app_id": "mine"}, headers=ann)
        assert created.json()["partition_key"] == "ann"
        bob = {"x-user": "bob"}
        assert (await client.get("/apps/mine", headers=bob)).status_code == 404
        ran = await client.post("/apps/mine/run", json={"inputs": {"message": "x"}}, headers=bob)
        assert ran.status_code == 404
        assert (await client.get("/apps", headers=bob)).json() == {"app_ids": []}
        assert (await client.get("/apps/mine", headers={"x-user": "nobody"})).status_code == 401
        assert (await client.get("/apps/mine", headers=ann)).status_code == 200

    drive(tmp_path, body, partition_key=_user, dependencies=[Depends(_user)])


@pytest.mark.parametrize(
    ("method", "path", "content", "status", "says"),
    [
        ("POST", "/apps/A/run", b"{not json", 422, "json"),
        ("POST", "/apps/A/run", b'{"halt_after": ["nope"]}', 422, "nope"),
        ("POST", "/apps/A/run", b'{"inputs": {}, "halt_after": ["reply"]}', 422, "message"),
        ("POST", "/apps/A/run", b'{"inputs": {"mesage": "typo"}}', 422, "mesage"),
        ("POST", "/apps/A/run", b'{"on_busy": "later", "halt_after": ["reply"]}', 422, "later"),
        ("POST", "/apps/A/run", b'{"inputs": {"message": "' + b"x" * 3000 + b'"}}', 413, "limit"),
        ("POST", "/apps/B/run", b'{"halt_after": ["reply"]}', 404, "'b'"),
        ("GET", "/apps/B", b"", 404, "'b'"),
        ("GET", "/apps/B/history", b"", 404, "'b'"),
        ("POST", "/apps/B/fork", b"{}", 404, "'b'"),
        ("POST", "/apps/A/resume", b'{"channel": "c", "value": 1}', 409, "not suspended"),
        ("POST", "/apps", b'{"app_id": "A"}', 409, "exists"),
        ("POST", "/apps", b'{"state": {"history": 3}, "app_id": "C"}', 201, ""),
    ],
    ids=[
        "malformed-json", "unknown-halt-action", "missing-input", "unknown-input", "bad-policy",
        "oversized-body", "unknown-app-run", "unknown-app-get", "unknown-app-history",
        "unknown-app-fork", "not-suspended", "duplicate-app", "odd-state-is-the-apps-business",
    ],
)  # fmt: skip
def test_bad_requests_answer_4xx_with_the_message(tmp_path, method, path, content, status, says):
    async def body(client: httpx.AsyncClient) -> None:
        await _new(client, app_id="A")
        answer = await client.request(
            method, path, content=content, headers={"content-type": "application/json"}
        )
        assert answer.status_code == status, answer.text
        assert says in answer.text.lower()
        assert "traceback" not in answer.text.lower()

    drive(tmp_path, body, max_body_bytes=2000)


def test_the_openapi_schema_documents_typed_inputs_and_state(tmp_path):
    async def body(client: httpx.AsyncClient) -> None:
        schemas = (await client.get("/openapi.json")).json()["components"]["schemas"]
        assert set(schemas["Inputs"]["properties"]) == {"message", "shout", "fix"}
        assert "taken by ask" in schemas["Inputs"]["properties"]["message"]["description"]
        assert {"history", "turns", "last"} <= set(
            schemas["CreateApp"]["properties"]["state"]["properties"]
        )
        assert {"ActionFailed", "AppView"} <= set(schemas)

    drive(tmp_path, body)
