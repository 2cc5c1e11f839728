"""Tracking sources: what a tracking UI reads, whatever store holds the records (stdlib only).

A *tracking source* answers four questions about one tracking store, and nothing else:

- ``projects()``: the projects, with their app counts and last activity;
- ``app_page(project, query)``: one page of a project's applications (``AppQuery``: filters,
  offset, limit), most recently active first, with the counts and filter choices around it
  (``AppPage``), answered from a per-project summary, never by opening every application;
- ``read(project, app_id, after)``: an application's records after a position, in
  ``turnout.core.tracklog``'s typed form (``LogChunk``; pass its ``offset`` back as ``after``),
  and ``app(project, app_id)``: its ``turnout.core.trackview.AppLog`` built on them, kept and
  refreshed incrementally;
- ``changes()`` / ``wait(since, timeout)``: a counter that grows when the store changes, and a
  wait for it (a store that can push changes, PostgreSQL's LISTEN/NOTIFY, sets ``pushes``; a
  store that cannot, files, answers ``wait`` after ``timeout`` and callers poll).

The local tracker's directory (``turnout.core.trackfiles.TrackingIndex``) and a
PostgreSQL store (``turnout.integrations.postgres_tracking.PostgresSource``) implement it; the
tracking UI reads through it. Records stay in their stored JSON form: a source
never decodes a value into a Python object, so nothing in a trace can make a reader run code.

``SummaryIndex`` is the file store's per-project summary: one ``AppSummary`` per application,
each kept with the size and modification time of the log it was computed from, saved next to
the logs (``.turnout-ui-index.json``) and trusted only while the log still has that size and
time; a changed log is summarised again, a bounded number per call, so the listing of a
10,000-application project reads only what changed since the last visit.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from turnout.core.tracklog import LogChunk

if TYPE_CHECKING:
    from turnout.core.trackview import AppLog

__all__ = [
    "ALL_FIRST_PAGE",
    "INDEX_NAME",
    "STATUSES",
    "AppPage",
    "AppQuery",
    "AppSummary",
    "ChangeCounter",
    "ChildLink",
    "ProjectSummary",
    "SummaryIndex",
    "TrackingSource",
    "select",
    "stat_logs",
]

STATUSES = ("running", "completed", "failed")
INDEX_NAME = ".turnout-ui-index.json"
_INDEX_VERSION = 1


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

    def to_json(self) -> dict[str, Any]:
        return {
            "app_id": self.app_id, "partition_key": self.partition_key,
            "sequence_id": self.sequence_id, "kind": self.kind,
        }  # fmt: skip

    @classmethod
    def from_json(cls, data: Any) -> ChildLink:
        """The link ``to_json`` wrote; ``ValueError`` for anything else (stored data)."""
        if not isinstance(data, dict):
            raise ValueError("a child link is an object")
        return cls(
            app_id=_typed(data, "app_id", str),
            partition_key=_typed(data, "partition_key", str, optional=True),
            sequence_id=_typed(data, "sequence_id", int, optional=True),
            kind=_typed(data, "kind", str),
        )


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
    bad_lines: int = 0  # malformed lines skipped in its log (see AppLog.bad_lines)
    # Only the tail of a long log was read: the counts of failed steps (and anything else
    # summed over steps) cover that tail; the step count is its last id's.
    partial: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "project": self.project, "app_id": self.app_id, "partition_key": self.partition_key,
            "status": self.status, "step_count": self.step_count,
            "error_count": self.error_count, "first_time": self.first_time,
            "last_time": self.last_time,
            "parent": None if self.parent is None else self.parent.to_json(),
            "children": [c.to_json() for c in self.children], "tags": self.tags,
            "bad_lines": self.bad_lines, "partial": self.partial,
        }  # fmt: skip

    @classmethod
    def from_json(cls, data: Any) -> AppSummary:
        """The summary ``to_json`` wrote; ``ValueError`` for anything else (stored data)."""
        if not isinstance(data, dict):
            raise ValueError("a summary is an object")
        tags = _typed(data, "tags", dict)
        children = _typed(data, "children", list)
        parent = data.get("parent")
        status = _typed(data, "status", str)
        if status not in STATUSES:
            raise ValueError(f"unknown status {status!r}")
        return cls(
            project=_typed(data, "project", str),
            app_id=_typed(data, "app_id", str),
            partition_key=_typed(data, "partition_key", str, optional=True),
            status=status,
            step_count=_typed(data, "step_count", int),
            error_count=_typed(data, "error_count", int),
            first_time=_number(data, "first_time"),
            last_time=_number(data, "last_time"),
            parent=None if parent is None else ChildLink.from_json(parent),
            children=tuple(ChildLink.from_json(c) for c in children),
            tags={str(k): str(v) for k, v in tags.items()},
            bad_lines=_typed(data, "bad_lines", int),
            partial=data.get("partial") is True,
        )

    @property
    def tag_labels(self) -> set[str]:
        """The tags as the filters name them (``key=value``)."""
        return {f"{k}={v}" for k, v in self.tags.items()}


def _typed(data: dict[str, Any], key: str, kind: type, *, optional: bool = False) -> Any:
    value = data.get(key)
    if value is None and optional:
        return None
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ValueError(f"field {key!r} is not a {kind.__name__}")
    return value


def _number(data: dict[str, Any], key: str) -> float | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"field {key!r} is not a number")
    return float(value)


@dataclass(frozen=True, kw_only=True, slots=True)
class AppQuery:
    """Which applications of a project to list.

    Attributes:
        offset: how many matching applications to skip (most recently active first).
        limit: how many to return at most (``None``: all).
        status: only this status (one of ``STATUSES``); ``None``: any.
        partition_keys: only applications whose partition key is one of these (``None`` in it
            selects those without one); ``None``: any.
        tag: only applications with this tag, as ``key=value``; ``None``: any.
    """

    offset: int = 0
    limit: int | None = 50
    status: str | None = None
    partition_keys: tuple[str | None, ...] | None = None
    tag: str | None = None

    def __post_init__(self) -> None:
        if self.offset < 0:
            raise ValueError(f"AppQuery(offset={self.offset!r}): an offset is 0 or more")
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"AppQuery(limit={self.limit!r}): a limit is 1 or more (or None)")
        if self.status is not None and self.status not in STATUSES:
            raise ValueError(
                f"AppQuery(status={self.status!r}): a status is one of {', '.join(STATUSES)} "
                "(or None for any)"
            )

    def matches(self, app: AppSummary) -> bool:
        return (
            (self.status is None or app.status == self.status)
            and (self.partition_keys is None or app.partition_key in self.partition_keys)
            and (self.tag is None or self.tag in app.tag_labels)
        )


ALL_FIRST_PAGE = AppQuery()
"""The default query: the first 50 applications, unfiltered."""


@dataclass(frozen=True, kw_only=True, slots=True)
class AppPage:
    """One page of a project's applications.

    Attributes:
        apps: the page, most recently active first.
        total: the project's applications (readable or not).
        matched: those the query's filters select (of the summarised ones).
        partition_keys: every partition key of the project (``None``: apps without one).
        tags: every tag of the project, as ``key=value``.
        unreadable: by app id, why an application could not be read.
        pending: applications not summarised yet (a file store summarises a bounded number
            per call): they are missing from ``matched`` and the page until a later call.
    """

    apps: tuple[AppSummary, ...]
    total: int
    matched: int
    partition_keys: tuple[str | None, ...] = ()
    tags: tuple[str, ...] = ()
    unreadable: dict[str, str] = field(default_factory=dict)
    pending: int = 0


def select(
    summaries: Iterable[AppSummary],
    query: AppQuery,
    *,
    total: int | None = None,
    unreadable: Mapping[str, str] | None = None,
    pending: int = 0,
) -> AppPage:
    """The page ``query`` selects from ``summaries`` (sorted here, most recently active first)."""
    apps = sorted(summaries, key=lambda a: (-(a.last_time or 0), a.app_id))
    chosen = [a for a in apps if query.matches(a)]
    end = None if query.limit is None else query.offset + query.limit
    keys = {a.partition_key for a in apps}
    return AppPage(
        apps=tuple(chosen[query.offset : end]),
        total=len(apps) + len(unreadable or {}) + pending if total is None else total,
        matched=len(chosen),
        partition_keys=tuple(sorted(keys, key=lambda k: (k is not None, k or ""))),
        tags=tuple(sorted({t for a in apps for t in a.tag_labels})),
        unreadable=dict(unreadable or {}),
        pending=pending,
    )


@runtime_checkable
class TrackingSource(Protocol):
    """One tracking store as a UI reads it; see the module docstring.

    Attributes:
        location: how pages name the store (a directory, a database table).
        pushes: ``True`` if ``wait`` returns as soon as the store changes (else it returns
            after its timeout, and a reader polls).
    """

    @property
    def location(self) -> str: ...

    @property
    def pushes(self) -> bool: ...

    def projects(self) -> list[ProjectSummary]: ...

    def app_page(self, project: str, query: AppQuery = ...) -> AppPage: ...

    def read(self, project: str, app_id: str, after: int | None = None) -> LogChunk | None:
        """The records of an application after position ``after`` (``None``: from the start,
        led by its ``format`` record); ``None`` if the store has no such application."""
        ...

    def app(self, project: str, app_id: str) -> AppLog | None:
        """The application's ``AppLog`` (kept, refreshed with what ``read`` gives since the
        last call); ``None`` if the store has no such application."""
        ...

    def changes(self) -> int: ...

    def wait(self, since: int, timeout: float) -> int: ...


class ChangeCounter:
    """A counter of changes per key (and in all), and a wait for the next one; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Condition()
        self._total = 0
        self._by_key: dict[Any, int] = {}

    def bump(self, key: Any = None) -> None:
        with self._lock:
            self._total += 1
            if key is not None:
                self._by_key[key] = self._total
            self._lock.notify_all()

    def total(self) -> int:
        with self._lock:
            return self._total

    def of(self, key: Any) -> int:
        """The counter's value at ``key``'s last change (0: none seen)."""
        with self._lock:
            return self._by_key.get(key, 0)

    def wait(self, since: int, timeout: float) -> int:
        deadline = time.monotonic() + max(timeout, 0.0)
        with self._lock:
            while self._total <= since:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._lock.wait(left)
            return self._total


