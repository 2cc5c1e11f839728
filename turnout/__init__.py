"""turnout: decision-making applications as explicit state machines of plain Python functions.

Import the everyday vocabulary from here::

    from turnout import ApplicationBuilder, State, action, expr
"""

from turnout.core import (
    Action,
    Application,
    ApplicationBuilder,
    ApplicationContext,
    ChildApplicationError,
    Condition,
    Graph,
    GraphBuilder,
    Input,
    MapActions,
    MapActionsAndStates,
    MapStates,
    Result,
    RetryPolicy,
    RunnableGraph,
    SingleStepAction,
    State,
    StreamingAction,
    SubGraphTask,
    TaskBasedParallelAction,
    TracerFactory,
    TurnoutError,
    action,
    default,
    expr,
    on_exception,
    streaming_action,
    trace,
    when,
)

__version__ = "0.1.0"

__all__ = [
    "Action",
    "Application",
    "ApplicationBuilder",
    "ApplicationContext",
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
    "__version__",
    "action",
    "default",
    "expr",
    "on_exception",
    "streaming_action",
    "trace",
    "when",
]
