"""Burr's ``Application`` constructor and the internals of ``burr.core.application`` that Burr
code imports (``_run_function``, ``_run_reducer``, the streaming runners, ...), on turnout: each
does the work through turnout's own step machinery. Also the Burr behaviours they brought along:
error wording, a streaming action's outcome surviving a late error, stream hooks only for
streamed steps, ``with_typing``, and the checks of ``initialize_from``."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Generator
from typing import Any

import pytest

from turnout.core import Action, ApplicationBuilder, Result, State, action, default
from turnout.core.action import (
    DEFAULT_SCHEMA,
    SingleStepAction,
    SingleStepStreamingAction,
    StreamingAction,
    streaming_action,
)
from turnout.core.action import AsyncGenerator as BurrAsyncGenerator
from turnout.core.application import (
    PRIOR_STEP,
    Application,
    ApplicationContext,
    _adjust_single_step_output,
    _arun_function,
    _arun_single_step_action,
    _arun_single_step_streaming_action,
    _remap_dunder_parameters,
    _run_function,
    _run_multi_step_streaming_action,
    _run_reducer,
    _run_single_step_action,
    _run_single_step_streaming_action,
    _validate_reducer_writes,
    _validate_start,
)
from turnout.core.errors import (
    AsyncRequiredError,
    GraphSetupError,
    InvalidActionReturnError,
    InvalidInputsError,
    InvalidRecordError,
    MissingInputsError,
    MissingWriteError,
    UnknownActionError,
)
from turnout.core.graph import Graph, Transition
from turnout.core.persistence import AsyncDevNullPersister, BaseStateLoader
from turnout.core.typing import DictBasedTypingSystem
from turnout.lifecycle import PostApplicationCreateHook, PostStreamItemHook, PreStartStreamHook
from turnout.lifecycle.internal import LifecycleAdapterSet


class Count(Action):
    """A Burr-style two-step class action; ``by`` is an optional input."""

    @property
    def reads(self) -> list[str]:
        return ["count"]

    @property
    def writes(self) -> list[str]:
        return ["count"]

    @property
    def inputs(self) -> tuple[list[str], list[str]]:
        return [], ["by"]

    def run(self, state: State, by: int = 1) -> dict[str, Any]:
        return {"count": state.get("count", 0) + by}

    def update(self, result: dict[str, Any], state: State) -> State:
        return state.update(**result)


class AsyncCount(Count):
    async def run(self, state: State, by: int = 1) -> dict[str, Any]:  # type: ignore[override]
        await asyncio.sleep(0)
        return {"count": state.get("count", 0) + by}


class Recorder(PostApplicationCreateHook, PreStartStreamHook, PostStreamItemHook):
    def __init__(self) -> None:
        self.calls: list[str] = []

    def post_application_create(self, **future_kwargs: Any) -> None:
        self.calls.append("create")

    def pre_start_stream(self, **future_kwargs: Any) -> None:
        self.calls.append("stream")

    def post_stream_item(self, *, item: Any, **future_kwargs: Any) -> None:
        self.calls.append(f"item {item}")


def _burr_app(hook: Any = None) -> Application:
    count = Count().with_name("count")
    return Application(
        graph=Graph(actions=[count], transitions=[Transition(count, count, default)]),
        state=State({"count": 0}),
        entrypoint="count",
        partition_key="p",
        uid="burr-app",
        sequence_id=0,
        adapter_set=LifecycleAdapterSet(*([hook] if hook else [])),
    )


def test_application_takes_burrs_constructor_and_announces_its_creation():
    recorder = Recorder()
    app = _burr_app(recorder)
    assert recorder.calls == ["create"]
    assert (app.uid, app.partition_key, app.builder) == ("burr-app", "p", None)
    _action, _result, state = app.step()
    assert (app.sequence_id, state["count"]) == (1, 1)  # sequence_id=0 was the last step's


def test_application_constructor_rejects_an_unknown_entrypoint_and_two_names_for_one_value():
    count = Count().with_name("count")
    graph = Graph(actions=[count], transitions=[])
    with pytest.raises(GraphSetupError, match="entrypoint='nope'"):
        Application(graph=graph, state=State(), uid="a", entrypoint="nope")
    with pytest.raises(GraphSetupError, match="both app_id= and uid="):
        Application(graph=graph, state=State(), uid="a", app_id="b", entrypoint="count")


def test_built_applications_know_their_builder():
    builder = ApplicationBuilder().with_actions(count=Count()).with_entrypoint("count")
    assert builder.build().builder is builder


def test_lifecycle_adapter_set_keeps_its_adapters_in_order():
    first, second = Recorder(), Recorder()
    adapters = LifecycleAdapterSet(first).with_new_adapters(second)
    assert adapters.adapters == [first, second]
    assert adapters.implements("post_stream_item")


def test_burrs_names_for_schemas_and_prior_step_resolve():
    assert DEFAULT_SCHEMA.intermediate_result_type() is dict
    assert BurrAsyncGenerator[int, None] is not None
    assert PRIOR_STEP == "__PRIOR_STEP"


def test_unnamed_class_actions_have_no_name():
    assert Count().name is None
    assert Count().with_name("c").name == "c"


def test_run_function_runs_the_run_half_on_the_keys_read():
    assert _run_function(Count(), State({"count": 1, "other": 2}), {"by": 2}, "c") == {"count": 3}
    assert asyncio.run(_arun_function(AsyncCount(), State({"count": 1}), {}, "c")) == {"count": 2}


def test_run_function_refuses_an_async_action_as_a_value_error():
    with pytest.raises(AsyncRequiredError, match="async") as info:
        _run_function(AsyncCount(), State(), {}, "c")
    assert isinstance(info.value, ValueError)


def test_run_function_checks_inputs_and_the_result_type():
    class Bad(Count):
        def run(self, state: State, by: int = 1) -> Any:
            return "not a dict"

    with pytest.raises(InvalidActionReturnError, match="returned a non-dict"):
        _run_function(Bad(), State(), {}, "bad")
    with pytest.raises(InvalidInputsError, match="no inputs named"):
        _run_function(Count(), State(), {"unknown": 1}, "c")


def test_run_reducer_applies_the_update_and_checks_declared_writes():
    assert _run_reducer(Count(), State({"count": 0}), {"count": 4}, "c")["count"] == 4

    class Forgets(Count):
        @property
        def writes(self) -> list[str]:
            return ["count", "total"]

    with pytest.raises(MissingWriteError, match="total"):
        _run_reducer(Forgets(), State(), {"count": 1}, "forgets")
    with pytest.raises(ValueError, match="'total'"):
        _validate_reducer_writes(Forgets(), State({"count": 1}), "forgets")


def test_adjust_single_step_output_and_validate_start_speak_burrs_words():
    state = State({"a": 1})
    assert _adjust_single_step_output(state, "x", DEFAULT_SCHEMA) == ({}, state)
    assert _adjust_single_step_output(({"r": 1}, state), "x", DEFAULT_SCHEMA) == ({"r": 1}, state)
    with pytest.raises(ValueError, match="must return either"):
        _adjust_single_step_output("nope", "x", DEFAULT_SCHEMA)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="non-dict"):
        _adjust_single_step_output((state, {}), "x", DEFAULT_SCHEMA)  # type: ignore[arg-type]
    _validate_start("a", {"a", "b"})
    with pytest.raises(UnknownActionError, match="not found"):
        _validate_start("c", {"a", "b"})


def test_remap_dunder_parameters_uses_the_mangled_parameter_names():
    class Mangled:
        def run(self, state: State, __context: Any, __tracer: Any) -> None: ...

    remapped = _remap_dunder_parameters(
        Mangled().run, {"__context": 1, "__tracer": 2, "x": 3}, ["__context", "__tracer"]
    )
    assert remapped == {"_Mangled__context": 1, "_Mangled__tracer": 2, "x": 3}
    plain = {"__context": 1}
    assert _remap_dunder_parameters(lambda state, __context: None, plain, ["__context"]) == plain


class Deletes(SingleStepAction):
    @property
    def reads(self) -> list[str]:
        return []

    @property
    def writes(self) -> list[str]:
        return ["gone"]

    def run_and_update(self, state: State, **run_kwargs: Any) -> tuple[dict[str, Any], State]:
        return {"done": True}, state.wipe(delete=["gone"])


def test_run_single_step_action_runs_one_step_sync_and_async():
    result, state = _run_single_step_action(Deletes(), State({"gone": 1, "kept": 2}), {})
    assert (result, state.get_all()) == ({"done": True}, {"kept": 2})
    result, state = asyncio.run(_arun_single_step_action(Deletes(), State({"gone": 1}), {}))
    assert state.get_all() == {}


class Tokens(SingleStepStreamingAction):
    @property
    def reads(self) -> list[str]:
        return []

    @property
    def writes(self) -> list[str]:
        return ["text"]

    def stream_run_and_update(self, state: State, **run_kwargs: Any) -> Generator[Any, None, None]:
        for token in "ab":
            yield {"token": token}, None
        yield {"text": "ab"}, state.update(text="ab")


class AsyncTokens(Tokens):
    async def stream_run_and_update(  # type: ignore[override]
        self, state: State, **run_kwargs: Any
    ) -> AsyncGenerator[Any, None]:
        for token in "ab":
            yield {"token": token}, None
        yield {"text": "ab"}, state.update(text="ab")


def test_streaming_runners_yield_items_then_the_outcome_and_fire_stream_hooks():
    recorder = Recorder()
    out = list(
        _run_single_step_streaming_action(
            Tokens().with_name("t"), State(), {}, 3, "app", None, LifecycleAdapterSet(recorder)
        )
    )
    assert [pair[0] for pair in out] == [{"token": "a"}, {"token": "b"}, {"text": "ab"}]
    assert out[-1][1] is not None
    assert out[-1][1]["text"] == "ab"
    assert recorder.calls == ["stream", "item {'token': 'a'}", "item {'token': 'b'}"]

    async def collect() -> list[Any]:
        runner = _arun_single_step_streaming_action(
            AsyncTokens().with_name("t"), State(), {}, 0, "app", None
        )
        return [pair async for pair in runner]

    assert [pair[1] is None for pair in asyncio.run(collect())] == [True, True, False]


class Words(StreamingAction):
    """A Burr-style streaming class: its last dict is the result; it fails after yielding it."""

    @property
    def reads(self) -> list[str]:
        return []

    @property
    def writes(self) -> list[str]:
        return ["text"]

    def stream_run(self, state: State, **run_kwargs: Any) -> Generator[dict[str, Any], None, None]:
        try:
            yield {"word": "hi"}
            raise RuntimeError("connection dropped")
        finally:
            yield {"text": "hi"}

    def update(self, result: dict[str, Any], state: State) -> State:
        return state.update(text=result["text"])


def test_a_streaming_class_failing_after_its_result_completes_with_it(caplog):
    with caplog.at_level(logging.WARNING, logger="turnout"):
        out = list(
            _run_multi_step_streaming_action(Words().with_name("w"), State(), {}, 0, "a", None)
        )
    assert out[0] == ({"word": "hi"}, None)
    assert out[-1][0] == {"text": "hi"}
    assert out[-1][1] is not None
    assert "connection dropped" in caplog.text


class AdapterWords(Words):
    """Words as turnout's LLM adapters stream: the last dict is an item too."""

    streams_result = True


