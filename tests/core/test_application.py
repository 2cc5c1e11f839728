"""``Application``: stepping, iterating and running with Burr's halt semantics, inputs, the
injected context, sequence ids, position and state management, and the hooks seam."""

from __future__ import annotations

import logging
import uuid
from typing import Any

import pytest

from turnout import (
    ApplicationBuilder,
    ApplicationContext,
    State,
    action,
    expr,
)
from turnout.core.application import Application
from turnout.core.errors import (
    GraphSetupError,
    InvalidInputsError,
    MissingInputsError,
    StateOperationError,
    UnknownActionError,
)
from turnout.core.graph import ApplicationGraph
from turnout.core.state import Change

# -- helpers -------------------------------------------------------------------------------------


def _recorder(name: str, tags: tuple[str, ...] = ()):
    """An action that appends its name to ``trail`` and returns ``{"ran": name}``."""

    @action(reads=[], writes=["trail"], tags=list(tags))
    def record(state: State) -> tuple[dict[str, Any], State]:
        return {"ran": name}, state.append(trail=name)

    return record


def _chain(**builder_state: Any) -> Application:
    """a -> b -> c, then the run ends; a and c carry the tag ``odd``."""
    return (
        ApplicationBuilder()
        .with_actions(a=_recorder("a", ("odd",)), b=_recorder("b"), c=_recorder("c", ("odd",)))
        .with_transitions(("a", "b"), ("b", "c"))
        .with_state(trail=[], **builder_state)
        .with_entrypoint("a")
        .build()
    )


def _summary(out: Any) -> tuple[Any, ...]:
    """A step tuple with the action replaced by its name, comparable across applications."""
    act, result, state = out
    return (act.name if act is not None else None, result, state)


# -- step ----------------------------------------------------------------------------------------


def test_step_returns_the_action_its_result_and_the_new_state():
    app = _chain()
    act, result, state = app.step()
    assert act.name == "a"
    assert result == {"ran": "a"}
    assert state == {"trail": ["a"]}
    assert app.state is state


def test_step_returns_none_when_there_is_no_next_action():
    app = _chain()
    for _ in range(3):
        app.step()
    assert app.step() is None
    assert app.state == {"trail": ["a", "b", "c"]}


def test_a_function_action_returning_only_state_has_an_empty_result():
    @action(reads=[], writes=["x"])
    def setter(state: State) -> State:
        return state.update(x=1)

    app = ApplicationBuilder().with_actions(setter).with_entrypoint("setter").build()
    assert app.step()[1] == {}


# -- iterate and run: halt semantics -------------------------------------------------------------


def test_iterate_yields_every_step_until_the_end():
    app = _chain()
    steps = list(app.iterate(halt_after=["c"]))
    assert [(act.name, result) for act, result, _ in steps] == [
        ("a", {"ran": "a"}),
        ("b", {"ran": "b"}),
        ("c", {"ran": "c"}),
    ]
    assert [s["trail"] for *_, s in steps] == [["a"], ["a", "b"], ["a", "b", "c"]]


@pytest.mark.parametrize(
    "halts",
    [
        {"halt_after": ["b"]},
        {"halt_before": ["c"]},
        {"halt_before": ["c"], "halt_after": ["b"]},
        {"halt_after": ["@tag:odd"]},
        {"halt_before": ["a"]},
        {"halt_after": ["c"]},
    ],
    ids=["halt-after", "halt-before", "both", "tag", "before-entrypoint-only", "end"],
)
def test_iterate_return_value_equals_what_run_returns(halts):
    generator = _chain().iterate(**halts)
    while True:
        try:
            next(generator)
        except StopIteration as stop:
            returned = stop.value
            break
    assert _summary(returned) == _summary(_chain().run(**halts))


def test_run_halt_after_returns_that_steps_tuple():
    app = _chain()
    act, result, state = app.run(halt_after=["b"])
    assert (act.name, result, state) == ("b", {"ran": "b"}, {"trail": ["a", "b"]})
    assert app.get_next_action().name == "c"


def test_run_halt_before_returns_the_next_action_without_running_it():
    app = _chain()
    act, result, state = app.run(halt_before=["c"])
    assert (act.name, result, state) == ("c", None, {"trail": ["a", "b"]})
    assert app.prior_action == "b"
    assert app.get_next_action().name == "c"


