"""The names added for Burr parity do what Burr's do, through Burr's import paths."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncGenerator, Generator
from pathlib import Path
from typing import Any

import pytest

from turnout.core.action import (
    Action,
    Function,
    Reducer,
    SingleStepStreamingAction,
    create_action,
    safe_expr,
    streaming_action,
    type_eraser,
)
from turnout.core.application import ApplicationBuilder
from turnout.core.graph import GraphBuilder
from turnout.core.implementations import Placeholder
from turnout.core.persistence import (
    AsyncDevNullPersister,
    DevNullPersister,
    InMemoryPersister,
    SQLLitePersister,
)
from turnout.core.state import State
from turnout.core.typing import DictBasedTypingSystem
from turnout.core.validation import assert_set
from turnout.lifecycle import LifecycleAdapter, PostRunStepHook, SlowDownHook
from turnout.lifecycle.base import ExecuteMethod, PreApplicationExecuteCallHook
from turnout.lifecycle.default import StateAndResultsFullLogger
from turnout.tracking.base import SyncTrackingClient, TrackingClient
from turnout.tracking.client import LocalTrackingClient

from turnout.core import action  # isort: skip  (the decorator, after the module's names)


@action(reads=["count"], writes=["count"])
def counter(state: State) -> State:
    return state.update(count=state["count"] + 1)


@action(reads=["count"], writes=[])
def boom(state: State) -> State:
    raise ValueError("bad")


def _counter_app(*hooks: Any, persister: Any = None) -> Any:
    builder = (
        ApplicationBuilder()
        .with_actions(counter=counter)
        .with_transitions(("counter", "counter"))
        .with_state(count=0)
        .with_entrypoint("counter")
        .with_hooks(*hooks)
    )
    if persister is not None:
        builder = builder.with_state_persister(persister)
    return builder


# -- persistence -----------------------------------------------------------------------------


def test_devnull_persister_saves_nothing_and_loads_none() -> None:
    persister = DevNullPersister()
    app = _counter_app(persister=persister).with_identifiers(app_id="devnull-1").build()
    app.run(halt_after=["counter"])
    assert app.state["count"] == 1
    assert persister.load(None, "devnull-1") is None
    assert persister.list_app_ids(None) == []


def test_initialize_from_a_devnull_persister_starts_from_the_default_state() -> None:
    app = (
        ApplicationBuilder()
        .with_actions(counter=counter)
        .with_transitions(("counter", "counter"))
        .initialize_from(
            DevNullPersister(), default_state={"count": 10}, default_entrypoint="counter"
        )
        .with_identifiers(app_id="devnull-2")
        .build()
    )
    app.step()
    assert app.state["count"] == 11
    assert app.sequence_id == 0


def test_async_devnull_persister_saves_nothing() -> None:
    async def main() -> tuple[int, Any, list[str]]:
        persister = AsyncDevNullPersister()
        app = await _counter_app(persister=persister).with_identifiers(app_id="dn-3").abuild()
        await app.arun(halt_after=["counter"])
        return (
            app.state["count"],
            await persister.load(None, "dn-3"),
            await persister.list_app_ids(None),
        )

    assert asyncio.run(main()) == (1, None, [])


def test_sqllite_persister_is_burrs_misspelling_of_the_sqlite_persister(tmp_path: Path) -> None:
    persister = SQLLitePersister(str(tmp_path / "burr.db"), "burr_state")
    _counter_app(persister=persister).with_identifiers(app_id="sqll").build().step()
    loaded = persister.load(None, "sqll")
    assert loaded is not None
    assert loaded["state"]["count"] == 1
    assert InMemoryPersister().load(None, "nothing") is None


# -- actions ---------------------------------------------------------------------------------


class Doubler(Action):
    @property
    def reads(self) -> list[str]:
        return ["n"]

    @property
    def writes(self) -> list[str]:
        return ["n"]

    @property
    def inputs(self) -> tuple[list[str], list[str]]:
        return ["factor", "__context"], ["note"]

    @type_eraser
    def run(self, state: State, factor: int, note: str = "", **_: Any) -> dict[str, Any]:
        return {"n": state["n"] * factor}

    def update(self, result: dict[str, Any], state: State) -> State:
        return state.update(n=result["n"])


def test_action_is_a_function_and_a_reducer() -> None:
    assert isinstance(Doubler(), Function)
    assert isinstance(Doubler(), Reducer)


def test_optional_and_required_inputs_leave_out_injected_names() -> None:
    assert Doubler().optional_and_required_inputs == ({"factor"}, {"note"})
    schema = Doubler().input_schema()  # Burr returns None; turnout a JSON Schema of the inputs
    assert schema["properties"] == {
        "factor": {"type": "integer"},
        "note": {"type": "string", "default": ""},
    }
    assert schema["required"] == ["factor"]


def test_validate_inputs_accepts_required_and_optional_inputs() -> None:
    Doubler().validate_inputs({"factor": 2})
    Doubler().validate_inputs({"factor": 2, "note": "x"})


@pytest.mark.parametrize(
    ("inputs", "message"),
    [(None, r"needs the inputs \['factor'\]"), ({"factor": 2, "other": 1}, "no inputs named")],
    ids=["missing", "unknown"],
)
def test_validate_inputs_rejects_missing_and_unknown_inputs_as_value_error(
    inputs: dict[str, Any] | None, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        Doubler().validate_inputs(inputs)


def test_type_eraser_returns_the_method_unchanged() -> None:
    app = (
        ApplicationBuilder()
        .with_actions(double=Doubler())
        .with_transitions()
        .with_state(n=3)
        .with_entrypoint("double")
        .build()
    )
    app.step(inputs={"factor": 2})
    assert app.state["n"] == 6


class Tokens(SingleStepStreamingAction):
    @property
    def reads(self) -> list[str]:
        return ["prompt"]

    @property
    def writes(self) -> list[str]:
        return ["reply"]

    def stream_run_and_update(
        self, state: State, **run_kwargs: Any
    ) -> Generator[tuple[dict[str, Any], State | None], None, None]:
        words = state["prompt"].split()
        for word in words:
            yield {"token": word}, None
        reply = " ".join(reversed(words))
        yield {"reply": reply}, state.update(reply=reply)


class AsyncTokens(Tokens):
    async def stream_run_and_update(  # type: ignore[override]
        self, state: State, **run_kwargs: Any
    ) -> AsyncGenerator[tuple[dict[str, Any], State | None], None]:
        for item in Tokens.stream_run_and_update(self, state, **run_kwargs):
            yield item


def _stream_app(act: Action) -> Any:
    return (
        ApplicationBuilder()
        .with_actions(reply=act)
        .with_transitions()
        .with_state(prompt="a b c")
        .with_entrypoint("reply")
    )


def test_single_step_streaming_action_streams_items_then_its_state() -> None:
    app = _stream_app(Tokens()).build()
    _, container = app.stream_result(halt_after=["reply"])
    items = [item["token"] for item in container if "token" in item]
    result, state = container.get()
    assert items == ["a", "b", "c"]
    assert result == {"reply": "c b a"}
    assert state["reply"] == "c b a"


def test_async_single_step_streaming_action_streams_items_then_its_state() -> None:
    async def main() -> tuple[list[str], Any]:
        app = await _stream_app(AsyncTokens()).abuild()
        _, container = await app.astream_result(halt_after=["reply"])
        items = [item["token"] async for item in container if "token" in item]
        _, state = await container.get()
        return items, state["reply"]

    assert asyncio.run(main()) == (["a", "b", "c"], "c b a")


def test_streaming_action_decorator_is_importable_from_the_action_module() -> None:
    @streaming_action(reads=[], writes=["x"])
    def stream(state: State) -> Generator[Any, None, None]:
        yield {"x": 1}, state.update(x=1)

    assert create_action(stream, "stream").name == "stream"


def test_safe_expr_is_a_condition_over_the_state() -> None:
    assert safe_expr("count > 1").evaluate(State({"count": 2}))
    assert not safe_expr("count > 1").evaluate(State({"count": 1}))


def test_placeholder_builds_and_draws_but_does_not_run() -> None:
    app = (
        ApplicationBuilder()
        .with_actions(think=Placeholder(reads=[], writes=["idea"]))
        .with_transitions()
        .with_entrypoint("think")
        .build()
    )
    assert "think" in app.visualize()
    with pytest.raises(TypeError, match="Placeholder"):
        app.step()


# -- graph, builder, application -------------------------------------------------------------


def test_graph_builder_lists_its_actions_and_the_graph_draws_itself() -> None:
    builder = GraphBuilder().with_actions(counter=counter, boom=boom)
    assert [a.name for a in builder.actions] == ["counter", "boom"]
    graph = builder.with_transitions(("counter", "boom")).build()
    dot = graph.visualize(include_conditions=True)
    assert dot.startswith("digraph")
    assert "counter" in dot
    assert "boom" in dot


def test_graph_visualize_writes_dot_text_to_a_path(tmp_path: Path) -> None:
    graph = GraphBuilder().with_actions(counter=counter).with_transitions().build()
    graph.visualize(tmp_path / "graph.dot")
    assert (tmp_path / "graph.dot").read_text(encoding="utf-8").startswith("digraph")


def test_reset_to_entrypoint_drops_burrs_prior_step_key() -> None:
    builder = _counter_app().with_state(State({"count": 5, "__PRIOR_STEP": "counter"}))
    app = builder.reset_to_entrypoint().build()
    assert "__PRIOR_STEP" not in app.state
    assert app.get_next_action().name == "counter"


def test_parent_pointer_names_the_app_forked_from() -> None:
    persister = InMemoryPersister()
    _counter_app(persister=persister).with_identifiers(app_id="fork-src").build().step()
    fork = (
        ApplicationBuilder()
        .with_actions(counter=counter)
        .with_transitions(("counter", "counter"))
        .initialize_from(
            persister, default_state={"count": 0}, default_entrypoint="counter",
            fork_from_app_id="fork-src",
        )
        .with_identifiers(app_id="fork-dst")
        .build()
    )  # fmt: skip
    assert fork.parent_pointer is not None
    assert fork.parent_pointer.app_id == "fork-src"
    assert _counter_app().build().parent_pointer is None


def test_dict_based_typing_system_round_trips_a_state() -> None:
    system = DictBasedTypingSystem()
    data = system.construct_data(State({"a": 1}))
    assert data == {"a": 1}
    assert system.construct_state(data)["a"] == 1
    assert system.state_type() is dict


def test_assert_set_raises_a_value_error_naming_the_method() -> None:
    assert_set("x", "entrypoint", "with_entrypoint")
    with pytest.raises(ValueError, match=r"with_entrypoint\(\.\.\.\)"):
        assert_set(None, "entrypoint", "with_entrypoint")


# -- lifecycle -------------------------------------------------------------------------------


def test_lifecycle_adapter_is_the_union_of_the_hook_interfaces() -> None:
    assert PostRunStepHook in LifecycleAdapter.__args__  # type: ignore[attr-defined]


def test_execute_method_members_equal_the_method_hooks_receive() -> None:
    seen: list[str] = []

    class Calls(PreApplicationExecuteCallHook):
        def pre_run_execute_call(self, *, method: str, **future_kwargs: Any) -> None:
            seen.append(method)

    _counter_app(Calls()).build().step()
    assert seen == [ExecuteMethod.step]


def test_slow_down_hook_sleeps_its_times_around_every_step() -> None:
    slept: list[float] = []
    app = _counter_app(SlowDownHook(0.25, 0.75, sleep=slept.append)).build()
    app.step()
    app.step()
    assert slept == [0.25, 0.75, 0.25, 0.75]


def test_slow_down_hook_sleeps_with_time_sleep_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list[float] = []
    monkeypatch.setattr(time, "sleep", slept.append)
    _counter_app(SlowDownHook()).build().step()
    assert slept == [0.5, 0.5]


def test_full_logger_writes_burrs_json_lines(tmp_path: Path) -> None:
    path = tmp_path / "steps.jsonl"
    app = (
        ApplicationBuilder()
        .with_actions(counter=counter, boom=boom)
        .with_transitions(("counter", "boom"))
        .with_state(count=0)
        .with_entrypoint("counter")
        .with_hooks(StateAndResultsFullLogger(str(path)))
        .build()
    )
    app.step()
    with pytest.raises(ValueError, match="bad"):
        app.step()
    first, second = (json.loads(line) for line in path.read_text(encoding="utf-8").splitlines())
    keys = {"state", "action", "result", "exception", "start_time", "end_time"}
    assert set(first) == set(second) == keys
    assert first["state"] == {"count": 1, "__SEQUENCE_ID": 0, "__PRIOR_STEP": "counter"}
    assert (first["action"], first["result"], first["exception"]) == ("counter", {}, "None")
    assert (second["action"], second["result"], second["exception"]) == ("boom", None, "bad")
    assert first["start_time"] <= first["end_time"] <= second["start_time"]


def test_full_logger_appends_by_default_and_starts_over_with_mode_w(tmp_path: Path) -> None:
    path = tmp_path / "steps.jsonl"
    _counter_app(StateAndResultsFullLogger(path)).build().step()
    _counter_app(StateAndResultsFullLogger(path)).build().step()
    assert len(path.read_text(encoding="utf-8").splitlines()) == 2
    _counter_app(StateAndResultsFullLogger(path, mode="w")).build().step()
    assert len(path.read_text(encoding="utf-8").splitlines()) == 1


def test_full_logger_needs_a_jsonl_path(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"must end with '\.jsonl'.*steps\.txt"):
        StateAndResultsFullLogger(str(tmp_path / "steps.txt"))


# -- tracking --------------------------------------------------------------------------------


class ListTracker(TrackingClient):
    """A custom tracker as Burr users write one: every hook, and ``copy``."""

    def __init__(self, events: list[str], copies: list[ListTracker]) -> None:
        self.events = events
        self.copies = copies

    def copy(self) -> ListTracker:
        clone = ListTracker(self.events, self.copies)
        self.copies.append(clone)
        return clone

    def post_application_create(self, *, app_id: str, **future_kwargs: Any) -> None:
        self.events.append(f"create {app_id}")

    def pre_run_step(self, *, action: Any, **future_kwargs: Any) -> None:
        self.events.append(f"pre {action.name}")

    def post_run_step(self, *, action: Any, **future_kwargs: Any) -> None:
        self.events.append(f"post {action.name}")

    def pre_start_span(self, **future_kwargs: Any) -> None: ...

    def post_end_span(self, **future_kwargs: Any) -> None: ...

    def do_log_attributes(self, **future_kwargs: Any) -> None: ...

    def pre_start_stream(self, **future_kwargs: Any) -> None: ...

    def post_stream_item(self, **future_kwargs: Any) -> None: ...

    def post_end_stream(self, **future_kwargs: Any) -> None: ...


def test_a_tracking_client_subclass_plugs_into_with_tracker() -> None:
    events: list[str] = []
    app = _counter_app().with_identifiers(app_id="tracked").with_tracker(ListTracker(events, []))
    app.build().step()
    assert events == ["create tracked", "pre counter", "post counter"]


def test_parallel_children_get_a_copy_of_the_parents_tracker() -> None:
    from turnout.core.parallelism import MapStates

    @action(reads=["x"], writes=["x"])
    def square(state: State) -> State:
        return state.update(x=state["x"] ** 2)

    class Squares(MapStates):
        def action(self, state: State, inputs: dict[str, Any]) -> Any:
            return square

        def states(self, state: State, context: Any, inputs: dict[str, Any]) -> Any:
            for x in state["xs"]:
                yield state.update(x=x)

        def reduce(self, state: State, states: Any) -> State:
            return state.update(squares=sorted(s["x"] for s in states))

        @property
        def reads(self) -> list[str]:
            return ["xs"]

        @property
        def writes(self) -> list[str]:
            return ["squares"]

    events: list[str] = []
    copies: list[ListTracker] = []
    app = (
        ApplicationBuilder()
        .with_actions(squares=Squares())
        .with_transitions()
        .with_state(xs=[1, 2, 3])
        .with_entrypoint("squares")
        .with_tracker(ListTracker(events, copies))
        .build()
    )
    app.step()
    assert app.state["squares"] == [1, 4, 9]
    assert len(copies) == 3  # one copy() per child, as on Burr
    assert events.count("post square") == 3


def test_the_local_tracker_is_a_tracking_client(tmp_path: Path) -> None:
    tracker = LocalTrackingClient("burr-names", tmp_path)
    assert isinstance(tracker, SyncTrackingClient)
    assert isinstance(tracker.copy(), TrackingClient)
