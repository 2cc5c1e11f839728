"""Fan-out overhead: children per second of a map action, on threads, processes, Ray and Dask.

This is a benchmark script, not a test. It answers one question: when one step of an application
fans out over N child applications that do almost nothing, how many children per second does each
executor get through, and how does turnout compare with Burr's ``MapStates``?

The workload: a parent application whose one action is a ``MapStates`` over ``--children``
states (``{"x": i}``). Each child is a real sub-application of three steps (``a``: ``x + 1``,
``b``: ``x * 2``, ``c``: ``y = x - 3``, a ``RunnableGraph`` halting after ``c``); ``reduce``
sums the children's ``y``. One parent step is timed whole (``time.perf_counter_ns`` around
``app.step()``), the result is checked afterwards, and the figure is children / second.

Systems (``--only NAME`` to pick, repeatable):

``turnout-threads``
    ``with_parallel_executor(lambda: ThreadPoolExecutor(--workers))``.
``turnout-processes``
    ``lambda: ProcessPoolExecutor(--workers)``: a new pool per step, as the factory makes it
    (the pool's start is part of the step).
``turnout-processes-reused``
    One ``ProcessPoolExecutor`` shared by every step (the factory returns a wrapper whose
    ``shutdown`` keeps the pool): the per-child cost of pickling and process hops alone.
``turnout-ray``
    ``turnout.integrations.ray.RayExecutor()`` on a local Ray started once (``ray.init``,
    ``--workers`` CPUs, untimed), one CPU per task.
``turnout-dask``
    ``turnout.integrations.dask.DaskExecutor(client)`` on a ``LocalCluster`` of ``--workers``
    processes with one thread each, started once (untimed).
``burr-threads``, ``burr-ray``
    The same workload with ``burr.core`` (apache-burr) classes, on a ``ThreadPoolExecutor`` and
    on ``burr.integrations.ray.RayExecutor`` (same Ray instance). Left out, with a note, when
    ``burr`` cannot be imported.

Measured in one process, interleaved: one untimed warm-up step per system (workers import the
code), then ``--rounds`` rounds, each running every system once in a rotating order. Reported:
the median children/second over rounds (25th-75th percentile), microseconds per child, the
ratio to turnout on threads, and the start-up time of Ray and of the Dask cluster.

Run ``python bench/fanout.py --help`` for the options; ``--json PATH`` also writes every sample.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import contextlib
import importlib.metadata
import json
import multiprocessing
import os
import platform
import shlex
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any, ClassVar

from turnout import ApplicationBuilder, GraphBuilder, MapStates, RunnableGraph, State, action

SYSTEMS = (
    "turnout-threads",
    "turnout-processes",
    "turnout-processes-reused",
    "turnout-ray",
    "turnout-dask",
    "burr-threads",
    "burr-ray",
)

# -- the workload (module level: process pools pickle the actions by reference) ------------------


@action(reads=["x"], writes=["x"])
def a(state: State) -> State:
    return state.update(x=state["x"] + 1)


@action(reads=["x"], writes=["x"])
def b(state: State) -> State:
    return state.update(x=state["x"] * 2)


@action(reads=["x"], writes=["y"])
def c(state: State) -> State:
    return state.update(y=state["x"] - 3)


CHILD = RunnableGraph(
    graph=GraphBuilder().with_actions(a, b, c).with_transitions(("a", "b"), ("b", "c")).build(),
    entrypoint="a",
    halt_after=["c"],
)


class FanOut(MapStates):
    reads: ClassVar[list[str]] = ["n"]
    writes: ClassVar[list[str]] = ["total"]

    def action(self, state: State, inputs: dict[str, Any]) -> Any:
        return CHILD

    def states(self, state: State, context: Any, inputs: dict[str, Any]) -> Any:
        for i in range(state["n"]):
            yield State({"x": i})

    def reduce(self, state: State, states: Any) -> State:
        return state.update(total=sum(child["y"] for child in states))


def expected_total(n: int) -> int:
    return sum((i + 1) * 2 - 3 for i in range(n))


def turnout_app(n: int, factory: Callable[[], cf.Executor]) -> Any:
    return (
        ApplicationBuilder()
        .with_actions(fan_out=FanOut())
        .with_transitions(("fan_out", "fan_out"))
        .with_state(n=n)
        .with_entrypoint("fan_out")
        .with_parallel_executor(factory)
        .build()
    )


def burr_app(n: int, factory: Callable[[], cf.Executor]) -> Any:
    """The same parent and children written against ``burr.core`` (closures: threads and Ray
    only, which pickle by value)."""
    from burr.core import ApplicationBuilder as BurrBuilder
    from burr.core import State as BurrState
    from burr.core import action as burr_action
    from burr.core.graph import GraphBuilder as BurrGraphBuilder
    from burr.core.parallelism import MapStates as BurrMapStates
    from burr.core.parallelism import RunnableGraph as BurrRunnableGraph

    @burr_action(reads=["x"], writes=["x"])
    def a(state: Any) -> Any:
        return state.update(x=state["x"] + 1)

    @burr_action(reads=["x"], writes=["x"])
    def b(state: Any) -> Any:
        return state.update(x=state["x"] * 2)

    @burr_action(reads=["x"], writes=["y"])
    def c(state: Any) -> Any:
        return state.update(y=state["x"] - 3)

    graph = BurrGraphBuilder().with_actions(a=a, b=b, c=c)
    child = BurrRunnableGraph(
        graph=graph.with_transitions(("a", "b"), ("b", "c")).build(),
        entrypoint="a",
        halt_after=["c"],
    )

    class BurrFanOut(BurrMapStates):  # type: ignore[misc]
        @property
        def reads(self) -> list[str]:
            return ["n"]

        @property
        def writes(self) -> list[str]:
            return ["total"]

        def action(self, state: Any, inputs: Any) -> Any:
            return child

        def states(self, state: Any, context: Any, inputs: Any) -> Any:
            for i in range(state["n"]):
                yield BurrState({"x": i})

        def reduce(self, state: Any, states: Any) -> Any:
            return state.update(total=sum(s["y"] for s in states))

    return (
        BurrBuilder()
        .with_actions(fan_out=BurrFanOut())
        .with_transitions(("fan_out", "fan_out"))
        .with_state(n=n)
        .with_entrypoint("fan_out")
        .with_parallel_executor(factory)
        .build()
    )


class _Kept(cf.Executor):
    """A shared pool whose ``shutdown`` (called after every parallel step) keeps it running."""

    def __init__(self, pool: cf.Executor) -> None:
        self._pool = pool

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> cf.Future[Any]:
        return self._pool.submit(fn, *args, **kwargs)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        pass


# -- the systems ----------------------------------------------------------------------------------


class Systems:
    """Builds each system's parent application; owns the Ray instance, Dask cluster and pool."""

    def __init__(self, names: list[str], workers: int) -> None:
        self.workers = workers
        self.names: list[str] = []
        self.notes: list[str] = []
        self.startup: dict[str, float] = {}
        self._close: list[Callable[[], None]] = []
        # forkserver: the pools fork from a clean server process, not from this one, whose Ray
        # and Dask threads a plain fork would copy mid-flight.
        self._mp = multiprocessing.get_context("forkserver")
        wanted = set(names)
        if wanted & {"burr-threads", "burr-ray"} and not self._has("burr"):
            self.notes.append("burr (apache-burr) cannot be imported: its rows are left out")
            wanted -= {"burr-threads", "burr-ray"}
        if wanted & {"turnout-ray", "burr-ray"}:
            if self._has("ray"):
                self._start_ray()
            else:
                self.notes.append("ray cannot be imported: its rows are left out")
                wanted -= {"turnout-ray", "burr-ray"}
        if "turnout-dask" in wanted:
            if self._has("distributed"):
                self._start_dask()
            else:
                self.notes.append("dask.distributed cannot be imported: its row is left out")
                wanted.discard("turnout-dask")
        if "turnout-processes-reused" in wanted:
            pool = cf.ProcessPoolExecutor(workers, mp_context=self._mp)
            self._pool = _Kept(pool)
            self._close.append(pool.shutdown)
        self.names = [name for name in SYSTEMS if name in wanted]

    @staticmethod
    def _has(module: str) -> bool:
        try:
            __import__(module)
        except ImportError:
            return False
        return True

    def _start_ray(self) -> None:
        import ray

        started = time.perf_counter()
        ray.init(num_cpus=self.workers, include_dashboard=False, log_to_driver=False)
        self.startup["ray.init"] = time.perf_counter() - started
        self._close.append(ray.shutdown)

    def _start_dask(self) -> None:
        from distributed import Client, LocalCluster

        started = time.perf_counter()
        cluster = LocalCluster(
            n_workers=self.workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",  # None still binds 8787 (and warns when it is taken)
            host="127.0.0.1",
        )
        self.client = Client(cluster)
        self.startup["dask LocalCluster + Client"] = time.perf_counter() - started
        self._close.extend([self.client.close, cluster.close])

    def app(self, name: str, n: int) -> Any:
        workers = self.workers
        if name == "turnout-threads":
            return turnout_app(n, lambda: cf.ThreadPoolExecutor(workers))
        if name == "turnout-processes":
            return turnout_app(n, lambda: cf.ProcessPoolExecutor(workers, mp_context=self._mp))
        if name == "turnout-processes-reused":
            return turnout_app(n, lambda: self._pool)
        if name == "turnout-ray":
            from turnout.integrations.ray import RayExecutor

            return turnout_app(n, lambda: RayExecutor())
        if name == "turnout-dask":
            from turnout.integrations.dask import DaskExecutor

            return turnout_app(n, lambda: DaskExecutor(self.client))
        if name == "burr-threads":
            return burr_app(n, lambda: cf.ThreadPoolExecutor(workers))
        if name == "burr-ray":
            from burr.integrations.ray import RayExecutor as BurrRayExecutor

            return burr_app(n, lambda: BurrRayExecutor())
        raise ValueError(f"unknown system {name!r}; choose from {', '.join(SYSTEMS)}")

    def close(self) -> None:
        for close in reversed(self._close):
            close()


