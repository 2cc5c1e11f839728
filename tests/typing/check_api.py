"""Typed usage of the public API, checked by mypy in CI and never executed.

Each ``assert_type`` pins what a type checker infers for a user of turnout; a change that makes
the API less precisely typed breaks this file.
"""

from __future__ import annotations

from typing import Any, assert_type

from turnout import (
    Action,
    Application,
    ApplicationBuilder,
    ApplicationContext,
    Condition,
    Graph,
    GraphBuilder,
    State,
    action,
    default,
    expr,
    when,
)
from turnout.core.action import (
    ActionFunction,
    AsyncStreamingAction,
    FunctionBasedAction,
    SingleStepStreamingAction,
    StreamingAction,
    bound_name,
)
from turnout.core.application import ApplicationBuilder as BurrPathBuilder
from turnout.core.persistence import PersistedStateData
from turnout.core.sqlite import SQLitePersister
from turnout.core.state import Change
from turnout.core.visualize import DotSource
from turnout.tracking.base import TrackingClient


@action(reads=["count"], writes=["count"])
def increment(state: State, step: int = 1) -> State:
    return state.update(count=state["count"] + step)


def typed_usage() -> None:
    state = State({"count": 0})
    assert_type(state.update(count=1), State)
    assert_type(state.append(items=1), State)
    assert_type(state.increment(count=1), State)
    assert_type(state.wipe(keep=["count"]), State)
    assert_type(state.keys(), list[str])
    assert_type(state.get_all(), dict[str, Any])
    assert_type(state.changes, tuple[Change, ...])
    assert_type(state["count"], Any)

    assert_type(increment(state), State)  # the decorated function keeps its signature
    assert_type(increment(state, step=2), State)
    # strict mypy warns on unused ignores, so these lines prove the mistakes are caught:
    increment(state, stepp=2)  # type: ignore[call-arg]
    state.update(1)  # type: ignore[call-arg]
    assert_type(increment.bind(step=2), ActionFunction[..., State])
    assert_type(increment.action_function, FunctionBasedAction)
    assert_type(when(count=1), Condition)
    assert_type(expr("count < 3"), Condition)
    assert_type(default, Condition)
    assert_type(~when(count=1) | expr("count > 3"), Condition)

    graph = (
        GraphBuilder().with_actions(increment).with_transitions(("increment", "increment")).build()
    )
    assert_type(graph, Graph)
    builder = (
        ApplicationBuilder().with_graph(graph).with_state(count=0).with_entrypoint("increment")
    )
    assert_type(builder, ApplicationBuilder)
    app = builder.build()
    assert_type(app, Application)
    assert_type(app.sequence_id, int | None)
    assert_type(app.state, State)
    assert_type(app.get_next_action(), Action | None)
    assert_type(app.context, ApplicationContext)
    assert_type(ApplicationContext.get(), ApplicationContext | None)
    step = app.step()
    if step is not None:
        act, result, new_state = step
        assert_type(act, Action)
        assert_type(act.name, str | None)  # None until bound, as in Burr
        assert_type(bound_name(act), str)  # an action in a graph has one
        assert_type(result, dict[str, Any] | None)
        assert_type(new_state, State)
    final_action, _final_result, final_state = app.run(halt_after=["increment"])
    assert_type(final_action, Action | None)
    assert_type(final_state, State)

    # Burr's module paths give the same, typed objects.
    assert_type(BurrPathBuilder(), ApplicationBuilder)
    assert_type(AsyncStreamingAction, type[StreamingAction])
    assert_type(app.parent_pointer is None, bool)
    assert_type(SQLitePersister("x.db").load(None, "a"), PersistedStateData | None)
    assert_type(graph.visualize(), DotSource)
    assert_type(app.visualize(graph_attr={"rankdir": "LR"}).graph_attr, dict[str, str])
    assert_type(app.visualize().pipe(format="svg"), Any)
    assert_type(graph.to_dict(), dict[str, Any])


def burr_extension_points(stream: SingleStepStreamingAction, tracker: TrackingClient) -> None:
    assert_type(stream.is_async(), bool)
    assert_type(tracker.copy(), TrackingClient)
