"""The questions the web UI asks of a tracking store (``_source.Reader``), answered as
``schemas`` models: the JSON API returns them and the HTML pages render them.

A project, application or step that is not there raises ``NotFoundError`` with a message that
says what was asked for and what exists instead; the app turns it into a 404.
"""

from __future__ import annotations

import bisect
from typing import Any

from turnout.core.errors import TurnoutError
from turnout.integrations.fastapi.ui import _source as src
from turnout.integrations.fastapi.ui.schemas import (
    AppDetail,
    AppRow,
    AppsPage,
    Change,
    GraphAction,
    GraphOut,
    GraphTransition,
    LinkOut,
    ProjectOut,
    SpanOut,
    StepDetail,
    StepRow,
    StepsPage,
    ValueItem,
    ValuePage,
)

__all__ = [
    "NO_PARTITION",
    "STATUSES",
    "NotFoundError",
    "app_detail",
    "apps_page",
    "open_app",
    "projects",
    "step_detail",
    "step_row",
    "steps_page",
    "value_page",
]

NO_PARTITION = "(none)"
STATUSES = ("running", "completed", "failed")
MAX_LIMIT = 1000


class NotFoundError(TurnoutError, LookupError):
    """What the UI was asked for is not in the tracking data (a 404)."""


def projects(source: src.Reader) -> list[ProjectOut]:
    return [
        ProjectOut(name=p.name, app_count=p.app_count, last_activity=p.last_activity)
        for p in source.projects()
    ]


def _link(link: src.ChildLink) -> LinkOut:
    return LinkOut(
        app_id=link.app_id,
        partition_key=link.partition_key,
        sequence_id=link.sequence_id,
        kind=link.kind,
    )


def _app_row(app: src.AppSummary) -> AppRow:
    return AppRow(
        project=app.project,
        app_id=app.app_id,
        partition_key=app.partition_key,
        status=app.status,
        step_count=app.step_count,
        error_count=app.error_count,
        first_time=app.first_time,
        last_time=app.last_time,
        parent=_link(app.parent) if app.parent else None,
        children=[_link(c) for c in app.children],
        tags=dict(app.tags),
        bad_lines=app.bad_lines,
    )


def apps_page(
    source: src.Reader,
    project: str,
    *,
    offset: int = 0,
    limit: int = 50,
    partition_key: str | None = None,
    status: str | None = None,
    tag: str | None = None,
) -> AppsPage:
    """One page of ``project``'s applications, most recently active first, filtered by
    partition key (``NO_PARTITION`` for none), status and a ``key=value`` tag: the store's
    paged query (its summary index or table), never a read of every log."""
    limit = max(1, min(limit, MAX_LIMIT))
    offset = max(0, offset)
    keys = None
    if partition_key:
        keys = (None,) if partition_key == NO_PARTITION else (partition_key,)
    known = status is None or status in src.STATUSES
    query = src.AppQuery(
        offset=offset,
        limit=limit,
        status=status if known else None,
        partition_keys=keys,
        tag=tag or None,
    )
    try:
        page = source.app_page(project, query)
    except src.InvalidParameterError as error:
        raise NotFoundError(str(error)) from None
    if not page.total:
        raise NotFoundError(
            f"project {project!r} has no tracked application in {source.description} "
            "(open one from the list of projects)."
        )
    return AppsPage(
        project=project,
        total=page.total,
        matched=page.matched if known else 0,
        offset=offset,
        limit=limit,
        apps=[_app_row(a) for a in page.apps] if known else [],
        unreadable=dict(sorted(page.unreadable.items())),
        pending=page.pending,
        partition_keys=[NO_PARTITION if k is None else k for k in page.partition_keys],
        tags=list(page.tags),
    )


def open_app(source: src.Reader, project: str, app_id: str) -> src.AppLog:
    """The log of ``app_id``; ``NotFoundError`` when the project or application is missing."""
    try:
        log = source.app(project, app_id)
    except src.InvalidParameterError as error:
        raise NotFoundError(str(error)) from None
    if log is None:
        raise NotFoundError(
            f"application {app_id!r} is not tracked in project {project!r} "
            f"({source.description}): open one from the project's list of applications."
        )
    return log


def _strings(value: Any) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list) else []