class SummaryIndex:
    """The summaries of one project directory's applications; see the module docstring.

    Args:
        directory: the project directory (one sub-directory per application, each with
            ``log_name``).
        summarize: the summary of one log (the reader's own replay), or why it is not read;
            it may raise, and the application is then listed as unreadable with the error.
        log_name: the log file's name in each application directory.
    """

    def __init__(
        self,
        directory: Path,
        summarize: Callable[[Path], AppSummary | str],
        *,
        log_name: str = "log.jsonl",
    ) -> None:
        self.directory = directory
        self._summarize = summarize
        self._log_name = log_name
        self._lock = threading.Lock()
        # dir name -> (size, mtime_ns, summary or the reason it is unreadable)
        self._entries: dict[str, tuple[int, int, AppSummary | str]] = {}
        self._loaded = False
        self._dirty = False

    @property
    def path(self) -> Path:
        return self.directory / INDEX_NAME

    def refresh(
        self,
        *,
        budget: float | None = 0.5,
        first: Callable[[list[tuple[str, int]]], Iterable[str]] | None = None,
    ) -> tuple[dict[str, AppSummary], dict[str, str], int]:
        """Summarise what changed; ``(summaries, unreadable, pending)``, by directory name.

        Every application directory is listed and its log's size and time read (no log is
        opened); a log whose summary is stored for that size and time is not read again. The
        others are summarised, those ``first`` names first and whatever the budget (it gets
        ``(dir name, mtime_ns)`` of every stale log), then others until ``budget`` seconds
        passed (``None``: all); the rest are
        ``pending`` for the next call. The index file is rewritten when something changed and
        nothing is left pending (``catch_up`` saves what a call left; a directory that cannot
        be written to keeps the index in memory only).
        """
        with self._lock:
            if not self._loaded:
                self._load()
            seen = stat_logs(self.directory, self._log_name)
            for gone in self._entries.keys() - seen.keys():
                del self._entries[gone]
                self._dirty = True
            stale = [
                (name, stat)
                for name, stat in seen.items()
                if (entry := self._entries.get(name)) is None or entry[:2] != stat
            ]
            order = [name for name, _ in stale]
            if first is not None:
                wanted = list(first([(name, stat[1]) for name, stat in stale]))
                order = list(dict.fromkeys([*wanted, *order]))
                must = len(wanted)
            else:
                must = 1
            stats = dict(stale)
            started = time.monotonic()
            pending = 0
            for number, name in enumerate(order):
                # The names asked for first are read whatever the budget: they are the page.
                if budget is not None and time.monotonic() - started > budget and number >= must:
                    pending = len(order) - number
                    break
                self._read(name, stats[name])
            if pending:
                for name in order[len(order) - pending :]:
                    self._entries.pop(name, None)
            # With logs left pending, the caller's background ``catch_up`` saves: rewriting
            # the whole index on every request of a big project would be most of its time.
            if self._dirty and not pending:
                self._save()
            summaries = {n: e[2] for n, e in self._entries.items() if not isinstance(e[2], str)}
            unreadable = {n: e[2] for n, e in self._entries.items() if isinstance(e[2], str)}
            return summaries, unreadable, pending

    def _read(self, name: str, stat: tuple[int, int]) -> None:
        log = self.directory / name / self._log_name
        try:
            outcome: AppSummary | str = self._summarize(log)
        # One log whatever it holds is listed as unreadable with the reason.
        except Exception as error:
            outcome = f"{type(error).__name__}: {error}"
        self._entries[name] = (stat[0], stat[1], outcome)
        self._dirty = True

    def catch_up(self, *, slice_seconds: float = 0.02, save_every: float = 2.0) -> int:
        """Summarise every stale log, ``slice_seconds`` at a time with the lock released (and
        as long a pause) in between: a background thread's work, so a request waiting for the
        index waits one slice at most and runs at about half speed meanwhile. Saves the index
        every ``save_every`` seconds and at the end; the number of logs read."""
        with self._lock:
            if not self._loaded:
                self._load()
            seen = stat_logs(self.directory, self._log_name)
        todo = sorted(seen.items(), key=lambda item: item[1][1])  # newest last: read first
        done, saved = 0, time.monotonic()
        while todo:
            with self._lock:
                started = time.monotonic()
                while todo:  # at least one a slice
                    name, stat = todo.pop()
                    entry = self._entries.get(name)
                    if entry is None or entry[:2] != stat:
                        self._read(name, stat)
                        done += 1
                    if time.monotonic() - started >= slice_seconds:
                        break
                if self._dirty and (not todo or time.monotonic() - saved > save_every):
                    self._save()
                    saved = time.monotonic()
            time.sleep(slice_seconds)  # requests take the lock (and the GIL) meanwhile
        return done

    def _load(self) -> None:
        self._loaded = True
        try:
            data = json.loads(self.path.read_bytes())
        except (OSError, ValueError, RecursionError):
            return  # no index yet, or a damaged one: everything is summarised again
        if not isinstance(data, dict) or data.get("version") != _INDEX_VERSION:
            return
        apps = data.get("apps")
        if not isinstance(apps, dict):
            return
        for name, entry in apps.items():
            try:
                size, mtime, summary = entry
                if type(size) is not int or type(mtime) is not int:
                    continue
                self._entries[str(name)] = (size, mtime, AppSummary.from_json(summary))
            except (TypeError, ValueError):  # a damaged entry: that log is read again
                continue

    def _save(self) -> None:
        apps = {
            name: [size, mtime, outcome.to_json()]
            for name, (size, mtime, outcome) in self._entries.items()
            if not isinstance(outcome, str)  # an unreadable log is tried again next time
        }
        body = json.dumps({"version": _INDEX_VERSION, "apps": apps}, separators=(",", ":"))
        temporary = self.path.with_name(f"{INDEX_NAME}.{os.getpid()}.tmp")
        try:
            temporary.write_text(body, encoding="utf-8")
            os.replace(temporary, self.path)
            self._dirty = False
        except OSError:  # a read-only tracking directory: the index lives in memory only
            temporary.unlink(missing_ok=True)


def stat_logs(directory: Path, log_name: str = "log.jsonl") -> dict[str, tuple[int, int]]:
    """``{dir name: (size, mtime_ns)}`` of the application logs under ``directory`` (one
    directory listing and one ``stat`` per log; no log is opened)."""
    found: dict[str, tuple[int, int]] = {}
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return found
    tail = os.sep + log_name  # joined by hand: os.path.join costs as much as the stat
    for entry in entries:
        if entry.name.startswith(".") or not entry.is_dir():
            continue
        try:
            stat = os.stat(entry.path + tail)
        except OSError:
            continue
        found[entry.name] = (stat.st_size, stat.st_mtime_ns)
    return found