def run_once(systems: Systems, name: str, n: int) -> float:
    """Seconds for one parent step fanning out over ``n`` children (building is untimed)."""
    app = systems.app(name, n)
    started = time.perf_counter_ns()
    app.step()
    elapsed = (time.perf_counter_ns() - started) / 1e9
    total = app.state["total"]
    if total != expected_total(n):
        raise AssertionError(f"{name}: total {total}, expected {expected_total(n)}")
    return elapsed


# -- report ---------------------------------------------------------------------------------------


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for dist in ("turnout", "apache-burr", "ray", "distributed"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            out[dist] = importlib.metadata.version(dist)
    return out


def report(results: dict[str, list[float]], systems: Systems, args: argparse.Namespace) -> str:
    lines = [
        "# Fan-out: children per second of one MapStates step",
        "",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in _versions().items()),
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs",
        f"Command: `{shlex.join([os.path.basename(sys.executable), *sys.argv])}`",
        f"Workload: {args.children} children of 3 steps per parent step, {args.workers} workers,"
        f" {args.rounds} rounds (median, 25th-75th percentile)",
        "",
        "| system | children/s | 25th-75th pct | µs per child | vs turnout-threads |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    rates = {name: sorted(args.children / s for s in samples) for name, samples in results.items()}
    base = statistics.median(rates["turnout-threads"]) if "turnout-threads" in rates else None
    for name, rate in rates.items():
        median = statistics.median(rate)
        low, high = _quartiles(rate)
        ratio = f"{median / base:.2f}x" if base else "-"
        lines.append(
            f"| {name} | {median:,.0f} | {low:,.0f}-{high:,.0f} | {1e6 / median:,.0f} | {ratio} |"
        )
    if systems.startup:
        lines += ["", "Start-up (untimed above): " + ", ".join(
            f"{what} {seconds:.1f} s" for what, seconds in systems.startup.items()
        )]  # fmt: skip
    lines += [f"Note: {note}" for note in systems.notes]
    return "\n".join(lines)


def _quartiles(values: list[float]) -> tuple[float, float]:
    if len(values) < 2:
        return values[0], values[0]
    q = statistics.quantiles(values, n=4)
    return q[0], q[2]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--children", type=int, default=None, help="children per step (200)")
    parser.add_argument("--rounds", type=int, default=None, help="interleaved rounds (5)")
    parser.add_argument("--workers", type=int, default=2, help="threads/processes/CPUs (2)")
    parser.add_argument("--only", action="append", choices=SYSTEMS, help="measure only these")
    parser.add_argument("--quick", action="store_true", help="50 children, 2 rounds")
    parser.add_argument("--json", metavar="PATH", help="also write every sample as JSON")
    args = parser.parse_args(argv)
    args.children = args.children or (50 if args.quick else 200)
    args.rounds = args.rounds or (2 if args.quick else 5)

    systems = Systems(args.only or list(SYSTEMS), args.workers)
    results: dict[str, list[float]] = {name: [] for name in systems.names}
    try:
        for name in systems.names:
            print(f"warm-up: {name}", file=sys.stderr)
            run_once(systems, name, min(args.children, 2 * args.workers))
        for round_ in range(args.rounds):
            order = (
                systems.names[round_ % len(systems.names) :]
                + systems.names[: round_ % len(systems.names)]
            )
            for name in order:
                results[name].append(run_once(systems, name, args.children))
            print(f"round {round_ + 1}/{args.rounds} done", file=sys.stderr)
    finally:
        systems.close()
    print(report(results, systems, args))
    if args.json:
        data = {
            "versions": _versions(),
            "argv": sys.argv,
            "children": args.children,
            "workers": args.workers,
            "startup_seconds": systems.startup,
            "seconds": results,
            "children_per_second": {
                name: statistics.median(args.children / s for s in samples)
                for name, samples in results.items()
            },
            "notes": systems.notes,
        }
        with open(args.json, "w", encoding="utf-8") as out:
            json.dump(data, out, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
