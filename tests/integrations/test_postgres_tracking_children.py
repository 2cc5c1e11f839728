"""Children of a parallel action running on Ray and on Dask track into the parent's PostgreSQL
store: each child's steps are there, linked to the parent step that spawned it.

Ray (2 CPUs, no dashboard) and a Dask ``LocalCluster`` (2 worker processes) are started once
per module, offline, as ``test_ray.py`` and ``test_dask.py`` start them. Skips when PostgreSQL is
not reachable, except under ``CI=true`` (the ``server`` fixture).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from concurrent.futures import Executor
from typing import Any

import pytest

pytest.importorskip("psycopg")
pytest.importorskip("psycopg_pool")

from tests.integrations import parallel_actions as pa
from tests.integrations.test_postgres import DSN, server
from tests.integrations.test_postgres_tracking import prefix
from turnout.core.tracklog import AppRecord, ChildRecord, EndRecord
from turnout.integrations.postgres_tracking import PostgresTracker

__all__ = ["prefix", "server"]  # fixtures

ITEMS = [3, 1, 4, 2]


def check_children_in_the_store(factory: Callable[[], Executor], table_prefix: str) -> None:
    """One MapStates step on ``factory``'s executor: every child's app, begin and end rows are
    in the parent's store, the child's app row names the parent step, the parent's rows link
    to every child, and each child loads to the state it reached in its worker process."""
    tracker = PostgresTracker(DSN, project="children", table_prefix=table_prefix)
    app = pa.square_all_app(ITEMS, factory, tracker=tracker, app_id="parent")
    app.step()
    assert app.state["ys"] == [x * x for x in ITEMS]
    assert os.getpid() not in app.state["pids"]  # the children ran in worker processes
    assert tracker.flush(30)
    links = [r for r in tracker.read_records("parent").records if isinstance(r, ChildRecord)]
    assert [(link.kind, link.seq) for link in links] == [("spawn", 0)] * len(ITEMS)
    assert sorted(tracker.list_app_ids()) == sorted(
        ["parent", *(link.child_app_id for link in links)]
    )
    for link in links:
        child = tracker.read_records(link.child_app_id).records
        assert [r.KIND for r in child] == ["format", "app", "begin", "end"]
        app_row, end = child[1], child[3]
        assert isinstance(app_row, AppRecord)
        assert isinstance(end, EndRecord)
        assert app_row.spawning_parent is not None
        assert (app_row.spawning_parent["app_id"], app_row.spawning_parent["sequence_id"]) == (
            "parent",
            0,
        )
        assert end.status == "completed"
        loaded = tracker.load(None, link.child_app_id)
        assert loaded is not None
        x = loaded.state["x"]
        assert loaded.state["y"] == x * x
        assert loaded.state["pid"] in app.state["pids"]
    assert sorted(
        tracker.load(None, link.child_app_id).state["x"]  # type: ignore[union-attr]
        for link in links
    ) == sorted(ITEMS)
    tracker.close()
    assert tracker.dropped == 0


# -- Ray -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ray_factory() -> Iterator[Callable[[], Executor]]:
    """One local Ray instance for the module, started by the first submit, stopped at the end."""
    ray = pytest.importorskip("ray")
    from turnout.integrations.ray import RayExecutor

    if ray.is_initialized():  # pragma: no cover - another module leaked its instance
        pytest.fail("Ray is already running before this module started it")
    os.environ.pop("RAY_ADDRESS", None)
    options: dict[str, Any] = {
        "num_cpus": 2,
        "include_dashboard": False,
        "_node_ip_address": "127.0.0.1",
        "log_to_driver": False,
    }
    starter = RayExecutor(init_options=options, shutdown_ray=True)
    try:
        assert starter.submit(pa.add, 1, 2).result() == 3
        yield RayExecutor  # the started instance is used by every executor made here
    finally:
        starter.shutdown()
    assert not ray.is_initialized()


def test_children_on_ray_track_into_the_parents_postgres_store(
    ray_factory: Callable[[], Executor], prefix: str
) -> None:
    check_children_in_the_store(ray_factory, prefix)


# -- Dask ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dask_factory() -> Iterator[Callable[[], Executor]]:
    """A two-process Dask cluster for the module (not the default client)."""
    distributed = pytest.importorskip("distributed")
    from turnout.integrations.dask import DaskExecutor

    cluster = distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        dashboard_address=":0",  # not 8787: another cluster on the machine may hold it
        host="127.0.0.1",
    )
    try:
        with distributed.Client(cluster, set_as_default=False) as client:
            yield lambda: DaskExecutor(client)
    finally:
        cluster.close()


def test_children_on_dask_track_into_the_parents_postgres_store(
    dask_factory: Callable[[], Executor], prefix: str
) -> None:
    check_children_in_the_store(dask_factory, prefix)
