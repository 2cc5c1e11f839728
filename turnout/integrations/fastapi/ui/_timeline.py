"""The whole-run timeline of an application: one lane of bars (a step each, placed by its start
and duration, coloured by status), with the applications its steps fanned out to (the children
the tracking records link to their parent step) as nested lanes below.

The page is server-rendered: ``timeline`` computes each bar's place as a percentage of the
shown window, which ``start``/``end`` (fractions of the whole run, ``0 <= start < end <= 1``)
zoom into; the zoom control and the wheel (``static/timeline.js``) only change those two
query parameters, so every zoom is a URL. Nothing here produces markup.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from turnout.integrations.fastapi.ui import _source as src

__all__ = [
    "MAX_DEPTH",
    "MAX_LANES",
    "ChildBar",
    "Lane",
    "TimeBar",
    "Timeline",
    "fanout_bars",
    "timeline",
]

MAX_DEPTH = 3  # nesting levels of children drawn below the application
MAX_LANES = 60  # lanes drawn in all; the rest is counted, not drawn


@dataclass(frozen=True, kw_only=True, slots=True)
class TimeBar:
    """One step on a lane: where it sits in the window (percent), and what it was."""

    seq: int
    action: str
    status: str
    left: float
    width: float
    start: float | None
    duration: float | None


@dataclass(frozen=True, kw_only=True, slots=True)
class Lane:
    """One application's steps; ``depth`` 0 is the application itself."""

    app_id: str
    depth: int
    parent_seq: int | None  # the parent's step that started it (children only)
    bars: tuple[TimeBar, ...]
    hidden: int  # steps outside the window


@dataclass(frozen=True, kw_only=True, slots=True)
class Timeline:
    """The lanes of a run and the window shown (epoch seconds and fractions of the run)."""

    lanes: tuple[Lane, ...]
    run_start: float | None
    run_end: float | None
    start: float
    end: float
    window_start: float | None
    window_end: float | None
    missing: tuple[str, ...]  # children the store has no log for
    more: int  # lanes not drawn past MAX_LANES or MAX_DEPTH


def _span(step: src.Step, now: float) -> tuple[float, float] | None:
    if step.start is None:
        return None
    end = step.end if step.end is not None else now
    return step.start, max(end, step.start)


def _collect(
    source: src.Reader, project: str, log: src.AppLog, app_id: str
) -> tuple[list[tuple[str, int, int | None, src.AppLog]], list[str], int]:
    """The application and the children it spawned (fan-out; forks are runs of their own),
    depth first, each child right under its parent."""
    lanes: list[tuple[str, int, int | None, src.AppLog]] = []
    missing: list[str] = []
    more = 0
    seen = {app_id}

    def walk(current: src.AppLog, name: str, depth: int, parent_seq: int | None) -> None:
        nonlocal more
        if len(lanes) >= MAX_LANES:
            more += 1
            return
        lanes.append((name, depth, parent_seq, current))
        children: list[tuple[int, float, str, src.AppLog]] = []
        for link in current.children:
            if link.kind != "spawn" or link.app_id in seen:
                continue
            seen.add(link.app_id)
            if depth + 1 > MAX_DEPTH or len(lanes) + len(children) >= MAX_LANES:
                more += 1
                continue
            try:
                child = source.app(project, link.app_id)
            except src.InvalidParameterError:
                child = None
            if child is None:
                missing.append(link.app_id)
                continue
            steps = child.step_list()
            began = steps[0].start if steps and steps[0].start is not None else float("inf")
            children.append((link.sequence_id or 0, began, link.app_id, child))
        # Under its parent step, in the order the children started.
        for parent_seq, _began, name, child in sorted(children, key=lambda c: c[:3]):
            walk(child, name, depth + 1, parent_seq)

    walk(log, app_id, 0, None)
    return lanes, missing, more


