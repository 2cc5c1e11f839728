"""Parallel actions (``MapStates``, ``MapActions``, ``MapActionsAndStates``,
``TaskBasedParallelAction``) and spawned sub-applications: each form sync and async, executors
(threads, a process pool), child ids unique per parent invocation, tracker links, persistence and
resume without re-running finished children, failing children, retries, the Burr alias module."""

from __future__ import annotations

import asyncio
import multiprocessing
import pickle
import threading
import uuid
from collections.abc import AsyncIterator, Iterable, Iterator
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from turnout import (
    ApplicationBuilder,
    ApplicationContext,
    GraphBuilder,
    RetryPolicy,
    State,
    streaming_action,
)
from turnout import action as action_decorator
from turnout.core.errors import AsyncRequiredError, GraphSetupError
from turnout.core.parallel import (
    ChildApplicationError,
    MapActions,
    MapActionsAndStates,
    MapStates,
    RunnableGraph,
    SubGraphTask,
    TaskBasedParallelAction,
)
from turnout.core.sqlite import SQLitePersister
from turnout.core.tracking import LocalTracker, read_log

# -- child actions (module-level: a process pool pickles them by reference) -------------------

_RUNS: dict[str, int] = {}
_RUNS_LOCK = threading.Lock()


def _count(key: str) -> None:
    with _RUNS_LOCK:
        _RUNS[key] = _RUNS.get(key, 0) + 1


@pytest.fixture(autouse=True)
def _fresh_counts() -> Iterator[None]:
    _RUNS.clear()
    _FAIL.clear()
    yield
    _RUNS.clear()
    _FAIL.clear()


_FAIL: set[float] = set()  # items whose child raises (while they are in the set)


@action_decorator(reads=["item"], writes=["out"])
def square(state: State) -> State:
    _count(f"square:{state['item']}")
    if state["item"] in _FAIL:
        raise RuntimeError(f"item {state['item']} failed")
    return state.update(out=state["item"] ** 2)


@action_decorator(reads=["item"], writes=["out"])
def negate(state: State) -> State:
    _count(f"negate:{state['item']}")
    return state.update(out=-state["item"])


@action_decorator(reads=["item"], writes=["out"])
async def asquare(state: State) -> State:
    await asyncio.sleep(0)
    _count(f"asquare:{state['item']}")
    if state["item"] in _FAIL:
        raise RuntimeError(f"item {state['item']} failed")
    return state.update(out=state["item"] ** 2)


@action_decorator(reads=["item"], writes=["out"])
def cube_in_file(state: State, counts_dir: str) -> State:
    """Counts its runs in a file: visible across processes."""
    path = Path(counts_dir) / f"cube-{state['item']}"
    with open(path, "a") as handle:
        handle.write("x")
    return state.update(out=state["item"] ** 3)


@action_decorator(reads=["item"], writes=["half"])
def halve(state: State) -> State:
    _count(f"halve:{state['item']}")
    return state.update(half=state["item"] / 2)


@action_decorator(reads=["half"], writes=["out"])
def plus_one(state: State) -> State:
    _count(f"plus_one:{state['half']}")
    if state["half"] in _FAIL:
        raise RuntimeError(f"half {state['half']} failed")
    return state.update(out=state["half"] + 1)


@action_decorator(reads=["who"], writes=["seen"])
def remember_id(state: State, __context: ApplicationContext) -> State:
    return state.update(seen=__context.app_id)


@streaming_action(reads=["item"], writes=["out"])
def spell(state: State) -> Iterator[Any]:
    _count(f"spell:{state['item']}")
    if state["item"] in _FAIL:
        raise RuntimeError(f"item {state['item']} failed")
    text = ""
    for char in str(state["item"]):
        text += char
        yield {"delta": char}
    yield {"text": text}, state.update(out=text)


@streaming_action(reads=["item"], writes=["out"])
async def aspell(state: State) -> AsyncIterator[Any]:
    _count(f"aspell:{state['item']}")
    if state["item"] in _FAIL:
        raise RuntimeError(f"item {state['item']} failed")
    text = ""
    for char in str(state["item"]):
        await asyncio.sleep(0)
        text += char
        yield {"delta": char}
    yield {"text": text}, state.update(out=text)


# -- parallel actions ---------------------------------------------------------------------------


class SquareAll(MapStates):
    """Squares each of ``items`` in its own child; ``total`` is the sum, ``outs`` in order."""

    def __init__(
        self, child: Any = square, items_key: str = "items", *, stream: bool = False
    ) -> None:
        super().__init__(stream=stream)
        self._child = child
        self._key = items_key

    @property
    def reads(self) -> list[str]:
        return [self._key]

    @property
    def writes(self) -> list[str]:
        return ["total", "outs"]

    def action(self, state: State, inputs: dict[str, Any]) -> Any:
        return self._child.bind(**inputs) if inputs else self._child

    def states(
        self, state: State, context: ApplicationContext, inputs: dict[str, Any]
    ) -> Iterable[State]:
        for item in state[self._key]:
            yield State({"item": item})

    def reduce(self, state: State, states: Iterable[State]) -> State:
        outs = [s["out"] for s in states]
        return state.update(total=sum(outs), outs=outs)


class _AsyncStates(SquareAll):
    """``states`` as an async generator: the async forms put it first in their bases."""

    async def states(  # type: ignore[override]
        self, state: State, context: ApplicationContext, inputs: dict[str, Any]
    ) -> AsyncIterator[State]:
        for item in state[self._key]:
            yield State({"item": item})


class ASquareAll(_AsyncStates):
    """The async form: an async generator of states, async children."""

    def __init__(self) -> None:
        super().__init__(child=asquare)


class Spelled(SquareAll):
    """Children that stream: each spells its item."""

    def __init__(self, *, stream: bool = False) -> None:
        super().__init__(child=spell, stream=stream)

    def reduce(self, state: State, states: Iterable[State]) -> State:
        return state.update(total=0, outs=[s["out"] for s in states])


class ASpelled(_AsyncStates, Spelled):
    def __init__(self, *, stream: bool = False) -> None:
        SquareAll.__init__(self, child=aspell, stream=stream)


