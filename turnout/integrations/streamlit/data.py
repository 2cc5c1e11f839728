"""What the tracking UI shows, read from the local tracker's logs (no Streamlit here).

``TrackingIndex(root)`` answers the UI's questions about a storage directory written by
``turnout.core.tracking.LocalTracker``: the projects (app counts, last activity), the apps of a
project (partition key, status, step count, times, parent and children) and one app's steps
(``AppLog``). Each log is read incrementally: an ``AppLog`` keeps the byte offset it has parsed
up to and, on ``refresh()``, parses only the lines appended since, so a live view of a running
application costs O(new lines) per refresh, not O(log).

States are rebuilt, never stored per step: from the app line's initial state and the nearest
full snapshot before a step, replaying at most ``snapshot_every`` deltas; rebuilt states are
cached, so clicking through steps does not replay the log. Values stay in their stored JSON form
(serde's tagged objects included): the UI never decodes them into Python objects, so nothing in
a trace can make it import or run code.
"""

from __future__ import annotations

import json
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from turnout.integrations.streamlit.params import InvalidParameterError, check_name

__all__ = [
    "AppListing",
    "AppLog",
    "AppSummary",
    "ChildLink",
    "ProjectSummary",
    "Span",
    "StateDiff",
    "Step",
    "TrackingIndex",
    "diff_states",
    "step_token_totals",
]

LOG_NAME = "log.jsonl"
_FINAL = ("completed", "failed", "cancelled")
_STATE_CACHE = 256


@dataclass(frozen=True, kw_only=True, slots=True)
class ProjectSummary:
    name: str
    app_count: int
    last_activity: float | None


@dataclass(frozen=True, kw_only=True, slots=True)
class ChildLink:
    app_id: str
    partition_key: str | None
    sequence_id: int | None
    kind: str


@dataclass(frozen=True, kw_only=True, slots=True)
class AppSummary:
    project: str
    app_id: str
    partition_key: str | None
    status: str  # "running", "completed" or "failed"
    step_count: int
    error_count: int
    first_time: float | None
    last_time: float | None
    parent: ChildLink | None
    children: tuple[ChildLink, ...]
    tags: dict[str, str] = field(default_factory=dict)


@dataclass(kw_only=True, slots=True)
class Span:
    span_id: str
    parent: str | None
    name: str
    start: float | None
    end: float | None = None
    error: str | None = None
    attributes: dict[str, Any] = field(default_factory=dict)

    @property
    def depth(self) -> int:
        """Nesting level, from the span id's dotted path (``"3:0.1"`` is depth 1)."""
        return self.span_id.rpartition(":")[2].count(".")


@dataclass(kw_only=True, slots=True)
class Step:
    """One sequence id of an app: every attempt of it, folded into what the UI shows."""

    seq: int
    action: str
    start: float | None
    end: float | None = None
    status: str = "running"
    attempts: int = 1
    inputs: dict[str, Any] = field(default_factory=dict)
    result: Any = None
    error: str | None = None
    attempt_errors: list[str] = field(default_factory=list)
    changes: list[list[Any]] = field(default_factory=list)
    snapshot: dict[str, Any] | None = None
    base: dict[str, Any] | None = None  # the state before it, when an app line (resume) says so
    attributes: dict[str, Any] = field(default_factory=dict)
    spans: dict[str, Span] = field(default_factory=dict)
    stream_start: float | None = None
    stream_first: float | None = None
    stream_end: float | None = None
    stream_items: int | None = None

    @property
    def duration(self) -> float | None:
        if self.start is None or self.end is None:
            return None
        return self.end - self.start

    @property
    def error_summary(self) -> str | None:
        """The last line of the traceback (``ValueError: ...``)."""
        if not self.error:
            return None
        lines = [line for line in self.error.strip().splitlines() if line.strip()]
        return lines[-1] if lines else None

    @property
    def time_to_first_item(self) -> float | None:
        if self.stream_first is None or self.start is None:
            return None
        return self.stream_first - self.start


@dataclass(frozen=True, kw_only=True, slots=True)
class StateDiff:
    added: dict[str, Any]
    removed: dict[str, Any]
    changed: dict[str, tuple[Any, Any]]

    def __bool__(self) -> bool:
        return bool(self.added or self.removed or self.changed)


