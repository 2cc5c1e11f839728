"""The demo runs of a first ``turnout ui``: moved to ``turnout.tracking.demo`` (no Streamlit
there, so the web UI fills an empty directory without importing it); importable from here."""

from __future__ import annotations

from turnout.tracking.demo import DEMO_APPS, DEMO_PROJECT, generate, is_empty

__all__ = ["DEMO_APPS", "DEMO_PROJECT", "generate", "is_empty"]
