"""The hook interfaces under the module name Burr users import them from (``burr.lifecycle``).

Everything here is defined in ``turnout.core.hooks``; see it for the payloads and the error policy.
"""

from turnout.core.hooks import (
    DoLogAttributeHook,
    DoLogAttributeHookAsync,
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

__all__ = [
    "DoLogAttributeHook",
    "DoLogAttributeHookAsync",
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
]
