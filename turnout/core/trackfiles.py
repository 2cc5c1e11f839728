"""A local tracker's directory as a tracking source: ``TrackingIndex`` (stdlib only).

``TrackingIndex(root)`` answers a tracking UI's questions about a storage directory written by
``turnout.core.tracking.LocalTracker``: the projects (app counts, last activity), the apps of a
project (``AppListing``: one ``AppSummary`` each, or why it could not be read) and one app's log
(``turnout.core.trackview.AppLog``), each kept open and refreshed incrementally. Ids are checked
before any path is built (``check_name``, ``check_app_id``: a refused one raises
``InvalidParameterError``), and no path leads out of the root.

It is the file store's ``turnout.core.tracksource.TrackingSource``: ``app_page`` lists a
project from its ``SummaryIndex`` (only the logs changed since the last visit are read) and
``read`` gives an application's records after a byte offset. The tracking UI reads through it.
"""

from __future__ import annotations

import dataclasses
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from turnout.core import tracklog as tl
from turnout.core.errors import TurnoutError
from turnout.core.trackannotations import FileAnnotations
from turnout.core.tracksource import (
    ALL_FIRST_PAGE,
    AppPage,
    AppQuery,
    AppSummary,
    ChangeCounter,
    ProjectSummary,
    SummaryIndex,
    select,
    stat_logs,
)
from turnout.core.trackview import LOG_NAME, AppLog

__all__ = [
    "MAX_APP_ID",
    "NAME_RULE",
    "AppListing",
    "InvalidParameterError",
    "TrackingIndex",
    "check_app_id",
    "check_name",
    "is_name",
    "shown",
]

MAX_APP_ID = 1_000  # any app id is tracked (its directory name is derived), up to this length
NAME_RULE = (
    "names use letters, digits and '_.:@+=-', start with a letter or digit, have no '..' and "
    "at most 200 characters"
)


class InvalidParameterError(TurnoutError, ValueError):
    """A project or application id, or a URL query parameter of the tracking UI, was refused."""


def shown(value: str, limit: int = 60) -> str:
    """``value`` as an error message shows it: quoted, cut to ``limit`` characters."""
    if len(value) <= limit:
        return repr(value)
    return f"{value[:limit]!r}… ({len(value):,} characters)"


def is_name(value: str, what: str) -> bool:
    """Whether ``value`` follows the tracker's naming rule for a ``what`` directory (the rule
    is the same for every ``what``: ``turnout.core.tracklog.is_safe_name``)."""
    return tl.is_safe_name(value)


def check_name(value: str, what: str) -> str:
    """``value`` if it may name a ``what`` (project or application) directory under the
    tracking root: the tracker's own rule (``turnout.core.tracking.check_id``)."""
    if not is_name(value, what):
        raise InvalidParameterError(
            f"{what} {shown(value)} is not a tracked {what} name: {NAME_RULE} (open it from the "
            f"list of {what}s instead)."
        )
    return value


