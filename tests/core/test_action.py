"""Actions: the ``@action`` decorator, ``bind``, class actions, ``Result``/``Input``, and the checks
the engine makes on every step of every kind of action."""

from __future__ import annotations

import re
import warnings
from typing import Any

import pytest

from turnout import (
    Action,
    ApplicationBuilder,
    ApplicationContext,
    Input,
    Result,
    SingleStepAction,
    State,
    action,
)
from turnout.core.action import ActionFunction, FunctionBasedAction, bound_name
from turnout.core.errors import (
    ActionDefinitionError,
    GraphSetupError,
    InvalidActionReturnError,
    MissingInputsError,
    MissingWriteError,
    TurnoutError,
    UndeclaredWriteError,
    UndeclaredWriteWarning,
)

# -- helpers -------------------------------------------------------------------------------------


def _single(act: Any, name: str = "act", *, strict: bool = False, **state: Any):
    """An application of one action (no transitions), starting from ``state``."""
    return (
        ApplicationBuilder()
        .with_actions(**{name: act})
        .with_state(**state)
        .with_entrypoint(name)
        .build(strict=strict)
    )


@action(reads=["count"], writes=["count"], tags=["counting"])
def counter(state: State, step: int = 1) -> State:
    return state.update(count=state["count"] + step)


@action(reads=[], writes=["total"])
def add(state: State, x: int, y: int) -> State:
    return state.update(total=x + y)


# -- the decorator -------------------------------------------------------------------------------


def test_decorated_function_stays_callable_with_its_original_behaviour():
    assert counter(State({"count": 1}), step=2) == State({"count": 3})


def test_decorator_records_reads_writes_and_tags_on_the_action():
    spec = counter.action_function
    assert isinstance(spec, FunctionBasedAction)
    assert (spec.reads, spec.writes, spec.tags) == (["count"], ["count"], ["counting"])
    assert spec.fn is counter


def test_decorated_function_satisfies_the_action_function_protocol():
    assert isinstance(counter, ActionFunction)


def test_inputs_are_derived_from_the_signature_and_exclude_the_injected_context():
    @action(reads=[], writes=[])
    def many(
        state: State,
        needed: int,
        optional: int = 1,
        *args: Any,
        kw_needed: str,
        kw_optional: str = "x",
        __context: ApplicationContext,
        **kwargs: Any,
    ) -> State:
        return state

    spec = many.action_function
    assert spec.required_inputs == ("needed", "kw_needed")
    assert spec.optional_inputs == ("optional", "kw_optional")


def test_a_context_parameter_with_a_default_is_not_an_optional_input():
    @action(reads=[], writes=[])
    def f(state: State, __context: ApplicationContext | None = None) -> State:
        return state

    assert (f.action_function.required_inputs, f.action_function.optional_inputs) == ((), ())


@pytest.mark.parametrize(
    ("fn", "message"),
    [
        (lambda: None, "must take the state as its first positional parameter"),
        (lambda *, state: state, "must take the state as its first positional parameter"),
        (lambda state, x, /: state, "positional-only"),
    ],
    ids=["no-parameters", "keyword-only-state", "positional-only-input"],
)
def test_decorating_a_function_with_an_unusable_signature_raises(fn, message):
    with pytest.raises(ActionDefinitionError, match=message):
        action(reads=[], writes=[])(fn)


def test_decorating_a_generator_raises_pointing_at_streaming_action():
    def streamer(state: State):
        yield {}, state

    with pytest.raises(ActionDefinitionError, match=r"@streaming_action\(reads=\.\.\., writes="):
        action(reads=[], writes=[])(streamer)


def test_decorating_an_async_generator_raises_pointing_at_streaming_action():
    async def streamer(state: State):
        yield {}, state

    with pytest.raises(ActionDefinitionError, match="streaming_action"):
        action(reads=[], writes=[])(streamer)


def test_decorating_a_non_callable_raises():
    with pytest.raises(ActionDefinitionError, match="decorates a function, got int"):
        action(reads=[], writes=[])(42)  # type: ignore[type-var]


