"""The local tracker under the module name Burr users import it from (``burr.tracking``).

``LocalTrackingClient`` is Burr's name for ``turnout.core.tracking.LocalTracker``.
"""

from turnout.core.tracking import LocalTracker

LocalTrackingClient = LocalTracker

__all__ = ["LocalTracker", "LocalTrackingClient"]
