"""Checks of the ``concurrent.futures.Executor`` contract shared by the Ray and Dask suites.

Each takes a running executor (or one to shut down) and asserts what both backends must do; a
suite's test adds the lines only its backend has. The callables they send live in
``parallel_actions``, where worker processes can import them.
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import os
import pickle
import socket
import threading
from collections.abc import Callable
from typing import Any

import pytest

from tests.integrations import parallel_actions as pa
from turnout import State


def check_submit_returns_a_standard_future(executor: cf.Executor) -> None:
    future = executor.submit(pa.add, 40, y=2)
    assert isinstance(future, cf.Future)
    assert future.result() == 42


def check_exception_keeps_its_type(executor: cf.Executor) -> pa.ChildFailure:
    """Returns the caught exception for a backend's own checks (Ray's notes)."""
    future = executor.submit(pa.fail, "child broke", code=3)
    with pytest.raises(pa.ChildFailure) as caught:
        future.result()
    assert type(caught.value) is pa.ChildFailure
    assert caught.value.code == 3
    assert caught.value.args == ("child broke", 3)
    assert type(future.exception()) is pa.ChildFailure
    return caught.value


def check_map_raises_the_first_failure(executor: cf.Executor) -> None:
    with pytest.raises(pa.ChildFailure) as caught:
        list(executor.map(pa.fail, ["a", "b"], [1, 2]))
    assert caught.value.code == 1


def check_as_completed(executor: cf.Executor) -> None:
    futures = [executor.submit(pa.square, x) for x in range(6)]
    assert sorted(f.result() for f in cf.as_completed(futures)) == [0, 1, 4, 9, 16, 25]


def check_unpicklable_argument_fails_at_submit(executor: cf.Executor, workers: str) -> None:
    """``workers`` names them in the message: ``"Ray"`` or ``"Dask"``."""
    with pytest.raises(TypeError) as caught:
        executor.submit(pa.echo_kwargs, lock=threading.Lock())
    assert str(caught.value).startswith(
        f"cannot send echo_kwargs(...) to the {workers} workers: "
        "cannot pickle '_thread.lock' object."
    )


def check_shutdown_waits_and_refuses_submit(executor: cf.Executor) -> None:
    futures = [executor.submit(pa.square, x) for x in range(4)]
    executor.shutdown(wait=True)
    assert all(f.done() for f in futures)
    assert [f.result() for f in futures] == [0, 1, 4, 9]
    with pytest.raises(RuntimeError, match="after shutdown"):
        executor.submit(pa.square, 2)


def check_shutdown_cancels_a_stuck_call(stuck_executor: cf.Executor) -> None:
    """``stuck_executor`` asks for a resource no worker has, so its calls wait until cancelled."""
    stuck = stuck_executor.submit(pa.square, 3)
    stuck_executor.shutdown(wait=True, cancel_futures=True)
    assert stuck.cancelled()


def check_rejects_a_non_callable(executor: cf.Executor) -> None:
    with pytest.raises(TypeError, match="needs a callable, got 42"):
        executor.submit(42)  # type: ignore[arg-type]


def check_asyncio_awaits_tasks(executor: cf.Executor) -> None:
    async def main() -> list[int]:
        loop = asyncio.get_running_loop()
        return list(
            await asyncio.gather(*(loop.run_in_executor(executor, pa.square, x) for x in range(5)))
        )

    assert asyncio.run(main()) == [0, 1, 4, 9, 16]


def check_asyncio_sees_the_original_exception(executor: cf.Executor) -> None:
    async def main() -> None:
        await asyncio.get_running_loop().run_in_executor(executor, pa.fail, "async", 9)

    with pytest.raises(pa.ChildFailure, match="async"):
        asyncio.run(main())


def check_application_runs_in_a_task(executor: cf.Executor) -> None:
    state = executor.submit(pa.run_counter, 0, 5).result()
    assert isinstance(state, State)
    assert state["count"] == 5
    assert state["parity"] == "odd"
    assert len(state["seen"]) == 5
    assert os.getpid() not in state["seen"]


def check_applications_run_in_parallel(executor: cf.Executor, *, width: int = 2) -> None:
    """``width`` applications must be running at the same time: each waits for all of them at a
    meeting point before it counts, so an executor running them one by one fails (the first
    one times out waiting) instead of passing on results alone."""
    with _MeetingServer(width) as port:
        futures = [
            executor.submit(pa.run_counter_after_meeting, port, start, 6) for start in range(width)
        ]
        states = [f.result(timeout=pa.MEETING_TIMEOUT * 2) for f in futures]
    assert [s["count"] for s in states] == [6] * width
    assert [len(s["seen"]) for s in states] == [6 - start for start in range(width)]
    states = list(executor.map(pa.run_counter, range(6), [6] * 6))
    assert [s["count"] for s in states] == [6] * 6
    assert [len(s["seen"]) for s in states] == [6, 5, 4, 3, 2, 1]


class _MeetingServer:
    """Accepts ``width`` connections on 127.0.0.1, then sends each one a go-ahead."""

    def __init__(self, width: int) -> None:
        self._width = width
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(pa.MEETING_TIMEOUT)
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> int:
        self._thread.start()
        port: int = self._listener.getsockname()[1]
        return port

    def __exit__(self, *exc: object) -> None:
        self._listener.close()
        self._thread.join(timeout=pa.MEETING_TIMEOUT)

    def _serve(self) -> None:
        connections: list[socket.socket] = []
        try:
            while len(connections) < self._width:
                connections.append(self._listener.accept()[0])
            for conn in connections:
                conn.sendall(b"go")
        except OSError:  # timed out or closed: the tasks never all met, so they fail
            pass
        finally:
            for conn in connections:
                conn.close()


def check_failing_application_raises_its_error(executor: cf.Executor) -> None:
    with pytest.raises(pa.ChildFailure) as caught:
        executor.submit(pa.run_fragile, 2).result()
    assert caught.value.code == 2
    assert executor.submit(pa.run_fragile, 99).result()["count"] == 5


def check_state_round_trips(executor: cf.Executor) -> State:
    """Returns the state that came back, for a backend's own checks."""
    sent = State({"items": [1], "n": 0, "nested": {"a": [1, 2]}})
    back = executor.submit(pa.grow, sent, 2).result()
    assert isinstance(back, State)
    assert back == {"items": [1, 2], "n": 1, "nested": {"a": [1, 2]}, "where": back["where"]}
    assert back["where"] != os.getpid()
    assert sent == {"items": [1], "n": 0, "nested": {"a": [1, 2]}}
    assert back.append(items=3)["items"] == [1, 2, 3]
    return back


def check_state_pickles(cloudpickle: Any) -> list[State]:
    """With ``pickle`` and the backend's ``cloudpickle``; returns the two copies."""
    state = State({"x": 1}).append(log="a").extend(log=["b"]).increment(x=2)
    copies = []
    pairs: tuple[tuple[Callable[[Any], bytes], Callable[[bytes], Any]], ...] = (
        (pickle.dumps, pickle.loads),
        (cloudpickle.dumps, cloudpickle.loads),
    )
    for dumps, loads in pairs:
        copy = loads(dumps(state))
        assert isinstance(copy, State)
        assert copy == state == {"x": 3, "log": ["a", "b"]}
        copies.append(copy)
    return copies
