"""The data the UI benchmarks share: the generated applications, the stores they are
tracked into and the browser's flags.

``generate_large`` tracks the ``grow-N`` application (N steps; its state holds a list growing
by one int a step, or only a counter with ``shape="count"``), ``generate_many`` a project of
three-step applications; ``Store`` names where they go (a tracking directory, or tables of a
fresh prefix in PostgreSQL, dropped afterwards) and the ``turnout ui`` options that read them.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from turnout import ApplicationBuilder, State, action, default, expr
from turnout.core.tracking import LocalTracker

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
LARGE_PROJECT = "large_trace"
MANY_PROJECT = "many_apps"


@action(reads=["count", "items"], writes=["count", "items"])
def grow(state: State) -> State:
    """One more int in the list: step n runs on a state holding n items."""
    return state.update(count=state["count"] + 1).append(items=state["count"])


@action(reads=["count"], writes=["count"])
def bump(state: State) -> State:
    return state.update(count=state["count"] + 1)


@action(reads=["count"], writes=[])
def finish(state: State) -> tuple[dict[str, int], State]:
    return {"count": state["count"]}, state


@action(reads=["count"], writes=["count"])
def grow_count(state: State) -> State:
    """The ``count`` shape: only a counter grows (a 100,000-step log stays small)."""
    return state.update(count=state["count"] + 1)


def large_app_id(steps: int) -> str:
    return f"grow-{steps}"


@dataclass
class Store:
    """Where a run tracks to and what ``turnout ui`` is told to read."""

    kind: str  # "files" or "postgresql"
    root: Path
    dsn: str = ""
    prefix: str = ""

    def tracker(self, project: str) -> Any:
        if self.kind == "files":
            return LocalTracker(project, storage_dir=self.root)
        from turnout.integrations.postgres_tracking import PostgresTracker

        return PostgresTracker(self.dsn, project=project, table_prefix=self.prefix)

    def ui_options(self) -> list[str]:
        if self.kind == "files":
            return ["--dir", str(self.root)]
        return ["--store", self.dsn, "--table-prefix", self.prefix, "--dir", str(self.root)]

    def drop(self) -> None:
        if self.kind == "postgresql":
            import psycopg

            with psycopg.connect(self.dsn, autocommit=True) as conn:
                for table in ("records", "apps", "annotations"):
                    conn.execute(f"DROP TABLE IF EXISTS {self.prefix}_{table}")
                conn.execute(f"DROP FUNCTION IF EXISTS {self.prefix}_ui_touch()")


def generate_large(store: Store, steps: int, shape: str = "grow") -> float:
    """The ``grow-N`` application: N steps of ``grow``; returns the seconds it took."""
    start = time.perf_counter()
    tracker = store.tracker(LARGE_PROJECT)
    step = grow if shape == "grow" else grow_count
    try:
        app = (
            ApplicationBuilder()
            .with_actions(grow=step)
            .with_transitions(("grow", "grow"))
            .with_state(count=0, items=[])
            .with_entrypoint("grow")
            .with_tracker(tracker)
            .with_identifiers(app_id=large_app_id(steps))
            .build()
        )
        for _ in range(steps):
            app.step()
    finally:
        tracker.close(timeout=600) if store.kind == "postgresql" else tracker.close()
    return time.perf_counter() - start


def generate_many(store: Store, apps: int) -> float:
    """``apps`` applications of three steps each in one project; returns the seconds it took."""
    start = time.perf_counter()
    tracker = store.tracker(MANY_PROJECT)
    try:
        for number in range(apps):
            (
                ApplicationBuilder()
                .with_actions(bump, finish)
                .with_transitions(("bump", "bump", expr("count < 2")), ("bump", "finish", default))
                .with_state(count=0)
                .with_entrypoint("bump")
                .with_tracker(tracker)
                .with_identifiers(app_id=f"app-{number:05d}", partition_key=f"user-{number % 7}")
                .build()
                .run(halt_after=["finish"])
            )
    finally:
        tracker.close(timeout=600) if store.kind == "postgresql" else tracker.close()
    return time.perf_counter() - start


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
