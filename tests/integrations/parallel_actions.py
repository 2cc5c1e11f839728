"""Callables and actions the Ray and Dask tests run in worker processes.

Workers import them by module path (cloudpickle pickles module-level functions by reference), so
they live here, in an importable module, and not inside the test files.
"""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor
from pathlib import Path
from typing import Any

from turnout import (
    Application,
    ApplicationBuilder,
    ApplicationContext,
    MapStates,
    State,
    action,
    expr,
)
from turnout.core.parallel import ChildApplicationError
from turnout.core.tracking import LocalTracker, read_log


class ChildFailure(ValueError):
    """A user exception type: it must reach the caller as itself, not as a wrapper."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message, code)
        self.code = code


def square(x: int) -> int:
    return x * x


def add(x: int, y: int = 0) -> int:
    return x + y


def echo_kwargs(**kwargs: Any) -> dict[str, Any]:
    return kwargs


def fail(message: str, code: int = 7) -> None:
    raise ChildFailure(message, code)


def token() -> str:
    return uuid.uuid4().hex


def token_of(_: Any) -> str:
    return uuid.uuid4().hex


def worker_pid() -> int:
    return os.getpid()


@action(reads=["count"], writes=["count", "seen"])
def increment(state: State) -> State:
    return state.update(count=state["count"] + 1).append(seen=os.getpid())


@action(reads=["count"], writes=["parity"])
def classify(state: State) -> State:
    return state.update(parity="even" if state["count"] % 2 == 0 else "odd")


@action(reads=["count", "fail_at"], writes=["count"])
def fragile(state: State) -> State:
    if state["count"] == state["fail_at"]:
        raise ChildFailure(f"count reached {state['count']}", state["count"])
    return state.update(count=state["count"] + 1)


def counter_app(start: int, limit: int) -> Application:
    """increment until ``count == limit``, then classify."""
    return (
        ApplicationBuilder()
        .with_actions(increment, classify)
        .with_transitions(
            ("increment", "increment", expr("count < limit")),
            ("increment", "classify"),
        )
        .with_state(count=start, limit=limit, seen=[])
        .with_entrypoint("increment")
        .build()
    )


def run_counter(start: int, limit: int) -> State:
    """Builds and runs a whole application where it is called; returns its final ``State``."""
    _, _, state = counter_app(start, limit).run(halt_after=["classify"])
    return state


def run_counter_after_meeting(port: int, start: int, limit: int) -> State:
    """Runs ``run_counter`` once every task of the group has reached the meeting point.

    The task connects to the test's meeting server on ``port`` and waits for its go-ahead,
    which the server sends only when every task of the group is connected: tasks run one after
    the other never all connect, so the first one times out instead of passing.
    """
    with socket.create_connection(("127.0.0.1", port), timeout=MEETING_TIMEOUT) as conn:
        conn.settimeout(MEETING_TIMEOUT)
        if conn.recv(2) != b"go":
            raise ChildFailure("the meeting server closed without a go-ahead", 0)
    return run_counter(start, limit)


MEETING_TIMEOUT = 60.0


def grow(state: State, item: Any) -> State:
    """A ``State`` sent to a worker, changed there and sent back."""
    return state.append(items=item).increment(n=1).update(where=os.getpid())


def run_fragile(fail_at: int) -> State:
    app = (
        ApplicationBuilder()
        .with_actions(fragile)
        .with_transitions(("fragile", "fragile", expr("count < 5")))
        .with_state(count=0, fail_at=fail_at)
        .with_entrypoint("fragile")
        .build()
    )
    _, _, state = app.run()
    return state


@action(reads=["x"], writes=["y", "pid"])
def square_child(state: State) -> State:
    if state["x"] < 0:
        raise ChildFailure(f"negative input {state['x']}", state["x"])
    return state.update(y=state["x"] * state["x"], pid=os.getpid())


class SquareAll(MapStates):
    """One child application per item of ``xs``; the parent collects ``ys`` and the children's
    process ids."""

    @property
    def reads(self) -> list[str]:
        return ["xs"]

    @property
    def writes(self) -> list[str]:
        return ["ys", "pids"]

    def action(self, state: State, inputs: dict[str, Any]) -> Any:
        return square_child

    def states(
        self, state: State, context: ApplicationContext, inputs: dict[str, Any]
    ) -> Iterator[State]:
        for x in state["xs"]:
            yield State({"x": x})

    def reduce(self, state: State, states: Iterable[State]) -> State:
        finals = list(states)
        return state.update(ys=[s["y"] for s in finals], pids=sorted({s["pid"] for s in finals}))


def square_all_app(
    xs: list[int], executor_factory: Callable[[], Executor], **builder: Any
) -> Application:
    """A parent whose one step fans ``xs`` out to ``SquareAll``'s children on the executor."""
    app = (
        ApplicationBuilder()
        .with_actions(square_all=SquareAll(stream=builder.get("stream", False)))
        .with_transitions(("square_all", "square_all"))
        .with_state(xs=xs)
        .with_entrypoint("square_all")
        .with_parallel_executor(executor_factory)
    )
    if "tracker" in builder:
        app = app.with_tracker(builder["tracker"])
    if "app_id" in builder:
        app = app.with_identifiers(app_id=builder["app_id"])
    return app.build()