@pytest.mark.parametrize(
    ("kwargs", "fix"),
    [
        ({"reads": "count", "writes": []}, "reads=['count']"),
        ({"reads": [], "writes": "count"}, "writes=['count']"),
        ({"reads": [], "writes": [], "tags": "slow"}, "tags=['slow']"),
    ],
    ids=["reads", "writes", "tags"],
)
def test_a_string_instead_of_a_list_raises_naming_the_fix(kwargs, fix):
    with pytest.raises(ActionDefinitionError, match="must be a list of strings, got the string"):
        action(**kwargs)
    with pytest.raises(ActionDefinitionError) as info:
        action(**kwargs)
    assert fix in str(info.value)


@pytest.mark.parametrize(
    ("reads", "message"),
    [
        (5, "reads must be a list of strings, got int: 5"),
        (["ok", 3], r"every entry of reads must be a string, got \[3\]"),
    ],
    ids=["not-iterable", "non-string-entry"],
)
def test_reads_that_are_not_a_list_of_strings_raise(reads, message):
    with pytest.raises(ActionDefinitionError, match=message):
        action(reads=reads, writes=[])


def test_action_definition_error_is_a_turnout_error_and_a_type_error():
    with pytest.raises(ActionDefinitionError) as info:
        action(reads="count", writes=[])
    assert isinstance(info.value, TurnoutError)
    assert isinstance(info.value, TypeError)


# -- bind ----------------------------------------------------------------------------------------


def test_bind_removes_the_bound_parameters_from_the_inputs():
    bound = add.bind(x=1)
    assert bound.action_function.required_inputs == ("y",)
    assert add.action_function.required_inputs == ("x", "y")


def test_bound_function_stays_callable_with_the_bound_values():
    assert add.bind(x=1)(State(), y=2)["total"] == 3


def test_chained_bind_accumulates_the_bound_parameters():
    bound = add.bind(x=1).bind(y=2)
    assert bound.action_function.required_inputs == ()
    assert bound.action_function.bound_params == {"x": 1, "y": 2}
    assert bound(State())["total"] == 3


def test_binding_an_unknown_parameter_raises_naming_it():
    with pytest.raises(ActionDefinitionError, match="no parameter\\(s\\) 'z'"):
        add.bind(z=1)


def test_binding_the_state_parameter_raises():
    with pytest.raises(ActionDefinitionError, match="no parameter\\(s\\) 'state'"):
        add.bind(state=State())


def test_a_bound_action_runs_in_an_application_under_its_function_name():
    app = ApplicationBuilder().with_actions(add.bind(x=1, y=2)).with_entrypoint("add").build()
    act, _result, state = app.step()
    assert act.name == "add"
    assert state["total"] == 3


def test_a_bound_value_cannot_be_overridden_by_inputs():
    app = _single(add.bind(x=1), y=0)
    _act, _result, state = app.step(inputs={"x": 100, "y": 2})
    assert state["total"] == 3


# -- class actions -------------------------------------------------------------------------------


class Recording(Action):
    """Records what ``run`` and ``update`` receive (the builder runs a named copy of it, which
    shares ``saw``)."""

    def __init__(self) -> None:
        super().__init__()
        self.saw: dict[str, dict[str, Any]] = {}

    @property
    def reads(self) -> list[str]:
        return ["a"]

    @property
    def writes(self) -> list[str]:
        return ["b"]

    def run(self, state: State, **run_kwargs: Any) -> dict[str, Any]:
        self.saw["run"] = dict(state)
        return {"b": state["a"] * 2}

    def update(self, result: dict[str, Any], state: State) -> State:
        self.saw["update"] = dict(state)
        return state.update(b=result["b"])


def test_class_action_run_receives_only_its_reads_and_update_the_whole_state():
    recording = Recording()
    app = _single(recording, a=2, b=0, other="x")
    _act, result, state = app.step()
    assert recording.saw["run"] == {"a": 2}
    assert recording.saw["update"] == {"a": 2, "b": 0, "other": "x"}
    assert result == {"b": 4}
    assert state == {"a": 2, "b": 4, "other": "x"}