def test_a_streams_result_stream_failing_after_its_last_dict_is_not_salvaged():
    """Unlike Burr's kind of StreamingAction, an adapter's failed stream commits no answer."""
    app = ApplicationBuilder().with_actions(w=AdapterWords()).with_entrypoint("w").build()
    with pytest.raises(RuntimeError, match="connection dropped"):
        app.step()
    assert "text" not in app.state


def test_a_streaming_function_failing_after_its_final_yield_completes_with_it():
    @streaming_action(reads=[], writes=["text"])
    def talk(state: State) -> Generator[Any, None, None]:
        try:
            yield {"token": "a"}, None
            raise RuntimeError("late")
        finally:
            yield {"text": "a"}, state.update(text="a")

    app = ApplicationBuilder().with_actions(talk).with_entrypoint("talk").build()
    _action, container = app.stream_result(halt_after=["talk"])
    assert list(container) == [{"token": "a"}]
    assert container.get()[1]["text"] == "a"


def test_a_streaming_function_failing_before_its_final_yield_still_fails():
    @streaming_action(reads=[], writes=["text"])
    def talk(state: State) -> Generator[Any, None, None]:
        yield {"token": "a"}, None
        raise RuntimeError("early")

    app = ApplicationBuilder().with_actions(talk).with_entrypoint("talk").build()
    with pytest.raises(RuntimeError, match="early"):
        app.step()