def diff_states(before: dict[str, Any], after: dict[str, Any]) -> StateDiff:
    """The keys ``after`` added, removed and changed relative to ``before``."""
    return StateDiff(
        added={k: v for k, v in after.items() if k not in before},
        removed={k: v for k, v in before.items() if k not in after},
        changed={k: (before[k], v) for k, v in after.items() if k in before and before[k] != v},
    )


def _apply(state: dict[str, Any], changes: list[list[Any]]) -> dict[str, Any]:
    """``state`` after ``changes``, on stored (encoded) values; ``state`` itself is not touched."""
    out = dict(state)
    for op, key, value in changes:
        if op == "set":
            out[key] = value
        elif op == "delete":
            out.pop(key, None)
        elif op == "append":
            current = out.get(key)
            out[key] = [*current, value] if isinstance(current, list) else [value]
        elif op == "extend":
            current = out.get(key)
            extra = value if isinstance(value, list) else [value]
            out[key] = [*current, *extra] if isinstance(current, list) else list(extra)
        elif op == "increment":
            current = out.get(key, 0)
            both_numbers = isinstance(current, (int, float)) and isinstance(value, (int, float))
            out[key] = current + value if both_numbers else value
    return out


def _read_lines(path: Path, offset: int) -> tuple[list[dict[str, Any]], int]:
    """The records after byte ``offset`` and the offset after the last complete line.

    The rules are ``turnout.core.tracking.read_log``'s (a torn last line is left for the next
    read, a damaged line is skipped); this variant also returns where it stopped, which an
    incremental reader needs and ``read_log`` does not give.
    """
    with open(path, "rb") as handle:
        handle.seek(offset)
        data = handle.read()
    end = data.rfind(b"\n") + 1
    records: list[dict[str, Any]] = []
    for raw in data[:end].splitlines():
        try:
            record = json.loads(raw)
        except ValueError:
            continue
        if isinstance(record, dict):
            records.append(record)
    return records, offset + end


