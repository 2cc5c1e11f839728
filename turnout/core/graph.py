"""The graph: actions and the conditional transitions between them.

``GraphBuilder`` collects actions and transitions and validates them all at once in ``build()``;
``Graph`` is the immutable result, reusable across applications. Transitions out of an action are
tried in the order they were declared: the first whose condition holds wins, and when none holds
the run ends.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from turnout.core import schemas, visualize
from turnout.core.action import Action, bound_name, check_declarations, to_action
from turnout.core.condition import Condition, default
from turnout.core.errors import (
    ActionDefinitionError,
    ConditionKeyError,
    GraphSetupError,
    UnknownActionError,
)
from turnout.core.retry import ExceptionCondition
from turnout.core.state import State
from turnout.core.typing import TypingSystem
from turnout.core.visualize import DotSource

__all__ = ["ApplicationGraph", "Graph", "GraphBuilder", "Transition"]


@dataclass(frozen=True, slots=True)
class Transition:
    """An edge: from ``from_`` to ``to`` when ``condition`` holds."""

    from_: Action
    to: Action
    condition: Condition


TransitionSpec = tuple[Any, ...]


class Graph:
    """An immutable set of named actions and ordered transitions."""

    def __init__(
        self,
        actions: Sequence[Action],
        transitions: Sequence[Transition],
        *,
        typing_system: TypingSystem[Any] | None = None,
    ) -> None:
        self._typing_system = typing_system
        self._actions = list(actions)
        self._transitions = list(transitions)
        self._by_name = {bound_name(a): a for a in self._actions}
        outgoing: dict[str, list[tuple[Condition, Action]]] = {name: [] for name in self._by_name}
        on_error: dict[str, list[tuple[ExceptionCondition, Action]]] = {}
        for t in self._transitions:
            if isinstance(t.condition, ExceptionCondition):
                on_error.setdefault(bound_name(t.from_), []).append((t.condition, t.to))
            else:
                outgoing[bound_name(t.from_)].append((t.condition, t.to))
        # Frozen per action for the hot path; a default-only edge skips condition evaluation.
        self._outgoing = {name: tuple(edges) for name, edges in outgoing.items()}
        self._on_error = {name: tuple(edges) for name, edges in on_error.items()}

    @property
    def actions(self) -> list[Action]:
        return list(self._actions)

    @property
    def transitions(self) -> list[Transition]:
        return list(self._transitions)

    @property
    def typing_system(self) -> TypingSystem[Any] | None:
        """The typing system of the application's state (``with_typing``), or ``None``."""
        return self._typing_system

    def state_schema(self) -> dict[str, Any]:
        """The JSON Schema (draft 2020-12) of the state: the typing system's (a pydantic
        model's ``model_json_schema()``, a TypedDict's or dataclass's generated one); for an
        untyped state, an object listing every key the actions read or write, of any type."""
        schema = None if self._typing_system is None else self._typing_system.state_json_schema()
        if schema is not None:
            return schema
        keys = {key for act in self._actions for key in (*act.reads, *act.writes)}
        return schemas.keys_schema(key for key in keys if not key.startswith("__"))

    def get_action(self, name: str) -> Action | None:
        """The action called ``name``, or ``None``."""
        return self._by_name.get(name)

    def has_action(self, name: str) -> bool:
        return name in self._by_name

    def get_actions_by_tag(self, tag: str) -> list[Action]:
        """The actions carrying ``tag``; raises ``ValueError`` when none does."""
        found = [a for a in self._actions if tag in a.tags]
        if not found:
            known = sorted({t for a in self._actions for t in a.tags})
            raise UnknownActionError(
                f"tag {tag!r} not found: no action has the tag {tag!r}; tags in this graph: "
                f"{known or 'none'}. Add one with @action(..., tags=[{tag!r}])."
            )
        return found

    def next_action(self, prior: str | None, state: State, entrypoint: str) -> Action | None:
        """The action after ``prior`` (the entrypoint when ``prior`` is ``None``), or ``None``."""
        if prior is None:
            return self._by_name[entrypoint]
        for condition, target in self._outgoing[prior]:
            if condition is default:
                return target
            try:
                holds = condition._resolver(state)
            except KeyError as exc:
                raise _condition_key_error(prior, bound_name(target), condition, state) from exc
            if holds:
                return target
        return None

    def route_exception(
        self, prior: str, exception: BaseException
    ) -> tuple[ExceptionCondition, Action] | None:
        """The first ``on_exception`` transition out of ``prior`` matching ``exception``."""
        for condition, target in self._on_error.get(prior, ()):
            if condition.matches(exception):
                return condition, target
        return None

    def get_next_node(self, prior_step: str | None, state: State, entrypoint: str) -> Action | None:
        """Burr's name for ``next_action``."""
        return self.next_action(prior_step, state, entrypoint)

    def visualize(
        self,
        output_file_path: str | Path | None = None,
        include_conditions: bool = False,
        include_state: bool = False,
        view: bool = False,
        engine: str = "graphviz",
        write_dot: bool = False,
        *,
        format: str | None = None,
        graph_attr: Mapping[str, str] | None = None,
        node_attr: Mapping[str, str] | None = None,
        edge_attr: Mapping[str, str] | None = None,
    ) -> DotSource:
        """Draw the graph (no current action): return its DOT text as a ``DotSource`` (a ``str``
        that reads like Burr's ``graphviz.Digraph``) and, given a path, write an image there
        too; see ``Application.visualize``."""
        return self._draw(
            output_file_path, current=None, include_conditions=include_conditions,
            include_state=include_state, view=view, engine=engine, write_dot=write_dot,
            format=format, graph_attr=graph_attr, node_attr=node_attr, edge_attr=edge_attr,
        )  # fmt: skip

    def _draw(
        self, output_file_path: str | Path | None, *, current: str | None,
        include_conditions: bool, include_state: bool, view: bool, engine: str,
        write_dot: bool, format: str | None, graph_attr: Mapping[str, str] | None,
        node_attr: Mapping[str, str] | None, edge_attr: Mapping[str, str] | None,
    ) -> DotSource:  # fmt: skip
        """What ``Graph.visualize`` and ``Application.visualize`` do, ``current`` highlighted."""
        if engine != "graphviz":
            raise GraphSetupError(
                [f"visualize(engine={engine!r}): engine must be 'graphviz', the only engine."]
            )
        source = visualize.digraph(
            self,
            current=current,
            include_conditions=include_conditions,
            include_state=include_state,
            graph_attr=graph_attr,
            node_attr=node_attr,
            edge_attr=edge_attr,
            format=format,
        )
        visualize.draw(source, output_file_path, view=view, write_dot=write_dot, format=format)
        return source

    def _repr_mimebundle_(
        self, include: Any = None, exclude: Any = None, **kwargs: Any
    ) -> dict[str, str]:
        """Notebooks show the graph drawn (its conditions labelled), as Burr's does."""
        return self.visualize(include_conditions=True)._repr_mimebundle_(include, exclude)

    def to_dot(
        self,
        *,
        current: str | None = None,
        include_conditions: bool = True,
        include_inputs: bool = True,
        include_state: bool = False,
        graph_attr: Mapping[str, str] | None = None,
        node_attr: Mapping[str, str] | None = None,
        edge_attr: Mapping[str, str] | None = None,
    ) -> str:
        """The graph as Graphviz DOT text; see ``turnout.core.visualize.to_dot``."""
        return visualize.to_dot(
            self,
            current=current,
            entrypoint=self._entrypoint_name(),
            include_conditions=include_conditions,
            include_inputs=include_inputs,
            include_state=include_state,
            graph_attr=graph_attr,
            node_attr=node_attr,
            edge_attr=edge_attr,
        )

    def to_mermaid(
        self,
        *,
        current: str | None = None,
        include_conditions: bool = True,
        include_inputs: bool = True,
        include_state: bool = False,
    ) -> str:
        """The graph as a Mermaid flowchart; see ``turnout.core.visualize.to_mermaid``."""
        return visualize.to_mermaid(
            self,
            current=current,
            entrypoint=self._entrypoint_name(),
            include_conditions=include_conditions,
            include_inputs=include_inputs,
            include_state=include_state,
        )

    def to_dict(self) -> dict[str, Any]:
        """The graph as plain JSON-ready data: each action's name, reads, writes, required and
        optional inputs and tags (sorted), and each transition's ends and condition name."""
        return {"type": "graph", **self._dict_body()}

    def _dict_body(self) -> dict[str, Any]:
        return {
            "actions": [
                {
                    "name": bound_name(act),
                    "reads": sorted(act.reads),
                    "writes": sorted(act.writes),
                    "inputs": sorted(act.required_inputs),
                    "optional_inputs": sorted(act.optional_inputs),
                    "tags": sorted(act.tags),
                }
                for act in self._actions
            ],
            "transitions": [
                {
                    "from": bound_name(t.from_),
                    "to": bound_name(t.to),
                    "condition": t.condition.name,
                }
                for t in self._transitions
            ],
        }

    def _entrypoint_name(self) -> str | None:
        return None

    def __repr__(self) -> str:
        names = [a.name for a in self._actions]
        return f"Graph(actions={names}, transitions={len(self._transitions)})"


