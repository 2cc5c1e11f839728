"""RayExecutor against a real local Ray instance (2 CPUs, no dashboard), started once per module."""

from __future__ import annotations

import concurrent.futures as cf
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")

from tests.integrations import executor_checks as ec  # noqa: E402
from tests.integrations import parallel_actions as pa  # noqa: E402
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
    ec.check_submit_returns_a_standard_future(executor)


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
    caught = ec.check_exception_keeps_its_type(executor)
    assert any("Raised in a Ray task" in note for note in caught.__notes__)


def test_map_raises_the_first_failing_call(executor: RayExecutor) -> None:
    ec.check_map_raises_the_first_failure(executor)


def test_futures_work_with_as_completed(executor: RayExecutor) -> None:
    ec.check_as_completed(executor)


def test_an_unpicklable_argument_fails_at_submit(executor: RayExecutor) -> None:
    ec.check_unpicklable_argument_fails_at_submit(executor, "Ray")


def test_shutdown_waits_refuses_new_work_and_leaves_ray_running(executor: RayExecutor) -> None:
    ec.check_shutdown_waits_and_refuses_submit(RayExecutor(num_cpus=1))
    assert ray.is_initialized()


def test_shutdown_cancel_futures_cancels_calls_that_cannot_start(executor: RayExecutor) -> None:
    # No node has the resource "absent", so the task waits for ever until cancelled.
    ec.check_shutdown_cancels_a_stuck_call(RayExecutor(task_options={"resources": {"absent": 1}}))


def test_a_cancelled_future_stays_cancelled(executor: RayExecutor) -> None:
    own = RayExecutor(task_options={"resources": {"absent": 1}})
    stuck = own.submit(pa.square, 3)
    assert stuck.cancel()
    with pytest.raises(cf.CancelledError):
        stuck.result()
    assert cf.wait([stuck]).done == {stuck}
    own.shutdown()


def test_asyncio_run_in_executor_awaits_ray_tasks(executor: RayExecutor) -> None:
    ec.check_asyncio_awaits_tasks(executor)


def test_asyncio_sees_the_original_exception(executor: RayExecutor) -> None:
    ec.check_asyncio_sees_the_original_exception(executor)


def test_a_turnout_application_runs_inside_a_ray_task(executor: RayExecutor) -> None:
    ec.check_application_runs_in_a_task(executor)


def test_many_applications_run_in_parallel(executor: RayExecutor) -> None:
    ec.check_applications_run_in_parallel(executor)


def test_a_failing_application_raises_its_action_error(executor: RayExecutor) -> None:
    ec.check_failing_application_raises_its_error(executor)


def test_state_round_trips_through_a_ray_task(executor: RayExecutor) -> None:
    back = ec.check_state_round_trips(executor)
    assert back["items"] == [1, 2]


def test_state_pickles_with_pickle_and_cloudpickle() -> None:
    from ray import cloudpickle

    for copy in ec.check_state_pickles(cloudpickle):
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
    ec.check_rejects_a_non_callable(RayExecutor())


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