class _SquareAndNegate:
    """The children ``square`` and ``negate``; ``outs`` in order."""

    @property
    def writes(self) -> list[str]:
        return ["outs"]

    def actions(
        self, state: State, context: ApplicationContext, inputs: dict[str, Any]
    ) -> Iterable[Any]:
        return [square, negate]

    def reduce(self, state: State, states: Iterable[State]) -> State:
        return state.update(outs=[s["out"] for s in states])


class BothWays(_SquareAndNegate, MapActions):
    @property
    def reads(self) -> list[str]:
        return ["x"]

    def state(self, state: State, inputs: dict[str, Any]) -> State:
        return State({"item": state["x"]})


class ABothWays(BothWays):
    async def actions(  # type: ignore[override]
        self, state: State, context: ApplicationContext, inputs: dict[str, Any]
    ) -> AsyncIterator[Any]:
        yield asquare
        yield negate


class Grid(_SquareAndNegate, MapActionsAndStates):
    @property
    def reads(self) -> list[str]:
        return ["items"]

    def states(
        self, state: State, context: ApplicationContext, inputs: dict[str, Any]
    ) -> Iterable[State]:
        return [State({"item": i}) for i in state["items"]]


TWO_STEPS = RunnableGraph(
    graph=GraphBuilder()
    .with_actions(halve, plus_one)
    .with_transitions(("halve", "plus_one"))
    .build(),
    entrypoint="halve",
    halt_after=["plus_one"],
)


class HalfPlusOne(TaskBasedParallelAction):
    """Each child runs a two-action graph, tracked by the parent's tracker or, with
    ``persist_children``, saved to and resumed from the parent's persister."""

    graph = TWO_STEPS
    persist_children = False

    @property
    def reads(self) -> list[str]:
        return ["items"]

    @property
    def writes(self) -> list[str]:
        return ["outs"]

    def tasks(
        self, state: State, context: ApplicationContext, inputs: dict[str, Any]
    ) -> Iterable[SubGraphTask]:
        persisted = {
            "state_persister": context.state_persister,
            "state_initializer": context.state_persister,
        }
        for index, item in enumerate(state["items"]):
            yield SubGraphTask(
                graph=self.graph,
                inputs=inputs,
                state=State({"item": item}),
                application_id=self.child_app_id(context, index),
                **(persisted if self.persist_children else {"tracker": context.tracker}),
            )

    def reduce(self, state: State, states: Iterable[State]) -> State:
        return state.update(outs=[s["out"] for s in states])


class AHalfPlusOne(HalfPlusOne):
    async def tasks(  # type: ignore[override]
        self, state: State, context: ApplicationContext, inputs: dict[str, Any]
    ) -> AsyncIterator[SubGraphTask]:
        for task in super().tasks(state, context, inputs):
            yield task


def _app(fan: Any, *, app_id: str | None = None, **state: Any) -> ApplicationBuilder:
    builder = (
        ApplicationBuilder()
        .with_actions(fan=fan)
        .with_transitions(("fan", "fan"))
        .with_state(**state)
        .with_entrypoint("fan")
    )
    if app_id is not None:
        builder.with_identifiers(app_id=app_id)
    return builder


# -- the four forms, sync and async -------------------------------------------------------------


def test_map_states_runs_one_child_per_state_and_reduces_in_order() -> None:
    app = _app(SquareAll(), items=[1, 2, 3, 4]).build()
    _, _, state = app.step()  # type: ignore[misc]
    assert state["outs"] == [1, 4, 9, 16]
    assert state["total"] == 30
    assert {f"square:{i}": 1 for i in (1, 2, 3, 4)} == _RUNS


def test_map_states_async_gathers_async_children() -> None:
    fan = ASquareAll()
    assert fan.is_async()
    app = _app(fan, items=[1, 2, 3]).build()
    _, _, state = asyncio.run(app.astep())  # type: ignore[misc]
    assert state["outs"] == [1, 4, 9]
    assert _RUNS == {"asquare:1": 1, "asquare:2": 1, "asquare:3": 1}


def test_map_states_passes_the_parent_inputs_to_the_children(tmp_path: Path) -> None:
    class Cubes(SquareAll):
        @property
        def inputs(self) -> list[str]:
            return ["__context", "counts_dir"]

    app = _app(Cubes(child=cube_in_file), items=[2, 3]).build()
    _, _, state = app.step(inputs={"counts_dir": str(tmp_path)})  # type: ignore[misc]
    assert state["outs"] == [8, 27]


def test_map_actions_runs_each_action_on_one_state() -> None:
    app = _app(BothWays(), x=3).build()
    _, _, state = app.step()  # type: ignore[misc]
    assert state["outs"] == [9, -3]


def test_map_actions_async() -> None:
    app = _app(ABothWays(), x=3).build()
    _, _, state = asyncio.run(app.astep())  # type: ignore[misc]
    assert state["outs"] == [9, -3]


def test_map_actions_and_states_runs_the_product_actions_outer() -> None:
    app = _app(Grid(), items=[1, 2, 3]).build()
    _, _, state = app.step()  # type: ignore[misc]
    assert state["outs"] == [1, 4, 9, -1, -2, -3]


def test_task_based_action_runs_multi_step_subgraphs() -> None:
    app = _app(HalfPlusOne(), items=[2, 4]).build()
    _, _, state = app.step()  # type: ignore[misc]
    assert state["outs"] == [2.0, 3.0]
    assert _RUNS == {"halve:2": 1, "halve:4": 1, "plus_one:1.0": 1, "plus_one:2.0": 1}


def test_task_based_action_async() -> None:
    app = _app(AHalfPlusOne(), items=[2, 4]).build()
    _, _, state = asyncio.run(app.astep())  # type: ignore[misc]
    assert state["outs"] == [2.0, 3.0]


def test_runnable_graph_create_wraps_one_action() -> None:
    graph = RunnableGraph.create(square)
    assert (graph.entrypoint, graph.halt_after) == ("square", ["square"])
    assert RunnableGraph.create(graph) is graph


# -- executors ----------------------------------------------------------------------------------


def test_the_executor_factory_is_called_per_step_and_its_executor_shut_down() -> None:
    made: list[ThreadPoolExecutor] = []

    def factory() -> Executor:
        made.append(ThreadPoolExecutor(max_workers=1))
        return made[-1]

    app = _app(SquareAll(), items=[1, 2]).with_parallel_executor(factory).build()
    app.step()
    app.step()
    assert len(made) == 2
    assert all(executor._shutdown for executor in made)