class ApplicationGraph(Graph):
    """A ``Graph`` with the entrypoint an application starts from."""

    def __init__(
        self,
        actions: Sequence[Action],
        transitions: Sequence[Transition],
        entrypoint: Action,
        *,
        typing_system: TypingSystem[Any] | None = None,
    ) -> None:
        super().__init__(actions, transitions, typing_system=typing_system)
        self.entrypoint = entrypoint

    def to_dict(self) -> dict[str, Any]:
        """``Graph.to_dict()`` with the entrypoint's name."""
        return {
            "type": "application_graph",
            "entrypoint": self._entrypoint_name(),
            **self._dict_body(),
        }

    def _entrypoint_name(self) -> str | None:
        return self.entrypoint.name


def _condition_key_error(
    prior: str, target: str, condition: Condition, state: State
) -> ConditionKeyError:
    missing = [k for k in condition.keys if k not in state]
    present = ", ".join(repr(k) for k in state) or "none"
    return ConditionKeyError(
        f"the condition {condition.name!r} on the transition {prior!r} -> {target!r} reads "
        f"{', '.join(map(repr, missing)) or 'a key'} that the state does not hold (keys present: "
        f"{present}). Set it in ApplicationBuilder.with_state(...) or have {prior!r} write it."
    )


class GraphBuilder:
    """Collects actions and transitions; ``build()`` checks them all and returns a ``Graph``."""

    def __init__(self) -> None:
        self._actions: dict[str, Action] = {}
        self._transitions: list[tuple[Any, Any, Any]] = []
        self._problems: list[str] = []

    @property
    def actions(self) -> list[Action]:
        """The actions added so far, in order (Burr's attribute)."""
        return list(self._actions.values())

    @property
    def transitions(self) -> list[tuple[Any, Any, Any]]:
        """The transitions added so far, in order, one ``(from, to, condition)`` per source
        (Burr's attribute); they are checked by ``build()``."""
        return list(self._transitions)

    def with_actions(self, *actions: Any, **named_actions: Any) -> GraphBuilder:
        """Add actions: ``@action`` functions by their function name, or any action by keyword."""
        for candidate in actions:
            self._add(None, candidate)
        for name, candidate in named_actions.items():
            self._add(name, candidate)
        return self

    def _add(self, name: str | None, candidate: Any) -> None:
        try:
            act = to_action(candidate, name)
            check_declarations(act)
        except ActionDefinitionError as exc:
            self._problems.append(str(exc))
            return
        name = bound_name(act)
        if name in self._actions:
            self._problems.append(_duplicate_problem(name))
            return
        self._actions[name] = act

    def with_transitions(self, *transitions: TransitionSpec) -> GraphBuilder:
        """Add ``(from, to)`` or ``(from, to, condition)``; ``from`` may be a list of names."""
        for spec in transitions:
            if not isinstance(spec, tuple) or len(spec) not in (2, 3):
                self._problems.append(
                    f"a transition must be a tuple (from, to) or (from, to, condition), "
                    f"got {spec!r}."
                )
                continue
            from_, to = spec[0], spec[1]
            condition = spec[2] if len(spec) == 3 else default
            sources = [from_] if isinstance(from_, str) else from_
            if not isinstance(sources, Iterable) or not all(isinstance(s, str) for s in sources):
                self._problems.append(
                    f"transition {spec!r}: 'from' must be an action name or a list of names."
                )
                continue
            for source in sources:
                self._transitions.append((source, to, condition))
        return self

    def with_graph(self, graph: Graph) -> GraphBuilder:
        """Add every action and transition of an existing graph."""
        if not isinstance(graph, Graph):
            self._problems.append(f"with_graph() takes a Graph, got {type(graph).__name__}.")
            return self
        for act in graph.actions:
            self._add(None, act)
        for t in graph.transitions:
            self._transitions.append((t.from_.name, t.to.name, t.condition))
        return self

    def _collect(self) -> tuple[list[Action], list[Transition], list[str]]:
        problems = list(self._problems)
        if not self._actions:
            problems.append(_NO_ACTIONS)
        known = self._actions
        transitions: list[Transition] = []
        for source, target, condition in self._transitions:
            problem = _transition_problem(source, target, condition, known)
            if problem is not None:
                problems.append(problem)
                continue
            transitions.append(Transition(known[source], known[target], condition))
        problems.extend(_default_problems(self._transitions, known))
        return list(known.values()), transitions, problems

    def build(self) -> Graph:
        """Validate everything and return the ``Graph``; raise one ``GraphSetupError`` if not."""
        actions, transitions, problems = self._collect()
        if problems:
            raise GraphSetupError(problems)
        return Graph(actions, transitions)


