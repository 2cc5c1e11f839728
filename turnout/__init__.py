"""turnout: decision-making applications as explicit state machines of plain Python functions.

Import the everyday vocabulary from here::

    from turnout import ApplicationBuilder, State, action, expr
"""

from turnout.core import (
    Action,
    Application,
    ApplicationBuilder,
    ApplicationContext,
    ApplicationGraph,
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
    safe_expr,
    streaming_action,
    trace,
    type_eraser,
    when,
)
from turnout.core.builder import register_otel_loader


def _load_otel_adapter() -> object:
    """Imported on demand by ``with_tracker(use_otel_tracing=True)``, as Burr imports its own:
    a Burr program does not import the adapter itself. Raises ``MissingExtraError`` (an
    ``ImportError``) without OpenTelemetry."""
    import turnout.integrations.opentelemetry as adapter

    return adapter


register_otel_loader(_load_otel_adapter)

__version__ = "0.1.0"

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
    "__version__",
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
