"""Per-step overhead of turnout compared with a plain loop, Burr and LangGraph.

This is a benchmark script, not a test. It answers one question: how many microseconds does a
framework add to every step of a state machine whose actions do almost nothing?

Every system runs the same user work (the ``bump``/``mix`` helpers below, or appending one item
to a list). The systems are measured interleaved inside one process: each round runs every
workload once per system, rotating the order of the systems from round to round, so machine
noise lands on all of them alike. The reported figure is the median over rounds.

Workloads
---------
``self_loop``
    One action increments ``count`` and transitions back to itself while ``count < limit``,
    then a ``done`` action ends the run. Timed as one whole run (``app.run`` / ``graph.invoke``).
``cycle``
    Three actions ``a -> b -> c -> a`` each doing trivial arithmetic on state, until ``x`` reaches
    ``limit``; then ``done``. Timed as one whole run.
``history``
    One action appends one item to a list in state on every step. The app is driven one step at
    a time (``app.step()``, ``next()`` on LangGraph's ``stream``), and two windows of steps are
    timed: one starting at step 100 and one starting at step 10,000. Their ratio shows whether
    the cost of a step grows with the size of state.

The two loop workloads also run with ``async def`` actions doing the same work, driven by each
framework's async entry point (``await app.arun(...)``, ``await graph.ainvoke(...)``) and
compared with a plain ``async def`` loop awaiting the same async helpers. Every async run is
timed inside one event loop shared by all systems, from within a coroutine, so the cost of
starting the loop is not part of the figure.

Garbage collection
------------------
By default the collector stays enabled, because its cost is part of what users of an
allocation-heavy framework pay. Before every timed section ``gc.collect()`` runs (untimed) so
each section starts from the same heap, and after all libraries are imported and warmed up,
``gc.freeze()`` moves the import-time objects out of the collector's view, so that one
library's large import footprint does not slow down the full collections of another.
``--no-gc`` disables the collector during every timed section instead, for every system alike.

Run ``python bench/step_overhead.py --help`` for the options.
"""

import argparse
import asyncio
import gc
import importlib.metadata
import json
import operator
import platform
import shlex
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Annotated, Any, TypedDict

PLAIN = "plain loop"
TURNOUT = "turnout"
BURR = "burr"
LANGGRAPH = "langgraph"

LOOP_WORKLOADS = ("self_loop", "cycle")
HISTORY = "history"
NEAR_STEP = 100


# --------------------------------------------------------------------------------------------
# The user work. Every system calls these same helpers, so only the framework around them
# differs.
# --------------------------------------------------------------------------------------------


def bump(value: int) -> int:
    """Work of the counter action and of action ``a``."""
    return value + 1


def mix(x: int, y: int) -> int:
    """Work of action ``b``."""
    return y + x


def spread(x: int, y: int) -> int:
    """Work of action ``c``."""
    return y - x


# The plain async loop awaits these, one coroutine per step, as a framework awaits one async
# action per step; the async actions of the frameworks call ``bump``/``mix``/``spread`` directly.


async def abump(value: int) -> int:
    return bump(value)


async def amix(x: int, y: int) -> int:
    return mix(x, y)


async def aspread(x: int, y: int) -> int:
    return spread(x, y)


# --------------------------------------------------------------------------------------------
# Shapes a system is asked to provide.
# --------------------------------------------------------------------------------------------

RunFn = Callable[[], int]
"""Executes one whole run and returns a number used to check that the run did its work."""

StepFn = Callable[[], object]
"""Executes exactly one step."""


@dataclass(frozen=True)
class LoopRun:
    run: RunFn
    steps: int
    expected: int


@dataclass(frozen=True)
class AsyncLoopRun:
    run: Callable[[], Awaitable[int]]
    """Executes one whole run, awaited inside the benchmark's event loop."""
    steps: int
    expected: int


@dataclass(frozen=True)
class HistoryRun:
    step: StepFn
    length: Callable[[], int]
    """Current length of the history list, read after the timed windows."""


