"""The applications a served worker keeps in memory (``serve(cache_size=...)``): reused while
they are the stored application, never once another server advanced, deleted or re-created
it, dropped after a failed step, and bounded. Two ``serve()`` routers over one database play
two servers; both SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("sse_starlette")

import httpx
from fastapi import FastAPI

from tests.integrations import serve_app
from tests.persistence import backends
from tests.persistence.conftest import require_backend
from turnout.core.sqlite import AsyncSQLitePersister
from turnout.integrations.fastapi import ServedBuilder, serve

Clients = tuple[httpx.AsyncClient, httpx.AsyncClient]
TURN = {"halt_after": ["reply", "explode"]}


class Counting:
    """``serve_app.factory``, counting its calls: each one is an application built anew."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, builder: ServedBuilder) -> ServedBuilder:
        self.calls += 1
        return serve_app.factory(builder)


@pytest.fixture(params=["sqlite", "postgres"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, Any]]:
    if request.param == "sqlite":
        yield "sqlite", str(tmp_path / "serve.db")
        return
    require_backend("postgres")
    table = f"cache_{uuid.uuid4().hex[:10]}"
    yield "postgres", table
    backends.drop_tables("postgres", backends.POSTGRES_DSN, backends.table_names(table))


@asynccontextmanager
async def _persister(database: tuple[str, Any]) -> AsyncIterator[Any]:
    kind, where = database
    if kind == "sqlite":
        persister: Any = AsyncSQLitePersister(where)
    else:
        from turnout.integrations.postgres import AsyncPostgreSQLPersister

        persister = AsyncPostgreSQLPersister(backends.POSTGRES_DSN, where)
    try:
        yield persister
    finally:
        await persister.close()


def two_servers(
    database: tuple[str, Any],
    body: Callable[[Clients, Counting], Awaitable[None]],
    cache_size: int = 1024,
) -> None:
    """Run ``body`` with clients of two servers (their own routers and persisters) over one
    database; the counter is the first server's factory's."""

    async def main() -> None:
        counting = Counting()
        async with _persister(database) as first, _persister(database) as second:
            clients = []
            for factory, persister in ((counting, first), (serve_app.factory, second)):
                app = FastAPI()
                app.include_router(serve(factory, persister=persister, cache_size=cache_size))
                transport = httpx.ASGITransport(app=app)
                clients.append(httpx.AsyncClient(transport=transport, base_url="http://test"))
            try:
                await body((clients[0], clients[1]), counting)
            finally:
                for client in clients:
                    await client.aclose()

    asyncio.run(main())


async def _turn(client: httpx.AsyncClient, app_id: str, message: str) -> dict[str, Any]:
    answer = await client.post(f"/apps/{app_id}/run", json={**TURN, "inputs": {"message": message}})
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


async def _create(client: httpx.AsyncClient, app_id: str, **state: Any) -> None:
    created = await client.post("/apps", json={"app_id": app_id, "state": state})
    assert created.status_code == 201, created.text


def test_a_kept_app_takes_the_next_turns_without_being_built_again(database):
    async def body(clients: Clients, counting: Counting) -> None:
        first, _ = clients
        await _create(first, "chat")
        built = counting.calls
        for index in range(3):
            await _turn(first, "chat", f"m{index}")
        assert counting.calls == built
        shown = (await first.get("/apps/chat")).json()
        assert shown["state"]["turns"] == 3
        assert counting.calls == built

    two_servers(database, body)


def test_with_cache_size_0_every_turn_builds_the_app_anew(database):
    async def body(clients: Clients, counting: Counting) -> None:
        first, _ = clients
        await _create(first, "chat")
        built = counting.calls
        await _turn(first, "chat", "a")
        await _turn(first, "chat", "b")
        assert counting.calls == built + 2

    two_servers(database, body, cache_size=0)


def test_a_turn_another_server_saved_is_loaded_before_the_kept_app_acts(database):
    async def body(clients: Clients, counting: Counting) -> None:
        first, second = clients
        await _create(first, "chat")
        await _turn(first, "chat", "one")  # kept by the first server at this step
        await _turn(second, "chat", "two")
        out = await _turn(first, "chat", "three")
        assert out["state"]["turns"] == 3
        users = [line for line in out["state"]["history"] if line.startswith("user: ")]
        assert users == ["user: one", "user: two", "user: three"]
        again = await _turn(second, "chat", "four")  # the second server's kept app is stale too
        assert again["state"]["turns"] == 4
        assert again["sequence_id"] == out["sequence_id"] + 2

    two_servers(database, body)