def test_with_parallel_executor_refuses_an_executor_instead_of_a_factory() -> None:
    builder = _app(SquareAll(), items=[1])
    with (
        ThreadPoolExecutor() as executor,
        pytest.raises(GraphSetupError, match=r"with_parallel_executor\(lambda: Thread"),
    ):
        builder.with_parallel_executor(executor).build()  # type: ignore[arg-type]


def test_an_executor_class_is_a_valid_factory() -> None:
    app = _app(SquareAll(), items=[1, 2, 3]).with_parallel_executor(ThreadPoolExecutor).build()
    app.step()
    assert (app.state["outs"], app.state["total"]) == ([1, 4, 9], 14)


def test_the_context_exposes_the_executor_factory_tracker_and_persister(tmp_path: Path) -> None:
    tracker = LocalTracker("p", tmp_path)
    persister = SQLitePersister(tmp_path / "db.sqlite")

    def factory() -> Executor:
        return ThreadPoolExecutor(max_workers=1)

    seen: list[ApplicationContext] = []

    @action_decorator(reads=[], writes=[])
    def look(state: State, __context: ApplicationContext) -> State:
        seen.append(__context)
        return state

    app = (
        ApplicationBuilder()
        .with_actions(look)
        .with_transitions(("look", "look"))
        .with_entrypoint("look")
        .with_tracker(tracker)
        .with_state_persister(persister)
        .with_parallel_executor(factory)
        .build()
    )
    app.step()
    context = seen[0]
    assert context.tracker is tracker
    assert context.state_persister is persister
    assert context.parallel_executor_factory is factory
    assert context.state_initializer is None
    persister.close()


def test_state_pickles_with_grown_lists() -> None:
    state = State({"a": 1}).append(xs=1).append(xs=2).extend(ys=[3, 4])
    copy = pickle.loads(pickle.dumps(state))
    assert copy == state
    assert copy.append(xs=3)["xs"] == [1, 2, 3]
    assert state["xs"] == [1, 2]


def test_children_run_in_a_spawned_process_pool_with_a_tracker(tmp_path: Path) -> None:
    """State, actions and the LocalTracker cross the process boundary."""

    class Cubes(SquareAll):
        @property
        def inputs(self) -> list[str]:
            return ["__context", "counts_dir"]

    context = multiprocessing.get_context("spawn")
    tracker = LocalTracker("proc", tmp_path / "track")
    app = (
        _app(Cubes(child=cube_in_file), app_id="parent", items=[1, 2, 3])
        .with_tracker(tracker)
        .with_parallel_executor(lambda: ProcessPoolExecutor(max_workers=2, mp_context=context))
        .build()
    )
    counts = tmp_path / "counts"
    counts.mkdir()
    _, _, state = app.step(inputs={"counts_dir": str(counts)})  # type: ignore[misc]
    assert state["outs"] == [1, 8, 27]
    assert sorted(p.name for p in counts.iterdir()) == ["cube-1", "cube-2", "cube-3"]
    spawned = [r for r in read_log(tracker.log_path("parent")) if r["t"] == "child"]
    assert len(spawned) == 3
    for record in spawned:
        child_log = list(read_log(tracker.log_path(record["child_app_id"])))
        assert [r["t"] for r in child_log][:4] == ["format", "app", "begin", "end"]


def test_a_child_that_cannot_be_pickled_names_the_fix(tmp_path: Path) -> None:
    @action_decorator(reads=["item"], writes=["out"])
    def local_action(state: State) -> State:  # a local function: not picklable by reference
        return state.update(out=1)

    context = multiprocessing.get_context("spawn")
    app = (
        _app(SquareAll(child=local_action), items=[1])
        .with_parallel_executor(lambda: ProcessPoolExecutor(max_workers=1, mp_context=context))
        .build()
    )
    with pytest.raises(ChildApplicationError, match="module-level"):
        app.step()


# -- identity and tracking ----------------------------------------------------------------------


class SeeIds(MapStates):
    @property
    def reads(self) -> list[str]:
        return []

    @property
    def writes(self) -> list[str]:
        return ["ids"]

    def action(self, state: State, inputs: dict[str, Any]) -> Any:
        return remember_id

    def states(
        self, state: State, context: ApplicationContext, inputs: dict[str, Any]
    ) -> Iterable[State]:
        return [State({"who": i}) for i in range(3)]

    def reduce(self, state: State, states: Iterable[State]) -> State:
        return state.update(ids=[s["seen"] for s in states])


def test_child_app_ids_are_unique_per_parent_invocation_and_stable() -> None:
    app = _app(SeeIds(), app_id="p-1").build()
    _, _, first = app.step()  # type: ignore[misc]
    _, _, second = app.step()  # type: ignore[misc]
    assert len(set(first["ids"]) | set(second["ids"])) == 6
    again = _app(SeeIds(), app_id="p-1").build()
    _, _, replay = again.step()  # type: ignore[misc]
    assert replay["ids"] == first["ids"]  # same app id, same step: same children
    for ids in (first["ids"], second["ids"]):
        assert all(uuid.UUID(i).version == 5 for i in ids)


def test_the_tracker_links_children_to_the_parent_step(tmp_path: Path) -> None:
    tracker = LocalTracker("links", tmp_path)
    app = (
        _app(SeeIds(), app_id="parent")
        .with_identifiers(partition_key="user-1")
        .with_tracker(tracker)
        .build()
    )
    app.step()
    app.step()
    children = [r for r in read_log(tracker.log_path("parent")) if r["t"] == "child"]
    assert [(r["kind"], r["seq"]) for r in children] == [("spawn", 0)] * 3 + [("spawn", 1)] * 3
    assert {r["child_partition_key"] for r in children} == {"user-1"}
    for record in children:
        line = next(
            r for r in read_log(tracker.log_path(record["child_app_id"])) if r["t"] == "app"
        )
        assert line["spawning_parent"] == {
            "app_id": "parent",
            "partition_key": "user-1",
            "sequence_id": record["seq"],
        }
        assert line["partition_key"] == "user-1"
        assert line["parent"] is None