def test_halt_before_is_checked_before_halt_after():
    app = _chain()
    act, result, _state = app.run(halt_before=["c"], halt_after=["b"])
    assert (act.name, result) == ("c", None)


def test_run_always_runs_at_least_one_step_even_if_it_is_in_halt_before():
    app = _chain()
    app.run(halt_before=["c"])
    act, result, state = app.run(halt_before=["c"])
    assert (act.name, result) == ("c", {"ran": "c"})
    assert state["trail"] == ["a", "b", "c"]


def test_halt_before_the_action_just_run_stops_before_running_it_again():
    app = (
        ApplicationBuilder()
        .with_actions(a=_recorder("a"))
        .with_transitions(("a", "a"))
        .with_state(trail=[])
        .with_entrypoint("a")
        .build()
    )
    act, result, state = app.run(halt_before=["a"])
    assert (act.name, result, state) == ("a", None, {"trail": ["a"]})
    assert app.sequence_id == 0


def test_halt_names_can_be_tags():
    app = _chain()
    act, _result, _state = app.run(halt_after=["@tag:odd"])
    assert act.name == "a"
    act, _result, _state = app.run(halt_after=["@tag:odd"])
    assert act.name == "c"


def test_halt_before_a_tag_stops_before_the_first_tagged_action_after_the_first_step():
    app = _chain()
    act, result, state = app.run(halt_before=["@tag:odd"])
    assert (act.name, result, state["trail"]) == ("c", None, ["a", "b"])


def test_run_to_the_end_of_the_graph_returns_the_last_steps_tuple():
    app = _chain()
    act, result, state = app.run(halt_before=["a"])
    assert (act.name, result, state) == ("c", {"ran": "c"}, {"trail": ["a", "b", "c"]})


def test_running_again_with_no_next_action_returns_none_none_state():
    app = _chain()
    app.run(halt_after=["c"])
    assert app.run(halt_after=["c"]) == (None, None, app.state)
    assert list(app.iterate(halt_after=["c"])) == []


def test_run_without_halt_arguments_logs_a_warning_and_runs_to_the_end(caplog):
    app = _chain()
    with caplog.at_level(logging.WARNING, logger="turnout"):
        act, _result, state = app.run()
    assert act.name == "c"
    assert state["trail"] == ["a", "b", "c"]
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert warnings[0].name == "turnout"
    assert "no halt_before/halt_after given" in warnings[0].getMessage()
    assert app.uid in warnings[0].getMessage()


def test_run_with_halt_arguments_logs_no_warning(caplog):
    with caplog.at_level(logging.WARNING, logger="turnout"):
        _chain().run(halt_after=["c"])
    assert caplog.records == []


@pytest.mark.parametrize(
    "halts",
    [{"halt_before": ["a", "nope"]}, {"halt_after": ["nope"]}],
    ids=["halt_before", "halt_after"],
)
def test_unknown_halt_names_raise_listing_the_valid_actions(halts):
    app = _chain()
    with pytest.raises(UnknownActionError) as info:
        app.run(**halts)
    message = str(info.value)
    assert "'nope', which is not an action" in message
    assert "the actions are 'a', 'b', 'c'" in message
    assert isinstance(info.value, ValueError)
    assert app.sequence_id is None


@pytest.mark.parametrize("method", ["run", "iterate"], ids=["run", "iterate"])
def test_a_string_instead_of_a_list_of_halt_names_raises(method):
    app = _chain()
    with pytest.raises(UnknownActionError, match=r"write halt_after=\['b'\]"):
        getattr(app, method)(halt_after="b")


def test_an_unknown_halt_tag_raises():
    with pytest.raises(UnknownActionError, match="no action has the tag 'missing'"):
        _chain().run(halt_after=["@tag:missing"])


# -- inputs --------------------------------------------------------------------------------------


@action(reads=[], writes=["answers"])
def ask(state: State, query: str, shout: bool = False) -> State:
    text = query.upper() if shout else query
    return state.append(answers=text)


def _asker(**state: Any) -> Application:
    return (
        ApplicationBuilder()
        .with_actions(ask)
        .with_transitions(("ask", "ask", expr("len(answers) < 3")))
        .with_state(answers=[], **state)
        .with_entrypoint("ask")
        .build()
    )


