"""Retention and copying of tracking data: what ``turnout prune`` and ``turnout tracking copy`` do.

Both work on whole applications of one project, through ``TrackingStore``: ``FileStore`` here
(a tracking directory, stdlib only) and ``PostgresTrackingStore`` in
``turnout.integrations.postgres_tracking`` (the tables of a ``PostgresTracker``).

**Prune** removes whole applications, never lines inside one: a loader trusts a history only
when its sequence ids are contiguous (``trackhistory``), so cutting the old steps of a live app
would make it unloadable. An app's *last activity* is when its history was last written to: the
modification time of its ``log.jsonl`` for files, ``updated_at`` of its ``<prefix>_apps`` row
(the time of its newest record) for PostgreSQL. ``older_than`` selects the apps whose last
activity is more than that many seconds ago; ``keep_last`` selects every app but the ``N`` most
recently active of the project. Nothing is removed unless ``apply=True`` (``--apply``): the
default is a dry run that reports what would go. Prune an app only when nothing writes to it any
more: a tracker still appending to a removed log writes into a file no one reads.

**Copy** moves a project between stores, every app's lines *verbatim* (the checksummed JSON a
``LocalTracker`` appends is what a PostgreSQL row holds in ``payload``), so a copied app loads
(``initialize_from``) the same states as its source. It is idempotent and resumable: an app the
target already holds whole is skipped, an app the target holds a prefix of (an interrupted copy,
or a source that ran on since) is completed with the lines it lacks, and an app whose lines at
the target differ from the source's is refused and reported, never overwritten. The snapshot
marks (files) and vouches (PostgreSQL) that make loads fast are written by the target as its own
writer would write them: the copy appends every line of the app itself, in order.
Lines a reader would skip (malformed, or failing their checksum) are not copied and are counted.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from turnout.core.errors import TrackingAdminError
from turnout.core.trackindex import INDEX_FILENAME, MarkWriter
from turnout.core.tracking import check_project, tracking_home
from turnout.core.tracklog import (
    AppRecord,
    FormatRecord,
    Record,
    app_dir_name,
    dump_line,
    first_app,
    parse_line,
)

__all__ = [
    "AppActivity",
    "CopyReport",
    "FileStore",
    "Progress",
    "PruneReport",
    "StoredApp",
    "TrackingStore",
    "copy_project",
    "parse_duration",
    "prune",
    "select_for_prune",
]

Progress = Callable[[int, int, str], None]
"""Called after each app as ``progress(done, total, app_id)``."""

_LOG = "log.jsonl"
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


@dataclass(frozen=True, kw_only=True, slots=True)
class AppActivity:
    """One tracked application as retention sees it.

    Attributes:
        app_id: its id.
        partition_key: its partition key.
        last_activity: when its history was last written to (seconds since the epoch).
        size: the bytes its history takes (files: log and index; PostgreSQL: the payloads).
        rows: its rows (PostgreSQL), ``None`` for files.
    """

    app_id: str
    partition_key: str | None
    last_activity: float
    size: int
    rows: int | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class StoredApp:
    """The history of one app as a store holds it: its lines (without newline, the ``format``
    line left out) and their parsed records, aligned, in order, and its last activity (which a
    copy carries over, so prune treats the copy as it treated the original)."""

    app_id: str
    partition_key: str | None
    version: int
    lines: tuple[str, ...]
    records: tuple[Record, ...]
    bad_lines: int = 0
    last_activity: float | None = None


class TrackingStore(Protocol):
    """One project of a tracking store, for prune and copy."""

    project: str

    def describe(self) -> str:
        """How messages name the store and project."""
        ...

    def activity(self) -> list[AppActivity]:
        """Every app of the project, most recently active first."""
        ...

    def read(self, app_id: str) -> StoredApp | None:
        """The app's history; ``None`` if the store has no such app."""
        ...

    def write(self, app: StoredApp, *, have: int) -> None:
        """Append ``app.lines[have:]`` after the ``have`` lines the store already holds."""
        ...

    def delete(self, app_id: str) -> None:
        """Remove the app's whole history."""
        ...


def parse_duration(text: str) -> float:
    """Seconds in ``text``: a number and a unit, ``s`` ``m`` ``h`` ``d`` or ``w`` (``30d``)."""
    found = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*", text)
    if found is None:
        raise TrackingAdminError(
            f"{text!r} is not a duration: write a number and a unit (s, m, h, d, w), e.g. "
            f"--older-than 30d"
        )
    return float(found.group(1)) * _UNITS[found.group(2)]