class System:
    """One system under test: builds runs for each workload (building is never timed)."""

    name: str

    def self_loop(self, limit: int) -> LoopRun:
        raise NotImplementedError

    def cycle(self, limit: int) -> LoopRun:
        raise NotImplementedError

    def history(self, limit: int) -> HistoryRun:
        raise NotImplementedError

    def async_self_loop(self, limit: int) -> AsyncLoopRun:
        raise NotImplementedError

    def async_cycle(self, limit: int) -> AsyncLoopRun:
        raise NotImplementedError


def self_loop_steps(limit: int) -> int:
    """Counter steps plus the closing ``done`` step."""
    return limit + 1


def cycle_steps(limit: int) -> int:
    """Three actions per lap plus the closing ``done`` step."""
    return 3 * limit + 1


# --------------------------------------------------------------------------------------------
# Plain Python: the same work with no framework, the floor every system is compared to.
# --------------------------------------------------------------------------------------------


class PlainLoop(System):
    name = PLAIN

    def self_loop(self, limit: int) -> LoopRun:
        def run() -> int:
            count = 0
            while True:
                count = bump(count)
                if count >= limit:
                    return count

        return LoopRun(run, self_loop_steps(limit), limit)

    def cycle(self, limit: int) -> LoopRun:
        def run() -> int:
            x = y = z = 0
            while True:
                x = bump(x)
                y = mix(x, y)
                z = spread(x, y)
                if x >= limit:
                    return x if z == y - x else -1

        return LoopRun(run, cycle_steps(limit), limit)

    def history(self, limit: int) -> HistoryRun:
        items: list[int] = []

        def step() -> bool:
            items.append(len(items))
            return len(items) < limit

        return HistoryRun(step, lambda: len(items))

    def async_self_loop(self, limit: int) -> AsyncLoopRun:
        async def run() -> int:
            count = 0
            while True:
                count = await abump(count)
                if count >= limit:
                    return count

        return AsyncLoopRun(run, self_loop_steps(limit), limit)

    def async_cycle(self, limit: int) -> AsyncLoopRun:
        async def run() -> int:
            x = y = z = 0
            while True:
                x = await abump(x)
                y = await amix(x, y)
                z = await aspread(x, y)
                if x >= limit:
                    return x if z == y - x else -1

        return AsyncLoopRun(run, cycle_steps(limit), limit)


# --------------------------------------------------------------------------------------------
# turnout and Burr share one API, so one adapter serves both.
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BurrStyleApi:
    """The names a Burr-compatible package exposes."""

    action: Callable[..., Callable[[Callable[..., Any]], Any]]
    builder: Callable[[], Any]
    expr: Callable[[str], Any]
    default: Any


