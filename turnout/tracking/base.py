"""The base class of trackers under Burr's module name (``burr.tracking.base``).

A tracker is a hook object that implements the hook interfaces it needs. Subclass
``SyncTrackingClient`` (Burr's ``TrackingClient``) to write your own: implement the hook methods
and ``copy()``, which a parallel action calls to give its children their own tracker when they
inherit the parent's (``tracker="cascade"``, the default). Pass it to
``ApplicationBuilder.with_tracker(...)``. Every ``turnout.core.trackbase.RecordingTracker``
(``LocalTracker``, ``PostgresTracker``) counts as one (``isinstance`` holds).
"""

from __future__ import annotations

import abc

from turnout.core.hooks import (
    DoLogAttributeHook,
    PostApplicationCreateHook,
    PostEndSpanHook,
    PostEndStreamHook,
    PostRunStepHook,
    PostStreamItemHook,
    PreRunStepHook,
    PreStartSpanHook,
    PreStartStreamHook,
)
from turnout.core.trackbase import RecordingTracker

__all__ = ["SyncTrackingClient", "TrackingClient"]


class SyncTrackingClient(
    PostApplicationCreateHook,
    PreRunStepHook,
    PostRunStepHook,
    PreStartSpanHook,
    PostEndSpanHook,
    DoLogAttributeHook,
    PreStartStreamHook,
    PostStreamItemHook,
    PostEndStreamHook,
    abc.ABC,
):
    """A tracker: every hook a tracker receives, and ``copy()`` for child applications."""

    @abc.abstractmethod
    def copy(self) -> SyncTrackingClient:
        """A tracker for a child application (a parallel action's child) to use."""


TrackingClient = SyncTrackingClient
SyncTrackingClient.register(RecordingTracker)  # LocalTracker, PostgresTracker, ...
