"""The tracking UI as a web application (``turnout ui``).

``create_ui_app(source)`` returns a FastAPI application: a JSON API over the tracking data
(``/api/v1``, OpenAPI at ``/api/openapi.json``) and server-rendered pages (Jinja2, htmx, no
build step) for projects, applications, steps and live runs, over any tracking store: a
directory, a ``postgresql://`` connection string, or a ``TrackingSource``. It does not import
Streamlit. See docs/ui.md.

Needs ``pip install "turnout[ui]"``.
"""

from __future__ import annotations

from turnout.integrations._guard import missing_extra

try:
    import jinja2  # noqa: F401
except ImportError as _error:
    raise missing_extra(
        "turnout.integrations.fastapi.ui", 'pip install "turnout[ui]"', _error
    ) from _error

from turnout.core.tracksource import TrackingSource
from turnout.integrations.fastapi.ui.app import create_ui_app

__all__ = ["TrackingSource", "create_ui_app"]