class BurrStyle(System):
    """Runs the workloads through ``ApplicationBuilder``: no tracker, persister or hooks."""

    def __init__(self, name: str, api: BurrStyleApi) -> None:
        self.name = name
        self.api = api

    def _self_loop_app(self, limit: int, count: Any, done: Any) -> Any:
        api = self.api
        return (
            api.builder()
            .with_actions(count=count, done=done)
            .with_transitions(
                ("count", "count", api.expr("count < limit")),
                ("count", "done", api.default),
            )
            .with_state(count=0, limit=limit, finished=False)
            .with_entrypoint("count")
            .build()
        )

    def _cycle_app(self, limit: int, a: Any, b: Any, c: Any, done: Any) -> Any:
        api = self.api
        return (
            api.builder()
            .with_actions(a=a, b=b, c=c, done=done)
            .with_transitions(
                ("a", "b", api.default),
                ("b", "c", api.default),
                ("c", "a", api.expr("x < limit")),
                ("c", "done", api.default),
            )
            .with_state(x=0, y=0, z=0, limit=limit, finished=False)
            .with_entrypoint("a")
            .build()
        )

    def self_loop(self, limit: int) -> LoopRun:
        api = self.api

        @api.action(reads=["count"], writes=["count"])
        def count(state: Any) -> Any:
            return state.update(count=bump(state["count"]))

        @api.action(reads=[], writes=["finished"])
        def done(state: Any) -> Any:
            return state.update(finished=True)

        app = self._self_loop_app(limit, count, done)

        def run() -> int:
            _, _, final = app.run(halt_after=["done"])
            return int(final["count"]) if final["finished"] else -1

        return LoopRun(run, self_loop_steps(limit), limit)

    def cycle(self, limit: int) -> LoopRun:
        api = self.api

        @api.action(reads=["x"], writes=["x"])
        def a(state: Any) -> Any:
            return state.update(x=bump(state["x"]))

        @api.action(reads=["x", "y"], writes=["y"])
        def b(state: Any) -> Any:
            return state.update(y=mix(state["x"], state["y"]))

        @api.action(reads=["x", "y"], writes=["z"])
        def c(state: Any) -> Any:
            return state.update(z=spread(state["x"], state["y"]))

        @api.action(reads=[], writes=["finished"])
        def done(state: Any) -> Any:
            return state.update(finished=True)

        app = self._cycle_app(limit, a, b, c, done)

        def run() -> int:
            _, _, final = app.run(halt_after=["done"])
            return int(final["x"]) if final["finished"] else -1

        return LoopRun(run, cycle_steps(limit), limit)

    def async_self_loop(self, limit: int) -> AsyncLoopRun:
        api = self.api

        @api.action(reads=["count"], writes=["count"])
        async def count(state: Any) -> Any:
            return state.update(count=bump(state["count"]))

        @api.action(reads=[], writes=["finished"])
        async def done(state: Any) -> Any:
            return state.update(finished=True)

        app = self._self_loop_app(limit, count, done)

        async def run() -> int:
            _, _, final = await app.arun(halt_after=["done"])
            return int(final["count"]) if final["finished"] else -1

        return AsyncLoopRun(run, self_loop_steps(limit), limit)

    def async_cycle(self, limit: int) -> AsyncLoopRun:
        api = self.api

        @api.action(reads=["x"], writes=["x"])
        async def a(state: Any) -> Any:
            return state.update(x=bump(state["x"]))

        @api.action(reads=["x", "y"], writes=["y"])
        async def b(state: Any) -> Any:
            return state.update(y=mix(state["x"], state["y"]))

        @api.action(reads=["x", "y"], writes=["z"])
        async def c(state: Any) -> Any:
            return state.update(z=spread(state["x"], state["y"]))

        @api.action(reads=[], writes=["finished"])
        async def done(state: Any) -> Any:
            return state.update(finished=True)

        app = self._cycle_app(limit, a, b, c, done)

        async def run() -> int:
            _, _, final = await app.arun(halt_after=["done"])
            return int(final["x"]) if final["finished"] else -1

        return AsyncLoopRun(run, cycle_steps(limit), limit)

    def history(self, limit: int) -> HistoryRun:
        api = self.api

        @api.action(reads=["history"], writes=["history"])
        def record(state: Any) -> Any:
            return state.append(history=len(state["history"]))

        app = (
            api.builder()
            .with_actions(record=record)
            .with_transitions(("record", "record", api.expr("len(history) < limit")))
            .with_state(history=[], limit=limit)
            .with_entrypoint("record")
            .build()
        )
        return HistoryRun(app.step, lambda: len(app.state["history"]))


def load_burr_style(module_name: str) -> BurrStyleApi:
    """Imports the Burr-compatible names from ``module_name`` (raises if unavailable)."""
    module = importlib.import_module(module_name)
    return BurrStyleApi(
        action=module.action,
        builder=module.ApplicationBuilder,
        expr=module.expr,
        default=module.default,
    )


# --------------------------------------------------------------------------------------------
# LangGraph: StateGraph over TypedDict states, conditional edges for the loops, an
# ``operator.add`` reducer for the history list (the usual LangGraph idiom).
# --------------------------------------------------------------------------------------------


