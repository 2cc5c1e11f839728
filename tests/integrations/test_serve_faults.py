"""``turnout serve`` under faults, as real uvicorn processes over PostgreSQL: a worker killed
(SIGKILL) in the middle of a step while clients drive 50 chat sessions, and two servers
advancing one application at once (the second one's save answers 409).

A step is held open by ``serve_gated_app.gated``, which waits for a PostgreSQL advisory lock
the test holds; the test sees the wait in ``pg_locks`` and ``pg_stat_activity``, so nothing
here depends on timing.
"""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
pytest.importorskip("sse_starlette")
pytest.importorskip("psycopg")
pytest.importorskip("psutil")

import httpx
import psutil
import psycopg

from tests.integrations.test_serve_processes import Server, pg_table, servers
from tests.persistence import backends

__all__ = ["pg_table", "servers"]  # the fixtures, imported for this module's tests

GATED = "tests.integrations.serve_gated_app:factory"
TURN = {"halt_after": ["reply", "gated"]}
SESSIONS, TURNS = 50, 6


@pytest.fixture
def lock() -> Iterator[Any]:
    """The test's own PostgreSQL session, holding the advisory locks that gate steps."""
    with psycopg.connect(backends.POSTGRES_DSN, autocommit=True) as conn:
        yield conn


