"""What the tracking UI shows, read from a tracking store (no Streamlit here).

The reading lives in ``turnout.core.trackview`` (``AppLog``, steps, spans, diffs) and
``turnout.core.tracksource`` (summaries, sources); this module keeps their names importable
from here, where they used to live.
"""

from __future__ import annotations

from turnout.core.tracksource import AppSummary, ChildLink, ProjectSummary
from turnout.core.trackview import (
    LOG_NAME,
    AppLog,
    Feed,
    Span,
    StateDiff,
    Step,
    diff_states,
    step_token_totals,
)

__all__ = [
    "LOG_NAME",
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
