"""The tracking UI (``turnout ui``) and its building blocks, on Streamlit.

``turnout ui`` runs ``app.py`` (the UI script) over a storage directory; ``data`` reads the local
tracker's logs for it without Streamlit; ``demo`` fills an empty directory with demo runs.
"""

from __future__ import annotations

from turnout.integrations._guard import missing_extra

try:
    import streamlit  # noqa: F401
except ImportError as _error:
    raise missing_extra(
        "turnout.integrations.streamlit", 'pip install "turnout[start]"', _error
    ) from _error

__all__: list[str] = []
