"""A real ``turnout ui`` process for tests: started on a free 127.0.0.1 port, waited for until its
JSON API answers, and stopped (SIGTERM, then SIGKILL) when the test is done."""

from __future__ import annotations

import contextlib
import http.client
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from tests.integrations.fastapi_ui import free_port

__all__ = ["get", "turnout_ui"]

# A first start on an empty directory runs the demo applications before it listens.
START_TIMEOUT = 90.0


def get(port: int, path: str, host: str | None = None) -> tuple[int, str]:
    """``GET path`` on ``127.0.0.1:port`` (with the ``Host`` header ``host``): status and body."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", path, headers={"Host": host or f"127.0.0.1:{port}"})
        answer = connection.getresponse()
        return answer.status, answer.read().decode("utf-8", "replace")
    finally:
        connection.close()


@contextlib.contextmanager
def turnout_ui(
    tracking_dir: Path, log: Path, *options: str, env: Mapping[str, str] | None = None
) -> Iterator[int]:
    """``turnout ui --port P --dir tracking_dir *options`` (its output in ``log``); yields ``P``
    once ``/api/v1/projects`` answers."""
    port = free_port()
    command = [
        sys.executable, "-m", "turnout.cli", "ui", "--port", str(port),
        "--dir", str(tracking_dir), *options,
    ]  # fmt: skip
    environment = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=environment)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if process.poll() is not None:
                pytest.fail(f"turnout ui exited with {process.returncode}:\n{log.read_text()}")
            with contextlib.suppress(OSError, http.client.HTTPException):
                if get(port, "/api/v1/projects")[0] == 200:
                    break
            if time.monotonic() > deadline:
                pytest.fail(
                    f"turnout ui did not answer in {START_TIMEOUT:.0f} s:\n{log.read_text()}"
                )
            time.sleep(0.05)  # poll interval; the deadline bounds the wait
        yield port
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
