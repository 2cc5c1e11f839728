"""The one door from the web UI to the tracking stores.

Everything the web UI reads (projects, an application's summary, its steps, the states around
a step) and the demo data of a first start go through ``TrackingSource``; no other module of
``turnout.integrations.fastapi.ui`` imports the tracking data layer. Today that layer is the
Streamlit UI's (``turnout.integrations.streamlit.data``, ``.index`` and ``.demo``, which import
Streamlit only through their package's guard); when it becomes store-agnostic (files and
PostgreSQL), this file is the one to switch.

The records the pages use (``AppSummary``, ``Step``, ``Span``, ``ChildLink``,
``ProjectSummary``) are re-exported from here under the same names, so the rest of the UI
imports them from this module only.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from turnout.core.errors import MissingExtraError
from turnout.integrations._guard import missing_extra

try:
    # The reader's package opens with Streamlit's import guard: until it moves, the web UI
    # needs Streamlit installed too (the "ui" extra brings it).
    from turnout.integrations.streamlit import demo as _demo
    from turnout.integrations.streamlit.data import (
        AppLog,
        AppSummary,
        ChildLink,
        ProjectSummary,
        Span,
        Step,
        step_token_totals,
    )
    from turnout.integrations.streamlit.index import TrackingIndex
    from turnout.integrations.streamlit.params import InvalidParameterError
except MissingExtraError as _error:
    _missing = ImportError("streamlit is not installed", name="streamlit")
    raise missing_extra(
        "turnout.integrations.fastapi.ui", 'pip install "turnout[ui]"', _missing
    ) from _error

__all__ = [
    "AppLog",
    "AppSummary",
    "ChildLink",
    "InvalidParameterError",
    "Listing",
    "ProjectSummary",
    "Span",
    "Step",
    "TrackingSource",
    "generate_demo",
    "is_empty",
    "step_token_totals",
]


@dataclass(frozen=True, kw_only=True, slots=True)
class Listing:
    """A project's readable applications (most recently active first) and, by app id, why each
    other one could not be read."""

    apps: list[AppSummary]
    unreadable: dict[str, str]


class TrackingSource:
    """The tracking data of one storage directory, as the web UI asks for it.

    One instance serves every request; the logs read so far stay open and are refreshed
    incrementally (only the lines appended since the last read are parsed). Calls are
    serialised per source: the underlying index keeps a plain dict of open logs.

    Args:
        root: the tracking directory (``LocalTracker``'s ``storage_dir``).
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self._index = TrackingIndex(self.root)
        self._lock = threading.RLock()

    @property
    def storage_dir(self) -> str:
        """What the fork and test-case snippets pass as the tracker's ``storage_dir``."""
        return str(self.root)

    @property
    def description(self) -> str:
        """Where the data comes from, as the pages say it."""
        return f"tracking directory {self.root}"

    def projects(self) -> list[ProjectSummary]:
        """Every project holding at least one application, most recently active first."""
        with self._lock:
            return self._index.projects()

    def listing(self, project: str) -> Listing:
        """The applications of ``project``; raises ``InvalidParameterError`` for a name no
        tracker could have written."""
        with self._lock:
            found = self._index.listing(project)
        return Listing(apps=found.apps, unreadable=found.unreadable)

    def app(self, project: str, app_id: str) -> AppLog | None:
        """One application's log, refreshed; ``None`` when there is none. Raises
        ``InvalidParameterError`` for ids no tracker could have written."""
        with self._lock:
            return self._index.app(project, app_id)

    def refresh(self, log: AppLog) -> int:
        """Read what was appended to ``log`` since; the number of new records."""
        with self._lock:
            return log.refresh()

    def state_after(self, log: AppLog, seq: int) -> dict[str, Any]:
        with self._lock:
            return log.state_after(seq)

    def state_before(self, log: AppLog, seq: int) -> dict[str, Any]:
        with self._lock:
            return log.state_before(seq)


def is_empty(root: str | Path) -> bool:
    """Whether ``root`` holds no tracked application yet."""
    return _demo.is_empty(root)


def generate_demo(root: str | Path) -> list[str]:
    """Run the demo applications into ``root``'s ``demo`` project; the app ids run."""
    return _demo.generate(root)
