"""Graphs: ``GraphBuilder``/``Graph``, transitions and their conditions, and the validation that
``ApplicationBuilder.build()`` performs (every problem in one error; one warning for suspicious
but legal graphs)."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from collections.abc import Callable
from typing import Any

import pytest

from turnout import (
    ApplicationBuilder,
    Condition,
    Graph,
    GraphBuilder,
    Result,
    State,
    action,
    default,
    expr,
    when,
)
from turnout.core.errors import ConditionKeyError, GraphSetupError, GraphWarning, TurnoutError
from turnout.core.graph import ApplicationGraph, Transition


def _noop(reads: list[str] | None = None, writes: list[str] | None = None, tags=()):
    @action(reads=reads or [], writes=writes or [], tags=list(tags))
    def noop(state: State) -> State:
        return state

    return noop


@action(reads=["count"], writes=["count"], tags=["counting"])
def count(state: State) -> State:
    return state.update(count=state["count"] + 1)


@action(reads=["count"], writes=["done"])
def finish(state: State) -> State:
    return state.update(done=True)


def _graph() -> Graph:
    return (
        GraphBuilder()
        .with_actions(count, finish)
        .with_transitions(("count", "count", expr("count < 3")), ("count", "finish"))
        .build()
    )


# -- GraphBuilder and Graph ----------------------------------------------------------------------


def test_graph_builder_builds_a_graph_without_an_entrypoint():
    graph = _graph()
    assert isinstance(graph, Graph)
    assert not isinstance(graph, ApplicationGraph)
    assert [a.name for a in graph.actions] == ["count", "finish"]
    assert [(t.from_.name, t.to.name, t.condition.name) for t in graph.transitions] == [
        ("count", "count", "count < 3"),
        ("count", "finish", "default"),
    ]
    assert all(isinstance(t, Transition) for t in graph.transitions)


def test_graph_looks_actions_up_by_name_and_tag():
    graph = _graph()
    assert graph.get_action("finish").name == "finish"
    assert graph.get_action("nope") is None
    assert graph.has_action("count")
    assert not graph.has_action("nope")
    assert [a.name for a in graph.get_actions_by_tag("counting")] == ["count"]


def test_graph_unknown_tag_raises_listing_the_known_tags():
    with pytest.raises(
        ValueError, match=r"no action has the tag 'nope'; tags in this graph: \['counting'\]"
    ):
        _graph().get_actions_by_tag("nope")


def test_graph_next_action_follows_conditions_in_order():
    graph = _graph()
    assert graph.next_action(None, State({"count": 0}), "count").name == "count"
    assert graph.next_action("count", State({"count": 0}), "count").name == "count"
    assert graph.next_action("count", State({"count": 3}), "count").name == "finish"
    assert graph.next_action("finish", State({"count": 3}), "count") is None
    assert graph.get_next_node("count", State({"count": 3}), "count").name == "finish"


def test_graph_repr_names_its_actions_and_counts_transitions():
    assert repr(_graph()) == "Graph(actions=['count', 'finish'], transitions=2)"


def test_graph_builder_reports_every_problem_in_one_error():
    builder = (
        GraphBuilder()
        .with_actions(count)
        .with_transitions(("count", "ghost"), ("count", "count", "count < 3"))
    )
    with pytest.raises(GraphSetupError) as info:
        builder.build()
    assert info.value.problems == [
        "transition 'count' -> 'ghost' names action(s) not found in the graph: "
        "'ghost'; known actions: count.",
        "transition 'count' -> 'count': the condition must be a Condition (when(...), expr(...), "
        "default), got str: 'count < 3'.",
    ]


def test_an_empty_graph_builder_reports_no_actions():
    with pytest.raises(
        GraphSetupError, match="there are no actions; add at least one with with_actions"
    ):
        GraphBuilder().build()


def test_a_transition_from_a_list_of_names_adds_one_transition_per_source():
    graph = (
        GraphBuilder()
        .with_actions(a=_noop(), b=_noop(), c=_noop())
        .with_transitions(("a", "b"), (["a", "b"], "c", when(go=True)))
        .build()
    )
    assert [(t.from_.name, t.to.name) for t in graph.transitions] == [
        ("a", "b"),
        ("a", "c"),
        ("b", "c"),
    ]


def test_a_graph_is_reused_by_several_applications_that_run_independently():
    graph = _graph()
    first = ApplicationBuilder().with_graph(graph).with_state(count=0).with_entrypoint("count")
    second = ApplicationBuilder().with_graph(graph).with_state(count=2).with_entrypoint("count")
    app1, app2 = first.build(), second.build()
    *_, state2 = app2.run(halt_after=["finish"])
    assert state2 == {"count": 3, "done": True}
    assert app1.state == {"count": 0}
    *_, state1 = app1.run(halt_after=["finish"])
    assert state1 == {"count": 3, "done": True}
    assert [a.name for a in app1.graph.actions] == ["count", "finish"]


def test_with_graph_can_be_extended_with_more_actions_and_transitions():
    app = (
        ApplicationBuilder()
        .with_graph(_graph())
        .with_actions(report=Result("count"))
        .with_transitions(("finish", "report"))
        .with_state(count=2)
        .with_entrypoint("count")
        .build()
    )
    act, result, _state = app.run(halt_after=["report"])
    assert (act.name, result) == ("report", {"count": 3})


def test_graph_builder_with_graph_copies_actions_and_transitions():
    copy = GraphBuilder().with_graph(_graph()).build()
    assert repr(copy) == repr(_graph())


def test_with_graph_rejects_a_non_graph():
    with pytest.raises(GraphSetupError, match="with_graph\\(\\) takes a Graph, got dict"):
        GraphBuilder().with_actions(count).with_graph({}).build()  # type: ignore[arg-type]


# -- conditions on transitions --------------------------------------------------------------------


def _router_app(**state: Any):
    """``start`` routes to x, y or z; the conditions of y and z overlap, y is declared first."""
    return (
        ApplicationBuilder()
        .with_actions(start=_noop(), x=_noop(), y=_noop(), z=_noop())
        .with_transitions(
            ("start", "x", when(kind="x")),
            ("start", "y", expr("n > 5")),
            ("start", "z", expr("n > 0")),
        )
        .with_state(**state)
        .with_entrypoint("start")
        .build()
    )


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        ({"kind": "x", "n": 10}, "x"),
        ({"kind": "-", "n": 10}, "y"),
        ({"kind": "-", "n": 1}, "z"),
        ({"kind": "-", "n": 0}, None),
    ],
    ids=["first-of-three-matching", "second-before-overlapping-third", "only-last", "none-match"],
)
def test_first_matching_transition_in_declaration_order_wins(state, expected):
    app = _router_app(**state)
    app.step()
    nxt = app.get_next_action()
    assert (nxt.name if nxt is not None else None) == expected


def test_no_matching_transition_ends_the_run():
    app = _router_app(kind="-", n=0)
    act, _result, _state = app.run(halt_after=["x"])
    assert act.name == "start"
    assert not app.has_next_action()
    assert app.step() is None


@pytest.mark.parametrize(
    ("transitions", "expected"),
    [
        ((("start", "x"), ("start", "y", when(n=1))), "x"),
        ((("start", "x", expr("n > 100")), ("start", "y")), "y"),
        ((("start", "x", expr("n == 1")), ("start", "y")), "x"),
    ],
    ids=[
        "default-declared-first-shadows-later-conditions",
        "failing-condition-falls-through-to-default",
        "holding-condition-before-default-wins",
    ],
)
def test_a_default_transition_is_taken_in_declaration_order_too(transitions, expected):
    app = (
        ApplicationBuilder()
        .with_actions(start=_noop(), x=_noop(), y=_noop())
        .with_transitions(*transitions)
        .with_state(n=1)
        .with_entrypoint("start")
        .build()
    )
    app.step()
    assert app.get_next_action().name == expected


@pytest.mark.parametrize(
    ("condition", "name"),
    [
        (expr("score > 1"), "score > 1"),
        (when(score=1), "score=1"),
        (when(score__gte=1), "score>=1"),
        (Condition.lmda(lambda s: s["score"] > 1, ["score"]), "<lambda>"),
        (~expr("score > 1"), "~score > 1"),
    ],
    ids=["expr", "when", "when-operator", "lmda", "negated"],
)
def test_a_condition_reading_a_missing_key_raises_naming_condition_transition_and_key(
    condition, name
):
    app = (
        ApplicationBuilder()
        .with_actions(start=_noop(), scorer=_noop(writes=["score"]))
        .with_transitions(("start", "scorer", condition))
        .with_entrypoint("start")
        .build()
    )
    app.step()
    with pytest.raises(ConditionKeyError) as info:
        app.step()
    message = str(info.value)
    assert f"the condition {name!r} on the transition 'start' -> 'scorer'" in message
    assert "reads 'score' that the state does not hold" in message
    assert isinstance(info.value, KeyError)
    assert isinstance(info.value, TurnoutError)


def test_after_a_condition_key_error_providing_the_key_lets_the_run_continue():
    app = (
        ApplicationBuilder()
        .with_actions(start=_noop(), scorer=_noop(writes=["score"]))
        .with_transitions(("start", "scorer", expr("score > 1")))
        .with_entrypoint("start")
        .build()
    )
    app.step()
    with pytest.raises(ConditionKeyError):
        app.get_next_action()
    app.update_state({"score": 2})
    assert app.get_next_action().name == "scorer"


# -- build validation: every problem, one error ---------------------------------------------------


def _valid(builder: ApplicationBuilder) -> ApplicationBuilder:
    return builder.with_actions(a=_noop(), b=_noop()).with_transitions(("a", "b"))


def _plain_function(state: State) -> State:
    return state


class _NoHooks:
    def __repr__(self) -> str:
        return "NoHooks()"


PROBLEMS: dict[str, tuple[Callable[[ApplicationBuilder], Any], str]] = {
    "unknown-target": (
        lambda b: _valid(b).with_transitions(("a", "ghost")).with_entrypoint("a"),
        "transition 'a' -> 'ghost' names action(s) not found in the graph: "
        "'ghost'; known actions: a, b.",
    ),
    "unknown-source": (
        lambda b: _valid(b).with_transitions(("ghost", "a")).with_entrypoint("a"),
        "transition 'ghost' -> 'a' names action(s) not found in the graph: "
        "'ghost'; known actions: a, b.",
    ),
    "unknown-source-and-target": (
        lambda b: _valid(b).with_transitions(("x", "y", when(n=1))).with_entrypoint("a"),
        "transition 'x' -> 'y' names action(s) not found in the graph: "
        "'x', 'y'; known actions: a, b.",
    ),
    "duplicate-positional-in-one-call": (
        lambda b: b.with_actions(count, count).with_entrypoint("count"),
        "two actions are named 'count' (duplicated); give one another name, "
        "e.g. with_actions(count_2=...).",
    ),
    "duplicate-across-calls": (
        lambda b: _valid(b).with_actions(a=_noop()).with_entrypoint("a"),
        "two actions are named 'a' (duplicated); give one another name, "
        "e.g. with_actions(a_2=...).",
    ),
    "duplicate-positional-and-keyword": (
        lambda b: b.with_actions(count, count=finish).with_entrypoint("count"),
        "two actions are named 'count' (duplicated); give one another name, "
        "e.g. with_actions(count_2=...).",
    ),
    "unknown-entrypoint": (
        lambda b: _valid(b).with_entrypoint("c"),
        "the entrypoint 'c' is not an action; the actions are 'a', 'b'.",
    ),
    "entrypoint-set-twice": (
        lambda b: _valid(b).with_entrypoint("a").with_entrypoint("b"),
        "with_entrypoint() was called twice ('a', then 'b'); keep one.",
    ),
    "two-defaults-from-one-action": (
        lambda b: _valid(b).with_transitions(("a", "a")).with_entrypoint("a"),
        "action 'a' has 2 default transitions; all but the first are redundant (never taken), "
        "so give them a condition or remove them.",
    ),
    "explicit-default-counts-as-default": (
        lambda b: _valid(b).with_transitions(("a", "a", default)).with_entrypoint("a"),
        "action 'a' has 2 default transitions; all but the first are redundant (never taken), "
        "so give them a condition or remove them.",
    ),
    "non-action-object": (
        lambda b: _valid(b).with_actions(42).with_entrypoint("a"),
        "42 is not a valid action (got int).",
    ),
    "undecorated-function": (
        lambda b: _valid(b).with_actions(_plain_function).with_entrypoint("a"),
        "'_plain_function' is not a valid action (got function). Decorate it with "
        "@action(reads=[...], writes=[...]).",
    ),
    "non-action-by-keyword": (
        lambda b: _valid(b).with_actions(c="text").with_entrypoint("a"),
        "'c' is not a valid action (got str).",
    ),
    "non-condition-condition": (
        lambda b: _valid(b).with_transitions(("b", "a", "n > 1")).with_entrypoint("a"),
        "transition 'b' -> 'a': the condition must be a Condition (when(...), expr(...), "
        "default), got str: 'n > 1'.",
    ),
    "malformed-transition": (
        lambda b: _valid(b).with_transitions(("a",)).with_entrypoint("a"),
        "a transition must be a tuple (from, to) or (from, to, condition), got ('a',).",
    ),
    "non-name-source": (
        lambda b: _valid(b).with_transitions((3, "a")).with_entrypoint("a"),
        "transition (3, 'a'): 'from' must be an action name or a list of names.",
    ),
    "hook-without-hook-methods": (
        lambda b: _valid(b).with_entrypoint("a").with_hooks(_NoHooks()),
        "with_hooks(): NoHooks() has none of the hook methods (post_application_create, "
        "pre_run_execute_call, post_run_execute_call, pre_run_step, post_run_step, "
        "pre_start_span, post_end_span, do_log_attributes, pre_start_stream, post_stream_item, "
        "post_end_stream).",
    ),
    "state-not-a-mapping": (
        lambda b: _valid(b).with_entrypoint("a").with_state([("n", 1)]),
        "with_state() takes a State, a mapping or keyword values, got list: [('n', 1)].",
    ),
}


@pytest.mark.parametrize(("configure", "problem"), list(PROBLEMS.values()), ids=list(PROBLEMS))
def test_build_reports_the_problem_in_a_graph_setup_error(configure, problem):
    with pytest.raises(GraphSetupError) as info:
        configure(ApplicationBuilder()).build()
    assert info.value.problems == [problem]
    assert str(info.value) == f"the application graph has 1 problem:\n  - {problem}"


def test_build_reports_a_missing_entrypoint_with_an_example():
    with pytest.raises(GraphSetupError) as info:
        ApplicationBuilder().with_actions(count).with_state(count=0).build()
    assert info.value.problems == [
        "no entrypoint: call .with_entrypoint(<action name>); e.g. .with_entrypoint('count')"
    ]


_HINT_SCRIPT = """
from turnout import ApplicationBuilder, State, action

