"""A run followed from another ``turnout serve`` process over PostgreSQL (``PostgresRelay``):
two servers (standing in for two hosts, or two workers) on one database; a ``wait=false`` run
started on one, its stream read on the other, in order; a follower of a run whose server is
killed (SIGKILL) ends with ``worker_lost``. And uvicorn's proxy-header flags of
``turnout serve``.

Steps are held open by PostgreSQL advisory locks the test holds (``serve_gated_app``), and the
follower says when it follows (its ``following`` event): nothing here depends on timing.
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
pytest.importorskip("sse_starlette")
pytest.importorskip("psycopg")

import httpx
import psycopg

from tests.integrations.serve_relay_app import BIG
from tests.integrations.test_serve_faults import _wait_for_gate
from tests.integrations.test_serve_processes import Server, pg_table, servers
from tests.persistence import backends

__all__ = ["pg_table", "servers"]  # the fixtures, imported for this module's tests

RELAYED = "tests.integrations.serve_relay_app:factory"
# Unique per test process: concurrent runs of the suite on one database must not share a gate.
GATE_KEY = 700_000_000 + os.getpid()  # below 2**31: pg_locks shows it in objid


@pytest.fixture
def lock() -> Iterator[Any]:
    """The test's own PostgreSQL session, holding the advisory lock that gates the step."""
    with psycopg.connect(backends.POSTGRES_DSN, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (GATE_KEY,))
        yield conn


class _Events:
    """An SSE response read one event at a time."""

    def __init__(self, response: httpx.Response) -> None:
        self._lines = response.iter_lines()

    def __iter__(self) -> Iterator[tuple[str, Any]]:
        name = None
        for line in self._lines:
            if line.startswith("event:"):
                name = line.partition(":")[2].strip()
            elif line.startswith("data:"):
                yield str(name), json.loads(line.partition(":")[2].strip())


def _start_gated_run(client: httpx.Client, lock: Any) -> tuple[str, int]:
    """A ``wait=false`` run held in ``gated``; the app id and the pid of the server holding it."""
    app_id = client.post("/apps", json={}).json()["app_id"]
    started = client.post(
        f"/apps/{app_id}/run",
        json={"inputs": {"message": "gate", "key": GATE_KEY}, "halt_after": ["talk"],
              "wait": False},
    )  # fmt: skip
    assert started.status_code == 202, started.text
    return app_id, _wait_for_gate(lock, GATE_KEY)


@pytest.mark.slow
def test_a_background_run_is_streamed_in_order_by_another_server(pg_table, servers, lock):
    servers.append(Server(backends.POSTGRES_DSN, pg_table, workers=1, factory=RELAYED))
    servers.append(Server(backends.POSTGRES_DSN, pg_table, workers=2, factory=RELAYED))
    runner, follower = (httpx.Client(base_url=s.url, timeout=60) for s in servers)
    with runner, follower:
        app_id, pid = _start_gated_run(runner, lock)
        assert pid == servers[0].process.pid  # the run is in the first server
        with follower.stream("GET", f"/apps/{app_id}/stream") as response:
            events = iter(_Events(response))
            name, joined = next(events)
            assert (name, joined) == ("following", {"app_id": app_id, "sequence_id": 1})
            lock.execute("SELECT pg_advisory_unlock(%s)", (GATE_KEY,))
            seen = list(events)
        assert [(name, data.get("action")) for name, data in seen] == [
            ("step_end", "gated"),
            ("step_begin", "talk"),
            ("item", "talk"),
            ("item", "talk"),
            ("step_end", "talk"),
            ("state", None),
        ]
        assert [data["item"]["delta"] for name, data in seen if name == "item"] == [BIG, "!"]
        assert seen[-1][1]["state"]["history"] == ["user: gate", f"gated {GATE_KEY}", "talked"]
        assert seen[-1][1]["sequence_id"] == 3
        # With nothing running, a follower gets the committed state and the stream ends.
        with follower.stream("GET", f"/apps/{app_id}/stream") as response:
            idle = list(_Events(response))
        assert [(n, d["sequence_id"]) for n, d in idle] == [("state", 3)]


@pytest.mark.slow
def test_a_follower_of_a_run_whose_server_is_killed_ends_with_worker_lost(pg_table, servers, lock):
    servers.append(Server(backends.POSTGRES_DSN, pg_table, workers=1, factory=RELAYED))
    servers.append(Server(backends.POSTGRES_DSN, pg_table, workers=1, factory=RELAYED))
    runner, follower = (httpx.Client(base_url=s.url, timeout=60) for s in servers)
    with runner, follower:
        app_id, pid = _start_gated_run(runner, lock)
        with follower.stream("GET", f"/apps/{app_id}/stream") as response:
            events = iter(_Events(response))
            assert next(events)[0] == "following"
            os.kill(pid, signal.SIGKILL)
            seen = list(events)
        assert [name for name, _ in seen] == ["error", "state"]
        assert seen[0][1]["error"] == "worker_lost"
        # The committed step stays: the app goes on from there, on the surviving server.
        assert (seen[1][1]["sequence_id"], seen[1][1]["next_action"]) == (1, "gated")
        lock.execute("SELECT pg_advisory_unlock(%s)", (GATE_KEY,))
        ran = follower.post(
            f"/apps/{app_id}/run", json={"inputs": {"key": GATE_KEY}, "halt_after": ["talk"]}
        )
        assert ran.json()["state"]["history"] == ["user: gate", f"gated {GATE_KEY}", "talked"]


def _client_seen_by(server: Server, forwarded_for: str) -> bool:
    """Whether ``server`` logged a request as coming from ``forwarded_for``."""
    marker = "/apps/forwarded-probe"
    try:
        httpx.get(server.url + marker, headers={"X-Forwarded-For": forwarded_for}, timeout=30)
    finally:
        server.stop()  # its log is whole once it has exited
    lines = [line for line in server.log if marker in line]
    assert lines, server.log
    return forwarded_for in lines[0]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("flags", "trusted"),
    [([], True), (["--forwarded-allow-ips", "10.9.9.9"], False), (["--no-proxy-headers"], False)],
    ids=["default-trusts-127.0.0.1", "other-proxy-only", "no-proxy-headers"],
)
def test_serve_trusts_forwarded_headers_only_as_its_flags_say(tmp_path, flags, trusted):
    server = Server(f"sqlite:///{tmp_path / 'a.db'}", "turnout", workers=1, extra=flags)
    assert _client_seen_by(server, "203.0.113.7") is trusted
