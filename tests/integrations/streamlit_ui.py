"""Running the tracking UI script under ``streamlit.testing``, or as a real ``turnout ui``
server, shared by its test suites."""

from __future__ import annotations

import contextlib
import http.client
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from streamlit.testing.v1 import AppTest

from turnout import ApplicationBuilder, State, action
from turnout.core.tracking import LocalTracker
from turnout.integrations.streamlit import demo

SCRIPT = Path(demo.__file__).with_name("app.py")
START_TIMEOUT = 60.0


def make_demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh directory holding the demo project."""
    root = tmp_path_factory.mktemp("ui")
    demo.generate(root)
    return root


def run_ui(root: Path, monkeypatch: pytest.MonkeyPatch, **params: str) -> AppTest:
    """The UI over ``root`` opened at the URL's ``params``; fails if the page raised."""
    monkeypatch.setenv("TURNOUT_UI_DIR", str(root))
    at = AppTest.from_file(str(SCRIPT), default_timeout=30)
    at.query_params.update(params)
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def rerun(at: AppTest) -> AppTest:
    """Rerun the page (what a click or a refresh does); fails if it raised."""
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def literal(markdown: str) -> str:
    """The text a markdown string shows where its only markup is backslash escapes."""
    return re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", markdown)


@action(reads=["n"], writes=["n"])
def tick(state: State) -> State:
    return state.update(n=state["n"] + 1)


def ticker(tracker: LocalTracker, app_id: str) -> Any:
    """An application that ticks ``n`` up by one a step, tracked by ``tracker``."""
    return (
        ApplicationBuilder()
        .with_actions(tick)
        .with_transitions(("tick", "tick"))
        .with_state(n=0)
        .with_entrypoint("tick")
        .with_identifiers(app_id=app_id)
        .with_tracker(tracker)
        .build()
    )


def run_hostile_app(root: Path, payload: str) -> None:
    """Track into ``root`` (project ``hostile``) an application whose partition key, tag, action
    name and error message are all ``payload``; its one step fails with that message."""

    @action(reads=[], writes=["n"])
    def explode(state: State) -> State:
        raise ValueError(payload)

    tracker = LocalTracker("hostile", root, tags={"note": payload})
    app = (
        ApplicationBuilder()
        .with_actions(**{payload: explode})
        .with_transitions()
        .with_state(n=0)
        .with_entrypoint(payload)
        .with_identifiers(app_id="victim", partition_key=payload)
        .with_tracker(tracker)
        .build()
    )
    try:
        with pytest.raises(ValueError, match=re.escape(payload)):
            app.step()
    finally:
        tracker.close()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def get(port: int, path: str, host: str, headers: dict[str, str] | None = None) -> int:
    """The status of ``GET path`` on ``127.0.0.1:port`` with the ``Host`` header ``host``."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", path, headers={"Host": host, **(headers or {})})
        return connection.getresponse().status
    finally:
        connection.close()


@contextlib.contextmanager
def turnout_ui(tracking_dir: Path, log: Path, *options: str) -> Iterator[int]:
    """A real ``turnout ui --no-demo`` serving ``tracking_dir`` on a free port with ``options``
    (its output in ``log``); its port, once its health check answers. Stopped on exit."""
    port = free_port()
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "turnout.cli", "ui", "--no-demo", "--port", str(port),
             "--dir", str(tracking_dir), *options],
            stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip
    try:
        _wait_healthy(port, process, log)
        yield port
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def _wait_healthy(port: int, process: subprocess.Popen[Any], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"turnout ui exited with {process.returncode}:\n{log.read_text()}")
        try:
            if get(port, "/_stcore/health", f"127.0.0.1:{port}") == 200:
                return
        except (OSError, http.client.HTTPException):  # not listening, or not answering yet
            pass
        time.sleep(0.1)  # poll interval; the deadline above bounds the wait
    pytest.fail(f"turnout ui did not answer within {START_TIMEOUT:.0f} s:\n{log.read_text()}")