@pytest.mark.parametrize(
    ("call", "example"),
    [
        (lambda app: app.step(), 'app.step(inputs={"query": ...})'),
        (
            lambda app: app.run(halt_after=["ask"]),
            "app.run(halt_after=['ask'], inputs={\"query\": ...})",
        ),
        (
            lambda app: next(app.iterate(halt_after=["ask"])),
            "app.iterate(halt_after=['ask'], inputs={\"query\": ...})",
        ),
    ],
    ids=["step", "run", "iterate"],
)
def test_missing_required_inputs_raise_with_an_example_of_the_call_made(call, example):
    app = _asker()
    with pytest.raises(MissingInputsError) as info:
        call(app)
    message = str(info.value)
    assert "action 'ask' needs the input 'query', which was not passed" in message
    assert f"\n    {example}\n" in message
    assert "ask.bind(query=...)" in message
    assert isinstance(info.value, ValueError)
    assert app.state == {"answers": []}


def test_missing_inputs_message_lists_inputs_given():
    with pytest.raises(MissingInputsError, match=r"\(inputs given: \['shout'\]\)"):
        _asker().step(inputs={"shout": True})


def test_optional_inputs_take_their_defaults():
    app = _asker()
    assert app.step(inputs={"query": "hi"})[2]["answers"] == ["hi"]
    assert app.step(inputs={"query": "hi", "shout": True})[2]["answers"] == ["hi", "HI"]


def test_extra_inputs_are_ignored():
    app = _asker()
    assert app.step(inputs={"query": "hi", "unrelated": 1})[2]["answers"] == ["hi"]


def test_inputs_given_to_run_go_to_every_step():
    app = _asker()
    _act, _result, state = app.run(inputs={"query": "q"})
    assert state["answers"] == ["q", "q", "q"]


@pytest.mark.parametrize("method", ["step", "run", "iterate"], ids=["step", "run", "iterate"])
def test_inputs_starting_with_double_underscore_are_rejected(method):
    app = _asker()
    kwargs: dict[str, Any] = {"inputs": {"query": "q", "__context": "mine"}}
    if method != "step":
        kwargs["halt_after"] = ["ask"]
    with pytest.raises(InvalidInputsError, match="reserved for values turnout injects"):
        getattr(app, method)(**kwargs)
    assert app.sequence_id is None


class _ExecuteCallHook:
    def pre_run_execute_call(self, **future_kwargs: Any) -> None:
        pass


@pytest.mark.parametrize(
    "bad", [[("query", "q")], [], "", 0], ids=["pairs", "empty-list", "empty-string", "zero"]
)
@pytest.mark.parametrize("with_hooks", [False, True], ids=["no-hooks", "execute-call-hook"])
def test_step_inputs_that_are_not_a_mapping_are_rejected(bad, with_hooks):
    """Validation must not depend on the value being truthy or on hooks being configured."""
    app = (
        ApplicationBuilder()
        .with_actions(ask.bind(query="q"))
        .with_state(answers=[])
        .with_hooks(*([_ExecuteCallHook()] if with_hooks else []))
        .with_entrypoint("ask")
        .build()
    )
    with pytest.raises(InvalidInputsError, match="inputs must be a dict"):
        app.step(inputs=bad)
    assert app.sequence_id is None


@pytest.mark.parametrize("method", ["run", "iterate"], ids=["run", "iterate"])
def test_run_and_iterate_inputs_that_are_not_a_mapping_are_rejected(method):
    with pytest.raises(InvalidInputsError, match="inputs must be a dict"):
        getattr(_asker(), method)(halt_after=["ask"], inputs=[])


def test_bound_values_cannot_be_overridden_by_inputs():
    app = (
        ApplicationBuilder()
        .with_actions(ask.bind(query="bound"))
        .with_state(answers=[])
        .with_entrypoint("ask")
        .build()
    )
    assert app.step(inputs={"query": "given"})[2]["answers"] == ["bound"]


# -- __context, sequence ids and identity ----------------------------------------------------------


@action(reads=[], writes=["seen"])
def observe(state: State, __context: ApplicationContext) -> State:
    return state.append(seen=(__context, ApplicationContext.get()))


def _observer(**identifiers: Any) -> Application:
    return (
        ApplicationBuilder()
        .with_actions(observe)
        .with_transitions(("observe", "observe"))
        .with_state(seen=[])
        .with_identifiers(**identifiers)
        .with_entrypoint("observe")
        .build()
    )


