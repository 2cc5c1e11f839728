"""The hook interfaces and ready-made hooks under Burr's module name (``burr.lifecycle``).

The interfaces are defined in ``turnout.core.hooks`` (see it for the payloads and the error policy)
and re-exported by ``turnout.lifecycle.base``; the ready-made hooks live in
``turnout.lifecycle.default``, and ``InMemoryExecutionRecorder`` in ``turnout.lifecycle.recorder``.
"""

from turnout.lifecycle import base
from turnout.lifecycle.base import *  # noqa: F403  (the interfaces, listed in base.__all__)
from turnout.lifecycle.default import SlowDownHook, StateAndResultsFullLogger
from turnout.lifecycle.recorder import ExecutionRecord, InMemoryExecutionRecorder, StateChange

__all__ = [
    "ExecutionRecord",
    "InMemoryExecutionRecorder",
    "SlowDownHook",
    "StateAndResultsFullLogger",
    "StateChange",
]
__all__ += base.__all__