# -- end-to-end checks shared by the Ray and Dask suites ------------------------------------------


def check_map_states(factory: Callable[[], Executor]) -> None:
    """MapStates' children run in worker processes; ``reduce`` gets them in order."""
    app = square_all_app([3, 1, 2, 5], factory)
    app.step()
    state = app.state
    assert state["ys"] == [9, 1, 4, 25]
    assert os.getpid() not in state["pids"]


def check_map_states_async(factory: Callable[[], Executor]) -> None:
    """The same parent driven by ``astep``: its sync children still go to the executor."""
    app = square_all_app([4, 6], factory)
    asyncio.run(app.astep())
    state = app.state
    assert state["ys"] == [16, 36]
    assert os.getpid() not in state["pids"]


def check_map_states_failing_child(factory: Callable[[], Executor]) -> None:
    """One child fails: the step raises ChildApplicationError holding the child's own exception
    (its type intact after crossing processes); the parent's state is unchanged."""
    import pytest  # here: worker processes import this module and need no pytest

    app = square_all_app([1, -4, 2, -6], factory)
    with pytest.raises(ChildApplicationError) as caught:
        app.step()
    failures = caught.value.failures
    assert [(index, type(exc)) for index, _, exc in failures] == [
        (1, ChildFailure),
        (3, ChildFailure),
    ]
    assert [exc.code for _, _, exc in failures] == [-4, -6]  # type: ignore[attr-defined]
    assert type(caught.value.__cause__) is ChildFailure
    assert "ys" not in app.state


def check_tracked_children(factory: Callable[[], Executor], storage: Path) -> None:
    """Children running in worker processes write their own logs, linked to the parent step."""
    tracker = LocalTracker("fanout", storage_dir=storage)
    app = square_all_app([1, 2, 3], factory, tracker=tracker, app_id="parent")
    app.step()
    links = [r for r in read_log(tracker.log_path("parent")) if r["t"] == "child"]
    assert [(link["kind"], link["seq"]) for link in links] == [("spawn", 0)] * 3
    child_ids = [link["child_app_id"] for link in links]
    for child_id in child_ids:
        records = list(read_log(tracker.log_path(child_id)))
        app_line = next(r for r in records if r["t"] == "app")
        assert app_line["spawning_parent"]["app_id"] == "parent"
        assert any(r["t"] == "end" for r in records), records


class LockedSquareAll(SquareAll):
    """``SquareAll`` whose child states hold a lock, which no pickler can send."""

    def states(
        self, state: State, context: ApplicationContext, inputs: dict[str, Any]
    ) -> Iterator[State]:
        for x in state["xs"]:
            yield State({"x": x, "lock": threading.Lock()})


def check_unpicklable_child_is_named(factory: Callable[[], Executor]) -> None:
    """Children whose state holds a lock cannot be sent: the step fails with the reason and
    the fix, not with a serializer's internals."""
    import pytest

    app = (
        ApplicationBuilder()
        .with_actions(square_all=LockedSquareAll())
        .with_transitions(("square_all", "square_all"))
        .with_state(xs=[1, 2])
        .with_entrypoint("square_all")
        .with_parallel_executor(factory)
        .build()
    )
    with pytest.raises(ChildApplicationError) as caught:
        app.step()
    message = str(caught.value)
    assert "cannot send run_task(...)" in message, message
    assert "cannot pickle '_thread.lock' object" in message, message
    assert "define functions at module level" in message, message
    assert "could not be sent to the executor" in message, message  # the core's own hint


def check_streamed_children_report_their_ends(factory: Callable[[], Executor]) -> None:
    """A streaming parallel step on an executor in other processes: each child's end comes
    through (its items cannot), failures included, then the reduced state."""
    app = square_all_app([2, 3], factory, stream=True)
    _, container = app.stream_result(halt_after=["square_all"])
    items = list(container)
    ends = sorted((item["child"], item["error"]) for item in items if item.get("done"))
    assert ends == [(0, None), (1, None)]
    assert not any("item" in item for item in items)
    result, state = container.get()
    assert result == {"children": 2}
    assert state is not None
    assert state["ys"] == [4, 9]