class CounterState(TypedDict):
    count: int
    limit: int
    finished: bool


class CycleState(TypedDict):
    x: int
    y: int
    z: int
    limit: int
    finished: bool


class HistoryState(TypedDict):
    history: Annotated[list[int], operator.add]
    limit: int


class LangGraphSystem(System):
    name = LANGGRAPH

    def __init__(self) -> None:
        from langgraph.graph import END, START, StateGraph

        self._state_graph = StateGraph
        self._start = START
        self._end = END
        self._compiled: dict[str, Any] = {}

    def _graph(self, workload: str) -> Any:
        """Graphs do not depend on the run's size, so each is compiled once and reused."""
        if workload not in self._compiled:
            self._compiled[workload] = getattr(self, f"_compile_{workload}")()
        return self._compiled[workload]

    def _compile_self_loop(self) -> Any:
        def count(state: CounterState) -> dict[str, Any]:
            return {"count": bump(state["count"])}

        def done(state: CounterState) -> dict[str, Any]:
            return {"finished": True}

        return self._self_loop_graph(count, done)

    def _compile_async_self_loop(self) -> Any:
        async def count(state: CounterState) -> dict[str, Any]:
            return {"count": bump(state["count"])}

        async def done(state: CounterState) -> dict[str, Any]:
            return {"finished": True}

        return self._self_loop_graph(count, done)

    def _self_loop_graph(self, count: Callable[..., Any], done: Callable[..., Any]) -> Any:
        def route(state: CounterState) -> str:
            return "count" if state["count"] < state["limit"] else "done"

        graph = self._state_graph(CounterState)
        graph.add_node("count", count)
        graph.add_node("done", done)
        graph.add_edge(self._start, "count")
        graph.add_conditional_edges("count", route, ["count", "done"])
        graph.add_edge("done", self._end)
        return graph.compile()

    def _compile_cycle(self) -> Any:
        def a(state: CycleState) -> dict[str, Any]:
            return {"x": bump(state["x"])}

        def b(state: CycleState) -> dict[str, Any]:
            return {"y": mix(state["x"], state["y"])}

        def c(state: CycleState) -> dict[str, Any]:
            return {"z": spread(state["x"], state["y"])}

        def done(state: CycleState) -> dict[str, Any]:
            return {"finished": True}

        return self._cycle_graph(a, b, c, done)

    def _compile_async_cycle(self) -> Any:
        async def a(state: CycleState) -> dict[str, Any]:
            return {"x": bump(state["x"])}

        async def b(state: CycleState) -> dict[str, Any]:
            return {"y": mix(state["x"], state["y"])}

        async def c(state: CycleState) -> dict[str, Any]:
            return {"z": spread(state["x"], state["y"])}

        async def done(state: CycleState) -> dict[str, Any]:
            return {"finished": True}

        return self._cycle_graph(a, b, c, done)

    def _cycle_graph(
        self,
        a: Callable[..., Any],
        b: Callable[..., Any],
        c: Callable[..., Any],
        done: Callable[..., Any],
    ) -> Any:

        def route(state: CycleState) -> str:
            return "a" if state["x"] < state["limit"] else "done"

        graph = self._state_graph(CycleState)
        for name, node in (("a", a), ("b", b), ("c", c), ("done", done)):
            graph.add_node(name, node)
        graph.add_edge(self._start, "a")
        graph.add_edge("a", "b")
        graph.add_edge("b", "c")
        graph.add_conditional_edges("c", route, ["a", "done"])
        graph.add_edge("done", self._end)
        return graph.compile()

    def _compile_history(self) -> Any:
        def record(state: HistoryState) -> dict[str, Any]:
            return {"history": [len(state["history"])]}

        def route(state: HistoryState) -> str:
            return "record" if len(state["history"]) < state["limit"] else self._end

        graph = self._state_graph(HistoryState)
        graph.add_node("record", record)
        graph.add_edge(self._start, "record")
        graph.add_conditional_edges("record", route, ["record", self._end])
        return graph.compile()

    @staticmethod
    def _config(steps: int) -> dict[str, Any]:
        return {"recursion_limit": steps + 10}

    def self_loop(self, limit: int) -> LoopRun:
        graph = self._graph("self_loop")
        steps = self_loop_steps(limit)
        config = self._config(steps)

        def run() -> int:
            final = graph.invoke({"count": 0, "limit": limit, "finished": False}, config)
            return int(final["count"]) if final["finished"] else -1

        return LoopRun(run, steps, limit)

    def cycle(self, limit: int) -> LoopRun:
        graph = self._graph("cycle")
        steps = cycle_steps(limit)
        config = self._config(steps)
        start = {"x": 0, "y": 0, "z": 0, "limit": limit, "finished": False}

        def run() -> int:
            final = graph.invoke(start, config)
            return int(final["x"]) if final["finished"] else -1

        return LoopRun(run, steps, limit)

    def history(self, limit: int) -> HistoryRun:
        graph = self._graph("history")
        # "values" mode yields the whole state after every step, as ``invoke`` does internally.
        chunks: Iterator[dict[str, Any]] = graph.stream(
            {"history": [], "limit": limit}, self._config(limit), stream_mode="values"
        )
        # The first chunk is the input itself, before any node ran.
        latest: dict[str, Any] = next(chunks)

        def step() -> None:
            nonlocal latest
            latest = next(chunks)

        return HistoryRun(step, lambda: len(latest["history"]))

    def async_self_loop(self, limit: int) -> AsyncLoopRun:
        graph = self._graph("async_self_loop")
        steps = self_loop_steps(limit)
        config = self._config(steps)

        async def run() -> int:
            final = await graph.ainvoke({"count": 0, "limit": limit, "finished": False}, config)
            return int(final["count"]) if final["finished"] else -1

        return AsyncLoopRun(run, steps, limit)

    def async_cycle(self, limit: int) -> AsyncLoopRun:
        graph = self._graph("async_cycle")
        steps = cycle_steps(limit)
        config = self._config(steps)
        start = {"x": 0, "y": 0, "z": 0, "limit": limit, "finished": False}

        async def run() -> int:
            final = await graph.ainvoke(start, config)
            return int(final["x"]) if final["finished"] else -1

        return AsyncLoopRun(run, steps, limit)