_NO_ACTIONS = "there are no actions; add at least one with with_actions(...)."


def _duplicate_problem(name: str | None) -> str:
    return (
        f"two actions are named {name!r} (duplicated); give one another name, "
        f"e.g. with_actions({name}_2=...)."
    )


def _transition_problem(
    source: Any, target: Any, condition: Any, known: Collection[str]
) -> str | None:
    """What is wrong with one ``(source, target, condition)`` transition, or ``None``."""
    if not isinstance(condition, Condition):
        return (
            f"transition {source!r} -> {target!r}: the condition must be a Condition "
            f"(when(...), expr(...), default), got {type(condition).__name__}: {condition!r}."
        )
    bad = [repr(n) for n in (source, target) if not isinstance(n, str) or n not in known]
    if bad:
        names = ", ".join(sorted(known)) or "none"
        return (
            f"transition {source!r} -> {target!r} names action(s) not found in the graph: "
            f"{', '.join(bad)}; known actions: {names}."
        )
    return None


def _default_problems(
    transitions: Iterable[tuple[Any, Any, Any]], known: Collection[str]
) -> list[str]:
    """One problem per action with more than one default transition (out of known actions)."""
    defaults_from: dict[str, int] = {}
    for source, target, condition in transitions:
        if condition is default and _transition_problem(source, target, condition, known) is None:
            defaults_from[source] = defaults_from.get(source, 0) + 1
    return [
        f"action {source!r} has {count} default transitions; all but the first are redundant "
        f"(never taken), so give them a condition or remove them."
        for source, count in defaults_from.items()
        if count > 1
    ]