def test_an_action_can_spawn_a_sub_application_by_hand(tmp_path: Path) -> None:
    """The recursion recipe: build a child with with_spawning_parent inside an action."""
    tracker = LocalTracker("recursion", tmp_path)

    @action_decorator(reads=["depth"], writes=["depth", "child_ids"])
    def recurse(state: State, __context: ApplicationContext) -> State:
        ids: list[str] = []
        if state["depth"] > 0:
            child = (
                ApplicationBuilder()
                .with_actions(recurse)
                .with_transitions(("recurse", "recurse"))
                .with_state(depth=state["depth"] - 1, child_ids=[])
                .with_entrypoint("recurse")
                .with_identifiers(
                    app_id=f"{__context.app_id}.{__context.sequence_id}",
                    partition_key=__context.partition_key,
                )
                .with_spawning_parent(
                    __context.app_id, __context.sequence_id, __context.partition_key
                )
                .with_tracker(__context.tracker)
                .build()
            )
            _, _, final = child.run(halt_after=["recurse"])
            ids = [child.uid, *final["child_ids"]]
            assert child.spawning_parent_pointer is not None
            assert child.spawning_parent_pointer.app_id == __context.app_id
        return state.update(child_ids=ids)

    app = (
        ApplicationBuilder()
        .with_actions(recurse)
        .with_transitions(("recurse", "recurse"))
        .with_state(depth=2, child_ids=[])
        .with_entrypoint("recurse")
        .with_identifiers(app_id="root")
        .with_tracker(tracker)
        .build()
    )
    assert app.spawning_parent_pointer is None
    _, _, state = app.step()  # type: ignore[misc]
    assert state["child_ids"] == ["root.0", "root.0.0"]
    spawned = [r for r in read_log(tracker.log_path("root.0")) if r["t"] == "child"]
    assert [(r["kind"], r["child_app_id"]) for r in spawned] == [("spawn", "root.0.0")]


# -- failures, retries, persistence and resume --------------------------------------------------


def test_a_failing_child_fails_the_step_naming_the_child() -> None:
    _FAIL.add(2)
    app = _app(SquareAll(), app_id="p", items=[1, 2, 3]).build()
    with pytest.raises(ChildApplicationError, match=r"child 1 \(app id '[0-9a-f-]+'\)") as info:
        app.step()
    error = info.value
    assert [index for index, _, _ in error.failures] == [1]
    assert isinstance(error.__cause__, RuntimeError)
    assert error.failures[0][1] == SquareAll().child_app_id(
        ApplicationContext(app_id="p", partition_key=None, sequence_id=0, action_name="fan"), 1
    )
    assert _RUNS == {"square:1": 1, "square:2": 1, "square:3": 1}  # the others still ran


def test_async_children_of_a_sync_parallel_action_raise_the_fix_directly() -> None:
    """A setup mistake, not a child failure: not wrapped, so retries do not repeat it."""
    app = _app(SquareAll(child=asquare), items=[1]).build()
    with pytest.raises(AsyncRequiredError, match="make the parallel action async"):
        app.step()


def test_async_children_of_a_sync_parallel_action_run_under_astep() -> None:
    app = _app(SquareAll(child=asquare), items=[1, 2]).build()
    _, _, state = asyncio.run(app.astep())  # type: ignore[misc]
    assert state["outs"] == [1, 4]


def test_several_failures_are_all_listed() -> None:
    _FAIL.update({1, 3})
    app = _app(SquareAll(), items=[1, 2, 3]).build()
    with pytest.raises(ChildApplicationError, match="2 of 3 children failed") as info:
        app.step()
    assert [index for index, _, _ in info.value.failures] == [0, 2]


def test_a_retry_of_the_parent_reruns_only_the_unfinished_children() -> None:
    class Retried(SquareAll):
        retry = RetryPolicy(max_attempts=2, initial_delay=0, jitter=0)

    _FAIL.add(2)

    def heal(**payload: Any) -> None:
        if payload["exception"] is not None:
            _FAIL.clear()

    class Healer:
        def post_run_step(self, **payload: Any) -> None:
            heal(**payload)

    app = _app(Retried(), items=[1, 2, 3]).with_hooks(Healer()).build()
    _, _, state = app.step()  # type: ignore[misc]
    assert state["outs"] == [1, 4, 9]
    assert _RUNS == {"square:1": 1, "square:2": 2, "square:3": 1}


def test_async_retry_reruns_only_the_unfinished_children() -> None:
    class Retried(ASquareAll):
        retry = RetryPolicy(max_attempts=2, initial_delay=0, jitter=0)

    class Healer:
        def post_run_step(self, **payload: Any) -> None:
            _FAIL.clear()

    _FAIL.add(1)
    app = _app(Retried(), items=[1, 2]).with_hooks(Healer()).build()
    _, _, state = asyncio.run(app.astep())  # type: ignore[misc]
    assert state["outs"] == [1, 4]
    assert _RUNS == {"asquare:1": 2, "asquare:2": 1}


def _persisted_app(fan: Any, db: Path, **state: Any) -> tuple[ApplicationBuilder, SQLitePersister]:
    persister = SQLitePersister(db)
    builder = (
        ApplicationBuilder()
        .with_actions(fan=fan)
        .with_transitions(("fan", "fan"))
        .with_identifiers(app_id="parent", partition_key="pk")
        .with_state_persister(persister)
        .initialize_from(persister, default_state=state, default_entrypoint="fan")
    )
    return builder, persister


def test_resume_after_a_failed_child_does_not_rerun_finished_children(tmp_path: Path) -> None:
    db = tmp_path / "db.sqlite"
    _FAIL.add(3)
    builder, persister = _persisted_app(SquareAll(), db, items=[1, 2, 3, 4])
    app = builder.build()
    with pytest.raises(ChildApplicationError):
        app.step()
    persister.close()
    assert {f"square:{i}": 1 for i in (1, 2, 3, 4)} == _RUNS
    # Each finished child is saved under its own id, in the parent's partition.
    first_step = ApplicationContext(
        app_id="parent", partition_key="pk", sequence_id=0, action_name="fan"
    )
    ids = [SquareAll().child_app_id(first_step, i) for i in range(4)]
    fresh = SQLitePersister(db)
    assert [fresh.load("pk", i) is not None for i in ids] == [True, True, True, True]
    assert fresh.load("pk", ids[2])["status"] == "failed"  # type: ignore[index]
    fresh.close()

    _FAIL.clear()  # the "crash" is over: resume the parent, which reruns its failed step
    builder, persister = _persisted_app(SquareAll(), db, items=[1, 2, 3, 4])
    resumed = builder.build()
    _, _, state = resumed.step()  # type: ignore[misc]
    persister.close()
    assert state["outs"] == [1, 4, 9, 16]
    assert _RUNS == {"square:1": 1, "square:2": 1, "square:3": 2, "square:4": 1}


