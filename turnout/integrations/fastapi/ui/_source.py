"""The one door from the web UI to the tracking stores.

Everything the web UI reads goes through a ``turnout.core.tracksource.TrackingSource``: a
local tracker's directory (``turnout.core.trackfiles.TrackingIndex``) or a PostgreSQL store
(``turnout.integrations.postgres_tracking.PostgresSource``, opened for a ``postgresql://``
connection string). ``Reader`` wraps the source with what the pages add around it (how a fork
snippet names the store, one lock for the file store's plain dicts); no other module of
``turnout.integrations.fastapi.ui`` imports the tracking data layer.

The records the pages use (``AppSummary``, ``Step``, ``ChildLink``, ...) are re-exported from
here under the same names, so the rest of the UI imports them from this module only.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path

from turnout.core.trackfiles import InvalidParameterError, TrackingIndex
from turnout.core.tracksource import (
    STATUSES,
    AppPage,
    AppQuery,
    AppSummary,
    ChildLink,
    ProjectSummary,
    TrackingSource,
)
from turnout.core.trackview import AppLog, Span, Step, step_token_totals
from turnout.tracking import demo as _demo

__all__ = [
    "DEFAULT_PREFIX",
    "STATUSES",
    "AppLog",
    "AppPage",
    "AppQuery",
    "AppSummary",
    "ChildLink",
    "InvalidParameterError",
    "ProjectSummary",
    "Reader",
    "Span",
    "Step",
    "TrackingSource",
    "generate_demo",
    "is_empty",
    "open_source",
    "step_token_totals",
]

DEFAULT_PREFIX = "turnout_tracking"
_SCHEMES = ("postgresql://", "postgres://")


def open_source(store: str | Path, *, table_prefix: str = DEFAULT_PREFIX) -> TrackingSource:
    """The tracking source ``store`` names: a ``postgresql://`` connection string (the tables
    ``PostgresTracker(table_prefix=...)`` writes) or a tracking directory."""
    if isinstance(store, str) and store.startswith(_SCHEMES):
        from turnout.integrations.postgres_tracking import PostgresSource

        return PostgresSource(store, table_prefix=table_prefix)
    return TrackingIndex(store)


class Reader:
    """A tracking source as the web UI's requests use it; one instance serves every request.

    The file store keeps plain dicts of the logs it has open, so calls on it are serialised; a
    PostgreSQL source guards its own connection and logs, and is called concurrently.

    Args:
        source: the store to read.
    """

    def __init__(self, source: TrackingSource) -> None:
        self.source = source
        self._lock: threading.RLock | None = None if source.pushes else threading.RLock()

    @contextlib.contextmanager
    def _serial(self) -> Iterator[None]:
        if self._lock is None:
            yield
            return
        with self._lock:
            yield

    @property
    def description(self) -> str:
        """Where the data comes from, as the pages say it."""
        return self.source.location

    @property
    def pushes(self) -> bool:
        """The store announces its changes (live mode waits for them instead of polling)."""
        return self.source.pushes

    @property
    def table_prefix(self) -> str | None:
        """The PostgreSQL tables' prefix (``None``: not a PostgreSQL store)."""
        prefix = getattr(self.source, "table_prefix", None)
        return prefix if isinstance(prefix, str) else None

    @property
    def storage_dir(self) -> str | None:
        """The tracking directory the fork and test-case snippets name (``None``: not files)."""
        root = getattr(self.source, "root", None)
        return str(root) if isinstance(root, Path) else None

    def projects(self) -> list[ProjectSummary]:
        """Every project holding at least one application, most recently active first."""
        with self._serial():
            return self.source.projects()

    def app_page(self, project: str, query: AppQuery) -> AppPage:
        """One page of ``project``'s applications, from the store's summary (raises
        ``InvalidParameterError`` for a name no tracker could have written)."""
        with self._serial():
            return self.source.app_page(project, query)

    def app(self, project: str, app_id: str) -> AppLog | None:
        """One application's log, refreshed (tail first when long); ``None`` when there is
        none. Raises ``InvalidParameterError`` for ids no tracker could have written."""
        with self._serial():
            return self.source.app(project, app_id)

    def refresh(self, log: AppLog) -> int:
        """Read what was appended to ``log`` since; the number of new records."""
        with self._serial():
            return log.refresh()

    def load_all(self, log: AppLog) -> int:
        """Read every record of a log opened on its tail (slow on a long log)."""
        with self._serial():
            return log.load_all()

    def changes(self) -> int:
        return self.source.changes()

    def wait(self, since: int, timeout: float) -> int:
        """Until the store changed after ``since`` (a store that does not push: ``timeout``)."""
        return self.source.wait(since, timeout)

    def close(self) -> None:
        """Close the store's connections (a PostgreSQL source's listener among them)."""
        close = getattr(self.source, "close", None)
        if callable(close):
            close()


def is_empty(root: str | Path) -> bool:
    """Whether ``root`` holds no tracked application yet."""
    return _demo.is_empty(root)


def generate_demo(root: str | Path) -> list[str]:
    """Run the demo applications into ``root``'s ``demo`` project, then start the gallery
    examples whose extras are installed in a background process (they take seconds to
    import); the app ids run here."""
    ran = _demo.generate(root)
    print("turnout: adding the gallery examples to the demo project in the background…")
    _demo.start_gallery(root)
    return ran
