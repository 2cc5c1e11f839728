"""DaskExecutor against a real LocalCluster (2 worker processes, 1 thread each), one per module."""

from __future__ import annotations

import concurrent.futures as cf
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

distributed = pytest.importorskip("distributed")

from distributed import Client  # noqa: E402

from tests.integrations import executor_checks as ec  # noqa: E402
from tests.integrations import parallel_actions as pa  # noqa: E402
from turnout.integrations.dask import DaskExecutor  # noqa: E402


@pytest.fixture(scope="module")
def client() -> Iterator[Client]:
    """Not the default client, so that tests choose when one is current."""
    cluster = distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        # ":0", not None: with None the scheduler still serves HTTP on 8787 and warns (an
        # error here) when another cluster on the machine holds that port.
        dashboard_address=":0",
        host="127.0.0.1",
    )
    try:
        with distributed.Client(cluster, set_as_default=False) as client:
            yield client
    finally:
        cluster.close()


@pytest.fixture
def executor(client: Client) -> Iterator[DaskExecutor]:
    executor = DaskExecutor(client)
    yield executor
    executor.shutdown()


def test_submit_returns_a_standard_future_holding_the_result(executor: DaskExecutor) -> None:
    ec.check_submit_returns_a_standard_future(executor)


def test_calls_run_in_worker_processes(executor: DaskExecutor) -> None:
    assert executor.submit(pa.worker_pid).result() != os.getpid()


def test_map_returns_results_in_input_order(executor: DaskExecutor) -> None:
    assert list(executor.map(pa.square, range(12))) == [x * x for x in range(12)]
    assert list(executor.map(pa.add, [1, 2], [10, 20], chunksize=5)) == [11, 22]


def test_equal_calls_each_run(executor: DaskExecutor) -> None:
    """Dask merges tasks with equal keys; an executor must run every submitted call."""
    futures = [executor.submit(pa.token) for _ in range(4)] + list(
        executor.map(pa.token_of, [1, 1])
    )
    tokens = [f.result() if isinstance(f, cf.Future) else f for f in futures]
    assert len(set(tokens)) == 6


def test_keyword_arguments_named_like_dask_options_reach_the_callable(
    executor: DaskExecutor,
) -> None:
    kwargs = {"key": "k", "workers": 1, "retries": 2, "pure": True, "priority": 3, "fn": 4}
    assert executor.submit(pa.echo_kwargs, **kwargs).result() == kwargs


def test_an_exception_reaches_the_caller_as_its_own_type(executor: DaskExecutor) -> None:
    ec.check_exception_keeps_its_type(executor)


def test_map_raises_the_first_failing_call(executor: DaskExecutor) -> None:
    ec.check_map_raises_the_first_failure(executor)


def test_futures_work_with_as_completed(executor: DaskExecutor) -> None:
    ec.check_as_completed(executor)


def test_an_unpicklable_argument_fails_at_submit(executor: DaskExecutor) -> None:
    ec.check_unpicklable_argument_fails_at_submit(executor, "Dask")


def test_shutdown_waits_and_refuses_new_work(client: Client) -> None:
    executor = DaskExecutor(client)
    ec.check_shutdown_waits_and_refuses_submit(executor)
    with pytest.raises(RuntimeError, match="after shutdown"):
        executor.map(pa.square, [2])
    assert client.status == "running"


def test_shutdown_cancel_futures_cancels_calls_that_cannot_start(
    client: Client,
) -> None:
    # No worker has the resource "absent", so the task waits for ever until cancelled.
    ec.check_shutdown_cancels_a_stuck_call(DaskExecutor(client, resources={"absent": 1}))


def test_workers_option_pins_calls_to_a_worker(client: Client) -> None:
    address = sorted(client.scheduler_info()["workers"])[0]
    pinned = DaskExecutor(client, workers=[address])
    pids = {pinned.submit(pa.worker_pid).result() for _ in range(4)}
    pinned.shutdown()
    assert len(pids) == 1
    assert pids <= set(client.run(os.getpid, workers=[address]).values())


def test_without_a_client_the_current_one_is_used(client: Client) -> None:
    with client.as_current():
        executor = DaskExecutor()
        assert executor.submit(pa.add, 1, 1).result() == 2
        assert executor.client is client
        executor.shutdown()


def test_without_any_client_submit_says_how_to_pass_one() -> None:
    executor = DaskExecutor()
    with pytest.raises(ValueError, match=r"DaskExecutor\(Client\(address\)\)"):
        executor.submit(pa.add, 1, 1)


def test_a_client_that_is_not_a_client_is_refused() -> None:
    with pytest.raises(TypeError, match=r"needs a distributed\.Client, got 'tcp://x:8786'"):
        DaskExecutor("tcp://x:8786")  # type: ignore[arg-type]


def test_submit_rejects_a_non_callable(executor: DaskExecutor) -> None:
    ec.check_rejects_a_non_callable(executor)


def test_asyncio_run_in_executor_awaits_dask_tasks(executor: DaskExecutor) -> None:
    ec.check_asyncio_awaits_tasks(executor)


def test_asyncio_sees_the_original_exception(executor: DaskExecutor) -> None:
    ec.check_asyncio_sees_the_original_exception(executor)


def test_a_turnout_application_runs_inside_a_dask_task(executor: DaskExecutor) -> None:
    ec.check_application_runs_in_a_task(executor)


def test_many_applications_run_in_parallel(executor: DaskExecutor) -> None:
    ec.check_applications_run_in_parallel(executor)


def test_a_failing_application_raises_its_action_error(executor: DaskExecutor) -> None:
    ec.check_failing_application_raises_its_error(executor)


def test_state_round_trips_through_a_dask_task(executor: DaskExecutor) -> None:
    ec.check_state_round_trips(executor)


def test_state_pickles_with_pickle_and_cloudpickle() -> None:
    import cloudpickle  # type: ignore[import-untyped]

    ec.check_state_pickles(cloudpickle)


# -- MapStates end to end: the parent's children as Dask tasks ----------------------------------


def test_map_states_runs_its_children_as_dask_tasks(client: Client) -> None:
    pa.check_map_states(lambda: DaskExecutor(client))


def test_map_states_on_dask_from_an_async_parent(client: Client) -> None:
    pa.check_map_states_async(lambda: DaskExecutor(client))


def test_map_states_on_dask_reports_failing_children_with_their_types(client: Client) -> None:
    pa.check_map_states_failing_child(lambda: DaskExecutor(client))


def test_children_on_dask_are_tracked_under_the_parent_step(client: Client, tmp_path: Path) -> None:
    pa.check_tracked_children(lambda: DaskExecutor(client), tmp_path)


def test_children_that_cannot_be_pickled_fail_with_the_reason(client: Client) -> None:
    pa.check_unpicklable_child_is_named(lambda: DaskExecutor(client))


def test_a_streamed_map_step_on_dask_yields_each_childs_end(client: Client) -> None:
    pa.check_streamed_children_report_their_ends(lambda: DaskExecutor(client))
