"""The turnout core: state, actions, conditions, graphs and applications (standard library only).

Everything here is also importable from ``turnout``.
"""

from turnout.core.action import Action, Input, Result, SingleStepAction, action, type_eraser
from turnout.core.application import Application
from turnout.core.builder import ApplicationBuilder
from turnout.core.condition import Condition, default, expr, safe_expr, when
from turnout.core.context import ApplicationContext
from turnout.core.errors import ChildApplicationError, TurnoutError
from turnout.core.graph import ApplicationGraph, Graph, GraphBuilder
from turnout.core.parallel import (
    MapActions,
    MapActionsAndStates,
    MapStates,
    RunnableGraph,
    SubGraphTask,
    TaskBasedParallelAction,
)
from turnout.core.retry import RetryPolicy, on_exception
from turnout.core.state import State
from turnout.core.streaming import StreamingAction, streaming_action
from turnout.core.tracing import TracerFactory, trace

__all__ = [
    "Action",
    "Application",
    "ApplicationBuilder",
    "ApplicationContext",
    "ApplicationGraph",
    "ChildApplicationError",
    "Condition",
    "Graph",
    "GraphBuilder",
    "Input",
    "MapActions",
    "MapActionsAndStates",
    "MapStates",
    "Result",
    "RetryPolicy",
    "RunnableGraph",
    "SingleStepAction",
    "State",
    "StreamingAction",
    "SubGraphTask",
    "TaskBasedParallelAction",
    "TracerFactory",
    "TurnoutError",
    "action",
    "default",
    "expr",
    "on_exception",
    "safe_expr",
    "streaming_action",
    "trace",
    "type_eraser",
    "when",
]
