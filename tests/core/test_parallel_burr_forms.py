"""Burr's experimental functional parallel form: ``map_reduce_action(...)`` and the
``PassThroughMapActionsAndStates`` it builds, sync and async, with every shape Burr's signature
names for ``action`` and ``state``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from turnout import ApplicationBuilder, ApplicationContext, GraphBuilder, State, action
from turnout.core.errors import ActionDefinitionError
from turnout.core.parallel import (
    PassThroughMapActionsAndStates,
    RunnableGraph,
    map_reduce_action,
)


@action(reads=["x"], writes=["y"])
def double(state: State) -> State:
    return state.update(y=state["x"] * 2)


@action(reads=["x"], writes=["y"])
def triple(state: State) -> State:
    return state.update(y=state["x"] * 3)


@action(reads=["x"], writes=["y"])
async def adouble(state: State) -> State:
    return state.update(y=state["x"] * 2)


@action(reads=["x"], writes=["y"])
def shifted(state: State, shift: int = 0) -> State:
    return state.update(y=state["x"] + shift)


def each_x(state: State, context: ApplicationContext, inputs: dict[str, Any]) -> Iterator[State]:
    for x in state["xs"]:
        yield State({"x": x})


async def each_x_async(
    state: State, context: ApplicationContext, inputs: dict[str, Any]
) -> AsyncIterator[State]:
    for x in state["xs"]:
        yield State({"x": x})


def collect_ys(state: State, states: Any) -> State:
    return state.update(ys=[child["y"] for child in states])


async def collect_ys_async(state: State, states: Any) -> State:
    return state.update(ys=[child["y"] async for child in states])


def _run(fan: PassThroughMapActionsAndStates, *, mode: str = "sync", **inputs: Any) -> State:
    app = (
        ApplicationBuilder()
        .with_actions(fan=fan)
        .with_transitions(("fan", "fan"))
        .with_state(xs=[1, 2, 3])
        .with_entrypoint("fan")
        .build()
    )
    stepped = asyncio.run(app.astep(inputs=inputs)) if mode == "async" else app.step(inputs=inputs)
    assert stepped is not None
    return stepped[2]


def _fan(action_: Any, state: Any = each_x, reducer: Any = collect_ys) -> Any:
    return map_reduce_action(
        action=action_, state=state, reducer=reducer, reads=["xs"], writes=["ys"], inputs=[]
    )


def test_map_reduce_action_builds_a_pass_through_action_with_the_declared_keys() -> None:
    fan = map_reduce_action(double, each_x, collect_ys, ["xs"], ["ys"], ["shift"])
    assert isinstance(fan, PassThroughMapActionsAndStates)
    assert (fan.reads, fan.writes) == (["xs"], ["ys"])
    assert fan.inputs == (["__context"], ["shift"])
    assert not fan.is_async()


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_one_action_runs_on_every_state_and_reduces_in_order(mode: str) -> None:
    fan = _fan(double, each_x if mode == "sync" else each_x_async)
    assert fan.is_async() is (mode == "async")
    assert _run(fan, mode=mode)["ys"] == [2, 4, 6]


def test_a_sync_fan_runs_under_the_async_driver_too() -> None:
    assert _run(_fan(double), mode="async")["ys"] == [2, 4, 6]


def test_a_list_of_actions_runs_every_action_on_every_state_actions_outer() -> None:
    assert _run(_fan([double, triple]))["ys"] == [2, 4, 6, 3, 6, 9]


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_function_of_state_context_and_inputs_chooses_the_actions(mode: str) -> None:
    seen: list[tuple[list[int], str]] = []

    def pick(state: State, context: ApplicationContext, inputs: dict[str, Any]) -> Iterator[Any]:
        seen.append((state["xs"], context.app_id))
        yield double
        yield triple

    async def apick(
        state: State, context: ApplicationContext, inputs: dict[str, Any]
    ) -> AsyncIterator[Any]:
        for chosen in pick(state, context, inputs):
            yield chosen

    fan = _fan(pick if mode == "sync" else apick)
    assert fan.is_async() is (mode == "async")
    assert _run(fan, mode=mode)["ys"] == [2, 4, 6, 3, 6, 9]
    assert [xs for xs, _ in seen] == [[1, 2, 3]]


def test_a_function_may_return_one_action_or_a_list() -> None:
    assert _run(_fan(lambda s, c, i: triple))["ys"] == [3, 6, 9]
    assert _run(_fan(lambda s, c, i: [double]))["ys"] == [2, 4, 6]


def test_a_runnable_graph_runs_as_each_child() -> None:
    graph = GraphBuilder().with_actions(double, triple).with_transitions(("double", "triple"))
    sub = RunnableGraph(graph=graph.build(), entrypoint="double", halt_after=["triple"])
    assert _run(_fan(sub))["ys"] == [3, 6, 9]


@pytest.mark.parametrize(
    "states",
    [
        lambda s, c, i: State({"x": 5}),
        lambda s, c, i: {"x": 5},
        lambda s, c, i: [State({"x": 5})],
    ],
    ids=["one-state", "one-mapping", "a-list"],
)
def test_the_state_function_may_return_one_state_a_mapping_or_a_list(states: Any) -> None:
    assert _run(_fan(double, states))["ys"] == [10]


def test_an_async_reducer_makes_the_step_async_and_is_awaited() -> None:
    fan = _fan(double, each_x, collect_ys_async)
    assert fan.is_async()
    assert _run(fan, mode="async")["ys"] == [2, 4, 6]


def test_async_children_run_under_the_async_driver() -> None:
    assert _run(_fan(adouble, each_x_async), mode="async")["ys"] == [2, 4, 6]


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_declared_inputs_reach_the_functions_and_the_children(mode: str) -> None:
    got: list[dict[str, Any]] = []

    def states(state: State, context: ApplicationContext, inputs: dict[str, Any]) -> list[State]:
        got.append(inputs)
        return [State({"x": x}) for x in state["xs"]]

    fan = map_reduce_action(shifted, states, collect_ys, ["xs"], ["ys"], ["shift"])
    assert _run(fan, mode=mode, shift=10)["ys"] == [11, 12, 13]
    assert got == [{"shift": 10}]


def test_declared_inputs_are_optional_as_in_burr() -> None:
    fan = map_reduce_action(shifted, each_x, collect_ys, ["xs"], ["ys"], ["shift"])
    assert _run(fan)["ys"] == [1, 2, 3]


def test_something_that_is_not_an_action_fails_the_step_naming_it() -> None:
    with pytest.raises(ActionDefinitionError, match="not a valid action"):
        _run(_fan(42))


def test_the_burr_module_name_exports_the_functional_form() -> None:
    import turnout.core.parallel as parallel
    import turnout.core.parallelism as parallelism

    assert parallelism.map_reduce_action is parallel.map_reduce_action
    assert parallelism.PassThroughMapActionsAndStates is PassThroughMapActionsAndStates