def test_context_is_injected_with_identity_and_the_current_step():
    app = _observer(app_id="app-1", partition_key="user-7")
    app.step()
    app.step()
    injected = [ctx for ctx, _ in app.state["seen"]]
    assert injected == [
        ApplicationContext(
            app_id="app-1", partition_key="user-7", sequence_id=0, action_name="observe"
        ),
        ApplicationContext(
            app_id="app-1", partition_key="user-7", sequence_id=1, action_name="observe"
        ),
    ]


def test_context_get_returns_the_current_context_inside_an_action_and_none_outside():
    app = _observer()
    assert ApplicationContext.get() is None
    app.step()
    injected, current = app.state["seen"][0]
    assert current == injected
    assert ApplicationContext.get() is None


def test_context_get_is_none_again_after_a_failing_step():
    @action(reads=[], writes=[])
    def boom(state: State) -> State:
        raise RuntimeError("boom")

    app = ApplicationBuilder().with_actions(boom).with_entrypoint("boom").build()
    with pytest.raises(RuntimeError):
        app.step()
    assert ApplicationContext.get() is None


def test_context_property_has_the_next_action_and_the_current_sequence_id_as_in_burr():
    app = _observer(app_id="app-1")
    assert (app.context.sequence_id, app.context.action_name) == (None, "observe")
    app.step()
    assert (app.context.sequence_id, app.context.action_name) == (0, "observe")
    app.step()
    assert app.context.sequence_id == 1
    assert app.state["seen"][-1][0].sequence_id == 1  # the injected one: the running step


def test_sequence_id_is_none_after_build_then_counts_steps_from_zero():
    app = _observer()
    assert app.sequence_id is None
    ids = []
    for _ in range(3):
        app.step()
        ids.append(app.sequence_id)
    assert ids == [0, 1, 2]


def test_a_failed_step_still_uses_up_its_sequence_id():
    @action(reads=[], writes=["seen"])
    def flaky(state: State, __context: ApplicationContext, fail: bool = False) -> State:
        if fail:
            raise RuntimeError("transient")
        return state.append(seen=__context.sequence_id)

    app = (
        ApplicationBuilder()
        .with_actions(flaky)
        .with_transitions(("flaky", "flaky"))
        .with_state(seen=[])
        .with_entrypoint("flaky")
        .build()
    )
    app.step()
    with pytest.raises(RuntimeError):
        app.step(inputs={"fail": True})
    assert app.sequence_id == 1
    app.step()
    assert app.state["seen"] == [0, 2]
    assert app.sequence_id == 2


def test_with_identifiers_sequence_id_continues_from_it():
    app = _observer(sequence_id=5)
    assert app.sequence_id == 5
    app.step()
    assert app.sequence_id == 6
    assert app.state["seen"][0][0].sequence_id == 6


def test_state_never_holds_the_sequence_id_or_the_prior_action():
    app = _chain()
    app.run(halt_after=["b"])
    assert app.state.keys() == ["trail"]
    assert list(app.state.get_all()) == ["trail"]


def test_identifiers_are_exposed():
    app = _observer(app_id="app-1", partition_key="user-7")
    assert (app.uid, app.app_id, app.partition_key) == ("app-1", "app-1", "user-7")


def test_app_id_defaults_to_a_new_uuid_and_partition_key_to_none():
    first, second = _observer(), _observer()
    assert str(uuid.UUID(first.uid)) == first.uid
    assert first.uid != second.uid
    assert first.partition_key is None


# -- position and state --------------------------------------------------------------------------


def test_graph_is_an_application_graph_with_the_entrypoint():
    app = _chain()
    assert isinstance(app.graph, ApplicationGraph)
    assert app.graph.entrypoint.name == "a"
    assert app.entrypoint == "a"
    assert [a.name for a in app.graph.actions] == ["a", "b", "c"]


def test_next_action_moves_along_the_graph_and_is_none_at_the_end():
    app = _chain()
    seen = []
    while app.has_next_action():
        seen.append(app.get_next_action().name)
        app.step()
    assert seen == ["a", "b", "c"]
    assert app.get_next_action() is None


def test_prior_action_is_the_last_completed_action():
    app = _chain()
    assert app.prior_action is None
    app.step()
    assert app.prior_action == "a"
    app.step()
    assert app.prior_action == "b"