# --------------------------------------------------------------------------------------------
# Measurement.
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    rounds: int
    steps: int
    history_rounds: int
    history_far: int
    window: int
    gc_enabled: bool


@dataclass
class Samples:
    """Microseconds per step, one value per round."""

    loop: dict[tuple[str, str], list[float]] = field(default_factory=dict)
    async_loop: dict[tuple[str, str], list[float]] = field(default_factory=dict)
    near: dict[str, list[float]] = field(default_factory=dict)
    far: dict[str, list[float]] = field(default_factory=dict)

    def add(self, table: dict[Any, list[float]], key: Any, value: float) -> None:
        table.setdefault(key, []).append(value)


class Timer:
    """Brackets a timed section with the configured garbage-collector policy."""

    def __init__(self, gc_enabled: bool) -> None:
        self.gc_enabled = gc_enabled

    def __enter__(self) -> None:
        gc.collect()
        if not self.gc_enabled:
            gc.disable()

    def __exit__(self, *exc: object) -> None:
        if not self.gc_enabled:
            gc.enable()


def check(system: System, what: str, got: int, expected: int) -> None:
    if got != expected:
        raise RuntimeError(f"{system.name} {what}: expected {expected}, got {got}")


def time_loop(system: System, workload: str, limit: int, timer: Timer) -> float:
    """Builds (untimed), then times one whole run; returns µs per step."""
    prepared: LoopRun = getattr(system, workload)(limit)
    with timer:
        start = time.perf_counter_ns()
        result = prepared.run()
        elapsed = time.perf_counter_ns() - start
    check(system, workload, result, prepared.expected)
    return elapsed / prepared.steps / 1000


