"""The checks ``ApplicationBuilder.build()`` runs on a graph beyond its hard errors: parts of
the graph that look wrong (warned, or refused in strict mode) and a loaded record resuming at an
action the graph lacks."""

from __future__ import annotations

import warnings

from turnout.core.action import bound_name
from turnout.core.errors import GraphSetupError, GraphWarning
from turnout.core.graph import ApplicationGraph, reachable_from
from turnout.core.retry import ExceptionCondition
from turnout.core.saving import Initialization
from turnout.core.state import CONTROL_KEYS, State

__all__ = ["check_suspicious", "resume_problems"]


def check_suspicious(graph: ApplicationGraph, state: State, strict: bool) -> None:
    """Warn (``GraphWarning``; raise ``GraphSetupError`` when ``strict``) about actions no
    transition reaches and reads or conditions nothing provides. Called by ``build()``."""
    findings: list[str] = []
    reachable = reachable_from(graph, bound_name(graph.entrypoint))
    for act in graph.actions:
        if act.name not in reachable:
            findings.append(
                f"action {act.name!r} can never run: no transition path leads to it from "
                f"the entrypoint {graph.entrypoint.name!r}."
            )
    provided = set(state.keys()) | CONTROL_KEYS  # Burr's __SEQUENCE_ID: computed in a step
    provided.update(
        t.condition.state_key
        for t in graph.transitions
        if isinstance(t.condition, ExceptionCondition)
    )
    for act in graph.actions:
        provided.update(act.writes)
        provided.update(act.required_inputs)
        provided.update(act.optional_inputs)
    for act in graph.actions:
        if getattr(act, "_reads_may_be_missing", False):  # Result: absent keys are left out
            continue
        for key in act.reads:
            if key not in provided:
                findings.append(
                    f"action {act.name!r} reads {key!r}, but neither the initial state, an "
                    f"input nor any action's writes provide it; add with_state({key}=...) "
                    f"or declare it in the writes of the action that sets it."
                )
    for t in graph.transitions:
        for key in t.condition.keys:
            if key not in provided:
                findings.append(
                    f"the condition {t.condition.name!r} on {t.from_.name!r} -> "
                    f"{t.to.name!r} reads {key!r}, which nothing provides; add "
                    f"with_state({key}=...)."
                )
    if not findings:
        return
    if strict:
        raise GraphSetupError(findings)
    count = len(findings)
    warnings.warn(
        "\n".join(
            [
                f"the application graph has {count} suspicious part{'s' if count > 1 else ''}"
                " (build(strict=True) makes this an error):",
                *(f"  - {f}" for f in findings),
            ]
        ),
        GraphWarning,
        stacklevel=4,
    )


def resume_problems(initialization: Initialization, names: set[str]) -> list[str]:
    """The loaded record resumes at an action this graph lacks (renamed or removed since it was
    saved, or a damaged record): say so at build, not by restarting silently at the entrypoint."""
    name, how = (
        (initialization.prior, "after")
        if initialization.prior is not None
        else (initialization.rerun, "by running again")
    )
    if name is None or name in names:
        return []
    return [
        f"initialize_from(): the record of {initialization.source} resumes {how} the action "
        f"{name!r}, which this application does not have (its actions: "
        f"{', '.join(map(repr, sorted(names))) or 'none'}). Add it with with_actions(), or "
        f"start at the default entrypoint with initialize_from(..., resume_at_next_action=False)."
    ]