def test_reset_to_entrypoint_keeps_the_state_and_sequence_id():
    app = _chain()
    app.run(halt_after=["c"])
    app.reset_to_entrypoint()
    assert app.get_next_action().name == "a"
    assert app.prior_action is None
    assert app.state == {"trail": ["a", "b", "c"]}
    assert app.sequence_id == 2
    app.step()
    assert app.state["trail"] == ["a", "b", "c", "a"]
    assert app.sequence_id == 3


@pytest.mark.parametrize(
    "new_state",
    [State({"trail": ["x"], "extra": 1}), {"trail": ["x"], "extra": 1}],
    ids=["state", "dict"],
)
def test_update_state_replaces_the_whole_state(new_state):
    app = _chain()
    app.step()
    app.update_state(new_state)
    assert app.state == {"trail": ["x"], "extra": 1}
    assert isinstance(app.state, State)
    assert app.step()[2] == {"trail": ["x", "b"], "extra": 1}


def test_update_state_recomputes_the_next_action():
    app = (
        ApplicationBuilder()
        .with_actions(a=_recorder("a"), b=_recorder("b"))
        .with_transitions(("a", "b", expr("go")))
        .with_state(trail=[], go=False)
        .with_entrypoint("a")
        .build()
    )
    app.step()
    assert app.get_next_action() is None
    app.update_state(app.state.update(go=True))
    assert app.get_next_action().name == "b"


@pytest.mark.parametrize("bad", [None, 3, [("trail", [])]], ids=["none", "int", "list"])
def test_update_state_rejects_anything_but_a_state_or_mapping(bad):
    app = _chain()
    with pytest.raises(StateOperationError, match="update_state\\(\\) takes a State") as info:
        app.update_state(bad)
    assert isinstance(info.value, TypeError)
    assert app.state == {"trail": []}


def test_last_changes_are_the_delta_of_the_last_step():
    app = _chain()
    assert app.last_changes == ()
    app.step()
    assert app.last_changes == (Change("append", "trail", "a"),)
    app.step()
    assert app.last_changes == (Change("append", "trail", "b"),)


def test_last_changes_record_each_operation_in_order():
    @action(reads=[], writes=["n", "log", "gone", "name"])
    def mixed(state: State) -> State:
        return (
            state.increment(n=2)
            .extend(log=["x", "y"])
            .update(name="z")
            .wipe(delete=["gone"])
            .update(gone=None)
        )

    app = (
        ApplicationBuilder()
        .with_actions(mixed)
        .with_state(n=1, log=[], gone=True)
        .with_entrypoint("mixed")
        .build()
    )
    app.step()
    assert app.last_changes == (
        Change("increment", "n", 2),
        Change("extend", "log", ("x", "y")),
        Change("set", "name", "z"),
        Change("delete", "gone"),
        Change("set", "gone", None),
    )


def test_last_changes_keep_the_last_successful_step_after_a_failure():
    @action(reads=[], writes=["trail"])
    def sometimes(state: State, fail: bool = False) -> State:
        if fail:
            raise RuntimeError("no")
        return state.append(trail="ok")

    app = (
        ApplicationBuilder()
        .with_actions(sometimes)
        .with_transitions(("sometimes", "sometimes"))
        .with_state(trail=[])
        .with_entrypoint("sometimes")
        .build()
    )
    app.step()
    with pytest.raises(RuntimeError):
        app.step(inputs={"fail": True})
    assert app.last_changes == (Change("append", "trail", "ok"),)


@pytest.mark.parametrize(
    ("configure", "expected"),
    [
        (lambda b: b.with_state(a=1, b=2).with_state(b=3, c=4), {"a": 1, "b": 3, "c": 4}),
        (lambda b: b.with_state(State({"a": 1, "b": 2})).with_state(b=3), {"a": 1, "b": 3}),
        (lambda b: b.with_state({"a": 1}, b=2), {"a": 1, "b": 2}),
        (lambda b: b.with_state({"a": 1}).with_state({"a": 5, "b": 2}), {"a": 5, "b": 2}),
        (lambda b: b.with_state(a=1).with_state(State({"a": 2})), {"a": 2}),
        (lambda b: b, {}),
    ],
    ids=[
        "kwargs-twice",
        "state-then-kwargs",
        "mapping-and-kwargs",
        "mapping-twice",
        "kwargs-then-state",
        "none",
    ],
)
def test_with_state_merges_successive_calls_later_values_winning(configure, expected):
    builder = ApplicationBuilder().with_actions(a=_recorder("a")).with_entrypoint("a")
    app = configure(builder).build()
    assert app.state == expected
    assert isinstance(app.state, State)


