"""Tracking data for the web UI's tests, written by real applications with a ``LocalTracker``
(or any tracker: ``write_runs``), and a uvicorn server of ``create_ui_app`` on a free
127.0.0.1 port.

``counter``: ``increment`` runs ``LIMIT`` times (a span and an attribute each), then ``report``;
its state holds ``history``, a list of ``BIG`` ints after the first step (big enough to page),
to which each later step appends its count.
``flaky``: ``fetch`` fails once and is retried, then ``explode`` fails for good.
``parent`` and ``child``: a fork of ``parent`` at step 1, in partition ``p1``, tagged
``suite=web``.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from turnout import ApplicationBuilder, RetryPolicy, State, TracerFactory, action, default, expr
from turnout.core.tracking import LocalTracker

PROJECT = "webui"
LIMIT = 4
BIG = 120
STARTUP_S = 20.0


@action(reads=["count", "history"], writes=["count", "history"])
def increment(state: State, __tracer: TracerFactory) -> State:
    with __tracer("work") as span:
        span.log_attributes(previous=state["count"])
        count = state["count"] + 1
    if not state["history"]:
        return state.update(count=count, history=list(range(BIG)))
    return state.update(count=count).append(history=count)


@action(reads=["count"], writes=[])
def report(state: State) -> tuple[dict[str, str], State]:
    return {"message": f"counted to {state['count']}"}, state


def counter_builder(
    tracker: Any, app_id: str, limit: int = LIMIT, *, fresh: bool = True
) -> ApplicationBuilder:
    builder = (
        ApplicationBuilder()
        .with_actions(increment, report)
        .with_transitions(
            ("increment", "increment", expr(f"count < {limit}")),
            ("increment", "report", default),
        )
        .with_tracker(tracker)
        .with_identifiers(app_id=app_id)
    )
    return (
        builder.with_state(count=0, history=[]).with_entrypoint("increment") if fresh else builder
    )


class Flaky(ConnectionError):
    pass


_calls = {"fetch": 0}


@action(
    reads=[],
    writes=["fetched"],
    retry=RetryPolicy(max_attempts=2, retry_on=(Flaky,), initial_delay=0.0),
)
def fetch(state: State) -> State:
    _calls["fetch"] += 1
    if _calls["fetch"] % 2 == 1:
        raise Flaky("the first call always fails")
    return state.update(fetched=True)


@action(reads=["fetched"], writes=["done"])
def explode(state: State) -> State:
    raise ValueError("explode always fails")


def write_data(storage: Path) -> None:
    """The applications the module docstring lists, tracked under ``storage``."""
    write_runs(lambda tags: LocalTracker(PROJECT, storage_dir=storage, tags=tags))


def write_runs(make_tracker: Callable[[dict[str, str] | None], Any]) -> None:
    """The applications the module docstring lists, tracked by ``make_tracker(tags)``'s
    trackers (``flush()``-ed, when they have it, before the fork reads its parent)."""
    tracker = make_tracker(None)
    try:
        counter_builder(tracker, "counter").build().run(halt_after=["report"])
        flaky = (
            ApplicationBuilder()
            .with_actions(fetch, explode)
            .with_transitions(("fetch", "explode"))
            .with_entrypoint("fetch")
            .with_tracker(tracker)
            .with_identifiers(app_id="flaky")
            .build()
        )
        with suppress(ValueError):
            flaky.run(halt_after=["explode"])
        counter_builder(tracker, "parent", 2).build().run(halt_after=["report"])
        if hasattr(tracker, "flush"):
            tracker.flush()  # written in the background: the fork reads its parent's records
        tagged = make_tracker({"suite": "web"})
        (
            counter_builder(tagged, "child", 3, fresh=False)
            .initialize_from(
                tagged,
                resume_at_next_action=True,
                default_state={"count": 0, "history": []},
                default_entrypoint="increment",
                fork_from_app_id="parent",
                fork_from_sequence_id=1,
            )
            .with_identifiers(app_id="child", partition_key="p1")
            .build()
            .run(halt_after=["report"])
        )
        tagged.close()
    finally:
        tracker.close()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def serve_ui(storage: Any, **options: Any) -> Iterator[str]:
    """``create_ui_app(storage)`` (a directory, a connection string, a source) served by
    uvicorn in a thread; yields its base URL."""
    import uvicorn

    from turnout.integrations.fastapi.ui import create_ui_app

    port = free_port()
    config = uvicorn.Config(
        create_ui_app(storage, **options),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        timeout_graceful_shutdown=1,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + STARTUP_S
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"the UI server did not start on port {port}")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
