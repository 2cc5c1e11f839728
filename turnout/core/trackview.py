"""One application's tracked history as a tracking UI shows it (stdlib only, no UI framework).

One app's log as the UI reads it (``AppLog``): its summary (partition key, status, step count,
times, parent and children) and its steps. ``AppLog(path)`` reads a local tracker's log file;
``AppLog.over(feed, ...)`` reads any other store through a feed (the records after a position,
e.g. ``turnout.core.tracksource.TrackingSource.read``). Each log is read incrementally: an
``AppLog`` keeps the position it has parsed up to and, on ``refresh()``, parses only the
records appended since, so a live view of a running application costs O(new records) per
refresh, not O(log). Records are read and typed by ``turnout.core.tracklog`` only.

States are rebuilt, never stored per step: from the app line's initial state and the nearest
full snapshot before a step, replaying at most ``snapshot_every`` deltas; rebuilt states are
cached, so clicking through steps does not replay the log. Values stay in their stored JSON form
(serde's tagged objects included): the UI never decodes them into Python objects, so nothing in
a trace can make it import or run code.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from turnout.core import tracklog as tl
from turnout.core import tracktail
from turnout.core.errors import PersistenceError
from turnout.core.trackhistory import History
from turnout.core.tracksource import AppSummary, ChildLink, ProjectSummary
from turnout.core.trackstep import Span, StateDiff, Step, diff_states, step_token_totals

__all__ = [
    "AppLog",
    "AppSummary",
    "ChildLink",
    "Feed",
    "ProjectSummary",
    "Span",
    "StateDiff",
    "Step",
    "diff_states",
    "step_token_totals",
]

LOG_NAME = "log.jsonl"
_FINAL = ("completed", "failed", "cancelled")
_STATE_CACHE = 256


Feed = Callable[[int | None], tl.LogChunk | None]
"""Where an ``AppLog`` of another store reads: the records after a position (see ``over``)."""

_apply = tl.apply_stored_changes  # the replay on stored values (a module name: tests count calls)


def _read_lines(path: Path, offset: int, version: int | None = None) -> tl.LogChunk:
    """The records after byte ``offset``, the offset after the last complete line and the
    number of malformed lines skipped (``turnout.core.tracklog.read_records``)."""
    return tl.read_records(path, offset, version=version, lazy=True)


class AppLog:
    """One app's log, parsed incrementally; see the module docstring.

    Attributes:
        bad_lines: how many malformed lines (damaged, not JSON, unknown kind, bad checksum)
            were skipped so far; the UI warns when it is not 0.
        format_version: the log's format version (``None`` if its first line was lost).
    """

    window_start: int | None
    format_version: int | None
    _fed_to: int | None

    def __init__(self, path: Path, *, feed: Feed | None = None, app_id: str | None = None) -> None:
        self.path = path
        # The id the log is filed under (checked by the source), not the one its line claims.
        self.app_id = app_id if app_id is not None else path.parent.name
        self._feed = feed
        # One AppLog serves every browser session of the UI: refreshes and the state cache are
        # guarded so two sessions never parse the same lines twice or interleave cache edits.
        self._lock = threading.RLock()
        self._reset()

    @classmethod
    def over(cls, feed: Feed, *, app_id: str, label: str) -> AppLog:
        """The log of ``app_id`` read from another store through ``feed``: ``feed(after)``
        gives the records after position ``after`` (``None``: from the start) as
        ``tracklog.read_records`` does, or ``None`` when nothing changed; ``label`` names the
        log in messages (it stands where a file log has its path)."""
        return cls(Path(label), feed=feed, app_id=app_id)

    @classmethod
    def tail_first(
        cls, path: Path, *, long_log: int | None = None, window: int | None = None
    ) -> AppLog:
        """The log at ``path``; if it is longer than ``long_log`` bytes (default
        ``tracktail.LONG_LOG``), opened on its last ``window`` bytes or so (``open_window``
        with ``turnout.core.tracktail.file_window``): a page of its last steps is drawn
        without parsing the whole log."""
        log = cls(path)
        long_log = tracktail.LONG_LOG if long_log is None else long_log
        window = tracktail.WINDOW if window is None else window
        try:
            long = path.stat().st_size > long_log
        except OSError:
            long = False
        tail = tracktail.file_window(path, window=window) if long else None
        if tail is not None:
            log.open_window(*tail)
        return log

    def open_window(self, head: tl.LogChunk, start: int) -> None:
        """Read a long log from position ``start`` on (its tail; see ``turnout.core.tracktail``)
        after ``head``, its first records (the ``format`` and ``app`` lines): the steps before
        ``start`` are not read until ``load_all()``. Positions are byte offsets for a file,
        the feed's own for another store (the feed reads after ``start``)."""
        with self._lock:
            self._reset()
            self.format_version = head.version
            self._take(head)
            self.partial, self.window_start = True, start
            if self._feed is None:
                self.offset = start
            else:
                self._fed_to = start

    def load_all(self) -> int:
        """Read every record of a log opened with ``open_window`` (a whole read: slow on a
        long log); the number of records read."""
        with self._lock:
            if not self.partial:
                return self._refresh()
            self._reset()
            return self._refresh()

    def _reset(self) -> None:
        self.offset = 0
        self.partial = False  # only the tail is read (open_window); see load_all
        self.window_start = None
        self._fed_to = None  # the feed's position read up to (None: nothing yet)
        self.records_read = 0
        self.bad_lines = 0
        self.format_version = None
        self._history = History(app_id=self.app_id, path=self.path)
        self._new_run()

    def _new_run(self) -> None:
        self.app: dict[str, Any] | None = None
        self.steps: dict[int, Step] = {}
        self.children: list[ChildLink] = []
        self._child_ids: set[str] = set()
        self._order: list[int] = []
        self._highest = -1  # the highest sequence id in steps
        # State after a step, keyed by its sequence id, with the end record it was built for:
        # a later timeline's end for the same id never reuses it.
        self._states: OrderedDict[int, tuple[tl.EndRecord, dict[str, Any]]] = OrderedDict()
        # (k, state) from a resume's app line: the state step k + 1 starts from.
        self._pending_base: tuple[int, dict[str, Any]] | None = None
        # Answers over every step (summary, token totals), kept until new records arrive: a
        # page rerun that reads nothing new does not walk 5,000 steps again.
        self._memo: dict[Any, tuple[int, Any]] = {}

    @property
    def newer_format(self) -> bool:
        """The log was written by a newer turnout: steps are listed, states are not rebuilt."""
        return self.format_version is not None and self.format_version > tl.READS_UP_TO

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
        if self._feed is not None:
            fed = self._feed(self._fed_to)
            if fed is None:
                return 0
            chunk = fed
            self._fed_to = chunk.offset
            self.format_version = self.format_version or chunk.version
            return self._take(chunk)
        try:
            size = self.path.stat().st_size
        except OSError:
            return 0
        if size < self.offset:  # the log was replaced: start again
            self._reset()
        if size == self.offset:
            return 0
        chunk = _read_lines(self.path, self.offset, self.format_version)
        self.offset, self.format_version = chunk.offset, chunk.version
        return self._take(chunk)

    def _take(self, chunk: tl.LogChunk) -> int:
        self.bad_lines += chunk.bad_lines
        for raw, record in zip(chunk.raw, chunk.records, strict=True):
            self._add(raw, record)
            self._history.add(record)
        self.records_read += len(chunk.records)
        return len(chunk.records)

    def _add(self, raw: dict[str, Any], record: tl.Record) -> None:
        if isinstance(record, tl.AppRecord):
            self._app(raw, record)
        elif isinstance(record, tl.BeginRecord):
            self._begin(record)
        elif isinstance(record, tl.EndRecord):
            self._end(record)
        elif isinstance(record, tl.SpanStartRecord | tl.SpanEndRecord):
            self._span(record)
        elif isinstance(record, tl.AttrRecord):
            self._attr(record)
        elif isinstance(record, tl.StreamStartRecord | tl.StreamFirstRecord | tl.StreamEndRecord):
            step = self.steps.get(record.seq)
            if step is not None:
                setattr(step, record.KIND, record.time)
                if isinstance(record, tl.StreamEndRecord):
                    step.stream_items = record.items
        elif isinstance(record, tl.ChildRecord):
            if record.child_app_id in self._child_ids:
                return  # a resumed child writes its spawn line again
            self._child_ids.add(record.child_app_id)
            self.children.append(
                ChildLink(
                    app_id=record.child_app_id,
                    partition_key=record.child_partition_key,
                    sequence_id=record.seq,
                    kind=record.kind,
                )
            )

    def _app(self, raw: dict[str, Any], record: tl.AppRecord) -> None:
        if self.app is None and (record.sequence_id is None or not self.steps):
            self.app = raw
        elif record.sequence_id is None:
            # The app id was reused for a fresh run: it replaces the earlier run's steps
            # (its sequence ids start again at 0), keeping the children recorded so far.
            children = self.children
            self._new_run()
            self.children, self._child_ids = children, {c.app_id for c in children}
            self.app = raw
        else:
            # The app was resumed (or forked onto itself) in a new process: its next step
            # starts from the state this line gives, overrides included.
            self._pending_base = (record.sequence_id, record.state)
            self.app = self.app or raw
            self._drop_after(record.sequence_id)

    def _drop_after(self, seq: int) -> None:
        """Forget the steps after ``seq``: a resume from an earlier step replaces them (its app
        line says so, or, when that line was lost, a finished step with a lower id does)."""
        later = [s for s in self._order if s > seq]
        for stale in later:
            del self.steps[stale]
        if later:
            self._order = [s for s in self._order if s <= seq]
        self._highest = min(self._highest, seq)

    def _take_base(self, seq: int) -> dict[str, Any] | None:
        """The pending resume state if step ``seq`` is the one it starts (damage aside)."""
        pending, self._pending_base = self._pending_base, None
        return pending[1] if pending is not None and pending[0] + 1 == seq else None

    def _begin(self, record: tl.BeginRecord) -> None:
        step = self.steps.get(record.seq)
        if step is None:
            step = Step(seq=record.seq, action=record.action, start=record.time)
            step.base = self._take_base(record.seq)
            self.steps[record.seq] = step
            self._order.append(record.seq)
            self._highest = max(self._highest, record.seq)
        else:  # a retry: the step spans every attempt
            step.status = "running"
        step.attempts = record.attempt
        step.inputs = record.inputs

    def _end(self, record: tl.EndRecord) -> None:
        step = self.steps.get(record.seq)
        if step is None:  # a begin line lost to damage: keep what the end says
            step = Step(seq=record.seq, action=record.action, start=record.time)
            step.base = self._take_base(record.seq)
            self.steps[record.seq] = step
            self._order.append(record.seq)
            self._highest = max(self._highest, record.seq)
        step.end = record.time
        step.status = record.status
        step.attempts = record.attempt
        step.result = record.result
        if record.error and step.status == "retrying":
            step.attempt_errors.append(record.error)
        step.error = record.error
        step.suspension = record.suspension if record.status == "suspended" else None
        if step.status in _FINAL:
            step.changes = [list(change) for change in record.changes]
            step.stored_snapshot = record.lazy_snapshot or record.snapshot
        if record.finished and self._highest > record.seq:
            self._drop_after(record.seq)

    def _span(self, record: tl.SpanStartRecord | tl.SpanEndRecord) -> None:
        step = self.steps.get(record.seq)
        if step is None:
            return
        if isinstance(record, tl.SpanStartRecord):
            step.spans[record.span] = Span(
                span_id=record.span, parent=record.parent, name=record.name, start=record.time
            )
            return
        span = step.spans.get(record.span)
        if span is not None:
            span.end = record.time
            span.error = record.error

    def _attr(self, record: tl.AttrRecord) -> None:
        step = self.steps.get(record.seq)
        if step is None:
            return
        span = step.spans.get(record.span) if record.span else None
        if span is not None:
            span.attributes[record.key] = record.value
        step.attributes[record.key] = record.value

    # -- questions ---------------------------------------------------------------------------

    def step_list(self) -> list[Step]:
        return [self.steps[seq] for seq in self._order]

    @property
    def partition_key(self) -> str | None:
        return self.app.get("partition_key") if self.app else None

    @property
    def graph(self) -> dict[str, Any]:
        """The logged graph, its ``actions`` and ``transitions`` kept only where they are
        objects: a damaged log shows fewer of them, never breaks the pages drawing it."""
        graph = (self.app or {}).get("graph") or {}
        return {
            **graph,
            "actions": _objects(graph.get("actions")),
            "transitions": _objects(graph.get("transitions")),
        }

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
        count = len(steps)
        if self.partial and steps:  # the steps before the tail: their ids are contiguous
            start = (self.app or {}).get("sequence_id")
            first = start + 1 if isinstance(start, int) and not isinstance(start, bool) else 0
            count += max(steps[0].seq - first, 0)
        return AppSummary(
            project=project,
            app_id=str((self.app or {}).get("app_id", self.app_id)),
            partition_key=self.partition_key,
            status=self.status,
            step_count=count,
            error_count=sum(1 for s in steps if s.status in ("failed", "cancelled")),
            first_time=app_time if app_time is not None else (min(times) if times else None),
            last_time=max(times) if times else app_time,
            parent=self.parent,
            children=tuple(self.children),
            tags=self.tags,
            bad_lines=self.bad_lines,
            partial=self.partial,
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
        """The state after step ``seq`` (a running or retried attempt changes nothing).

        Raises:
            KeyError: the log has no step ``seq``.
            PersistenceError: the log is damaged between the nearest snapshot and the step
                (an ``end`` line is missing or unreadable), or it is in a newer format: the
                state cannot be shown as it was, and is not guessed. Other steps still load.
        """
        with self._lock:
            self._position(seq)
            try:
                chain = self._history.chain(seq)
                if chain is None:  # running, retrying or cancelled: it changed nothing
                    return self._state_before(seq)
            except PersistenceError as error:
                self._not_in_window(seq, error)
                raise
            return self._replay(chain.start, chain.ends)

    def state_before(self, seq: int) -> dict[str, Any]:
        """The state step ``seq`` started from (raises as ``state_after`` does)."""
        with self._lock:
            self._position(seq)
            try:
                return self._state_before(seq)
            except PersistenceError as error:
                self._not_in_window(seq, error)
                raise

    def _not_in_window(self, seq: int, error: PersistenceError) -> None:
        if self.partial:
            raise PersistenceError(
                f"the state of step {seq} of {str(self.path)!r} is rebuilt from records before "
                "the part of this long log read so far: read every step (AppLog.load_all(), "
                "the page's 'Read all steps' button) to show it."
            ) from error

    def _state_before(self, seq: int) -> dict[str, Any]:
        base = self.steps[seq].base
        if base is not None:
            return base
        start, ends = self._history.before(seq)
        return self._replay(start, ends)

    def _replay(self, start: dict[str, Any], ends: tuple[tl.EndRecord, ...]) -> dict[str, Any]:
        state, first = start, 0
        for index in range(len(ends) - 1, -1, -1):  # the latest state already rebuilt
            cached = self._states.get(ends[index].seq)
            if cached is not None and cached[0] is ends[index]:
                self._states.move_to_end(ends[index].seq)
                state, first = cached[1], index + 1
                break
        for end in ends[first:]:
            state = _apply(state, end.changes)
        if ends and first < len(ends):
            self._remember(ends[-1], state)
        return state

    def _position(self, seq: int) -> int:
        if seq not in self.steps:
            raise KeyError(f"app log {str(self.path)!r} has no step {seq}")
        # Sequence ids usually grow by one from the first, so try that index before searching.
        guess = seq - self._order[0]
        if 0 <= guess < len(self._order) and self._order[guess] == seq:
            return guess
        return self._order.index(seq)

    def _remember(self, end: tl.EndRecord, state: dict[str, Any]) -> None:
        self._states[end.seq] = (end, state)
        if len(self._states) > _STATE_CACHE:
            self._states.popitem(last=False)


def _objects(items: Any) -> list[dict[str, Any]]:
    return [item for item in items if isinstance(item, dict)] if isinstance(items, list) else []