def test_async_resume_does_not_rerun_finished_children(tmp_path: Path) -> None:
    db = tmp_path / "db.sqlite"
    _FAIL.add(1)
    builder, persister = _persisted_app(ASquareAll(), db, items=[1, 2])

    async def first() -> None:
        app = await builder.abuild()
        with pytest.raises(ChildApplicationError):
            await app.astep()

    asyncio.run(first())
    persister.close()
    _FAIL.clear()
    builder, persister = _persisted_app(ASquareAll(), db, items=[1, 2])

    async def second() -> State:
        app = await builder.abuild()
        _, _, state = await app.astep()  # type: ignore[misc]
        return state

    assert asyncio.run(second())["outs"] == [1, 4]
    persister.close()
    assert _RUNS == {"asquare:1": 2, "asquare:2": 1}


def test_a_later_step_never_reuses_an_earlier_steps_children(tmp_path: Path) -> None:
    """apache/burr#761: the second invocation must run, not replay the first's children."""
    db = tmp_path / "db.sqlite"
    builder, persister = _persisted_app(SquareAll(), db, items=[1, 2])
    app = builder.build()
    app.step()
    app.update_state(app.state.update(items=[5, 6]))
    _, _, state = app.step()  # type: ignore[misc]
    persister.close()
    assert state["outs"] == [25, 36]


def test_a_multi_step_child_resumes_where_it_stopped(tmp_path: Path) -> None:
    """A child that finished its first action before the crash runs only the second one."""
    db = tmp_path / "db.sqlite"

    class Flaky(HalfPlusOne):
        persist_children = True

    _FAIL.add(2.0)  # the second action fails for item 4 (half 2.0)
    builder, persister = _persisted_app(Flaky(), db, items=[4])
    with pytest.raises(ChildApplicationError):
        builder.build().step()
    persister.close()
    _FAIL.clear()
    builder, persister = _persisted_app(Flaky(), db, items=[4])
    _, _, state = builder.build().step()  # type: ignore[misc]
    persister.close()
    assert state["outs"] == [3.0]
    assert _RUNS == {"halve:4": 1, "plus_one:2.0": 2}  # the first action was not run again


def test_an_on_exception_route_back_reuses_the_finished_children(tmp_path: Path) -> None:
    from turnout import on_exception

    db = tmp_path / "db.sqlite"
    persister = SQLitePersister(db)
    _FAIL.add(2)

    class Healer:
        def post_run_step(self, **payload: Any) -> None:
            _FAIL.clear()

    app = (
        ApplicationBuilder()
        .with_actions(fan=SquareAll())
        .with_transitions(("fan", "fan", on_exception(ChildApplicationError)), ("fan", "fan"))
        .with_state(items=[1, 2, 3])
        .with_entrypoint("fan")
        .with_identifiers(app_id="routed")
        .with_state_persister(persister)
        .with_hooks(Healer())
        .build()
    )
    app.step()  # fails, routed back to itself with the error in the state
    _, _, state = app.step()  # type: ignore[misc]
    persister.close()
    assert state["outs"] == [1, 4, 9]
    assert _RUNS == {"square:1": 1, "square:2": 2, "square:3": 1}


def test_two_tasks_with_one_app_id_are_refused() -> None:
    class Twice(HalfPlusOne):
        def child_app_id(self, context: ApplicationContext, index: int) -> str:
            return "same"

    app = _app(Twice(), items=[2, 4]).build()
    with pytest.raises(ValueError, match="share the app id 'same'"):
        app.step()


def test_children_can_opt_out_of_the_parents_tracker(tmp_path: Path) -> None:
    class Untracked(SquareAll):
        def tracker(self, context: ApplicationContext) -> Any:  # turnout's form: by keyword
            return None

    tracker = LocalTracker("opt-out", tmp_path)
    app = _app(Untracked(), app_id="alone", items=[1, 2]).with_tracker(tracker).build()
    app.step()
    assert sorted(p.name for p in tracker.project_dir.iterdir()) == ["alone"]
    assert [r for r in read_log(tracker.log_path("alone")) if r["t"] == "child"] == []


@pytest.mark.parametrize(
    "form", ["keywords", "context", "bare"], ids=["burr-kwargs", "context", "no-arguments"]
)
def test_behaviour_overrides_may_take_burrs_keywords_or_context_or_nothing(form: str) -> None:
    seen: list[Any] = []

    class KwargsForm(SquareAll):
        def tracker(self, **kwargs: Any) -> Any:
            seen.append(kwargs["context"])
            return None

        def state_persister(self, **kwargs: Any) -> Any:
            seen.append(kwargs["context"])
            return None

        def state_initializer(self, **kwargs: Any) -> Any:
            seen.append(kwargs["context"])
            return None

    class ContextForm(SquareAll):
        def tracker(self, context: ApplicationContext) -> Any:  # type: ignore[override]
            seen.append(context)
            return None

    class BareForm(SquareAll):
        def tracker(self) -> Any:  # type: ignore[override]
            seen.append(None)
            return None

    fan = {"keywords": KwargsForm, "context": ContextForm, "bare": BareForm}[form]()
    _, _, state = _app(fan, items=[1, 2]).build().step()  # type: ignore[misc]
    assert state["outs"] == [1, 4]
    assert seen
    assert all(c is None if form == "bare" else c.action_name == "fan" for c in seen)