def _graph(raw: Any) -> GraphOut:
    """The stored graph, read leniently: a malformed action or transition is left out."""
    if not isinstance(raw, dict):
        return GraphOut()
    actions = []
    for action in raw.get("actions") or []:
        if isinstance(action, dict) and isinstance(action.get("name"), str):
            source = action.get("source")
            actions.append(
                GraphAction(
                    name=action["name"],
                    reads=_strings(action.get("reads")),
                    writes=_strings(action.get("writes")),
                    inputs=_strings(action.get("inputs")),
                    tags=_strings(action.get("tags")),
                    source=source if isinstance(source, str) else None,
                )
            )
    transitions = []
    for edge in raw.get("transitions") or []:
        if isinstance(edge, dict) and isinstance(edge.get("from"), str):
            if not isinstance(edge.get("to"), str):
                continue
            transitions.append(
                GraphTransition.model_validate(
                    {
                        "from": edge["from"],
                        "to": edge["to"],
                        "condition": str(edge.get("condition", "default")),
                        "on_exception": bool(edge.get("on_exception", False)),
                    }
                )
            )
    entry = raw.get("entrypoint")
    return GraphOut(
        entrypoint=entry if isinstance(entry, str) else None,
        actions=actions,
        transitions=transitions,
    )


def app_detail(source: src.Reader, project: str, app_id: str) -> AppDetail:
    log = open_app(source, project, app_id)
    steps = log.step_list()
    return AppDetail(
        summary=_app_row(log.summary(project)),
        graph=_graph(log.graph),
        run_counts=log.run_counts(),
        token_totals=log.token_totals(),
        first_seq=steps[0].seq if steps else None,
        last_seq=steps[-1].seq if steps else None,
        partial=log.partial,
    )


def step_row(log: src.AppLog, step: src.Step) -> StepRow:
    return StepRow(
        seq=step.seq,
        action=step.action,
        status=step.status,
        attempts=step.attempts,
        start=step.start,
        end=step.end,
        duration=step.duration,
        time_to_first_item=step.time_to_first_item,
        stream_items=step.stream_items,
        error_summary=step.error_summary,
        children=[_link(c) for c in log.children_of(step.seq)],
    )


def steps_page(
    source: src.Reader,
    project: str,
    app_id: str,
    *,
    before: int | None = None,
    after: int | None = None,
    limit: int = 100,
    action: str | None = None,
) -> StepsPage:
    """Steps of an application: newest first (those before ``before`` when given), or, with
    ``after``, the steps after that sequence id, oldest first (what a live view polls for);
    with ``action``, only the steps of that action (paged among themselves)."""
    log = open_app(source, project, app_id)
    return steps_of(log, app_id, before=before, after=after, limit=limit, action=action)


def steps_of(
    log: src.AppLog,
    app_id: str,
    *,
    before: int | None = None,
    after: int | None = None,
    limit: int = 100,
    action: str | None = None,
) -> StepsPage:
    steps = log.step_list()
    if action:
        steps = [s for s in steps if s.action == action]
    seqs = [s.seq for s in steps]
    limit = max(1, min(limit, MAX_LIMIT))
    if after is not None:
        first = bisect.bisect_right(seqs, after)
        chosen = steps[first : first + limit]
        more = first + limit < len(steps)
        return StepsPage(
            app_id=app_id,
            total=len(steps),
            order="oldest-first",
            steps=[step_row(log, s) for s in chosen],
            older=chosen[0].seq if chosen and first > 0 else None,
            newer=chosen[-1].seq if chosen and more else None,
        )
    end = len(steps) if before is None else bisect.bisect_left(seqs, before)
    start = max(0, end - limit)
    chosen = steps[start:end]
    return StepsPage(
        app_id=app_id,
        total=len(steps),
        order="newest-first",
        steps=[step_row(log, s) for s in reversed(chosen)],
        older=chosen[0].seq if chosen and start > 0 else None,
        newer=chosen[-1].seq if chosen and end < len(steps) else None,
    )


def find_step(log: src.AppLog, app_id: str, seq: int) -> src.Step:
    step = log.steps.get(seq)
    if step is None:
        steps = log.step_list()
        has = f"steps {steps[0].seq} to {steps[-1].seq}" if steps else "no steps yet"
        if log.partial and steps and seq < steps[0].seq:
            raise NotFoundError(
                f"step {seq} of application {app_id!r} is before the part of its long log read "
                f"so far ({has}): read every step (the page's 'Read all steps' button) to "
                "open it."
            )
        raise NotFoundError(
            f"application {app_id!r} has no step {seq} (it has {has}): pick one from its "
            "steps table."
        )
    return step