class AppLog:
    """One app's log, parsed incrementally; see the module docstring."""

    def __init__(self, path: Path) -> None:
        self.path = path
        # One AppLog serves every browser session of the UI: refreshes and the state cache are
        # guarded so two sessions never parse the same lines twice or interleave cache edits.
        self._lock = threading.RLock()
        self._reset()

    def _reset(self) -> None:
        self.offset = 0
        self.records_read = 0
        self.app: dict[str, Any] | None = None
        self.steps: dict[int, Step] = {}
        self.children: list[ChildLink] = []
        self._child_ids: set[str] = set()
        self._order: list[int] = []
        self._states: OrderedDict[int, dict[str, Any]] = OrderedDict()
        self._snapshots: list[int] = []  # seq ids with a full snapshot, ascending
        self._pending_base: dict[str, Any] | None = None
        # Answers over every step (summary, token totals), kept until new records arrive: a
        # page rerun that reads nothing new does not walk 5,000 steps again.
        self._memo: dict[Any, tuple[int, Any]] = {}

    def _memoized(self, key: Any, compute: Callable[[], Any]) -> Any:
        with self._lock:
            hit = self._memo.get(key)
            if hit is not None and hit[0] == self.records_read:
                return hit[1]
            value = compute()
            self._memo[key] = (self.records_read, value)
            return value

    # -- reading -----------------------------------------------------------------------------

    def refresh(self) -> int:
        """Parse the lines appended since the last call; the number of new records."""
        with self._lock:
            return self._refresh()

    def _refresh(self) -> int:
        try:
            size = self.path.stat().st_size
        except OSError:
            return 0
        if size < self.offset:  # the log was replaced: start again
            self._reset()
        if size == self.offset:
            return 0
        records, self.offset = _read_lines(self.path, self.offset)
        for record in records:
            self._add(record)
        self.records_read += len(records)
        return len(records)

    def _add(self, record: dict[str, Any]) -> None:
        kind = record.get("t")
        if kind == "app":
            if self.app is None:
                self.app = record
            elif record.get("sequence_id") is None:
                # The app id was reused for a fresh run: it replaces the earlier run's steps
                # (its sequence ids start again at 0), keeping the children recorded so far.
                children, offset, read = self.children, self.offset, self.records_read
                self._reset()
                self.children, self.offset, self.records_read = children, offset, read
                self._child_ids = {c.app_id for c in children}
                self.app = record
            elif isinstance(record.get("state"), dict):
                # The app was resumed (or forked onto itself) in a new process: its next step
                # starts from the state this line gives, overrides included.
                self._pending_base = record["state"]
        elif kind == "begin":
            self._begin(record)
        elif kind == "end":
            self._end(record)
        elif kind in ("span_start", "span_end"):
            self._span(kind, record)
        elif kind == "attr":
            self._attr(record)
        elif kind in ("stream_start", "stream_first", "stream_end"):
            step = self.steps.get(record.get("seq", -1))
            if step is not None:
                setattr(step, kind, record.get("time"))
                if kind == "stream_end":
                    step.stream_items = record.get("items")
        elif kind == "child":
            child_id = str(record.get("child_app_id"))
            if child_id in self._child_ids:
                return  # a resumed child writes its spawn line again
            self._child_ids.add(child_id)
            self.children.append(
                ChildLink(
                    app_id=child_id,
                    partition_key=record.get("child_partition_key"),
                    sequence_id=record.get("seq"),
                    kind=str(record.get("kind", "fork")),
                )
            )

    def _begin(self, record: dict[str, Any]) -> None:
        seq = int(record["seq"])
        step = self.steps.get(seq)
        if step is None:
            step = Step(seq=seq, action=str(record.get("action")), start=record.get("time"))
            step.base, self._pending_base = self._pending_base, None
            self.steps[seq] = step
            self._order.append(seq)
        else:  # a retry: the step spans every attempt
            step.status = "running"
        step.attempts = int(record.get("attempt", 1))
        step.inputs = record.get("inputs") or {}

    def _end(self, record: dict[str, Any]) -> None:
        seq = int(record["seq"])
        step = self.steps.get(seq)
        if step is None:  # a begin line lost to damage: keep what the end says
            step = Step(seq=seq, action=str(record.get("action")), start=record.get("time"))
            self.steps[seq] = step
            self._order.append(seq)
        step.end = record.get("time")
        step.status = str(record.get("status", "completed"))
        step.attempts = int(record.get("attempt", step.attempts))
        step.result = record.get("result")
        error = record.get("error")
        if error and step.status == "retrying":
            step.attempt_errors.append(error)
        step.error = error
        if step.status in _FINAL:
            step.changes = record.get("changes") or []
            if "snapshot" in record and isinstance(record["snapshot"], dict):
                step.snapshot = record["snapshot"]
                self._snapshots.append(seq)
            self._states.pop(seq, None)

    def _span(self, kind: str, record: dict[str, Any]) -> None:
        span_id = str(record.get("span"))
        step = self.steps.get(record.get("seq", -1))
        if step is None:
            return
        span = step.spans.get(span_id)
        if kind == "span_start":
            step.spans[span_id] = Span(
                span_id=span_id,
                parent=record.get("parent"),
                name=str(record.get("name")),
                start=record.get("time"),
            )
        elif span is not None:
            span.end = record.get("time")
            span.error = record.get("error")

    def _attr(self, record: dict[str, Any]) -> None:
        step = self.steps.get(record.get("seq", -1))
        if step is None:
            return
        key, value = str(record.get("key")), record.get("value")
        span = step.spans.get(str(record.get("span"))) if record.get("span") else None
        if span is not None:
            span.attributes[key] = value
        step.attributes[key] = value

    # -- questions ---------------------------------------------------------------------------

    def step_list(self) -> list[Step]:
        return [self.steps[seq] for seq in self._order]

    @property
    def partition_key(self) -> str | None:
        return self.app.get("partition_key") if self.app else None

    @property
    def graph(self) -> dict[str, Any]:
        return (self.app or {}).get("graph") or {"actions": [], "transitions": []}

    @property
    def parent(self) -> ChildLink | None:
        """The step this application was forked from, else the step that spawned it."""
        app = self.app or {}
        for field_name, kind in (("parent", "fork"), ("spawning_parent", "spawn")):
            pointer = app.get(field_name)
            if pointer:
                return ChildLink(
                    app_id=str(pointer.get("app_id")),
                    partition_key=pointer.get("partition_key"),
                    sequence_id=pointer.get("sequence_id"),
                    kind=kind,
                )
        return None

    @property
    def tags(self) -> dict[str, str]:
        tags = (self.app or {}).get("tags")
        return {str(k): str(v) for k, v in tags.items()} if isinstance(tags, dict) else {}

    def children_of(self, seq: int) -> list[ChildLink]:
        """The applications forked from or spawned by step ``seq``."""
        return sorted((c for c in self.children if c.sequence_id == seq), key=lambda c: c.app_id)

    @property
    def status(self) -> str:
        if not self._order:
            return "running" if self.app is None else "completed"
        last = self.steps[self._order[-1]]
        if last.status in ("running", "retrying"):
            return "running"
        return "failed" if last.status in ("failed", "cancelled") else "completed"

    def summary(self, project: str) -> AppSummary:
        summary: AppSummary = self._memoized(("summary", project), lambda: self._summary(project))
        return summary

    def _summary(self, project: str) -> AppSummary:
        steps = self.step_list()
        times = [t for s in steps for t in (s.start, s.end) if t is not None]
        app_time = (self.app or {}).get("time")
        return AppSummary(
            project=project,
            app_id=str((self.app or {}).get("app_id", self.path.parent.name)),
            partition_key=self.partition_key,
            status=self.status,
            step_count=len(steps),
            error_count=sum(1 for s in steps if s.status in ("failed", "cancelled")),
            first_time=app_time if app_time is not None else (min(times) if times else None),
            last_time=max(times) if times else app_time,
            parent=self.parent,
            children=tuple(self.children),
            tags=self.tags,
        )

    def run_counts(self) -> dict[str, int]:
        """How many steps each action ran (retries of one step count once)."""
        counts: dict[str, int] = {}
        for step in list(self.steps.values()):
            counts[step.action] = counts.get(step.action, 0) + 1
        return counts

    def token_totals(self) -> dict[str, float]:
        """The sum of every numeric ``gen_ai.usage.*`` attribute over the app's steps."""
        totals: dict[str, float] = self._memoized("tokens", self._token_totals)
        return dict(totals)

    def _token_totals(self) -> dict[str, float]:
        totals: dict[str, float] = {}
        for step in list(self.steps.values()):
            for key, value in step_token_totals(step).items():
                totals[key] = totals.get(key, 0) + value
        return totals

    def initial_state(self) -> dict[str, Any]:
        state = (self.app or {}).get("state")
        return state if isinstance(state, dict) else {}

    def state_after(self, seq: int) -> dict[str, Any]:
        """The state after step ``seq`` (a running or retried attempt changes nothing)."""
        with self._lock:
            return self._state_after(seq)

    def _state_after(self, seq: int) -> dict[str, Any]:
        cached = self._states.get(seq)
        if cached is not None:
            self._states.move_to_end(seq)
            return cached
        position = self._position(seq)
        state: dict[str, Any] | None = None
        start = 0
        for index in range(position, -1, -1):  # the nearest snapshot or cached state
            step = self.steps[self._order[index]]
            known = self._states.get(step.seq)
            if known is None and step.snapshot is not None:
                known = step.snapshot
            if known is not None:
                state, start = known, index + 1
                break
            if step.base is not None:
                state, start = step.base, index
                break
        if state is None:
            state = self.initial_state()
        for index in range(start, position + 1):
            step = self.steps[self._order[index]]
            if step.status in _FINAL:
                state = _apply(state, step.changes)
        self._remember(seq, state)
        return state

    def state_before(self, seq: int) -> dict[str, Any]:
        position = self._position(seq)
        base = self.steps[seq].base
        if base is not None:
            return base
        if position == 0:
            return self.initial_state()
        return self.state_after(self._order[position - 1])

    def _position(self, seq: int) -> int:
        if seq not in self.steps:
            raise KeyError(f"app log {str(self.path)!r} has no step {seq}")
        # Sequence ids usually grow by one from the first, so try that index before searching.
        guess = seq - self._order[0]
        if 0 <= guess < len(self._order) and self._order[guess] == seq:
            return guess
        return self._order.index(seq)

    def _remember(self, seq: int, state: dict[str, Any]) -> None:
        self._states[seq] = state
        if len(self._states) > _STATE_CACHE:
            self._states.popitem(last=False)


