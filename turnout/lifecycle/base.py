"""The hook interfaces under Burr's module name (``burr.lifecycle.base``).

Everything here is defined in ``turnout.core.hooks``; see it for the payloads and the error policy.
``LifecycleAdapter`` is the union of every hook interface, the type Burr annotates hooks with.
"""

import enum
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


class ExecuteMethod(enum.StrEnum):
    """The application methods that fire ``pre_run_execute_call``/``post_run_execute_call``.
    Hooks receive ``method`` as a plain string, equal to a member (``method ==
    ExecuteMethod.step``)."""

    step = "step"
    astep = "astep"
    iterate = "iterate"
    aiterate = "aiterate"
    run = "run"
    arun = "arun"
    stream_result = "stream_result"
    astream_result = "astream_result"


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
    "ExecuteMethod",
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