class WithInputs(Action):
    def __init__(self, declared: Any) -> None:
        super().__init__()
        self._declared = declared

    @property
    def reads(self) -> list[str]:
        return []

    @property
    def writes(self) -> list[str]:
        return []

    @property
    def inputs(self) -> Any:
        return self._declared

    def run(self, state: State, **run_kwargs: Any) -> dict[str, Any]:
        return dict(run_kwargs)

    def update(self, result: dict[str, Any], state: State) -> State:
        return state


@pytest.mark.parametrize(
    ("declared", "required", "optional"),
    [
        (["a", "b"], ("a", "b"), ()),
        (("a", "b"), ("a", "b"), ()),
        ((["a"], ["b"]), ("a",), ("b",)),
        ((["a", "__context"], []), ("a",), ()),
        ([], (), ()),
    ],
    ids=[
        "list-all-required",
        "tuple-of-names-all-required",
        "required-optional-pair",
        "context-is-not-an-input",
        "none",
    ],
)
def test_class_action_inputs_declaration(declared, required, optional):
    act = WithInputs(declared)
    assert (act.required_inputs, act.optional_inputs) == (required, optional)


def test_class_action_receives_its_declared_inputs_only():
    app = _single(WithInputs((["a"], ["b"])))
    _act, result, _state = app.step(inputs={"a": 1, "b": 2, "c": 3})
    assert result == {"a": 1, "b": 2}


def test_class_action_declaring_context_receives_the_application_context():
    app = _single(WithInputs(["__context"]))
    _act, result, _state = app.step()
    assert isinstance(result["__context"], ApplicationContext)
    assert result["__context"].action_name == "act"


class Swap(SingleStepAction):
    """Records the state ``run_and_update`` receives (shared with the builder's named copy)."""

    def __init__(self) -> None:
        super().__init__()
        self.saw: list[dict[str, Any]] = []

    @property
    def reads(self) -> list[str]:
        return ["a"]

    @property
    def writes(self) -> list[str]:
        return ["a"]

    def run_and_update(self, state: State, **run_kwargs: Any) -> tuple[dict[str, Any], State]:
        self.saw.append(dict(state))
        return {"old": state["a"]}, state.update(a=-state["a"])


def test_single_step_action_run_and_update_receives_the_whole_state():
    swap = Swap()
    app = _single(swap, a=1, other=2)
    _act, result, state = app.step()
    assert swap.saw == [{"a": 1, "other": 2}]
    assert result == {"old": 1}
    assert state == {"a": -1, "other": 2}


@pytest.mark.parametrize(
    "call",
    [lambda a: a.run(State()), lambda a: a.update({}, State())],
    ids=["run", "update"],
)
def test_single_step_action_run_and_update_methods_raise(call):
    with pytest.raises(ActionDefinitionError, match="call run_and_update"):
        call(Swap())


def test_an_unnamed_class_action_has_no_name_until_bound_as_in_burr():
    assert Swap().name is None
    assert Swap().with_name("swap").name == "swap"


def test_bound_name_of_an_unnamed_action_says_how_to_give_one():
    with pytest.raises(ActionDefinitionError, match=r"with_actions\(my_name=action\)"):
        bound_name(Swap())


def test_with_name_returns_a_named_copy():
    original = Swap()
    named = original.with_name("swap")
    assert named.name == "swap"
    assert not original.has_name


def test_with_name_rejects_an_empty_name():
    with pytest.raises(ActionDefinitionError, match="non-empty string"):
        Swap().with_name("")


def test_class_action_with_string_reads_is_rejected_at_build():
    """A string ``reads`` must not be split into one-letter keys."""

    class StringReads(Action):
        reads = "count"  # type: ignore[assignment]
        writes = ("count",)  # type: ignore[assignment]

        def run(self, state: State, **run_kwargs: Any) -> dict[str, Any]:
            return {}

        def update(self, result: dict[str, Any], state: State) -> State:
            return state

    builder = (
        ApplicationBuilder()
        .with_actions(bad=StringReads())
        .with_state(count=0)
        .with_entrypoint("bad")
    )
    with pytest.raises((ActionDefinitionError, GraphSetupError), match=r"reads=\['count'\]"):
        builder.build(strict=True)