def select_for_prune(
    apps: Sequence[AppActivity],
    *,
    older_than: float | None = None,
    keep_last: int | None = None,
    now: float | None = None,
) -> list[AppActivity]:
    """The apps prune removes: active more than ``older_than`` seconds before ``now``, or all
    but the ``keep_last`` most recently active (ties broken by app id). Exactly one is given."""
    if (older_than is None) == (keep_last is None):
        raise TrackingAdminError(
            "prune needs exactly one rule: older_than=<seconds> (--older-than 30d) or "
            "keep_last=<N> (--keep-last 100)"
        )
    ordered = sorted(apps, key=lambda a: (-a.last_activity, a.app_id))
    if keep_last is not None:
        if keep_last < 0:
            raise TrackingAdminError(f"keep_last={keep_last}: keep 0 or more apps")
        return ordered[keep_last:]
    assert older_than is not None
    if older_than < 0:
        raise TrackingAdminError(f"older_than={older_than}: give a duration of 0 or more")
    cutoff = (time.time() if now is None else now) - older_than
    return [a for a in ordered if a.last_activity < cutoff]


@dataclass(frozen=True, kw_only=True, slots=True)
class PruneReport:
    """What a prune selected and whether it removed it."""

    store: str
    applied: bool
    examined: int
    selected: tuple[AppActivity, ...]

    @property
    def size(self) -> int:
        return sum(a.size for a in self.selected)

    @property
    def rows(self) -> int | None:
        counts = [a.rows for a in self.selected]
        return None if None in counts else sum(c for c in counts if c is not None)

    def summary(self) -> str:
        verb = "removed" if self.applied else "would remove"
        rows = "" if self.rows is None else f", {self.rows} rows"
        tail = "" if self.applied or not self.selected else " (dry run: --apply removes them)"
        return (
            f"{self.store}: {verb} {len(self.selected)} of {self.examined} app(s), "
            f"{_bytes(self.size)}{rows}{tail}"
        )


def prune(
    store: TrackingStore,
    *,
    older_than: float | None = None,
    keep_last: int | None = None,
    apply: bool = False,
    now: float | None = None,
    progress: Progress | None = None,
) -> PruneReport:
    """Select the apps of ``store`` to remove (``select_for_prune``) and, with ``apply``,
    remove them, one whole app at a time; see the module docstring."""
    apps = store.activity()
    selected = select_for_prune(apps, older_than=older_than, keep_last=keep_last, now=now)
    if apply:
        for done, app in enumerate(selected, 1):
            store.delete(app.app_id)
            if progress is not None:
                progress(done, len(selected), app.app_id)
    return PruneReport(
        store=store.describe(), applied=apply, examined=len(apps), selected=tuple(selected)
    )


@dataclass(frozen=True, kw_only=True, slots=True)
class CopyReport:
    """What a copy did, app by app."""

    source: str
    target: str
    copied: tuple[str, ...] = ()
    completed: tuple[str, ...] = ()
    skipped: tuple[str, ...] = ()
    refused: tuple[tuple[str, str], ...] = ()
    lines: int = 0
    bad_lines: int = 0

    def summary(self) -> str:
        text = (
            f"{self.source} -> {self.target}: copied {len(self.copied)} app(s), completed "
            f"{len(self.completed)}, skipped {len(self.skipped)} already there, refused "
            f"{len(self.refused)}; {self.lines} line(s) written"
        )
        if self.bad_lines:
            text += f", {self.bad_lines} unreadable line(s) of the source left out"
        return text


def copy_project(
    source: TrackingStore,
    target: TrackingStore,
    *,
    app_ids: Sequence[str] | None = None,
    progress: Progress | None = None,
) -> CopyReport:
    """Copy every app of ``source`` (or the ``app_ids``) to ``target``; see the module
    docstring for what is skipped, completed and refused."""
    ids = list(app_ids) if app_ids is not None else [a.app_id for a in source.activity()]
    copied: list[str] = []
    completed: list[str] = []
    skipped: list[str] = []
    refused: list[tuple[str, str]] = []
    lines = bad = 0
    for done, app_id in enumerate(ids, 1):
        app = source.read(app_id)
        if app is None:
            refused.append((app_id, f"{source.describe()} has no app {app_id!r}"))
        else:
            bad += app.bad_lines
            there = target.read(app_id)
            have = 0 if there is None else len(there.lines)
            if there is not None and there.lines != app.lines[:have]:
                refused.append(
                    (app_id, f"{target.describe()} holds other lines for app {app_id!r}")
                )
            elif have == len(app.lines):
                skipped.append(app_id)
            else:
                try:
                    target.write(app, have=have)
                except TrackingAdminError as exc:
                    refused.append((app_id, str(exc)))
                else:
                    (completed if have else copied).append(app_id)
                    lines += len(app.lines) - have
        if progress is not None:
            progress(done, len(ids), app_id)
    return CopyReport(
        source=source.describe(), target=target.describe(), copied=tuple(copied),
        completed=tuple(completed), skipped=tuple(skipped), refused=tuple(refused),
        lines=lines, bad_lines=bad,
    )  # fmt: skip


def _bytes(size: int) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000  # type: ignore[assignment]
    raise AssertionError("unreachable")


