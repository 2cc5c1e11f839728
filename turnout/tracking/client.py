"""The local tracker under Burr's module name (``burr.tracking.client``).

``LocalTrackingClient`` is Burr's name for ``turnout.core.tracking.LocalTracker``.
"""

from turnout.core.tracking import LocalTracker, allowed_project_name
from turnout.tracking.base import SyncTrackingClient

LocalTrackingClient = LocalTracker

__all__ = ["LocalTracker", "LocalTrackingClient", "SyncTrackingClient"]


def _allowed_project_name(project_name: str, on_windows: bool) -> bool:
    """Burr's internal check of a project name, with turnout's rule for project names
    (``turnout.core.tracking.allowed_project_name``): the tracker accepts exactly these."""
    return allowed_project_name(project_name, on_windows=on_windows)
