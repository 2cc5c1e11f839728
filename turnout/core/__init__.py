"""The turnout core: state, actions, conditions, graphs and applications (standard library only).

Everything here is also importable from ``turnout``.
"""

from turnout.core.action import Action, Input, Result, SingleStepAction, action
from turnout.core.application import Application
from turnout.core.builder import ApplicationBuilder
from turnout.core.condition import Condition, default, expr, when
from turnout.core.context import ApplicationContext
from turnout.core.errors import TurnoutError
from turnout.core.graph import Graph, GraphBuilder
from turnout.core.state import State

__all__ = [
    "Action",
    "Application",
    "ApplicationBuilder",
    "ApplicationContext",
    "Condition",
    "Graph",
    "GraphBuilder",
    "Input",
    "Result",
    "SingleStepAction",
    "State",
    "TurnoutError",
    "action",
    "default",
    "expr",
    "when",
]
