"""The projects and applications under a tracking directory, for the UI (no Streamlit here).

``TrackingIndex(root)`` answers the UI's questions about a storage directory written by
``turnout.core.tracking.LocalTracker``: the projects (app counts, last activity), the apps of a
project (``AppListing``: one ``AppSummary`` each, or why it could not be read) and one app's log
(``data.AppLog``), each kept open and refreshed incrementally. Ids are checked before any path is
built, and no path leads out of the root.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from turnout.core import tracklog as tl
from turnout.integrations.streamlit.data import LOG_NAME, AppLog, AppSummary, ProjectSummary
from turnout.integrations.streamlit.params import InvalidParameterError, check_app_id, check_name

__all__ = ["AppListing", "TrackingIndex"]


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