def test_an_app_deleted_by_another_server_answers_404_though_it_was_kept(database):
    async def body(clients: Clients, counting: Counting) -> None:
        first, second = clients
        await _create(first, "chat")
        await _turn(first, "chat", "one")
        assert (await second.delete("/apps/chat")).status_code == 204
        for answer in (
            await first.post("/apps/chat/run", json={**TURN, "inputs": {"message": "x"}}),
            await first.get("/apps/chat"),
        ):
            assert answer.status_code == 404, answer.text

    two_servers(database, body)


def test_an_app_re_created_by_another_server_is_not_taken_for_the_kept_one(database):
    """Same id, same sequence id (0): only the app row's creation tells them apart."""

    async def body(clients: Clients, counting: Counting) -> None:
        first, second = clients
        await _create(first, "chat", history=["old"])
        assert (await first.get("/apps/chat")).json()["state"]["history"] == ["old"]
        assert (await second.delete("/apps/chat")).status_code == 204
        await _create(second, "chat", history=["new"])
        shown = (await first.get("/apps/chat")).json()
        assert shown["state"]["history"] == ["new"]
        assert shown["sequence_id"] == 0
        out = await _turn(first, "chat", "hi")
        assert out["state"]["history"][0] == "new"

    two_servers(database, body)


def test_a_fork_over_a_deleted_kept_app_shows_the_forked_state(database):
    async def body(clients: Clients, counting: Counting) -> None:
        first, second = clients
        await _create(first, "source", history=["source"])
        await _turn(first, "source", "s")
        await _create(first, "copy", history=["copy"])
        await _turn(first, "copy", "c")  # kept by the first server, at the source's sequence id
        assert (await second.delete("/apps/copy")).status_code == 204
        forked = await second.post("/apps/source/fork", json={"app_id": "copy"})
        assert forked.status_code == 201, forked.text
        shown = (await first.get("/apps/copy")).json()
        assert shown["state"]["history"][0] == "source"
        out = await _turn(first, "copy", "after")
        assert out["state"]["history"][0] == "source"
        assert out["state"]["turns"] == 2

    two_servers(database, body)


def test_a_failed_step_drops_the_kept_app_and_the_next_turn_starts_from_the_stored_state(
    database,
):
    async def body(clients: Clients, counting: Counting) -> None:
        first, _ = clients
        await _create(first, "chat")
        await _turn(first, "chat", "hello")
        failed = await first.post("/apps/chat/run", json={**TURN, "inputs": {"message": "explode"}})
        assert failed.status_code == 424, failed.text
        built = counting.calls
        stored = (await first.get("/apps/chat")).json()
        assert stored["next_action"] == "explode"
        assert stored["sequence_id"] == 4
        assert counting.calls == built + 1  # nothing kept: loaded from the persister
        fixed = await first.post("/apps/chat/run", json={**TURN, "inputs": {"fix": True}})
        assert fixed.status_code == 200, fixed.text
        assert fixed.json()["state"]["history"][-1] == "fixed"
        assert fixed.json()["sequence_id"] == 5

    two_servers(database, body)


def test_the_least_recently_used_app_is_dropped_past_cache_size(database):
    async def body(clients: Clients, counting: Counting) -> None:
        first, _ = clients
        for name in ("a", "b", "c"):  # each creation keeps its app; "a" is dropped
            await _create(first, name)
        built = counting.calls
        await _turn(first, "c", "kept")
        await _turn(first, "b", "kept")
        assert counting.calls == built
        await _turn(first, "a", "dropped")
        assert counting.calls == built + 1
        await _turn(first, "c", "dropped by a")  # "a" came back, "c" was least recent
        assert counting.calls == built + 2

    two_servers(database, body, cache_size=2)


@pytest.mark.parametrize("size", [-1, 1.5, True], ids=["negative", "float", "bool"])
def test_a_cache_size_that_is_not_a_count_is_refused_naming_the_argument(tmp_path, size):
    with pytest.raises(ValueError, match=r"serve\(cache_size="):
        serve(serve_app.factory, persister=AsyncSQLitePersister(str(tmp_path / "x.db")),
              cache_size=size)  # fmt: skip
