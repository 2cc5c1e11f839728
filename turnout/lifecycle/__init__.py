"""The hook interfaces and ready-made hooks under Burr's module name (``burr.lifecycle``).

The interfaces are defined in ``turnout.core.hooks`` (see it for the payloads and the error policy)
and re-exported by ``turnout.lifecycle.base``; the ready-made hooks live in
``turnout.lifecycle.default``, and ``InMemoryExecutionRecorder`` in ``turnout.lifecycle.recorder``.
"""

from turnout.lifecycle.base import (
    DoLogAttributeHook,
    DoLogAttributeHookAsync,
    LifecycleAdapter,
    PostApplicationCreateHook,
    PostApplicationExecuteCallHook,
    PostApplicationExecuteCallHookAsync,
    PostEndSpanHook,
    PostEndSpanHookAsync,
    PostEndStreamHook,
    PostEndStreamHookAsync,
    PostRunStepHook,
    PostRunStepHookAsync,
    PostStreamItemHook,
    PostStreamItemHookAsync,
    PreApplicationExecuteCallHook,
    PreApplicationExecuteCallHookAsync,
    PreRunStepHook,
    PreRunStepHookAsync,
    PreStartSpanHook,
    PreStartSpanHookAsync,
    PreStartStreamHook,
    PreStartStreamHookAsync,
)
from turnout.lifecycle.default import SlowDownHook, StateAndResultsFullLogger
from turnout.lifecycle.recorder import ExecutionRecord, InMemoryExecutionRecorder, StateChange

__all__ = [
    "DoLogAttributeHook",
    "DoLogAttributeHookAsync",
    "ExecutionRecord",
    "InMemoryExecutionRecorder",
    "LifecycleAdapter",
    "PostApplicationCreateHook",
    "PostApplicationExecuteCallHook",
    "PostApplicationExecuteCallHookAsync",
    "PostEndSpanHook",
    "PostEndSpanHookAsync",
    "PostEndStreamHook",
    "PostEndStreamHookAsync",
    "PostRunStepHook",
    "PostRunStepHookAsync",
    "PostStreamItemHook",
    "PostStreamItemHookAsync",
    "PreApplicationExecuteCallHook",
    "PreApplicationExecuteCallHookAsync",
    "PreRunStepHook",
    "PreRunStepHookAsync",
    "PreStartSpanHook",
    "PreStartSpanHookAsync",
    "PreStartStreamHook",
    "PreStartStreamHookAsync",
    "SlowDownHook",
    "StateAndResultsFullLogger",
    "StateChange",
]