def test_an_async_reduce_iterates_the_states_with_async_for() -> None:
    """Burr hands an async action's reduce an async generator; a plain ``for`` works too."""

    class BurrStyle(SquareAll):
        def is_async(self) -> bool:
            return True

        async def reduce(self, state: State, states: Any) -> State:  # type: ignore[override]
            outs = [s["out"] async for s in states]
            assert [s["out"] for s in states] == outs
            return state.update(total=sum(outs), outs=outs)

    _, _, state = asyncio.run(_app(BurrStyle(), items=[1, 2, 3]).build().astep())  # type: ignore[misc]
    assert state["outs"] == [1, 4, 9]


@pytest.mark.parametrize("fan", [SquareAll, ASquareAll], ids=["sync-action", "async-action"])
def test_a_parallel_action_under_astep_uses_an_async_persister(fan: type[SquareAll]) -> None:
    from turnout.core.memory import AsyncInMemoryPersister

    async def go() -> tuple[State, list[str]]:
        persister = AsyncInMemoryPersister()
        app = await (
            _app(fan(), app_id="parent", items=[1, 2]).with_state_persister(persister).abuild()
        )
        await app.astep()
        _, _, state = await app.astep()
        return state, await persister.list_app_ids(None)

    state, app_ids = asyncio.run(go())
    assert state["outs"] == [1, 4]
    assert len(app_ids) == 5  # the parent and two children per step


def test_an_async_persister_under_a_sync_step_raises_the_fix_not_a_child_error() -> None:
    from turnout.core.memory import AsyncInMemoryPersister

    class Retried(SquareAll):
        retry = RetryPolicy(max_attempts=3, initial_delay=0, jitter=0)

        def state_persister(self, **kwargs: Any) -> Any:
            return AsyncInMemoryPersister()

    app = _app(Retried(), items=[1]).build()
    with pytest.raises(AsyncRequiredError, match="make the parallel action async"):
        app.step()
    assert _RUNS == {}


@action_decorator(reads=["item"], writes=["out"])
def meet(state: State, barrier: Any) -> State:
    barrier.wait(timeout=10)  # breaks (and fails the test) unless every child runs at once
    return state.update(out=state["item"])


def test_sync_children_of_an_async_parallel_action_run_concurrently() -> None:
    class Meet(ASquareAll):
        def action(self, state: State, inputs: dict[str, Any]) -> Any:
            return meet.bind(barrier=BARRIER)

    BARRIER = threading.Barrier(4)
    app = _app(Meet(), items=[1, 2, 3, 4]).with_parallel_executor(
        lambda: ThreadPoolExecutor(max_workers=4)
    )
    _, _, state = asyncio.run(app.build().astep())  # type: ignore[misc]
    assert state["outs"] == [1, 2, 3, 4]


class _CountingLoads(SQLitePersister):
    loads: dict[str, int]

    def load(self, partition_key: Any, app_id: str, sequence_id: int | None = None) -> Any:
        self.loads[app_id] = self.loads.get(app_id, 0) + 1
        return super().load(partition_key, app_id, sequence_id)


def test_a_finished_child_is_loaded_once_and_not_rebuilt(tmp_path: Path) -> None:
    persister = _CountingLoads(tmp_path / "db.sqlite")
    persister.loads = {}
    _FAIL.add(2)
    builder = _app(SquareAll(), app_id="parent", items=[1, 2]).with_state_persister(persister)
    with pytest.raises(ChildApplicationError):
        builder.build().step()
    _FAIL.clear()
    persister.loads = {}
    resumed = (
        ApplicationBuilder()
        .with_actions(fan=SquareAll())
        .with_transitions(("fan", "fan"))
        .with_identifiers(app_id="parent")
        .with_state_persister(persister)
        .initialize_from(persister, default_state={"items": [1, 2]}, default_entrypoint="fan")
        .build()
    )
    _, _, state = resumed.step()  # type: ignore[misc]
    persister.close()
    assert state["outs"] == [1, 4]
    children = sorted((n, a) for a, n in persister.loads.items() if a != "parent")
    assert [n for n, _ in children] == [1, 2]  # the finished one: its record only; no build
    assert _RUNS == {"square:1": 1, "square:2": 2}


# -- streaming from inside the children -----------------------------------------------------------


def _by_child(items: list[dict[str, Any]]) -> dict[int, list[Any]]:
    out: dict[int, list[Any]] = {}
    for item in items:
        if "item" in item:
            out.setdefault(item["child"], []).append(item["item"]["delta"])
    return out


def test_stream_result_yields_the_childrens_items_tagged_with_their_index() -> None:
    app = _app(Spelled(stream=True), items=[12, 345]).build()
    action, container = app.stream_result(halt_after=["fan"])
    items = list(container)
    result, state = container.get()
    assert action is not None
    assert action.name == "fan"
    assert _by_child(items) == {0: ["1", "2"], 1: ["3", "4", "5"]}
    ends = [i for i in items if i.get("done")]
    assert sorted(i["child"] for i in ends) == [0, 1]
    assert all(i["error"] is None and i["app_id"] for i in ends)
    assert all(i["action"] == "spell" for i in items if "item" in i)
    assert result == {"children": 2}
    assert state["outs"] == ["12", "345"]


def test_astream_result_yields_the_async_childrens_items() -> None:
    async def go() -> tuple[list[dict[str, Any]], State]:
        app = _app(ASpelled(stream=True), items=[12, 3]).build()
        _, container = await app.astream_result(halt_after=["fan"])
        items = [item async for item in container]
        _, state = await container.get()
        return items, state

    items, state = asyncio.run(go())
    assert _by_child(items) == {0: ["1", "2"], 1: ["3"]}
    assert state["outs"] == ["12", "3"]


def test_a_failing_streamed_child_is_reported_then_fails_the_step() -> None:
    _FAIL.add(7)
    app = _app(Spelled(stream=True), items=[12, 7]).build()
    _, container = app.stream_result(halt_after=["fan"])
    seen: list[dict[str, Any]] = []

    def consume() -> None:
        for item in container:
            seen.append(item)

    with pytest.raises(ChildApplicationError, match="child 1"):
        consume()
    assert [i["child"] for i in seen if i.get("error")] == [1]
    assert _by_child(seen) == {0: ["1", "2"]}


_GATE = threading.Event()


@action_decorator(reads=["item"], writes=["out"])
def fail_late(state: State) -> State:
    """Child 0 fails only after the caller saw child 2 fail: out of index order."""
    if state["item"] == 0:
        assert _GATE.wait(timeout=10)
    if state["item"] in (0, 2):
        raise RuntimeError(f"item {state['item']} failed")
    return state.update(out=state["item"])


