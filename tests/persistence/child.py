"""A child process for the crash and multi-process tests.

Run as ``python -m tests.persistence.child SPEC``.

``SPEC`` is JSON naming a sync backend (``kind``, ``location``, ``prefix``, ``snapshot_every``),
an ``app_id`` and a ``mode``:

* ``count``: resume the app (or start it) and step it until its ``history`` holds ``total``
  numbers, each step appending the next one; after every step, print its sequence id (the step
  is committed by then). Seeded random pauses inside the action vary where a kill lands.
* ``race``: resume the app, print ``ready``, wait for a line on stdin, step once and print
  ``won`` or ``lost`` (``ConcurrencyError``).

``Child`` is the parent's side: it starts the process and reads its lines with a timeout, so a
stuck child fails the test instead of hanging it.
"""

from __future__ import annotations

import contextlib
import json
import queue
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from tests.persistence import backends
from turnout import ApplicationBuilder, State, action
from turnout.core.errors import ConcurrencyError


def application(persister: Any, app_id: str, pause: Any) -> Any:
    @action(reads=["history"], writes=["history"])
    def tick(state: State) -> State:
        pause()
        return state.append(history=len(state["history"]))

    return (
        ApplicationBuilder()
        .with_actions(tick)
        .with_transitions(("tick", "tick"))
        .with_identifiers(app_id=app_id)
        .initialize_from(persister, default_state={"history": []}, default_entrypoint="tick")
        .with_state_persister(persister)
        .build()
    )


def main(spec: dict[str, Any]) -> int:
    persister = backends.open_sync(
        spec["kind"], spec["location"], spec["prefix"], snapshot_every=spec["snapshot_every"]
    )
    try:
        if spec["mode"] == "count":
            rng = random.Random(spec["seed"])
            app = application(persister, spec["app_id"], lambda: time.sleep(rng.random() / 500))
            while len(app.state["history"]) < spec["total"]:
                app.step()
                print(app.sequence_id, flush=True)
            return 0
        app = application(persister, spec["app_id"], lambda: None)
        print("ready", flush=True)
        sys.stdin.readline()
        try:
            app.step()
        except ConcurrencyError:
            print("lost", flush=True)
        else:
            print("won", flush=True)
        return 0
    finally:
        backends.close_sync(persister)


ROOT = Path(__file__).resolve().parents[2]


class Child:
    """A running ``child.py`` process; use it as a context manager (it is killed on exit)."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.persistence.child", json.dumps(spec)],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._errors: list[str] = []
        self._readers = [
            threading.Thread(target=self._read_lines, daemon=True),
            threading.Thread(target=self._read_errors, daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    def _read_lines(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._lines.put(line.strip())
        self._lines.put(None)

    def _read_errors(self) -> None:
        assert self.process.stderr is not None
        self._errors.extend(self.process.stderr)

    def line(self, timeout: float = 60) -> str | None:
        """The next line printed, or ``None`` once the process closed its output."""
        try:
            return self._lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(
                f"the child printed nothing for {timeout} s; stderr:\n{self.stderr}"
            ) from None

    def send(self, text: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(text + "\n")
        self.process.stdin.flush()

    def kill(self) -> None:
        """SIGKILL: the process gets no chance to clean up."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=60)

    def wait(self, timeout: float = 120) -> int:
        return self.process.wait(timeout=timeout)

    @property
    def stderr(self) -> str:
        return "".join(self._errors)

    def __enter__(self) -> Child:
        return self

    def __exit__(self, *exc: object) -> None:
        self.kill()
        for reader in self._readers:
            reader.join(timeout=60)
        for stream in (self.process.stdin, self.process.stdout, self.process.stderr):
            if stream is not None:
                # Closing stdin flushes it: a pipe to a killed child may be broken.
                with contextlib.suppress(BrokenPipeError):
                    stream.close()


if __name__ == "__main__":
    sys.exit(main(json.loads(sys.argv[1])))