def check_app_id(value: str) -> str:
    """``value`` if it may be an application id: any text of at most ``MAX_APP_ID`` characters
    without NUL (the tracker derives a safe directory name from any id)."""
    if len(value) > MAX_APP_ID or "\x00" in value or not value:
        raise InvalidParameterError(
            f"application {shown(value)} is not an application id: ids are 1 to "
            f"{MAX_APP_ID:,} characters without NUL (open it from the list of applications "
            "instead)."
        )
    return value


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

    pushes = False  # files cannot say when they change: wait() times out, readers poll

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self._logs: dict[Path, AppLog] = {}
        self._indexes: dict[str, SummaryIndex] = {}
        self._changes = ChangeCounter()
        self._catching: set[str] = set()  # projects a background thread summarises
        self._catching_lock = threading.Lock()
        # Reviewers' annotations: a sidecar file per project, beside (never in) the logs.
        self.annotations = FileAnnotations(self.root)

    @property
    def location(self) -> str:
        return f"tracking directory {self.root}"

    def projects(self) -> list[ProjectSummary]:
        """Every project directory holding at least one app log, most recently active first
        (from the logs' sizes and times: no log is opened)."""
        out = []
        for project in _subdirs(self.root):
            if not self._inside(project):
                continue
            logs = stat_logs(project, LOG_NAME)
            if logs:
                latest = max(mtime for _size, mtime in logs.values()) / 1e9
                out.append(
                    ProjectSummary(name=project.name, app_count=len(logs), last_activity=latest)
                )
        return sorted(out, key=lambda p: -(p.last_activity or 0))

    def apps(self, project: str) -> list[AppSummary]:
        """The readable apps of ``project``, most recently active first (see ``listing``)."""
        return self.listing(project).apps

    def listing(self, project: str) -> AppListing:
        """The apps of ``project`` (logs refreshed incrementally); one app whose log cannot be
        read is reported in ``unreadable`` with the reason, and the others are still listed."""
        page = self.app_page(project, AppQuery(limit=None), budget=None)
        return AppListing(apps=list(page.apps), unreadable=page.unreadable)

    def app_page(
        self, project: str, query: AppQuery = ALL_FIRST_PAGE, *, budget: float | None = 0.25
    ) -> AppPage:
        """One page of ``project``'s apps from its summary index: only logs changed since they
        were summarised are read, the page's own first, then others for up to ``budget``
        seconds (``AppPage.pending`` counts the rest; ``None``: no limit). When some are left
        pending, a background thread summarises them (``SummaryIndex.catch_up``), so a
        reload finds them without the request reading them; while it runs, a request reads
        its page's own only."""
        directory = self._directory(project)
        index = self._indexes.get(project)
        if index is None:
            index = self._indexes[project] = SummaryIndex(
                directory, lambda path: self._summary(path, project), log_name=LOG_NAME
            )
        wanted = None if query.limit is None else query.offset + query.limit
        unfiltered = query == AppQuery(offset=query.offset, limit=query.limit)

        def first(stale: list[tuple[str, int]]) -> list[str]:
            if not unfiltered or wanted is None:
                return []
            # The page's apps are the most recently written logs: summarise those first.
            return [name for name, _ in sorted(stale, key=lambda s: -s[1])[:wanted]]

        if budget is not None and project in self._catching:
            budget = 0.0  # a background thread is on the rest: the request reads its page only
        summaries, unreadable, pending = index.refresh(budget=budget, first=first)
        if pending:
            self._catch_up(project, index)
        page = select(summaries.values(), query, unreadable=unreadable, pending=pending)
        if unfiltered and pending:
            # Every listed directory matches: the count is known before every log is read (the
            # page's own apps, the most recently written, were read first).
            page = dataclasses.replace(page, matched=page.matched + pending)
        return page

    def _catch_up(self, project: str, index: SummaryIndex) -> None:
        with self._catching_lock:
            if project in self._catching:
                return
            self._catching.add(project)

        def run() -> None:
            try:
                index.catch_up()
            finally:
                with self._catching_lock:
                    self._catching.discard(project)

        threading.Thread(target=run, name=f"turnout-index-{project}", daemon=True).start()

    def _summary(self, path: Path, project: str) -> AppSummary | str:
        # The project directory was resolved inside the root: only a link can lead out.
        linked = path.is_symlink() or path.parent.is_symlink()
        if linked and not self._inside(path):
            return "its directory leads outside the tracking root"
        log = self._logs.get(path)
        if log is None:  # not kept: a listing of 10,000 apps holds no 10,000 parsed logs
            log = AppLog.tail_first(path)
        log.refresh()
        return log.summary(project)

    def read(self, project: str, app_id: str, after: int | None = None) -> tl.LogChunk | None:
        """The records of an app's log after byte offset ``after`` (``None``: from the start);
        ``None`` if it has no log (ids checked as for ``app``)."""
        path = self._directory(project, app_id) / LOG_NAME
        if not path.is_file() or not self._inside(path):
            return None
        return tl.read_records(path, after or 0)

    def changes(self) -> int:
        return self._changes.total()

    def wait(self, since: int, timeout: float) -> int:
        """Files do not say when they change: returns after ``timeout`` seconds."""
        return self._changes.wait(since, timeout)

    def app(self, project: str, app_id: str) -> AppLog | None:
        """The refreshed log of one app; ``None`` if it has none. A project id that is not a
        tracked name, an app id no tracker could have written, or a directory leading out of the
        root raises ``InvalidParameterError``."""
        path = self._directory(project, app_id) / LOG_NAME
        if not path.is_file() or not self._inside(path):
            return None
        return self._log(path)

    def _directory(self, project: str, app_id: str | None = None) -> Path:
        path = self.root / check_name(project, "project")
        if app_id is not None:
            # Any app id is tracked: its directory name is derived (tl.app_dir_name) and safe.
            path = path / tl.app_dir_name(check_app_id(app_id))
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
            log = self._logs[path] = AppLog.tail_first(path)
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