def test_a_streamed_step_names_failed_children_in_index_order() -> None:
    _GATE.clear()
    app = _app(SquareAll(child=fail_late, stream=True), items=[0, 1, 2]).build()
    _, container = app.stream_result(halt_after=["fan"])
    ends: list[int] = []

    def consume() -> None:
        for item in container:
            if item.get("error"):
                ends.append(item["child"])
                _GATE.set()

    with pytest.raises(ChildApplicationError, match=r"child 0 .*\(2 of 3 children") as info:
        consume()
    assert ends == [2, 0]
    assert [index for index, _, _ in info.value.failures] == [0, 2]


def test_a_failing_async_streamed_child_is_reported_then_fails_the_step() -> None:
    """Items have reached the caller, so the step is not retried; the failure is reported."""

    class Retried(ASpelled):
        retry = RetryPolicy(max_attempts=2, initial_delay=0, jitter=0)

    _FAIL.add(7)
    seen: list[dict[str, Any]] = []

    async def go() -> None:
        app = _app(Retried(stream=True), items=[12, 7]).build()
        _, container = await app.astream_result(halt_after=["fan"])
        async for item in container:
            seen.append(item)

    with pytest.raises(ChildApplicationError, match="child 1"):
        asyncio.run(go())
    assert [i["child"] for i in seen if i.get("error")] == [1]
    assert _by_child(seen) == {0: ["1", "2"]}
    assert _RUNS == {"aspell:12": 1, "aspell:7": 1}


class _RetriedBothWays(BothWays):
    retry = RetryPolicy(max_attempts=2, initial_delay=0, jitter=0)


class _RetriedGrid(Grid):
    retry = RetryPolicy(max_attempts=2, initial_delay=0, jitter=0)


class _RetriedAHalf(AHalfPlusOne):
    retry = RetryPolicy(max_attempts=2, initial_delay=0, jitter=0)


@action_decorator(reads=["item"], writes=["half"])
def fragile_halve(state: State) -> State:
    _count(f"halve:{state['item']}")
    if state["item"] in _FAIL:
        raise RuntimeError(f"item {state['item']} failed")
    return state.update(half=state["item"] / 2)


FRAGILE_TWO_STEPS = RunnableGraph(
    graph=GraphBuilder()
    .with_actions(fragile_halve, plus_one)
    .with_transitions(("fragile_halve", "plus_one"))
    .build(),
    entrypoint="fragile_halve",
    halt_after=["plus_one"],
)


class _RetriedFragileAHalf(_RetriedAHalf):
    graph = FRAGILE_TWO_STEPS
    persist_children = True


FORMS = {
    "map-actions": (_RetriedBothWays, {"x": 3}, 3, [9, -3], {"square:3": 2, "negate:3": 1}),
    "map-actions-and-states": (
        _RetriedGrid,
        {"items": [1, 3]},
        3,
        [1, 9, -1, -3],
        {"square:1": 1, "square:3": 2, "negate:1": 1, "negate:3": 1},
    ),
    "async-task-based": (
        _RetriedFragileAHalf,
        {"items": [2, 4]},
        4,
        [2.0, 3.0],
        {"halve:2": 1, "halve:4": 2, "plus_one:1.0": 1, "plus_one:2.0": 1},
    ),
}


@pytest.mark.parametrize(("fan", "state", "fail", "outs", "runs"), FORMS.values(), ids=list(FORMS))
def test_each_form_retries_only_its_failed_children(
    fan: type[Any], state: dict[str, Any], fail: int, outs: list[Any], runs: dict[str, int]
) -> None:
    class Healer:
        def post_run_step(self, **payload: Any) -> None:
            _FAIL.clear()

    _FAIL.add(fail)
    app = _app(fan(), **state).with_hooks(Healer()).build()
    _, _, final = asyncio.run(app.astep()) if fan().is_async() else app.step()  # type: ignore[misc]
    assert final["outs"] == outs
    assert runs == _RUNS


@pytest.mark.parametrize(("fan", "state", "fail", "outs", "runs"), FORMS.values(), ids=list(FORMS))
def test_each_form_resumes_without_rerunning_finished_children(
    fan: type[Any], state: dict[str, Any], fail: int, outs: list[Any], runs: dict[str, int],
    tmp_path: Path,
) -> None:  # fmt: skip
    class Once(fan):  # type: ignore[misc, valid-type]
        retry = None

    def run(app: Any) -> Any:
        return asyncio.run(app.astep()) if Once().is_async() else app.step()

    _FAIL.add(fail)
    builder, persister = _persisted_app(Once(), tmp_path / "db.sqlite", **state)
    with pytest.raises(ChildApplicationError):
        run(builder.build())
    _FAIL.clear()
    _, _, final = run(_persisted_app(Once(), tmp_path / "db.sqlite", **state)[0].build())
    persister.close()
    assert final["outs"] == outs
    assert runs == _RUNS


def test_streaming_over_a_process_pool_yields_each_childs_end() -> None:
    """Another process cannot call back into the stream: only the ends come through."""
    context = multiprocessing.get_context("spawn")
    app = (
        _app(Spelled(stream=True), items=[12, 3])
        .with_parallel_executor(lambda: ProcessPoolExecutor(max_workers=2, mp_context=context))
        .build()
    )
    _, container = app.stream_result(halt_after=["fan"])
    items = list(container)
    _, state = container.get()
    assert sorted(i["child"] for i in items if i.get("done")) == [0, 1]
    assert _by_child(items) == {}
    assert state["outs"] == ["12", "3"]


def test_resuming_twice_still_finds_the_first_attempts_children(tmp_path: Path) -> None:
    db = tmp_path / "db.sqlite"
    _FAIL.update({2, 3})
    for _ in range(2):  # two failed attempts, each resumed from the persister
        builder, persister = _persisted_app(SquareAll(), db, items=[1, 2, 3])
        with pytest.raises(ChildApplicationError):
            builder.build().step()
        persister.close()
        _FAIL.discard(2)
    _FAIL.clear()
    builder, persister = _persisted_app(SquareAll(), db, items=[1, 2, 3])
    _, _, state = builder.build().step()  # type: ignore[misc]
    persister.close()
    assert state["outs"] == [1, 4, 9]
    assert _RUNS == {"square:1": 1, "square:2": 2, "square:3": 3}


