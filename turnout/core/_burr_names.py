"""Burr's names for objects defined in modules that import the module Burr kept them in.

``burr.core.persistence`` holds the SQLite and in-memory persisters, ``burr.core.action`` the
``@action`` decorator and the streaming actions and ``burr.core.application`` the builder; here
those live in modules that import ``persistence``/``action``/``application``, so those modules
resolve the names on first use through a module ``__getattr__`` (PEP 562) instead of an import
cycle.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

__all__ = ["lazy_names"]

# module -> {Burr's name: (defining module, dotted attribute path there)}
_LAZY: dict[str, dict[str, tuple[str, str]]] = {
    "turnout.core.persistence": {
        "SQLitePersister": ("turnout.core.sqlite", "SQLitePersister"),
        "SQLLitePersister": ("turnout.core.sqlite", "SQLitePersister"),
        "AsyncSQLitePersister": ("turnout.core.sqlite", "AsyncSQLitePersister"),
        "InMemoryPersister": ("turnout.core.memory", "InMemoryPersister"),
        "AsyncInMemoryPersister": ("turnout.core.memory", "AsyncInMemoryPersister"),
        "DevNullPersister": ("turnout.core.devnull", "DevNullPersister"),
        "AsyncDevNullPersister": ("turnout.core.devnull", "AsyncDevNullPersister"),
        "PersisterHook": ("turnout.core.saving", "PersisterHook"),
        "PersisterHookAsync": ("turnout.core.saving", "PersisterHookAsync"),
    },
    "turnout.core.action": {
        "action": ("turnout.core._action_decorator", "action"),
        "ActionFunction": ("turnout.core._action_decorator", "ActionFunction"),
        "_attach": ("turnout.core._action_decorator", "_attach"),
        "P": ("turnout.core._action_decorator", "P"),
        "R_co": ("turnout.core._action_decorator", "R_co"),
        "StreamingAction": ("turnout.core.streaming", "StreamingAction"),
        "AsyncStreamingAction": ("turnout.core.streaming", "StreamingAction"),
        "SingleStepStreamingAction": ("turnout.core.streaming", "SingleStepStreamingAction"),
        "FunctionBasedStreamingAction": ("turnout.core.streaming", "FunctionBasedStreamingAction"),
        "StreamingResultContainer": ("turnout.core.streaming", "StreamingResultContainer"),
        "AsyncStreamingResultContainer": (
            "turnout.core.streaming",
            "AsyncStreamingResultContainer",
        ),
        "streaming_action": ("turnout.core.streaming", "streaming_action"),
        "Condition": ("turnout.core.condition", "Condition"),
        "expr": ("turnout.core.condition", "expr"),
        "when": ("turnout.core.condition", "when"),
        "default": ("turnout.core.condition", "default"),
        "safe_expr": ("turnout.core.condition", "safe_expr"),
        "_SafeExprInterpreter": ("turnout.core.condition", "_SafeExprInterpreter"),
        "lmda": ("turnout.core.condition", "Condition.lmda"),
        "DefaultSchema": ("turnout.core.typing", "DefaultSchema"),
        "DEFAULT_SCHEMA": ("turnout.core.typing", "DEFAULT_SCHEMA"),
        # Burr's action module re-exports typing's AsyncGenerator, and Burr code imports it there.
        "AsyncGenerator": ("collections.abc", "AsyncGenerator"),
    },
    "turnout.core.application": {
        "ApplicationBuilder": ("turnout.core.builder", "ApplicationBuilder"),
        "ApplicationGraph": ("turnout.core.graph", "ApplicationGraph"),
        # Burr's internal step helpers, which Burr code and tests import from here.
        "_run_function": ("turnout.core._burr_steps", "_run_function"),
        "_arun_function": ("turnout.core._burr_steps", "_arun_function"),
        "_run_reducer": ("turnout.core._burr_steps", "_run_reducer"),
        "_validate_reducer_writes": ("turnout.core._burr_steps", "_validate_reducer_writes"),
        "_adjust_single_step_output": ("turnout.core._burr_steps", "_adjust_single_step_output"),
        "_validate_start": ("turnout.core._burr_steps", "_validate_start"),
        "_remap_dunder_parameters": ("turnout.core._burr_steps", "_remap_dunder_parameters"),
        "_run_single_step_action": ("turnout.core._burr_steps", "_run_single_step_action"),
        "_arun_single_step_action": ("turnout.core._burr_steps", "_arun_single_step_action"),
        "_run_single_step_streaming_action": (
            "turnout.core._burr_steps",
            "_run_single_step_streaming_action",
        ),
        "_arun_single_step_streaming_action": (
            "turnout.core._burr_steps",
            "_arun_single_step_streaming_action",
        ),
        "_run_multi_step_streaming_action": (
            "turnout.core._burr_steps",
            "_run_multi_step_streaming_action",
        ),
        "_arun_multi_step_streaming_action": (
            "turnout.core._burr_steps",
            "_arun_multi_step_streaming_action",
        ),
    },
}


def lazy_names(module: str) -> Callable[[str], Any]:
    """The ``__getattr__`` of ``module``: imports a Burr name's defining module on first use."""
    table = _LAZY[module]

    def __getattr__(name: str) -> Any:
        if name not in table:
            raise AttributeError(f"module {module!r} has no attribute {name!r}")
        where, path = table[name]
        found: Any = importlib.import_module(where)
        for attribute in path.split("."):
            found = getattr(found, attribute)
        return found

    return __getattr__