def step_token_totals(step: Step) -> dict[str, float]:
    """The numeric ``gen_ai.usage.*`` attributes logged in ``step``, summed over its spans."""
    totals: dict[str, float] = {}
    sources = [span.attributes for span in step.spans.values()]
    span_keys = {k for attrs in sources for k in attrs}
    # Attributes logged on a span appear in the step's too; count the step-level ones only once.
    sources.append({k: v for k, v in step.attributes.items() if k not in span_keys})
    for attrs in sources:
        for key, value in attrs.items():
            is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
            if key.startswith("gen_ai.usage.") and is_number:
                totals[key] = totals.get(key, 0) + value
    return totals


@dataclass(frozen=True, kw_only=True, slots=True)
class AppListing:
    """The applications of a project: those read (most recently active first) and, by app id,
    why each of the others could not be read."""

    apps: list[AppSummary]
    unreadable: dict[str, str]


class TrackingIndex:
    """Projects and apps under a storage directory, with the logs read so far kept open.

    Project and application ids are checked by the tracker's naming rule and their resolved
    directories must lie inside the root (no ``..``, no absolute path, no symlink out): a bad
    id raises ``InvalidParameterError``.
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self._logs: dict[Path, AppLog] = {}

    def projects(self) -> list[ProjectSummary]:
        """Every project directory holding at least one app log, most recently active first."""
        out = []
        for project in _subdirs(self.root):
            if not self._inside(project):
                continue
            mtimes = [m for _, m in _app_logs(project)]
            if mtimes:
                out.append(
                    ProjectSummary(
                        name=project.name, app_count=len(mtimes), last_activity=max(mtimes)
                    )
                )
        return sorted(out, key=lambda p: -(p.last_activity or 0))

    def apps(self, project: str) -> list[AppSummary]:
        """The readable apps of ``project``, most recently active first (see ``listing``)."""
        return self.listing(project).apps

    def listing(self, project: str) -> AppListing:
        """The apps of ``project`` (logs refreshed incrementally); one app whose log cannot be
        read is reported in ``unreadable`` with the reason, and the others are still listed."""
        directory = self._directory(project)
        summaries, unreadable = [], {}
        for path, _ in _app_logs(directory):
            # The project directory was resolved inside the root: only a link can lead out.
            linked = path.is_symlink() or path.parent.is_symlink()
            if linked and not self._inside(path):
                unreadable[path.parent.name] = "its directory leads outside the tracking root"
                continue
            try:
                summaries.append(self._log(path).summary(project))
            # The list page shows every other app whatever one log holds; the reason is shown.
            except Exception as error:
                unreadable[path.parent.name] = f"{type(error).__name__}: {error}"
        summaries.sort(key=lambda a: -(a.last_time or 0))
        return AppListing(apps=summaries, unreadable=unreadable)

    def app(self, project: str, app_id: str) -> AppLog | None:
        """The refreshed log of one app; ``None`` if it has none. An id that is not a tracked
        name, or a directory leading out of the root, raises ``InvalidParameterError``."""
        path = self._directory(project, app_id) / LOG_NAME
        if not path.is_file() or not self._inside(path):
            return None
        return self._log(path)

    def _directory(self, project: str, app_id: str | None = None) -> Path:
        path = self.root / check_name(project, "project")
        if app_id is not None:
            path = path / check_name(app_id, "application")
        if not self._inside(path):
            raise InvalidParameterError(
                f"{str(path)!r} resolves to {str(path.resolve())!r}, outside the tracking "
                f"directory {str(self.root.resolve())!r}: the UI shows only what is under it "
                "(move or copy it there)."
            )
        return path

    def _inside(self, path: Path) -> bool:
        root = self.root.resolve()
        return root in path.resolve().parents

    def _log(self, path: Path) -> AppLog:
        log = self._logs.get(path)
        if log is None:
            log = self._logs[path] = AppLog(path)
        log.refresh()
        return log


def _subdirs(path: Path) -> Iterator[Path]:
    try:
        entries = list(os.scandir(path))
    except OSError:
        return
    for entry in entries:
        if entry.is_dir() and not entry.name.startswith("."):
            yield Path(entry.path)


def _app_logs(project: Path) -> list[tuple[Path, float]]:
    found = []
    for app in _subdirs(project):
        log = app / LOG_NAME
        try:
            found.append((log, log.stat().st_mtime))
        except OSError:
            continue
    return found
