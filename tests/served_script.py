"""An example's script serving over HTTP in a child process, for the tests of served examples."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterable
from pathlib import Path

from tests.persistence import backends

ROOT = Path(__file__).resolve().parents[1]


class ServedScript:
    """``script`` run with ``--port`` (a free one) and ``args``, started once uvicorn says it
    listens, its log drained so it never blocks; ``stop`` ends it.

    Args:
        script: The example's script.
        args: Its other command-line arguments.
        unset: Environment variables the child must not see (an API key, say).
    """

    def __init__(self, script: Path, args: Iterable[str], unset: Iterable[str] = ()) -> None:
        self.port = backends.free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        command = [sys.executable, str(script), "--port", str(self.port), *args]
        dropped = set(unset)
        env = {k: v for k, v in os.environ.items() if k not in dropped}
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *sys.path])
        self.log: list[str] = []
        self.process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        assert self.process.stdout is not None
        for raw in self.process.stdout:  # uvicorn says when it listens
            self.log.append(raw.decode(errors="replace"))
            if "Application startup complete" in self.log[-1]:
                break
        else:
            raise AssertionError(f"{script.name} exited with {self.process.wait()}: {self.log}")
        self._drain = threading.Thread(target=self._read, daemon=True)
        self._drain.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        self.log.extend(raw.decode(errors="replace") for raw in self.process.stdout)

    def stop(self) -> None:
        """Terminate the child and wait for it and its log."""
        self.process.terminate()
        self.process.wait(timeout=30)
        self._drain.join(timeout=30)
        assert self.process.stdout is not None
        self.process.stdout.close()
