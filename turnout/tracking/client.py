"""The local tracker under Burr's module name (``burr.tracking.client``).

``LocalTrackingClient`` is Burr's name for ``turnout.core.tracking.LocalTracker``.
"""

from turnout.core.tracking import LocalTracker
from turnout.tracking.base import SyncTrackingClient

LocalTrackingClient = LocalTracker

__all__ = ["LocalTracker", "LocalTrackingClient", "SyncTrackingClient"]