def test_with_state_does_not_let_the_application_mutate_the_callers_list():
    initial: list[str] = []
    app = (
        ApplicationBuilder()
        .with_actions(a=_recorder("a"))
        .with_transitions(("a", "a"))
        .with_state(trail=initial)
        .with_entrypoint("a")
        .build()
    )
    app.step()
    app.step()
    assert initial == []
    assert app.state["trail"] == ["a", "a"]


def test_repr_names_identity_and_position():
    app = _observer(app_id="x", partition_key="p")
    assert (
        repr(app) == "Application(app_id='x', partition_key='p', sequence_id=None, next='observe')"
    )


# -- a growing history ---------------------------------------------------------------------------


@action(reads=["n"], writes=["n", "items"])
def grow(state: State) -> State:
    return state.append(items=state["n"]).increment(n=1)


def test_an_appended_history_of_2000_steps_keeps_every_intermediate_state_intact():
    app = (
        ApplicationBuilder()
        .with_actions(grow)
        .with_transitions(("grow", "grow", expr("n < 2000")))
        .with_state(n=0, items=[])
        .with_entrypoint("grow")
        .build()
    )
    states = [state for _act, _result, state in app.iterate()]
    assert len(states) == 2000
    assert app.state["items"] == list(range(2000))
    assert [len(s["items"]) for s in states] == list(range(1, 2001))
    assert states[0]["items"] == [0]
    assert states[999]["items"] == list(range(1000))


def test_lists_handed_out_during_a_2000_step_run_never_grow_afterwards():
    app = (
        ApplicationBuilder()
        .with_actions(grow)
        .with_transitions(("grow", "grow", expr("n < 2000")))
        .with_state(n=0, items=[])
        .with_entrypoint("grow")
        .build()
    )
    seen = [state["items"] for _act, _result, state in app.iterate(halt_after=["grow"])]
    seen += [state["items"] for _act, _result, state in app.iterate()]
    assert len(seen) == 2000
    assert [len(items) for items in seen] == list(range(1, 2001))
    assert seen[-1] == list(range(2000))


# -- hooks ---------------------------------------------------------------------------------------