def timeline(
    source: src.Reader,
    project: str,
    log: src.AppLog,
    app_id: str,
    *,
    start: float = 0.0,
    end: float = 1.0,
    now: float | None = None,
) -> Timeline:
    """The timeline of ``app_id`` and its children, zoomed to ``[start, end]`` of the run.

    Args:
        source: the store (children's logs are read from it, in the same project).
        project: the project of ``app_id``.
        log: the application's log.
        app_id: the application.
        start: the window's left edge as a fraction of the run (clamped into ``[0, 1)``).
        end: the window's right edge (clamped into ``(start, 1]``).
        now: where running steps end (default: the current time).
    """
    now = time.time() if now is None else now
    start = min(max(start, 0.0), 0.999)
    end = min(max(end, start + 0.001), 1.0)
    collected, missing, more = _collect(source, project, log, app_id)
    spans = [
        span
        for _name, _depth, _parent, lane_log in collected
        for step in lane_log.step_list()
        if (span := _span(step, now)) is not None
    ]
    if not spans:
        empty = tuple(
            Lane(app_id=n, depth=d, parent_seq=p, bars=(), hidden=len(lg.step_list()))
            for n, d, p, lg in collected
        )
        return Timeline(
            lanes=empty, run_start=None, run_end=None, start=start, end=end,
            window_start=None, window_end=None, missing=tuple(missing), more=more,
        )  # fmt: skip
    run_start = min(s for s, _ in spans)
    run_end = max(e for _, e in spans)
    total = max(run_end - run_start, 1e-9)
    w_start = run_start + start * total
    w_end = run_start + end * total
    width = w_end - w_start
    lanes = []
    for name, depth, parent_seq, lane_log in collected:
        bars = []
        hidden = 0
        for step in lane_log.step_list():
            span = _span(step, now)
            if span is None or span[1] < w_start or span[0] > w_end:
                hidden += 1
                continue
            left = max(span[0], w_start)
            right = min(span[1], w_end)
            bars.append(
                TimeBar(
                    seq=step.seq,
                    action=step.action,
                    status=step.status,
                    left=round((left - w_start) / width * 100, 3),
                    width=round(max((right - left) / width * 100, 0.15), 3),
                    start=step.start,
                    duration=step.duration,
                )
            )
        lanes.append(
            Lane(app_id=name, depth=depth, parent_seq=parent_seq, bars=tuple(bars), hidden=hidden)
        )
    return Timeline(
        lanes=tuple(lanes), run_start=run_start, run_end=run_end, start=start, end=end,
        window_start=w_start, window_end=w_end, missing=tuple(missing), more=more,
    )  # fmt: skip


@dataclass(frozen=True, kw_only=True, slots=True)
class ChildBar:
    """A row of a fan-out step's waterfall: a child's step (``span`` ``None``) or one of its
    spans, placed in the parent step's time (percent)."""

    app_id: str
    seq: int
    name: str
    status: str
    depth: int
    left: float
    width: float
    duration: float | None
    span: str | None = None


def _place(
    start: float | None, end: float | None, w_start: float, width: float
) -> tuple[float, float]:
    begin = w_start if start is None else start
    finish = begin if end is None else max(end, begin)
    left = min(max((begin - w_start) / width * 100, 0.0), 100.0)
    right = min(max((finish - w_start) / width * 100, left), 100.0)
    return round(left, 3), round(max(right - left, 0.15), 3)


def fanout_bars(
    source: src.Reader,
    project: str,
    log: src.AppLog,
    seq: int,
    *,
    limit: int = 200,
    now: float | None = None,
) -> tuple[list[ChildBar], int]:
    """The children a step spawned, each child's steps and their spans, placed in the step's
    own time (its start to its end), and how many children were left out: past ``limit``
    rows the remaining children's logs are not read (a step may spawn thousands)."""
    step = log.steps.get(seq)
    links = [c for c in log.children_of(seq) if c.kind == "spawn"]
    if step is None or step.start is None or not links:
        return [], 0
    now = time.time() if now is None else now
    w_start = step.start
    width = max((step.end if step.end is not None else now) - w_start, 1e-9)
    rows: list[ChildBar] = []
    for number, link in enumerate(links):
        if len(rows) >= limit:
            return rows, len(links) - number
        try:
            child = source.app(project, link.app_id)
        except src.InvalidParameterError:
            child = None
        for child_step in child.step_list() if child is not None else ():
            spans = sorted(child_step.spans.values(), key=lambda s: (s.start or 0, s.span_id))
            left, bar = _place(child_step.start, child_step.end, w_start, width)
            rows.append(
                ChildBar(
                    app_id=link.app_id, seq=child_step.seq, name=child_step.action,
                    status=child_step.status, depth=0, left=left, width=bar,
                    duration=child_step.duration,
                )
            )  # fmt: skip
            for span in spans[: max(limit - len(rows), 0)]:
                left, bar = _place(span.start, span.end, w_start, width)
                rows.append(
                    ChildBar(
                        app_id=link.app_id, seq=child_step.seq, name=span.name,
                        status="failed" if span.error else "completed", depth=1 + span.depth,
                        left=left, width=bar,
                        duration=None if span.start is None or span.end is None
                        else span.end - span.start,
                        span=span.span_id,
                    )
                )  # fmt: skip
    return rows, 0
