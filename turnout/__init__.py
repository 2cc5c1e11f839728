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
from turnout.core._serde_plugins import register_serde_plugin
from turnout.core.builder import register_otel_loader
from turnout.core.typing import register_typing_adapter


def _load_otel_adapter() -> object:
    """Imported on demand by ``with_tracker(use_otel_tracing=True)``, as Burr imports its own:
    a Burr program does not import the adapter itself. Raises ``MissingExtraError`` (an
    ``ImportError``) without OpenTelemetry."""
    import turnout.integrations.opentelemetry as adapter

    return adapter


register_otel_loader(_load_otel_adapter)


def _load_pydantic_adapter() -> object:
    """Imported on demand by ``@action.pydantic`` and ``@streaming_action.pydantic``, as Burr's
    decorators import theirs. Raises ``MissingExtraError`` (an ``ImportError``) without pydantic."""
    import turnout.integrations.pydantic as adapter

    return adapter


register_typing_adapter(
    "pydantic", _load_pydantic_adapter, install='pip install "turnout[pydantic]"'
)

# Burr's serde plugins and turnout's pandas/numpy codecs, loaded the first time a value of their
# library, one of Burr's keys or one of turnout's tags is met (Burr imports its plugins with its
# state module): the core calls these by name only.
register_serde_plugin(
    "turnout.integrations.serde.pandas",
    libraries=("pandas",),
    keys=("pandas.DataFrame",),
    tags=("pandas:DataFrame", "pandas:Series"),
)
register_serde_plugin(
    "turnout.integrations.serde.numpy",
    libraries=("numpy",),
    tags=("numpy:ndarray", "numpy:scalar"),
)
register_serde_plugin(
    "turnout.integrations.serde.pydantic", libraries=("pydantic",), keys=("pydantic",)
)
register_serde_plugin(
    "turnout.integrations.serde.langchain",
    libraries=("langchain_core",),
    keys=(
        "lc_document",
        "lc_document_with_state",
        "lc_document_hack",
        "lc_message",
        "lc_message_hack",
    ),
)

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