# -- Result and Input ----------------------------------------------------------------------------


def test_result_returns_its_keys_as_the_result_and_leaves_the_state_unchanged():
    app = _single(Result("a", "b"), name="result", a=1, b=2, c=3)
    act, result, state = app.step()
    assert act.name == "result"
    assert result == {"a": 1, "b": 2}
    assert state == {"a": 1, "b": 2, "c": 3}
    assert app.last_changes == ()


def test_input_copies_inputs_of_the_same_names_into_the_state():
    app = _single(Input("question", "user"), name="take", question=None, user=None)
    _act, result, state = app.step(inputs={"question": "why?", "user": "ann", "other": 1})
    assert result == {"question": "why?", "user": "ann"}
    assert state == {"question": "why?", "user": "ann"}


def test_input_requires_its_inputs():
    app = _single(Input("question"), name="take", question=None)
    with pytest.raises(MissingInputsError, match="'question'"):
        app.step()


# -- repr ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("act", "expected"),
    [
        (Result("a", "b"), "Result: a, b -> {}"),
        (Result("a").with_name("out"), "out: a -> {}"),
        (Input("q").with_name("take"), "take: {} -> q"),
        (counter.action_function.with_name("counter"), "counter: count -> count"),
    ],
    ids=["unnamed-class", "named-class", "no-reads", "named-function"],
)
def test_action_repr_shows_name_reads_and_writes(act, expected):
    assert repr(act) == expected


def test_action_repr_in_a_built_graph_uses_the_graph_name():
    app = _single(counter, name="tick", count=0)
    assert repr(app.graph.get_action("tick")) == "tick: count -> count"


# -- the engine's checks on every step -------------------------------------------------------------


def _fn_action(body, reads=("count",), writes=("count",)):
    @action(reads=list(reads), writes=list(writes))
    def act(state: State) -> Any:
        return body(state)

    return act


def _bound_fn_action(body, reads=("count",), writes=("count",)):
    """Bound, so the engine runs it through ``run_and_update`` rather than calling it directly."""

    @action(reads=list(reads), writes=list(writes))
    def act(state: State, unused: int) -> Any:
        return body(state)

    return act.bind(unused=0)


class _TwoStep(Action):
    def __init__(self, update_body, writes=("count",), run_body=None) -> None:
        super().__init__()
        self._update_body = update_body
        self._run_body = run_body
        self._writes = list(writes)

    @property
    def reads(self) -> list[str]:
        return ["count"]

    @property
    def writes(self) -> list[str]:
        return self._writes

    def run(self, state: State, **run_kwargs: Any) -> Any:
        return self._run_body(state) if self._run_body else {"count": state["count"] + 1}

    def update(self, result: dict[str, Any], state: State) -> Any:
        return self._update_body(state)


class _OneStep(SingleStepAction):
    def __init__(self, body, writes=("count",)) -> None:
        super().__init__()
        self._body = body
        self._writes = list(writes)

    @property
    def reads(self) -> list[str]:
        return ["count"]

    @property
    def writes(self) -> list[str]:
        return self._writes

    def run_and_update(self, state: State, **run_kwargs: Any) -> Any:
        return {}, self._body(state)


KINDS = {
    "function": lambda body, **kw: _fn_action(body, **kw),
    "bound-function": lambda body, **kw: _bound_fn_action(body, **kw),
    "action": lambda body, **kw: _TwoStep(body, **kw),
    "single-step": lambda body, **kw: _OneStep(body, **kw),
}