class Recorder:
    """Implements every hook; records (hook name, payload)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def post_application_create(self, **kwargs: Any) -> None:
        self.calls.append(("post_application_create", kwargs))

    def pre_run_execute_call(self, **kwargs: Any) -> None:
        self.calls.append(("pre_run_execute_call", kwargs))

    def post_run_execute_call(self, **kwargs: Any) -> None:
        self.calls.append(("post_run_execute_call", kwargs))

    def pre_run_step(self, **kwargs: Any) -> None:
        self.calls.append(("pre_run_step", kwargs))

    def post_run_step(self, **kwargs: Any) -> None:
        self.calls.append(("post_run_step", kwargs))

    def names(self) -> list[str]:
        return [name for name, _ in self.calls]


def _hooked(*hooks: Any, action_obj: Any = None) -> Application:
    return (
        ApplicationBuilder()
        .with_actions(a=action_obj or _recorder("a"), b=_recorder("b"))
        .with_transitions(("a", "b"))
        .with_state(trail=[])
        .with_identifiers(app_id="app-1", partition_key="pk")
        .with_hooks(*hooks)
        .with_entrypoint("a")
        .build()
    )


def test_post_application_create_fires_at_build_with_the_graph_and_state():
    recorder = Recorder()
    app = _hooked(recorder)
    assert recorder.names() == ["post_application_create"]
    payload = recorder.calls[0][1]
    assert payload == {
        "app_id": "app-1",
        "partition_key": "pk",
        "state": app.state,
        "application_graph": app.graph,
        "sequence_id": None,
        "parent_pointer": None,
        "spawning_parent_pointer": None,
        "initialization": None,
    }


def test_step_fires_execute_call_and_step_hooks_with_keyword_payloads():
    recorder = Recorder()
    app = _hooked(recorder)
    before = app.state
    recorder.calls.clear()
    _act, _result, after = app.step()
    assert recorder.names() == [
        "pre_run_execute_call",
        "pre_run_step",
        "post_run_step",
        "post_run_execute_call",
    ]
    (_, pre_call), (_, pre_step), (_, post_step), (_, post_call) = recorder.calls
    assert pre_call == {"app_id": "app-1", "partition_key": "pk", "state": before, "method": "step"}
    assert pre_step == {
        "app_id": "app-1",
        "partition_key": "pk",
        "sequence_id": 0,
        "state": before,
        "action": app.graph.get_action("a"),
        "inputs": {},
        "attempt": 1,
    }
    assert post_step == {
        "app_id": "app-1",
        "partition_key": "pk",
        "sequence_id": 0,
        "state": after,
        "action": app.graph.get_action("a"),
        "inputs": {},
        "result": {"ran": "a"},
        "changes": (Change("append", "trail", "a"),),
        "exception": None,
        "attempt": 1,
        "will_retry": False,
    }
    assert post_call == {
        "app_id": "app-1",
        "partition_key": "pk",
        "state": after,
        "method": "step",
        "exception": None,
    }


def test_run_fires_the_execute_call_hooks_once_around_all_its_steps():
    recorder = Recorder()
    app = _hooked(recorder)
    recorder.calls.clear()
    app.run(halt_after=["b"])
    assert recorder.names() == [
        "pre_run_execute_call",
        "pre_run_step",
        "post_run_step",
        "pre_run_step",
        "post_run_step",
        "post_run_execute_call",
    ]
    assert recorder.calls[0][1]["method"] == "run"
    assert [p["sequence_id"] for n, p in recorder.calls if n == "post_run_step"] == [0, 1]


def test_iterate_fires_the_execute_call_hooks_around_the_iteration():
    recorder = Recorder()
    app = _hooked(recorder)
    recorder.calls.clear()
    steps = list(app.iterate(halt_after=["b"]))
    assert len(steps) == 2
    assert recorder.names() == [
        "pre_run_execute_call",
        "pre_run_step",
        "post_run_step",
        "pre_run_step",
        "post_run_step",
        "post_run_execute_call",
    ]
    assert recorder.calls[0][1]["method"] == "iterate"
    assert recorder.calls[-1][1]["exception"] is None


def test_abandoning_iterate_early_reports_no_exception_to_the_execute_call_hook():
    recorder = Recorder()
    app = _hooked(recorder)
    recorder.calls.clear()
    steps = app.iterate(halt_after=["b"])
    next(steps)
    steps.close()
    assert recorder.names()[-1] == "post_run_execute_call"
    assert recorder.calls[-1][1]["exception"] is None


def test_post_run_step_receives_the_exception_of_a_failing_step():
    @action(reads=[], writes=["trail"])
    def broken(state: State) -> State:
        raise RuntimeError("broken")

    recorder = Recorder()
    app = _hooked(recorder, action_obj=broken)
    before = app.state
    recorder.calls.clear()
    with pytest.raises(RuntimeError, match="broken") as info:
        app.step()
    assert recorder.names() == [
        "pre_run_execute_call",
        "pre_run_step",
        "post_run_step",
        "post_run_execute_call",
    ]
    post_step = recorder.calls[2][1]
    assert post_step["exception"] is info.value
    assert post_step["result"] is None
    assert post_step["changes"] == ()
    assert post_step["state"] is before
    assert recorder.calls[3][1]["exception"] is info.value


def test_step_inputs_reach_the_step_hooks():
    recorder = Recorder()
    app = (
        ApplicationBuilder()
        .with_actions(ask)
        .with_state(answers=[])
        .with_hooks(recorder)
        .with_entrypoint("ask")
        .build()
    )
    app.step(inputs={"query": "q", "ignored": 1})
    pre_step = next(p for n, p in recorder.calls if n == "pre_run_step")
    assert pre_step["inputs"] == {"query": "q"}


def test_a_hook_object_may_implement_only_some_hooks_and_hooks_fire_in_order():
    calls: list[str] = []

    class First:
        def post_run_step(self, *, action: Any, **future_kwargs: Any) -> None:
            calls.append(f"first:{action.name}")

    class Second:
        def post_run_step(self, *, sequence_id: int, **future_kwargs: Any) -> None:
            calls.append(f"second:{sequence_id}")

    app = _hooked(First(), Second())
    app.run(halt_after=["b"])
    assert calls == ["first:a", "second:0", "first:b", "second:1"]


def test_an_object_with_no_hook_method_is_a_build_problem():
    class NotAHook:
        def post_step(self, **kwargs: Any) -> None:
            pass

    with pytest.raises(GraphSetupError, match="has none of the hook methods"):
        _hooked(NotAHook())