def test_stream_hooks_fire_only_for_the_streamed_step():
    recorder = Recorder()
    app = (
        ApplicationBuilder()
        .with_actions(first=Tokens(), second=Tokens())
        .with_transitions(("first", "second"))
        .with_entrypoint("first")
        .with_hooks(recorder)
        .build()
    )
    _action, container = app.stream_result(halt_after=["second"])
    container.get()
    assert recorder.calls.count("stream") == 1  # "first" ran as a plain step


def test_a_failing_step_is_logged_with_its_action_name(caplog):
    @action(reads=[], writes=[])
    def broken_unique(state: State) -> State:
        raise KeyError("boom")

    app = ApplicationBuilder().with_actions(broken_unique).with_entrypoint("broken_unique").build()
    with caplog.at_level(logging.ERROR, logger="turnout"), pytest.raises(KeyError):
        app.step()
    assert "broken_unique" in caplog.text


def test_input_errors_carry_burrs_wording():
    @action(reads=[], writes=["n"])
    def needs(state: State, n: int) -> State:
        return state.update(n=n)

    app = ApplicationBuilder().with_actions(needs).with_entrypoint("needs").build()
    with pytest.raises(MissingInputsError, match="missing required inputs"):
        app.step()
    with pytest.raises(InvalidInputsError, match="double underscore"):
        app.step(inputs={"__n": 1})


