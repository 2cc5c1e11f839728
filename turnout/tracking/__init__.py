"""Trackers under Burr's module names (``burr.tracking``, ``burr.tracking.client``,
``burr.tracking.base``).

``LocalTrackingClient`` is Burr's name for ``turnout.core.tracking.LocalTracker``; subclass
``SyncTrackingClient`` (alias ``TrackingClient``) to write your own tracker.
"""

from turnout.tracking.base import SyncTrackingClient, TrackingClient
from turnout.tracking.client import LocalTracker, LocalTrackingClient

__all__ = ["LocalTracker", "LocalTrackingClient", "SyncTrackingClient", "TrackingClient"]
