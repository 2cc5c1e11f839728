"""RayExecutor against a real local Ray instance (2 CPUs, no dashboard), started once per module."""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import os
import pickle
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")

from tests.integrations import parallel_actions as pa  # noqa: E402
from turnout import State  # noqa: E402
from turnout.integrations.ray import RayExecutor  # noqa: E402

_INIT = {
    "num_cpus": 2,
    "include_dashboard": False,
    "_node_ip_address": "127.0.0.1",
    "log_to_driver": False,
}


@pytest.fixture(scope="module")
def executor() -> Iterator[RayExecutor]:
    """The module's one Ray start: lazily, by the executor's first submit, stopped at the end."""
    if ray.is_initialized():  # pragma: no cover - another module leaked its instance
        pytest.fail("Ray is already running before this module started it")
    os.environ.pop("RAY_ADDRESS", None)
    executor = RayExecutor(init_options=_INIT, shutdown_ray=True)
    try:
        assert executor.submit(pa.add, 1, 2).result() == 3
        assert ray.is_initialized()
        yield executor
    finally:
        executor.shutdown()
    assert not ray.is_initialized()


def test_submit_returns_a_standard_future_holding_the_result(executor: RayExecutor) -> None:
    future = executor.submit(pa.add, 40, y=2)
    assert isinstance(future, cf.Future)
    assert future.result() == 42


def test_calls_run_in_ray_worker_processes(executor: RayExecutor) -> None:
    assert executor.submit(pa.worker_pid).result() != os.getpid()


def test_map_returns_results_in_input_order(executor: RayExecutor) -> None:
    assert list(executor.map(pa.square, range(12))) == [x * x for x in range(12)]
    assert list(executor.map(pa.add, [1, 2], [10, 20])) == [11, 22]


def test_keyword_arguments_named_like_ray_options_reach_the_callable(
    executor: RayExecutor,
) -> None:
    kwargs = {"num_cpus": 5, "max_retries": 0, "name": "x", "fn": 1}
    assert executor.submit(pa.echo_kwargs, **kwargs).result() == kwargs


def test_an_exception_reaches_the_caller_as_its_own_type(executor: RayExecutor) -> None:
    future = executor.submit(pa.fail, "child broke", code=3)
    with pytest.raises(pa.ChildFailure) as caught:
        future.result()
    assert type(caught.value) is pa.ChildFailure
    assert caught.value.code == 3
    assert caught.value.args == ("child broke", 3)
    if sys.version_info >= (3, 11):
        assert any("Raised in a Ray task" in note for note in caught.value.__notes__)
    assert type(future.exception()) is pa.ChildFailure


def test_map_raises_the_first_failing_call(executor: RayExecutor) -> None:
    results = executor.map(pa.fail, ["a", "b"], [1, 2])
    with pytest.raises(pa.ChildFailure) as caught:
        list(results)
    assert caught.value.code == 1


def test_futures_work_with_as_completed(executor: RayExecutor) -> None:
    futures = [executor.submit(pa.square, x) for x in range(6)]
    assert sorted(f.result() for f in cf.as_completed(futures)) == [0, 1, 4, 9, 16, 25]


def test_an_unpicklable_argument_fails_at_submit(executor: RayExecutor) -> None:
    with pytest.raises(TypeError) as caught:
        executor.submit(pa.echo_kwargs, lock=threading.Lock())
    assert str(caught.value).startswith(
        "cannot send echo_kwargs(...) to the Ray workers: cannot pickle '_thread.lock' object."
    )


def test_shutdown_waits_refuses_new_work_and_leaves_ray_running(executor: RayExecutor) -> None:
    own = RayExecutor(num_cpus=1)
    futures = [own.submit(pa.square, x) for x in range(4)]
    own.shutdown(wait=True)
    assert all(f.done() for f in futures)
    assert [f.result() for f in futures] == [0, 1, 4, 9]
    with pytest.raises(RuntimeError, match="after shutdown"):
        own.submit(pa.square, 2)
    assert ray.is_initialized()


def test_shutdown_cancel_futures_cancels_calls_that_cannot_start(executor: RayExecutor) -> None:
    # No node has the resource "absent", so the task waits for ever until cancelled.
    own = RayExecutor(task_options={"resources": {"absent": 1}})
    stuck = own.submit(pa.square, 3)
    own.shutdown(wait=True, cancel_futures=True)
    assert stuck.cancelled()


def test_a_cancelled_future_stays_cancelled(executor: RayExecutor) -> None:
    own = RayExecutor(task_options={"resources": {"absent": 1}})
    stuck = own.submit(pa.square, 3)
    assert stuck.cancel()
    with pytest.raises(cf.CancelledError):
        stuck.result()
    assert cf.wait([stuck]).done == {stuck}
    own.shutdown()


def test_asyncio_run_in_executor_awaits_ray_tasks(executor: RayExecutor) -> None:
    async def main() -> list[int]:
        loop = asyncio.get_running_loop()
        return list(
            await asyncio.gather(*(loop.run_in_executor(executor, pa.square, x) for x in range(5)))
        )

    assert asyncio.run(main()) == [0, 1, 4, 9, 16]