def test_with_spawning_parent_refuses_an_empty_app_id() -> None:
    with pytest.raises(GraphSetupError, match="with_spawning_parent"):
        _app(SquareAll(), items=[1]).with_spawning_parent("", 0).build()


def test_streaming_is_also_a_class_attribute() -> None:
    class AlwaysStreams(Spelled):
        streaming = True

    assert AlwaysStreams().streaming
    assert not Spelled().streaming


# -- the Burr-compatible module name ------------------------------------------------------------


def test_the_burr_module_name_reexports_the_same_objects() -> None:
    import turnout.core.parallel as parallel
    import turnout.core.parallelism as parallelism

    for name in parallel.__all__:
        assert getattr(parallelism, name) is getattr(parallel, name)


# -- the example --------------------------------------------------------------------------------


def test_the_parallel_models_example_merges_every_models_answer(tmp_path: Path) -> None:
    from examples.parallel_models import application as example

    app = example.application(tracking_dir=str(tmp_path))
    question = "what is 2 + 40, test run"
    merged = example.answer(app, question)
    assert merged["best"] == {"model": "arithmetic", "answer": "42", "confidence": 0.95}
    assert [a["model"] for a in merged["answers"]] == ["lookup", "arithmetic", "cautious", "flaky"]
    assert example._FLAKY_CALLS[question] == 2  # its own retry, inside its child
    tracker = LocalTracker("parallel-models", tmp_path)
    links = [r for r in read_log(tracker.log_path(app.uid)) if r["t"] == "child"]
    assert [(r["kind"], r["seq"]) for r in links] == [("spawn", 1)] * 4


# -- hooks and context in children ---------------------------------------------------------------

WHO = __import__("contextvars").ContextVar("who", default="nobody")


@action_decorator(reads=["item"], writes=["seen"])
def sees_who(state: State) -> State:
    return state.update(seen=WHO.get())


class SeeWho(MapStates):
    @property
    def reads(self) -> list[str]:
        return ["items"]

    @property
    def writes(self) -> list[str]:
        return ["seen"]

    def action(self, state: State, inputs: dict[str, Any]) -> Any:
        return sees_who

    def states(
        self, state: State, context: ApplicationContext, inputs: dict[str, Any]
    ) -> Iterable[State]:
        WHO.set("the parent step")  # e.g. a library's current span
        for item in state["items"]:
            yield State({"item": item})

    def reduce(self, state: State, states: Any) -> State:
        return state.update(seen=[child["seen"] for child in states])


class StepNames:
    """Records (app id, action) of every step it sees."""

    def __init__(self, *, cascade: bool) -> None:
        self.cascade_to_children = cascade
        self.steps: list[tuple[str, str]] = []

    def post_run_step(self, *, app_id: str, action: Any, **future_kwargs: Any) -> None:
        self.steps.append((app_id, action.name))


def test_children_on_threads_run_in_a_copy_of_the_parent_steps_context() -> None:
    app = _app(SeeWho(), items=[1, 2, 3]).build()
    app.step()
    assert app.state["seen"] == ["the parent step"] * 3


def test_children_on_a_process_pool_do_not_get_the_parent_context() -> None:
    context = multiprocessing.get_context("spawn")
    app = (
        _app(SeeWho(), items=[1, 2])
        .with_parallel_executor(lambda: ProcessPoolExecutor(2, mp_context=context))
        .build()
    )
    app.step()
    assert app.state["seen"] == ["nobody", "nobody"]


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_hooks_asking_to_cascade_see_the_childrens_steps_and_others_do_not(mode: str) -> None:
    inherited, own = StepNames(cascade=True), StepNames(cascade=False)
    app = _app(SquareAll(), app_id="parent", items=[1, 2]).with_hooks(inherited, own).build()
    if mode == "sync":
        app.step()
    else:
        asyncio.run(app.astep())
    assert own.steps == [("parent", "fan")]
    children = {app_id for app_id, _ in inherited.steps} - {"parent"}
    assert len(children) == 2
    assert sorted(name for app_id, name in inherited.steps if app_id != "parent") == [
        "square",
        "square",
    ]


# -- partial results -----------------------------------------------------------------------------


class Partial(SquareAll):
    """Keeps what the finished children computed and reports the others."""

    on_child_error = "collect"

    def __init__(self, child: Any = square, *, stream: bool = False) -> None:
        super().__init__(child=child, stream=stream)

    @property
    def writes(self) -> list[str]:
        return ["total", "outs", "failed"]

    def reduce(self, state: State, states: Any) -> State:
        failed = [index for index, _, _ in states.failures]
        return super().reduce(state, states).update(failed=failed)


class APartial(_AsyncStates, Partial):
    def __init__(self) -> None:
        Partial.__init__(self, child=asquare)


@pytest.mark.parametrize("make", [Partial, APartial], ids=["sync", "async"])
def test_collect_gives_reduce_the_finished_children_and_the_failures(make: Any) -> None:
    _FAIL.update({2, 4})
    app = _app(make(), items=[1, 2, 3, 4]).build()
    if make is Partial:
        app.step()
    else:
        asyncio.run(app.astep())
    assert (app.state["outs"], app.state["failed"]) == ([1, 9], [1, 3])


def test_collect_on_a_streamed_step_reports_failed_children_and_succeeds() -> None:
    _FAIL.add(1)
    app = _app(Partial(stream=True), items=[1, 2]).build()
    _action, container = app.stream_result(halt_after=["fan"])
    ends = [item for item in container if "done" in item]
    container.get()
    assert sorted((item["child"], item["error"] is not None) for item in ends) == [
        (0, True),
        (1, False),
    ]
    assert (app.state["outs"], app.state["failed"]) == ([4], [0])


def test_an_unknown_on_child_error_names_the_two_choices() -> None:
    class Unknown(SquareAll):
        on_child_error = "ignore"

    app = _app(Unknown(), items=[1]).build()
    with pytest.raises(ValueError, match=r"on_child_error is 'ignore'; set it to 'raise'"):
        app.step()