class FileStore:
    """One project of a tracking directory (``LocalTracker``'s layout) as a ``TrackingStore``.

    Args:
        project: the project's name.
        storage_dir: the tracking directory (default ``$TURNOUT_HOME`` or ``~/.turnout``).
    """

    def __init__(self, project: str, storage_dir: str | Path | None = None) -> None:
        self.project = check_project(project)
        self.storage_dir = tracking_home(storage_dir)
        self.project_dir = self.storage_dir / project
        self._found: dict[str, tuple[Path, AppRecord]] | None = None  # the last scan

    @staticmethod
    def projects(storage_dir: str | Path | None = None) -> list[str]:
        """The projects of a tracking directory that hold at least one app log."""
        root = tracking_home(storage_dir)
        if not root.is_dir():
            return []
        return sorted(p.name for p in root.iterdir() if p.is_dir() and any(p.glob(f"*/{_LOG}")))

    def describe(self) -> str:
        return f"tracking directory {self.storage_dir} (project {self.project!r})"

    def _logs(self, *, cached: bool = False) -> dict[str, tuple[Path, AppRecord]]:
        if cached and self._found is not None:
            return self._found
        found: dict[str, tuple[Path, AppRecord]] = {}
        if self.project_dir.is_dir():
            for log in sorted(self.project_dir.glob(f"*/{_LOG}")):
                app = first_app(log)
                if app is not None:  # not a turnout log (Burr's layout, or no app line yet)
                    found.setdefault(app.app_id, (log, app))
        self._found = found
        return found

    def activity(self) -> list[AppActivity]:
        apps = []
        for app_id, (log, app) in self._logs().items():
            stat = log.stat()
            index = log.parent / INDEX_FILENAME
            size = stat.st_size + (index.stat().st_size if index.is_file() else 0)
            apps.append(
                AppActivity(
                    app_id=app_id,
                    partition_key=app.partition_key,
                    last_activity=stat.st_mtime,
                    size=size,
                )
            )
        return sorted(apps, key=lambda a: (-a.last_activity, a.app_id))

    def _path(self, app_id: str) -> Path:
        return self.project_dir / app_dir_name(app_id) / _LOG

    def read(self, app_id: str) -> StoredApp | None:
        path = self._path(app_id)
        if not path.is_file():  # a log in a directory of another name (moved by hand)
            found = self._logs(cached=True).get(app_id)
            if found is None:
                return None
            path = found[0]
        with open(path, "rb") as handle:
            data = handle.read()
            mtime = os.fstat(handle.fileno()).st_mtime
        version: int | None = None
        lines: list[str] = []
        records: list[Record] = []
        bad = 0
        partition_key = None
        for raw in data[: data.rfind(b"\n") + 1].split(b"\n")[:-1]:
            parsed = parse_line(raw, checked=version is not None and version >= 2)
            if parsed is None:
                bad += 1 if raw.strip() else 0
                continue
            record = parsed[1]
            if isinstance(record, FormatRecord):
                version = record.version if version is None else version
                continue
            if isinstance(record, AppRecord) and not records:
                partition_key = record.partition_key
            lines.append(raw.decode("utf-8", "surrogatepass"))
            records.append(record)
        return StoredApp(
            app_id=app_id, partition_key=partition_key, version=version or 1,
            lines=tuple(lines), records=tuple(records), bad_lines=bad, last_activity=mtime,
        )  # fmt: skip

    def write(self, app: StoredApp, *, have: int) -> None:
        path = self._path(app.app_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        new = [line.encode("utf-8", "surrogatepass") + b"\n" for line in app.lines[have:]]
        if have == 0:
            head = dump_line(FormatRecord(version=app.version).to_json())
            path.write_bytes(head + b"".join(new))
        else:
            with open(path, "r+b") as handle:
                data = handle.read()
                handle.seek(data.rfind(b"\n") + 1)  # drop a torn tail an interrupted copy left
                handle.truncate()
                handle.write(b"".join(new))
        first = next((r for r in app.records if isinstance(r, AppRecord)), None)
        if self._found is not None and first is not None:
            self._found[app.app_id] = (path, first)
        self._index(app.app_id, path)
        if app.last_activity is not None:  # it travels with the app (prune reads the mtime)
            os.utime(path, (app.last_activity, app.last_activity))

    def _index(self, app_id: str, path: Path) -> None:
        """Write the log's snapshot marks anew, as its one writer (``MarkWriter``) would."""
        (path.parent / INDEX_FILENAME).unlink(missing_ok=True)
        marks = MarkWriter()
        data = path.read_bytes()
        end = 0
        version: int | None = None
        for raw in data.split(b"\n")[:-1]:
            end += len(raw) + 1
            parsed = parse_line(raw, checked=version is not None and version >= 2)
            if parsed is None:
                continue
            if isinstance(parsed[1], FormatRecord):
                version = parsed[1].version if version is None else version
                continue
            marks.wrote(app_id, parsed[1], raw + b"\n", end, lambda _id: path)

    def delete(self, app_id: str) -> None:
        folder = self._path(app_id).parent
        if not (folder / _LOG).is_file():
            found = self._logs(cached=True).get(app_id)
            if found is None:
                return
            folder = found[0].parent
        for name in (_LOG, INDEX_FILENAME):
            (folder / name).unlink(missing_ok=True)
        with contextlib.suppress(OSError):  # other files in it are not ours to remove
            folder.rmdir()
