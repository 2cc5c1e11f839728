"""The projects and applications under a tracking directory, for the UI (no Streamlit here).

``TrackingIndex`` and ``AppListing`` moved to ``turnout.core.trackfiles`` (stdlib only, so the
web UI reads files without importing Streamlit); they stay importable from here.
"""

from __future__ import annotations

from turnout.core.trackfiles import AppListing, TrackingIndex

__all__ = ["AppListing", "TrackingIndex"]