def make():
    @action(reads=[], writes=[])
    def noop(state: State) -> State:
        return state
    return noop

try:
    ApplicationBuilder().with_actions(alpha=make(), beta=make(), gamma=make()).build()
except ValueError as exc:
    print(exc.problems[0])
"""


def test_the_missing_entrypoint_hint_names_the_first_action_whatever_the_hash_seed():
    """The message must not change from run to run (it once picked from a set)."""
    hints = set()
    for seed in ("1", "2", "3"):
        out = subprocess.run(
            [sys.executable, "-c", _HINT_SCRIPT],
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
        )
        hints.add(out.stdout.strip())
    assert hints == {
        "no entrypoint: call .with_entrypoint(<action name>); e.g. .with_entrypoint('alpha')"
    }


def test_build_with_no_actions_reports_both_missing_actions_and_entrypoint():
    with pytest.raises(GraphSetupError) as info:
        ApplicationBuilder().build()
    assert len(info.value.problems) == 2
    assert (
        info.value.problems[0] == "there are no actions; add at least one with with_actions(...)."
    )
    assert info.value.problems[1].startswith("no entrypoint: call .with_entrypoint(")


def test_build_reports_every_problem_at_once_one_line_each():
    builder = (
        ApplicationBuilder()
        .with_actions(count, count, 42)
        .with_actions(count=finish)
        .with_transitions(
            ("count", "nowhere"),
            ("ghost", "count"),
            ("count", "count", "count > 1"),
            ("count", "count"),
            ("count", "count"),
        )
        .with_entrypoint("missing")
        .with_hooks(_NoHooks())
    )
    problems = [
        "two actions are named 'count' (duplicated); give one another name, "
        "e.g. with_actions(count_2=...).",
        "42 is not a valid action (got int).",
        "two actions are named 'count' (duplicated); give one another name, "
        "e.g. with_actions(count_2=...).",
        "transition 'count' -> 'nowhere' names action(s) not found in the graph: "
        "'nowhere'; known actions: count.",
        "transition 'ghost' -> 'count' names action(s) not found in the graph: "
        "'ghost'; known actions: count.",
        "transition 'count' -> 'count': the condition must be a Condition (when(...), expr(...), "
        "default), got str: 'count > 1'.",
        "action 'count' has 2 default transitions; all but the first are redundant (never "
        "taken), so give them a condition or remove them.",
        "the entrypoint 'missing' is not an action; the actions are 'count'.",
        "with_hooks(): NoHooks() has none of the hook methods (post_application_create, "
        "pre_run_execute_call, post_run_execute_call, pre_run_step, post_run_step, "
        "pre_start_span, post_end_span, do_log_attributes, pre_start_stream, post_stream_item, "
        "post_end_stream).",
    ]
    with pytest.raises(GraphSetupError) as info:
        builder.build()
    assert info.value.problems == problems
    assert str(info.value).splitlines() == [
        "the application graph has 9 problems:",
        *(f"  - {p}" for p in problems),
    ]


def test_graph_setup_error_is_a_value_error():
    with pytest.raises(ValueError, match="there are no actions"):
        ApplicationBuilder().build()


# -- suspicious graphs: one warning, or an error with strict=True ---------------------------------


def _suspicious() -> ApplicationBuilder:
    return (
        ApplicationBuilder()
        .with_actions(
            start=_noop(reads=["present", "ghost_key"], writes=["present"]),
            island=_noop(),
            also_island=_noop(),
        )
        .with_transitions(("start", "start", expr("phantom > 1")), ("island", "also_island"))
        .with_state(present=1)
        .with_entrypoint("start")
    )


SUSPICIOUS = [
    "action 'island' can never run: no transition path leads to it from the entrypoint 'start'.",
    "action 'also_island' can never run: no transition path leads to it from the entrypoint "
    "'start'.",
    "action 'start' reads 'ghost_key', but neither the initial state, an input nor any action's "
    "writes provide it; add with_state(ghost_key=...) or declare it in the writes of the action "
    "that sets it.",
    "the condition 'phantom > 1' on 'start' -> 'start' reads 'phantom', which nothing provides; "
    "add with_state(phantom=...).",
]


def test_a_suspicious_graph_gives_one_warning_listing_every_finding():
    with pytest.warns(GraphWarning) as record:
        app = _suspicious().build()
    assert len(record) == 1
    assert str(record[0].message).splitlines() == [
        "the application graph has 4 suspicious parts (build(strict=True) makes this an error):",
        *(f"  - {f}" for f in SUSPICIOUS),
    ]
    assert app.get_next_action().name == "start"


def test_the_graph_warning_points_at_the_call_to_build():
    with pytest.warns(GraphWarning) as record:
        _suspicious().build()
    assert record[0].filename == __file__


def test_strict_build_raises_on_a_suspicious_graph():
    with pytest.raises(GraphSetupError) as info:
        _suspicious().build(strict=True)
    assert info.value.problems == SUSPICIOUS


@pytest.mark.parametrize(
    "configure",
    [
        lambda b: b.with_actions(island=_noop()),
        lambda b: b.with_actions(reader=_noop(reads=["nothing"])).with_transitions(
            ("start", "reader")
        ),
        lambda b: b.with_transitions(("start", "start", expr("nothing > 1"))),
    ],
    ids=["unreachable-action", "read-never-provided", "condition-key-never-provided"],
)
def test_each_kind_of_suspicious_part_warns(configure):
    builder = configure(ApplicationBuilder().with_actions(start=_noop()).with_entrypoint("start"))
    with pytest.warns(GraphWarning, match="the application graph has 1 suspicious part "):
        builder.build()


@pytest.mark.parametrize(
    "configure",
    [
        lambda b: b,
        lambda b: b.with_actions(
            writer=_noop(writes=["key"]), reader=_noop(reads=["key"])
        ).with_transitions(("start", "writer"), ("writer", "reader")),
        lambda b: (
            b.with_actions(next=_noop())
            .with_transitions(("start", "next", expr("key > 1")))
            .with_state(key=2)
        ),
        lambda b: (
            b.with_actions(reader=_noop(reads=["key"]))
            .with_transitions(("start", "reader"))
            .with_state(key=1)
        ),
    ],
    ids=[
        "single-action",
        "read-written-by-another-action",
        "condition-key-in-state",
        "read-in-initial-state",
    ],
)
def test_a_clean_graph_gives_no_warning(configure):
    builder = configure(ApplicationBuilder().with_actions(start=_noop()).with_entrypoint("start"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        app = builder.build(strict=True)
        builder.build()
    assert app.get_next_action().name == "start"