UNDECLARED = {
    "new-key": (lambda s: s.update(count=1, sneaky=True), "'sneaky' (set 'sneaky')"),
    "modify-existing": (lambda s: s.update(count=1, other=2), "'other' (set 'other')"),
    "delete-existing": (lambda s: s.update(count=1).wipe(delete=["other"]), "(delete 'other')"),
    "append": (lambda s: s.update(count=1).append(log="x"), "(append 'log')"),
    "increment": (lambda s: s.update(count=1).increment(other=1), "(increment 'other')"),
    "fresh-state-drops-key": (
        lambda s: State({"count": 1}),
        "'other' (delete 'other')",
    ),
}


@pytest.mark.parametrize("kind", list(KINDS), ids=list(KINDS))
@pytest.mark.parametrize(("body", "shown"), list(UNDECLARED.values()), ids=list(UNDECLARED))
def test_changing_an_undeclared_key_raises_naming_action_key_and_fix_in_strict_mode(
    kind, body, shown
):
    app = _single(KINDS[kind](body), name="sloppy", strict=True, count=0, other=1)
    with pytest.raises(UndeclaredWriteError) as info:
        app.step()
    message = str(info.value)
    assert "action 'sloppy' changed" in message
    assert shown in message
    assert "Add it to writes" in message
    assert "writes=['count'," in message


@pytest.mark.parametrize("kind", list(KINDS), ids=list(KINDS))
@pytest.mark.parametrize(("body", "shown"), list(UNDECLARED.values()), ids=list(UNDECLARED))
def test_an_undeclared_change_is_applied_with_a_warning_naming_action_key_and_fix(
    kind, body, shown
):
    app = _single(KINDS[kind](body), name="sloppy", count=0, other=1)
    expected = body(State({"count": 0, "other": 1}))
    with pytest.warns(UndeclaredWriteWarning) as record:
        _act, _result, state = app.step()
    assert state == expected.get_all()
    assert app.state == expected.get_all()
    assert len(record) == 1
    message = str(record[0].message)
    assert "action 'sloppy' changed" in message
    assert shown in message
    assert "writes=['count'," in message
    assert "build(strict=True)" in message


def test_the_undeclared_write_warning_comes_once_per_action_and_key():
    @action(reads=["n"], writes=["n"])
    def sloppy(state: State) -> State:
        return state.update(n=state["n"] + 1, seen=True).append(log=state["n"])

    @action(reads=["n"], writes=["n"])
    def other(state: State) -> State:
        return state.update(n=state["n"] + 1, seen=False)

    app = (
        ApplicationBuilder()
        .with_actions(sloppy, other)
        .with_transitions(("sloppy", "other"), ("other", "sloppy"))
        .with_state(n=0)
        .with_entrypoint("sloppy")
        .build()
    )
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        app.run(halt_after=["other"], inputs={})
        app.run(halt_after=["other"], inputs={})
    assert {w.category for w in record} == {UndeclaredWriteWarning}
    assert app.state == {"n": 4, "seen": False, "log": [0, 2]}
    messages = sorted(str(w.message).split(" but ")[0] for w in record)
    assert messages == [
        "action 'other' changed 'seen' (set 'seen')",
        "action 'sloppy' changed 'seen', 'log' (set 'seen', append 'log')",
    ]


def test_undeclared_write_error_lists_the_full_writes_to_declare():
    body = _fn_action(lambda s: s.update(count=1, sneaky=True))
    app = _single(body, name="sloppy", strict=True, count=0)
    with pytest.raises(UndeclaredWriteError, match=re.escape("writes=['count', 'sneaky']")):
        app.step()


@pytest.mark.parametrize("kind", list(KINDS), ids=list(KINDS))
def test_a_declared_write_missing_after_the_step_raises(kind):
    act = KINDS[kind](lambda s: s.update(count=1), writes=("count", "answer"))
    app = _single(act, name="forgetful", count=0)
    with pytest.raises(MissingWriteError, match=r"action 'forgetful' .*\['answer'\] is not in"):
        app.step()