def _wait_for_gate(conn: Any, key: int) -> int:
    """Wait until a worker's ``gated`` step blocks on lock ``key``; the worker's pid."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        row = conn.execute(
            "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a USING (pid) "
            "WHERE l.locktype = 'advisory' AND NOT l.granted AND l.objid = %s "
            "AND a.application_name LIKE 'gate-%%'",
            (key,),
        ).fetchone()
        if row is not None:
            return int(row[0].removeprefix("gate-"))
        time.sleep(0.01)  # polling a condition, not timing one
    raise AssertionError(f"no served step ever waited for advisory lock {key}")


def _in_thread(call: Any) -> tuple[threading.Thread, list[Any]]:
    out: list[Any] = []
    thread = threading.Thread(target=lambda: out.append(call()))
    thread.start()
    return thread, out


@pytest.mark.slow
def test_a_step_saved_by_another_server_first_answers_409_with_the_current_sequence_id(
    pg_table, servers, lock
):
    servers.append(Server(backends.POSTGRES_DSN, pg_table, workers=1, factory=GATED))
    servers.append(Server(backends.POSTGRES_DSN, pg_table, workers=1, factory=GATED))
    one, two = (httpx.Client(base_url=s.url, timeout=60) for s in servers)
    with one, two:
        app_id = one.post("/apps", json={"app_id": "contested"}).json()["app_id"]
        at_gate = one.post(
            f"/apps/{app_id}/run", json={"inputs": {"message": "gate"}, "halt_before": ["gated"]}
        ).json()
        assert (at_gate["sequence_id"], at_gate["next_action"]) == (1, "gated")
        lock.execute("SELECT pg_advisory_lock(1), pg_advisory_lock(2)")
        # Both servers load sequence id 1 and hold step 2 open, each on its own lock.
        first, first_out = _in_thread(
            lambda: one.post(f"/apps/{app_id}/step", json={"inputs": {"key": 1}})
        )
        _wait_for_gate(lock, 1)
        second, second_out = _in_thread(
            lambda: two.post(f"/apps/{app_id}/step", json={"inputs": {"key": 2}})
        )
        _wait_for_gate(lock, 2)
        lock.execute("SELECT pg_advisory_unlock(1)")
        first.join()
        lock.execute("SELECT pg_advisory_unlock(2)")
        second.join()
        won, lost = first_out[0], second_out[0]
        assert won.status_code == 200, won.text
        assert won.json()["state"]["history"] == ["user: gate", "gated 1"]
        assert lost.status_code == 409, lost.text
        assert lost.json()["error"] == "conflict"
        assert lost.json()["sequence_id"] == 2
        # Nothing of the losing step was stored, and the app goes on from either server.
        shown = two.get(f"/apps/{app_id}").json()
        assert (shown["sequence_id"], shown["state"]["history"]) == (2, ["user: gate", "gated 1"])
        steps = two.get(f"/apps/{app_id}/history").json()["steps"]
        assert [(s["sequence_id"], s["action"]) for s in steps] == [
            (0, None), (1, "ask"), (2, "gated"),
        ]  # fmt: skip
        again = two.post(f"/apps/{app_id}/run", json={"inputs": {"message": "on"}, **TURN})
        assert again.json()["state"]["history"][-2:] == ["user: on", "bot: you said on!!"]


class _Session:
    """One client's chat: it knows the sequence id its app is at, and after a cut connection
    or a 5xx it reads where the app stands before sending anything again (a step the dead
    request committed is never sent twice)."""

    def __init__(self, client: httpx.AsyncClient, name: str) -> None:
        self.client = client
        self.name = name
        self.app_id = ""
        self.at = 0
        self.cut = 0  # requests lost to the kill (connection cut or 5xx)

    async def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response | None:
        try:
            answer = await self.client.request(method, path, **kwargs)
        except httpx.TimeoutException:
            raise  # a request still running somewhere: retrying could apply it twice
        except httpx.TransportError:
            self.cut += 1
            return None
        if answer.status_code >= 500:
            self.cut += 1
            return None
        assert answer.status_code < 400, answer.text
        return answer

    async def create(self) -> None:
        while await self._send("POST", "/apps", json={"app_id": self.name}) is None:
            if await self._position() is not None:
                break
        self.app_id, self.at = self.name, 0

    async def _position(self) -> int | None:
        while True:
            try:
                answer = await self.client.get(f"/apps/{self.name}")
            except httpx.TimeoutException:
                raise
            except httpx.TransportError:
                continue
            if answer.status_code == 404:
                return None
            if answer.status_code < 500:
                assert answer.status_code == 200, answer.text
                return int(answer.json()["sequence_id"])

    async def turn(self, inputs: dict[str, Any], steps: int = 2) -> None:
        """Advance ``steps`` steps; each step takes what it needs of ``inputs`` (a run resumed
        after ``ask`` was stored passes them on to ``gated``, and ``reply`` takes none)."""
        start, target = self.at, self.at + steps
        while self.at < target:
            body = {**TURN, "inputs": inputs}
            answer = await self._send("POST", f"/apps/{self.app_id}/run", json=body)
            if answer is not None:
                self.at = int(answer.json()["sequence_id"])
            else:
                position = await self._position()
                assert position is not None
                assert start <= position <= target
                self.at = position
        assert self.at == target


def _workers(server: Server) -> set[int]:
    children = psutil.Process(server.process.pid).children()
    return {c.pid for c in children if "spawn_main" in " ".join(c.cmdline())}


@pytest.mark.slow
def test_a_worker_killed_mid_step_loses_no_step_and_applies_none_twice(pg_table, servers, lock):
    servers.append(Server(backends.POSTGRES_DSN, pg_table, workers=3, factory=GATED))
    server = servers[0]
    workers = _workers(server)
    assert len(workers) == 3
    key = 77
    lock.execute("SELECT pg_advisory_lock(%s)", (key,))
    killed: list[int] = []

    async def main() -> list[_Session]:
        limits = httpx.Limits(max_connections=SESSIONS + 1, max_keepalive_connections=0)
        async with httpx.AsyncClient(base_url=server.url, timeout=60, limits=limits) as client:
            done = asyncio.Event()  # the worker is dead: the sessions' last turns may go
            turns_done = [0]

            async def chat(session: _Session) -> None:
                await session.create()
                for turn in range(TURNS):
                    if turn == TURNS // 2:
                        await done.wait()
                    await session.turn({"message": f"{session.name} says {turn}"})
                    turns_done[0] += 1

            async def victim(session: _Session) -> None:
                await session.create()
                await session.turn({"message": "hello"})
                await session.turn({"message": "gate", "key": key})  # held by the lock
                await session.turn({"message": "bye"})

            async def kill() -> None:
                pid = await asyncio.to_thread(_wait_for_gate, lock, key)
                assert pid in workers
                while turns_done[0] < SESSIONS:  # some traffic before the kill
                    await asyncio.sleep(0.01)
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
                lock.execute("SELECT pg_advisory_unlock(%s)", (key,))
                done.set()

            sessions = [_Session(client, f"chat-{i}") for i in range(SESSIONS)]
            held = _Session(client, "held")
            await asyncio.gather(kill(), victim(held), *(chat(s) for s in sessions))
            return [held, *sessions]

    everyone = asyncio.run(main())
    held, chats = everyone[0], everyone[1:]
    assert held.cut >= 1  # its request died with the worker, mid-step
    survivors = workers - set(killed)
    assert all(_alive(pid) for pid in survivors)
    with httpx.Client(base_url=server.url, timeout=60) as client:
        for session in everyone:
            steps = client.get(f"/apps/{session.app_id}/history").json()["steps"]
            assert [s["sequence_id"] for s in steps] == list(range(len(steps)))
            assert {s["status"] for s in steps} == {"completed"}
        shown = client.get(f"/apps/{held.app_id}").json()["state"]["history"]
        assert shown == [
            "user: hello", "bot: you said hello!!", "user: gate", f"gated {key}",
            "user: bye", "bot: you said bye!!",
        ]  # fmt: skip
        for session in chats:
            history = client.get(f"/apps/{session.app_id}").json()["state"]["history"]
            expected: list[str] = []
            for turn in range(TURNS):
                said = f"{session.name} says {turn}"
                expected += [f"user: {said}", f"bot: you said {said}!!"]
            assert history == expected


def _alive(pid: int) -> bool:
    return bool(psutil.pid_exists(pid)) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