def _changes(step: src.Step, before: dict[str, Any] | None) -> list[Change]:
    out = []
    for change in step.changes:
        if not change or not isinstance(change[0], str):
            continue
        op, key = change[0], str(change[1]) if len(change) > 1 else ""
        value = change[2] if len(change) > 2 else None
        had = before is not None and key in before and op in ("set", "delete", "increment")
        out.append(
            Change(
                op=op,
                key=key,
                value=value,
                previous=before.get(key) if had and before is not None else None,
                had_previous=had,
            )
        )
    return out


def step_detail(source: src.Reader, project: str, app_id: str, seq: int) -> StepDetail:
    log = open_app(source, project, app_id)
    step = find_step(log, app_id, seq)
    after: dict[str, Any] | None = None
    before: dict[str, Any] | None = None
    problem = None
    try:
        before = log.state_before(seq)
        after = log.state_after(seq)
    # A damaged or newer log cannot rebuild this step's states; everything else still shows.
    except Exception as error:
        problem = f"{type(error).__name__}: {error}"
    spans = sorted(step.spans.values(), key=lambda s: (s.start or 0, s.span_id))
    return StepDetail(
        project=project,
        app_id=app_id,
        partition_key=log.partition_key,
        step=step_row(log, step),
        inputs=dict(step.inputs),
        result=step.result,
        error=step.error,
        attempt_errors=list(step.attempt_errors),
        changes=_changes(step, before),
        state_after=after,
        state_before=before,
        state_error=problem,
        attributes=dict(step.attributes),
        spans=[
            SpanOut(
                span_id=s.span_id,
                parent=s.parent,
                name=s.name,
                start=s.start,
                end=s.end,
                error=s.error,
                depth=s.depth,
                attributes=dict(s.attributes),
            )
            for s in spans
        ],
        token_totals=src.step_token_totals(step),
    )


def resolve_pointer(document: Any, pointer: str) -> Any:
    """The value at a JSON Pointer (RFC 6901); ``NotFoundError`` if it leads nowhere."""
    if pointer in ("", "/"):
        return document
    if not pointer.startswith("/"):
        raise NotFoundError(f"pointer {pointer!r} must start with '/' (e.g. '/items/3')")
    value = document
    for raw in pointer[1:].split("/"):
        part = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            raise NotFoundError(f"the state has nothing at {pointer!r} (no {part!r} there)")
    return value


def value_page(
    detail: StepDetail, *, state: str, pointer: str, offset: int = 0, limit: int = 50
) -> ValuePage:
    """A page of the items of the value at ``pointer`` in one of the step's documents:
    ``after``/``before`` (the states), ``inputs``, ``result``, ``attributes``, ``changes``
    (the delta's values, by position), ``previous`` (what each change replaced) and ``spans``
    (each span's attributes, by position)."""
    documents = {
        "after": detail.state_after,
        "before": detail.state_before,
        "inputs": detail.inputs,
        "result": detail.result,
        "attributes": detail.attributes,
        "changes": [c.value for c in detail.changes],
        "previous": [c.previous for c in detail.changes],
        "spans": [s.attributes for s in detail.spans],
    }
    if state not in documents:
        raise NotFoundError(f"state {state!r} is not one of {sorted(documents)}")
    value = resolve_pointer(documents[state], pointer)
    limit = max(1, min(limit, MAX_LIMIT))
    offset = max(0, offset)
    if isinstance(value, list):
        items = [ValueItem(key=str(i), value=value[i]) for i in range(offset, len(value))[:limit]]
        return ValuePage(
            pointer=pointer, kind="list", total=len(value), offset=offset, limit=limit, items=items
        )
    if isinstance(value, dict):
        keys = list(value)[offset : offset + limit]
        return ValuePage(
            pointer=pointer,
            kind="object",
            total=len(value),
            offset=offset,
            limit=limit,
            items=[ValueItem(key=str(k), value=value[k]) for k in keys],
        )
    return ValuePage(
        pointer=pointer, kind="scalar", total=1, offset=0, limit=limit, items=[], value=value
    )
