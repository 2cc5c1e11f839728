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
psycopg = pytest.importorskip("psycopg")

import httpx

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
            "WHERE l.locktype = 'advisory' AND NOT l.granted AND l.objid = %s",
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