@pytest.mark.parametrize("strict", [False, True], ids=["default", "strict"])
def test_deleting_a_declared_write_is_a_write_not_a_missing_one(strict):
    act = _fn_action(lambda s: s.wipe(delete=["count"]))
    app = _single(act, name="eraser", strict=strict, count=0, kept=1)
    _act, _result, state = app.step()
    assert state == {"kept": 1}
    assert [(c.op, c.key) for c in app.last_changes] == [("delete", "count")]


def test_declared_writes_that_are_left_unchanged_are_fine():
    app = _single(_fn_action(lambda s: s), name="noop", count=0)
    _act, _result, state = app.step()
    assert state == {"count": 0}
    assert app.last_changes == ()


@pytest.mark.parametrize(
    ("returned", "message"),
    [
        ({"count": 1}, "must return either a State or a \\(result_dict, State\\) tuple, got dict"),
        (None, "got NoneType"),
        (("a", "b", "c"), "got tuple"),
        (("not-a-dict", State({"count": 1})), "returned a non-dict result of type str"),
        (({}, {"count": 1}), "got tuple"),
    ],
    ids=["dict", "none", "three-tuple", "non-dict-result", "dict-instead-of-state"],
)
def test_function_action_with_a_wrong_return_type_raises_naming_it(returned, message):
    app = _single(_fn_action(lambda s: returned), name="odd", count=0)
    with pytest.raises(InvalidActionReturnError, match=message) as info:
        app.step()
    assert "action 'odd'" in str(info.value)


def test_a_wrong_return_whose_repr_raises_still_raises_the_error_naming_the_fix():
    class Opaque:
        def __repr__(self) -> str:
            raise RuntimeError("repr broke")

    app = _single(_fn_action(lambda s: Opaque()), name="odd", count=0)
    with pytest.raises(InvalidActionReturnError, match=r"got Opaque: <.*Opaque object>"):
        app.step()


def test_class_action_run_returning_a_non_dict_raises():
    act = _TwoStep(lambda s: s, run_body=lambda s: [1, 2])
    app = _single(act, name="lister", count=0)
    with pytest.raises(
        InvalidActionReturnError, match="action 'lister': run\\(\\) must return a dict"
    ):
        app.step()


def test_class_action_update_returning_a_non_state_raises():
    act = _TwoStep(lambda s: {"count": 1})
    app = _single(act, name="dicty", count=0)
    with pytest.raises(
        InvalidActionReturnError, match="action 'dicty': update\\(\\) must return a State"
    ):
        app.step()


def test_single_step_action_returning_a_non_state_raises():
    act = _OneStep(lambda s: "nope")
    app = _single(act, name="stringy", count=0)
    with pytest.raises(InvalidActionReturnError, match="action 'stringy'"):
        app.step()


@action(reads=["count", "items"], writes=["count", "items"])
def moody(state: State, mode: str = "ok") -> Any:
    grown = state.append(items=state["count"]).update(count=state["count"] + 1)
    if mode == "ok":
        return grown
    if mode == "undeclared":
        return grown.update(sneaky=1)
    if mode == "bad-return":
        return {"count": 99}
    raise RuntimeError("boom")


@pytest.mark.parametrize(
    ("mode", "error"),
    [
        ("undeclared", UndeclaredWriteError),
        ("bad-return", InvalidActionReturnError),
        ("raise", RuntimeError),
    ],
    ids=["undeclared-write", "bad-return", "action-raises"],
)
def test_a_failing_step_leaves_the_state_unchanged_and_the_app_usable(mode, error):
    app = (
        ApplicationBuilder()
        .with_actions(moody)
        .with_transitions(("moody", "moody"))
        .with_state(count=0, items=[])
        .with_entrypoint("moody")
        .build(strict=True)
    )
    app.step()
    before = app.state
    with pytest.raises(error):
        app.step(inputs={"mode": mode})
    assert app.state == {"count": 1, "items": [0]}
    assert app.state == before
    assert app.get_next_action().name == "moody"
    _act, _result, state = app.step()
    assert state == {"count": 2, "items": [0, 1]}
    assert app.step()[2] == {"count": 3, "items": [0, 1, 2]}