def time_async_loop(
    system: System, workload: str, limit: int, timer: Timer, loop: asyncio.AbstractEventLoop
) -> float:
    """Builds (untimed), then times one whole async run inside ``loop``; returns µs per step."""
    prepared: AsyncLoopRun = getattr(system, f"async_{workload}")(limit)

    async def timed() -> tuple[int, int]:
        start = time.perf_counter_ns()
        result = await prepared.run()
        return result, time.perf_counter_ns() - start

    with timer:
        result, elapsed = loop.run_until_complete(timed())
    check(system, f"async {workload}", result, prepared.expected)
    return elapsed / prepared.steps / 1000


def time_history(system: System, far: int, window: int, timer: Timer) -> tuple[float, float]:
    """Steps one at a time, timing ``window`` steps from step 100 and from step ``far``."""
    total = far + window
    prepared = system.history(total)
    step = prepared.step
    done = 0
    per_step: list[float] = []
    for begin in (NEAR_STEP, far):
        for _ in range(begin - done):
            step()
        with timer:
            start = time.perf_counter_ns()
            for _ in range(window):
                step()
            elapsed = time.perf_counter_ns() - start
        per_step.append(elapsed / window / 1000)
        done = begin + window
    check(system, HISTORY, prepared.length(), total)
    return per_step[0], per_step[1]


def rotated(systems: list[System], shift: int) -> list[System]:
    shift %= len(systems)
    return systems[shift:] + systems[:shift]