def test_asyncio_sees_the_original_exception(executor: RayExecutor) -> None:
    async def main() -> None:
        await asyncio.get_running_loop().run_in_executor(executor, pa.fail, "async", 9)

    with pytest.raises(pa.ChildFailure, match="async"):
        asyncio.run(main())


def test_a_turnout_application_runs_inside_a_ray_task(executor: RayExecutor) -> None:
    state = executor.submit(pa.run_counter, 0, 5).result()
    assert isinstance(state, State)
    assert state["count"] == 5
    assert state["parity"] == "odd"
    assert len(state["seen"]) == 5
    assert os.getpid() not in state["seen"]


def test_many_applications_run_in_parallel(executor: RayExecutor) -> None:
    states = list(executor.map(pa.run_counter, range(6), [6] * 6))
    assert [s["count"] for s in states] == [6] * 6
    assert [len(s["seen"]) for s in states] == [6, 5, 4, 3, 2, 1]


def test_a_failing_application_raises_its_action_error(executor: RayExecutor) -> None:
    with pytest.raises(pa.ChildFailure) as caught:
        executor.submit(pa.run_fragile, 2).result()
    assert caught.value.code == 2
    assert executor.submit(pa.run_fragile, 99).result()["count"] == 5


def test_state_round_trips_through_a_ray_task(executor: RayExecutor) -> None:
    sent = State({"items": [1], "n": 0, "nested": {"a": [1, 2]}})
    back = executor.submit(pa.grow, sent, 2).result()
    assert isinstance(back, State)
    assert back == {"items": [1, 2], "n": 1, "nested": {"a": [1, 2]}, "where": back["where"]}
    assert back["where"] != os.getpid()
    assert sent == {"items": [1], "n": 0, "nested": {"a": [1, 2]}}
    assert back.append(items=3)["items"] == [1, 2, 3]
    assert back["items"] == [1, 2]


def test_state_pickles_with_pickle_and_cloudpickle() -> None:
    from ray import cloudpickle

    state = State({"x": 1}).append(log="a").extend(log=["b"]).increment(x=2)
    for dumps, loads in ((pickle.dumps, pickle.loads), (cloudpickle.dumps, cloudpickle.loads)):
        copy = loads(dumps(state))
        assert isinstance(copy, State)
        assert copy == state == {"x": 3, "log": ["a", "b"]}
        assert copy.append(log="c")["log"] == ["a", "b", "c"]


def test_options_are_checked() -> None:
    with pytest.raises(TypeError, match=r"RayExecutor\(num_cpus=\.\.\.\)"):
        RayExecutor(task_options={"num_cpus": 2})
    with pytest.raises(TypeError, match=r"RayExecutor\(address=\.\.\.\)"):
        RayExecutor(init_options={"address": "auto"})
    assert RayExecutor(num_cpus=0.5, task_options={"resources": {"x": 1}}).options == {
        "num_cpus": 0.5,
        "resources": {"x": 1},
    }


@pytest.mark.parametrize("option", ["shutdown_ray", "shutdown_on_end"])
def test_shutdown_stops_ray_when_asked_under_either_name(
    option: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``shutdown_on_end`` is Burr's name for ``shutdown_ray``."""
    stopped: list[bool] = []
    monkeypatch.setattr(ray, "is_initialized", lambda: True)
    monkeypatch.setattr(ray, "shutdown", lambda: stopped.append(True))
    RayExecutor(**{option: True}).shutdown()
    RayExecutor().shutdown()
    assert stopped == [True]


def test_submit_rejects_a_non_callable() -> None:
    with pytest.raises(TypeError, match="needs a callable, got 42"):
        RayExecutor().submit(42)  # type: ignore[arg-type]


# -- MapStates end to end: the parent's children as Ray tasks -----------------------------------


def _ray_factory() -> RayExecutor:
    return RayExecutor(num_cpus=1)


def test_map_states_runs_its_children_as_ray_tasks(executor: RayExecutor) -> None:
    pa.check_map_states(_ray_factory)


def test_map_states_on_ray_from_an_async_parent(executor: RayExecutor) -> None:
    pa.check_map_states_async(_ray_factory)


def test_map_states_on_ray_reports_failing_children_with_their_types(
    executor: RayExecutor,
) -> None:
    pa.check_map_states_failing_child(_ray_factory)


def test_children_on_ray_are_tracked_under_the_parent_step(
    executor: RayExecutor, tmp_path: Path
) -> None:
    pa.check_tracked_children(_ray_factory, tmp_path)


def test_children_that_cannot_be_pickled_fail_with_the_reason(executor: RayExecutor) -> None:
    pa.check_unpicklable_child_is_named(_ray_factory)


def test_a_streamed_map_step_on_ray_yields_each_childs_end(executor: RayExecutor) -> None:
    pa.check_streamed_children_report_their_ends(_ray_factory)