def _validate_actions(actions: Sequence[Action] | None) -> None:
    """Burr's check of an action list: at least one, no name twice (``GraphSetupError``, a
    ``ValueError``). ``GraphBuilder.build()`` makes the same checks, with every other one."""
    if actions is None:
        raise GraphSetupError(["no actions were set; call with_actions(...) first."])
    problems = [] if actions else [_NO_ACTIONS]
    seen: set[str | None] = set()
    for act in actions:
        if act.name in seen:
            problems.append(_duplicate_problem(act.name))
        seen.add(act.name)
    if problems:
        raise GraphSetupError(problems)


def _validate_transitions(
    transitions: Sequence[tuple[Any, Any, Any]] | None, actions: Collection[str]
) -> bool:
    """Burr's check of ``(from, to, condition)`` transitions against the action names: every
    name known, at most one default per action (``GraphSetupError``, a ``ValueError``)."""
    transitions = list(transitions or ())
    problems = [
        problem
        for source, target, condition in transitions
        if (problem := _transition_problem(source, target, condition, actions)) is not None
    ]
    problems.extend(_default_problems(transitions, actions))
    if problems:
        raise GraphSetupError(problems)
    return True


def reachable_from(graph: Graph, entrypoint: str) -> set[str]:
    """Names of the actions reachable from ``entrypoint`` by following transitions."""
    seen = {entrypoint}
    todo = [entrypoint]
    while todo:
        name = todo.pop()
        for _condition, target in (*graph._outgoing.get(name, ()), *graph._on_error.get(name, ())):
            target_name = bound_name(target)
            if target_name not in seen:
                seen.add(target_name)
                todo.append(target_name)
    return seen