def test_application_internals_process_inputs_and_halt_lists():
    @action(reads=[], writes=[], tags=["t"])
    def one(state: State, __context: ApplicationContext) -> State:
        return state

    app = (
        ApplicationBuilder()
        .with_actions(one, two=Result("x"))
        .with_transitions(("one", "two"))
        .with_entrypoint("one")
        .with_identifiers(app_id="internals")
        .with_state(x=1)
        .build()
    )
    kwargs = app._process_inputs({"ignored": 1}, app.get_next_action())
    assert list(kwargs) == ["__context"]
    assert kwargs["__context"].app_id == "internals"
    before, after, inputs = app._process_control_flow_params(["@tag:t"], ["two"], None)
    assert (before, after, inputs) == (["one"], ["two"], {})
    with pytest.raises(UnknownActionError, match=r"(?s)'nope1'.*'nope2'"):
        app._validate_halt_conditions(["nope1"], ["nope2"])


def test_with_typing_gives_every_state_its_typing_system():
    class Counted(DictBasedTypingSystem):
        def construct_data(self, state: State) -> dict[str, Any]:
            return {"typed": state["count"]}

    app = (
        ApplicationBuilder()
        .with_actions(count=Count())
        .with_entrypoint("count")
        .with_state(count=0)
        .with_typing(Counted())
        .build()
    )
    assert app.state.data == {"typed": 0}
    assert app.step()[2].data == {"typed": 1}
    assert State({"a": 1}).data == {"a": 1}


def test_a_sync_build_refuses_an_async_persister_or_initializer_naming_abuild():
    builder = ApplicationBuilder().with_actions(count=Count()).with_entrypoint("count")
    with pytest.raises(
        AsyncRequiredError, match="sync application, but have used an async persister"
    ):
        builder.with_state_persister(AsyncDevNullPersister()).build()
    loading = (
        ApplicationBuilder()
        .with_actions(count=Count())
        .initialize_from(AsyncDevNullPersister(), default_state={}, default_entrypoint="count")
    )
    with pytest.raises(ValueError, match="sync application, but have used an async initializer"):
        loading.build()


def test_fork_identifiers_without_the_app_to_fork_are_reported():
    builder = (
        ApplicationBuilder()
        .with_actions(count=Count())
        .initialize_from(
            AsyncDevNullPersister(),
            default_state={},
            default_entrypoint="count",
            fork_from_partition_key="elsewhere",
        )
    )
    with pytest.raises(GraphSetupError, match="need fork_from_app_id"):
        builder.build()


def test_a_fork_sequence_id_without_the_app_to_fork_is_reported():
    builder = (
        ApplicationBuilder()
        .with_actions(count=Count())
        .initialize_from(
            AsyncDevNullPersister(),
            default_state={},
            default_entrypoint="count",
            fork_from_sequence_id=3,
        )
    )
    with pytest.raises(GraphSetupError, match="need fork_from_app_id"):
        builder.build()


class Loader(BaseStateLoader):
    def __init__(self, record: dict[str, Any]) -> None:
        self.record = record

    def load(self, partition_key: Any, app_id: Any, sequence_id: Any = None, **kwargs: Any) -> Any:
        return self.record

    def list_app_ids(self, partition_key: Any, **kwargs: Any) -> list[str]:
        return []


def _loaded(record: dict[str, Any], **overrides: Any) -> Application:
    return (
        ApplicationBuilder()
        .with_actions(count=Count())
        .with_identifiers(app_id="loaded")
        .initialize_from(
            Loader(record),
            default_state={},
            default_entrypoint="count",
            override_state_values=overrides or None,
        )
        .build()
    )


def test_a_loaded_record_without_identifiers_takes_the_ones_asked_for():
    record = {"state": {"count": 1}, "position": "count", "sequence_id": 3, "status": "completed"}
    app = _loaded(record, count=10)
    assert (app.uid, app.sequence_id, app.state["count"]) == ("loaded", 3, 10)


def test_a_loaded_record_without_state_is_an_invalid_record():
    record = {"state": None, "position": "count", "sequence_id": 3, "status": "completed"}
    with pytest.raises(InvalidRecordError, match="return None from load") as info:
        _loaded(record)
    assert isinstance(info.value, ValueError)