def loop_limit(workload: str, steps: int) -> int:
    return steps if workload == "self_loop" else max(1, steps // 3)


def measure(systems: list[System], settings: Settings, loop: asyncio.AbstractEventLoop) -> Samples:
    timer = Timer(settings.gc_enabled)
    samples = Samples()
    history_every = max(1, settings.rounds // max(1, settings.history_rounds))
    history_done = 0
    for round_index in range(settings.rounds):
        order = rotated(systems, round_index)
        for workload in LOOP_WORKLOADS:
            limit = loop_limit(workload, settings.steps)
            for system in order:
                value = time_loop(system, workload, limit, timer)
                samples.add(samples.loop, (workload, system.name), value)
        for workload in LOOP_WORKLOADS:
            limit = loop_limit(workload, settings.steps)
            for system in order:
                value = time_async_loop(system, workload, limit, timer, loop)
                samples.add(samples.async_loop, (workload, system.name), value)
        if history_done < settings.history_rounds and round_index % history_every == 0:
            for system in order:
                near, far = time_history(system, settings.history_far, settings.window, timer)
                samples.add(samples.near, system.name, near)
                samples.add(samples.far, system.name, far)
            history_done += 1
        print(f"  round {round_index + 1}/{settings.rounds} done", file=sys.stderr, flush=True)
    return samples


def warm_up(systems: list[System], timer: Timer, loop: asyncio.AbstractEventLoop) -> None:
    """One small untimed pass over everything, so first-call costs stay out of the rounds."""
    for system in systems:
        for workload in LOOP_WORKLOADS:
            time_loop(system, workload, 30, timer)
            time_async_loop(system, workload, 30, timer, loop)
        time_history(system, 2 * NEAR_STEP, 10, timer)


# --------------------------------------------------------------------------------------------
# Reporting.
# --------------------------------------------------------------------------------------------


def median(values: list[float]) -> float:
    return statistics.median(values)


def quartiles(values: list[float]) -> tuple[float, float]:
    if len(values) < 2:
        return values[0], values[0]
    q = statistics.quantiles(values, n=4, method="inclusive")
    return q[0], q[2]


def ratio(value: float, reference: float | None) -> str:
    if reference is None or reference == 0:
        return "n/a"
    factor = value / reference
    digits = 0 if factor >= 100 else 1 if factor >= 10 else 2 if factor >= 0.1 else 3
    return f"{factor:.{digits}f}x"


def loop_table(table: dict[tuple[str, str], list[float]], names: list[str]) -> list[str]:
    """The loop workloads' table, for ``Samples.loop`` or ``Samples.async_loop``."""
    lines = [
        "| workload | system | median µs/step | p25-p75 µs/step | vs plain loop | vs turnout |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for workload in LOOP_WORKLOADS:
        plain = median(table[(workload, PLAIN)])
        turnout_values = table.get((workload, TURNOUT))
        turnout = median(turnout_values) if turnout_values else None
        for name in names:
            values = table[(workload, name)]
            value = median(values)
            low, high = quartiles(values)
            lines.append(
                f"| {workload} | {name} | {value:.2f} | {low:.2f}-{high:.2f} "
                f"| {ratio(value, plain)} | {ratio(value, turnout)} |"
            )
    return lines


def history_table(samples: Samples, names: list[str], settings: Settings) -> list[str]:
    far = f"{settings.history_far:,}"
    lines = [
        f"| system | µs/step @ {NEAR_STEP} | µs/step @ {far} | ratio {far} / {NEAR_STEP} "
        f"| @ {far} vs plain loop |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    plain_far = median(samples.far[PLAIN])
    for name in names:
        near = median(samples.near[name])
        far_value = median(samples.far[name])
        lines.append(
            f"| {name} | {near:.2f} | {far_value:.2f} | {ratio(far_value, near)} "
            f"| {ratio(far_value, plain_far)} |"
        )
    return lines


def loop_summary(
    table: dict[tuple[str, str], list[float]], names: list[str]
) -> dict[str, dict[str, dict[str, Any]]]:
    return {
        workload: {
            name: {
                "median_us_per_step": median(table[(workload, name)]),
                "samples_us_per_step": table[(workload, name)],
            }
            for name in names
        }
        for workload in LOOP_WORKLOADS
    }


def summary(samples: Samples, names: list[str]) -> dict[str, Any]:
    history = {
        name: {
            "near_median_us_per_step": median(samples.near[name]),
            "far_median_us_per_step": median(samples.far[name]),
            "far_over_near": median(samples.far[name]) / median(samples.near[name]),
            "near_samples_us_per_step": samples.near[name],
            "far_samples_us_per_step": samples.far[name],
        }
        for name in names
    }
    return {
        "loop": loop_summary(samples.loop, names),
        "async_loop": loop_summary(samples.async_loop, names),
        HISTORY: history,
    }


def package_version(distribution: str, module_name: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        pass
    module = sys.modules.get(module_name)
    if module is None:
        return None
    return str(getattr(module, "__version__", "unknown (not installed as a distribution)"))


# --------------------------------------------------------------------------------------------
# Entry point.
# --------------------------------------------------------------------------------------------


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Microseconds per step: plain loop vs turnout vs Burr vs LangGraph.",
    )
    parser.add_argument("--rounds", type=int, help="interleaved rounds (default 25, quick 3)")
    parser.add_argument(
        "--steps", type=int, help="steps per run of the loop workloads (default 1000, quick 200)"
    )
    parser.add_argument(
        "--history-rounds",
        type=int,
        help="rounds that also run the history workload (default 7, quick 2)",
    )
    parser.add_argument(
        "--history-far",
        type=int,
        help="step at which the late history window starts (default 10000, quick 2000)",
    )
    parser.add_argument(
        "--window",
        type=int,
        default=None,
        help="steps per timed history window (default 300, quick 100)",
    )
    parser.add_argument("--quick", action="store_true", help="small smoke run (under 20 s)")
    parser.add_argument(
        "--no-gc",
        action="store_true",
        help="disable the garbage collector inside timed sections (for every system)",
    )
    parser.add_argument(
        "--only",
        action="append",
        choices=[TURNOUT, BURR, LANGGRAPH],
        help="measure only these frameworks (repeatable; the plain loop always runs)",
    )
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    return parser.parse_args(argv)


def settings_from(args: argparse.Namespace) -> Settings:
    quick = args.quick

    def pick(value: int | None, full: int, small: int) -> int:
        return value if value is not None else (small if quick else full)

    settings = Settings(
        rounds=pick(args.rounds, 25, 3),
        steps=pick(args.steps, 1000, 200),
        history_rounds=pick(args.history_rounds, 7, 2),
        history_far=pick(args.history_far, 10_000, 2_000),
        window=pick(args.window, 300, 100),
        gc_enabled=not args.no_gc,
    )
    if settings.rounds < 1 or settings.steps < 3 or settings.window < 1:
        raise SystemExit("--rounds must be >= 1, --steps >= 3, --window >= 1")
    if settings.history_far < NEAR_STEP + settings.window:
        raise SystemExit(f"--history-far must be at least {NEAR_STEP} + --window")
    return settings


def load_systems(wanted: list[str] | None) -> tuple[list[System], list[str]]:
    systems: list[System] = [PlainLoop()]
    notes: list[str] = []
    candidates: list[tuple[str, Callable[[], System]]] = [
        (TURNOUT, lambda: BurrStyle(TURNOUT, load_burr_style("turnout"))),
        (BURR, lambda: BurrStyle(BURR, load_burr_style("burr.core"))),
        (LANGGRAPH, LangGraphSystem),
    ]
    for name, load in candidates:
        if wanted and name not in wanted:
            continue
        try:
            systems.append(load())
        except (ImportError, AttributeError) as error:
            notes.append(f"{name}: skipped, not importable ({type(error).__name__}: {error})")
    return systems, notes


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    settings = settings_from(args)
    systems, notes = load_systems(args.only)
    names = [system.name for system in systems]
    timer = Timer(settings.gc_enabled)

    started = time.perf_counter()
    # One event loop for every async run of every system, created before the heap is frozen.
    loop = asyncio.new_event_loop()
    try:
        warm_up(systems, timer, loop)
        gc.collect()
        gc.freeze()
        samples = measure(systems, settings, loop)
    finally:
        loop.close()
    wall = time.perf_counter() - started

    versions = {
        "python": platform.python_version(),
        TURNOUT: package_version("turnout", "turnout"),
        BURR: package_version("apache-burr", "burr"),
        LANGGRAPH: package_version("langgraph", "langgraph"),
    }
    command = shlex.join([sys.executable, *sys.argv])
    gc_note = "disabled in timed sections" if not settings.gc_enabled else "enabled (frozen heap)"

    out = [
        "# Step overhead",
        "",
        f"- command: `{command}`",
        f"- python: {versions['python']} ({platform.python_implementation()}, "
        f"{platform.machine()}, {platform.system()})",
        *(f"- {name}: {versions[name] or 'not installed'}" for name in (TURNOUT, BURR, LANGGRAPH)),
        f"- rounds: {settings.rounds} (history: {settings.history_rounds}), "
        f"loop steps per run: {settings.steps}, history window: {settings.window} steps, "
        f"gc: {gc_note}, wall time: {wall:.1f} s",
        *(f"- note: {note}" for note in notes),
        "",
        "## Loop workloads (median over rounds)",
        "",
        *loop_table(samples.loop, names),
        "",
        "## Async loop workloads (median over rounds)",
        "",
        "The same workloads with `async def` actions, driven by `await app.arun(...)` (turnout,"
        " Burr) and `await graph.ainvoke(...)` (LangGraph); the plain loop is an `async def`"
        " loop awaiting one coroutine per step.",
        "",
        *loop_table(samples.async_loop, names),
        "",
        f"## Growing history: per-step time near step {NEAR_STEP} and near step "
        f"{settings.history_far:,}",
        "",
        *history_table(samples, names, settings),
    ]
    print("\n".join(out))

    if args.json:
        document = {
            "command": command,
            "versions": versions,
            "settings": settings.__dict__,
            "notes": notes,
            "wall_seconds": wall,
            "results": summary(samples, names),
        }
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(document, handle, indent=2)
            handle.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
