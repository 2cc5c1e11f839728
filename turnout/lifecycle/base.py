"""The hook interfaces under Burr's module name (``burr.lifecycle.base``).

Everything here is defined in ``turnout.core.hooks``; see it for the payloads and the error policy.
``LifecycleAdapter`` is the union of every hook interface, the type Burr annotates hooks with.
"""

from typing import Union

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

LifecycleAdapter = Union[  # noqa: UP007 (an alias users put in annotations at run time too)
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
]

__all__ = [
    "DoLogAttributeHook",
    "DoLogAttributeHookAsync",
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
]
