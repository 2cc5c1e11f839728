"""The short path of ``serve()``'s hot routes (``route.py``): ``run`` and ``step`` with a JSON
body that fits skip FastAPI's dependency solving; every other request, and every router with
dependencies or a partition dependency, answers exactly as FastAPI's own handler does."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("sse_starlette")

import fastapi.routing
import httpx
from fastapi import Depends, FastAPI, Header, HTTPException

from tests.integrations import serve_app
from turnout.core.sqlite import AsyncSQLitePersister
from turnout.integrations.fastapi import serve

Body = Callable[[httpx.AsyncClient], Awaitable[Any]]
JSON = {"content-type": "application/json"}
HI = b'{"inputs": {"message": "hi"}, "halt_after": ["reply"]}'


def drive(tmp_path: Path, body: Body, name: str = "serve.db", **options: Any) -> Any:
    async def main() -> Any:
        persister = AsyncSQLitePersister(str(tmp_path / name))
        app = FastAPI()
        app.include_router(serve(serve_app.factory, persister=persister, **options))
        transport = httpx.ASGITransport(app=app)
        try:
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                return await body(client)
        finally:
            await persister.close()

    return asyncio.run(main())


def _nothing() -> None:
    """A router dependency that changes nothing: it only turns the short path off."""


REQUESTS = [
    ("/apps/A/run", HI, JSON),
    ("/apps/A/step", b'{"inputs": {"message": "hi"}}', JSON),
    ("/apps/A/run", HI, {"content-type": "application/json; charset=utf-8"}),
    ("/apps/A/run", b"{not json", JSON),
    ("/apps/A/run", b'{"inputs": {"message": 3}}', JSON),
    ("/apps/A/run", b'{"inputs": {"mesage": "typo"}}', JSON),
    ("/apps/A/run", b'{"wait": "soon"}', JSON),
    ("/apps/A/step", b"[]", JSON),
    ("/apps/A/step", b"", JSON),
    ("/apps/A/run", HI, {"content-type": "text/plain"}),
    ("/apps/A/run", HI, {}),
    ("/apps/B/run", HI, JSON),
]  # fmt: skip
IDS = [
    "run", "step", "charset", "malformed-json", "wrong-type", "unknown-field", "bad-wait",
    "not-an-object", "empty-body", "text-plain", "no-content-type", "unknown-app",
]  # fmt: skip


@pytest.mark.parametrize(("path", "content", "headers"), REQUESTS, ids=IDS)
def test_the_short_path_answers_as_fastapis_handler_does(tmp_path, path, content, headers):
    async def body(client: httpx.AsyncClient) -> tuple[int, Any]:
        await client.post("/apps", json={"app_id": "A"})
        answer = await client.post(path, content=content, headers=headers)
        return answer.status_code, answer.json()

    short = drive(tmp_path, body, "short.db")
    plain = drive(tmp_path, body, "plain.db", dependencies=[Depends(_nothing)])
    assert short == plain
    assert short[0] in (200, 404, 422), short


def test_run_and_step_skip_dependency_solving_and_the_other_routes_keep_it(tmp_path, monkeypatch):
    solved: list[str] = []
    solve = fastapi.routing.solve_dependencies

    async def counting(*args: Any, **kwargs: Any) -> Any:
        solved.append(kwargs["request"].url.path)
        return await solve(*args, **kwargs)

    monkeypatch.setattr(fastapi.routing, "solve_dependencies", counting)

    async def body(client: httpx.AsyncClient) -> None:
        await client.post("/apps", json={"app_id": "A"})
        ran = await client.post("/apps/A/run", content=HI, headers=JSON)
        assert ran.status_code == 200, ran.text
        assert ran.json()["partition_key"] == "tenant"
        assert ran.json()["state"]["history"] == ["user: hi", "bot: you said hi!!"]
        stepped = await client.post("/apps/A/step", json={"inputs": {"message": "again"}})
        assert stepped.status_code == 200, stepped.text
        assert (await client.get("/apps/A")).json()["sequence_id"] == 3

    drive(tmp_path, body, partition_key="tenant")
    assert solved == ["/apps", "/apps/A"]


def test_a_router_with_an_auth_dependency_still_runs_it_on_run_and_step(tmp_path):
    def auth(x_token: str = Header("")) -> None:
        if x_token != "secret":
            raise HTTPException(401, "who are you?")

    async def body(client: httpx.AsyncClient) -> None:
        ok = {"x-token": "secret"}
        assert (await client.post("/apps", json={"app_id": "A"}, headers=ok)).status_code == 201
        message = {"inputs": {"message": "hi"}}
        assert (await client.post("/apps/A/run", json=message)).status_code == 401
        assert (await client.post("/apps/A/step", json=message)).status_code == 401
        assert (await client.post("/apps/A/step", json=message, headers=ok)).status_code == 200

    drive(tmp_path, body, dependencies=[Depends(auth)])
