"""``turnout serve`` as real uvicorn processes on 127.0.0.1: two workers over PostgreSQL (and
one over SQLite), SSE read with httpx streaming, a suspension answered over HTTP, and two
independent servers (standing in for two hosts) sharing one PostgreSQL application."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
pytest.importorskip("sse_starlette")

import httpx

from tests.persistence import backends
from tests.persistence.conftest import require_backend

CHAT = {"halt_after": ["reply", "approve", "explode", "slow"]}
ROOT = Path(__file__).resolve().parents[2]
APP = "tests.integrations.serve_app:factory"


class Server:
    """One ``turnout serve`` process, stopped by the fixture that started it."""

    def __init__(
        self, db: str, table: str, workers: int, factory: str = APP, extra: list[str] | None = None
    ) -> None:
        self.port = backends.free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        command = [
            sys.executable, "-m", "turnout.cli", "serve", factory,
            "--db", db, "--table", table, "--workers", str(workers), "--port", str(self.port),
            *(extra or []),
        ]  # fmt: skip
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), *sys.path])}
        self.log: list[str] = []
        self.process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        self._wait_ready()

    def _wait_ready(self) -> None:
        assert self.process.stdout is not None
        for raw in self.process.stdout:  # uvicorn says when it listens
            line = raw.decode(errors="replace")
            self.log.append(line)
            if "Application startup complete" in line:
                # Keep reading its log, so a full pipe never blocks the server.
                self._drain = threading.Thread(target=self._read, daemon=True)
                self._drain.start()
                return
        raise AssertionError(f"turnout serve exited with {self.process.wait()}: {self.log}")

    def _read(self) -> None:
        assert self.process.stdout is not None
        self.log.extend(raw.decode(errors="replace") for raw in self.process.stdout)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)
        self._drain.join(timeout=30)
        assert self.process.stdout is not None
        self.process.stdout.close()


@pytest.fixture
def pg_table() -> Iterator[str]:
    require_backend("postgres")
    table = f"serve_{uuid.uuid4().hex[:10]}"
    yield table
    backends.drop_tables("postgres", backends.POSTGRES_DSN, backends.table_names(table))


@pytest.fixture
def servers() -> Iterator[list[Server]]:
    started: list[Server] = []
    yield started
    for server in started:
        server.stop()


def _events(response: httpx.Response) -> list[tuple[str, Any]]:
    events, name = [], None
    for line in response.iter_lines():
        if line.startswith("event:"):
            name = line.partition(":")[2].strip()
        elif line.startswith("data:"):
            events.append((name, json.loads(line.partition(":")[2].strip())))
    return events


def _conversation(url: str) -> None:
    with httpx.Client(base_url=url, timeout=30) as client:
        app_id = client.post("/apps", json={}).json()["app_id"]
        with client.stream(
            "POST", f"/apps/{app_id}/stream", json={"inputs": {"message": "hi"}, **CHAT}
        ) as response:
            events = _events(response)
        assert [name for name, _ in events].count("item") == 3
        assert events[-1][1]["state"]["history"] == ["user: hi", "bot: you said hi!!"]
        client.post(f"/apps/{app_id}/run", json={"inputs": {"message": "approve"}, **CHAT})
        assert client.get(f"/apps/{app_id}").json()["suspension"]["channel"] == "approval"
        done = client.post(
            f"/apps/{app_id}/resume", json={"channel": "approval", "value": {"approved": True}}
        )
        assert done.json()["state"]["history"][-1] == "approved: True"
        steps = client.get(f"/apps/{app_id}/history").json()["steps"]
        assert [s["sequence_id"] for s in steps] == list(range(len(steps)))


@pytest.mark.slow
def test_two_workers_over_postgresql_stream_and_answer_a_suspension(pg_table, servers):
    servers.append(Server(backends.POSTGRES_DSN, pg_table, workers=2))
    _conversation(servers[0].url)


@pytest.mark.slow
def test_one_worker_over_sqlite_streams_and_answers_a_suspension(tmp_path, servers):
    servers.append(Server(f"sqlite:///{tmp_path / 'serve.db'}", "turnout", workers=1))
    _conversation(servers[0].url)


@pytest.mark.slow
def test_two_servers_share_one_postgresql_application(pg_table, servers):
    servers.append(Server(backends.POSTGRES_DSN, pg_table, workers=1))
    servers.append(Server(backends.POSTGRES_DSN, pg_table, workers=1))
    one, two = (httpx.Client(base_url=s.url, timeout=30) for s in servers)
    with one, two:
        app_id = one.post("/apps", json={"app_id": "shared"}).json()["app_id"]
        one.post(f"/apps/{app_id}/run", json={"inputs": {"message": "a"}, **CHAT})
        ran = two.post(f"/apps/{app_id}/run", json={"inputs": {"message": "b"}, **CHAT})
        assert ran.json()["state"]["history"] == [
            "user: a", "bot: you said a!!", "user: b", "bot: you said b!!",
        ]  # fmt: skip
        assert one.get(f"/apps/{app_id}").json()["sequence_id"] == 4
        assert two.post("/apps", json={"app_id": "shared"}).status_code == 409
