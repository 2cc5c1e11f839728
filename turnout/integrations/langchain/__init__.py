"""LangChain for turnout: runnables as actions, their runs as child spans, messages as JSON.

* ``RunnableAction(runnable, input=..., output=...)`` runs any ``Runnable`` (``invoke``, or
  ``ainvoke`` with ``is_async=True``) as a step; ``StreamingRunnableAction`` streams its chunks
  (``stream`` / ``astream``) as a streaming action; ``runnable_action(..., stream=...)`` picks one.
  The input and output specs use the shared vocabulary re-exported here: ``from_state``,
  ``from_value``, ``update_state``, ``append_state``, ``extend_state``.
* Every step passes LangChain a run configuration (``step_config``) that keeps the user's
  callbacks, tags and metadata, adds ``turnout.app_id`` / ``turnout.partition_key`` /
  ``turnout.sequence_id`` / ``turnout.action`` to the metadata, names the run after the action,
  and adds a ``SpanCallbackHandler``: LangChain's runs (prompt, model, parser, tools, nested
  chains) become child spans of the step, with token usage under the OpenTelemetry GenAI names.
* ``ToolCallsAction`` runs the tool calls of the last AI message; ``has_tool_calls()`` is the
  transition condition of an agent loop.
* Importing this module registers JSON serde for LangChain messages (every ``BaseMessage``,
  including tool calls and chunks) and ``Document`` with ``turnout.core.serde.DEFAULT_SERDE``, so
  persisters and trackers save them without pickle; ``register_serde(serde)`` does the same for a
  ``Serde`` of your own.

Needs ``pip install "turnout[langchain]"`` (langchain-core).
"""

from __future__ import annotations

from turnout.integrations._guard import missing_extra

try:
    import langchain_core  # noqa: F401 - the guarded import; the modules below use it
except ImportError as _error:  # pragma: no cover - exercised in a subprocess
    raise missing_extra(
        "turnout.integrations.langchain", 'pip install "turnout[langchain]"', _error
    ) from _error

from turnout.integrations._mapping import (
    append_state,
    extend_state,
    from_state,
    from_value,
    update_state,
)
from turnout.integrations.langchain._actions import (
    RunnableAction,
    StreamingRunnableAction,
    runnable_action,
)
from turnout.integrations.langchain._config import step_config
from turnout.integrations.langchain._serde import register_serde
from turnout.integrations.langchain._tools import ToolCallsAction, has_tool_calls
from turnout.integrations.langchain._tracing import SpanCallbackHandler

__all__ = [
    "RunnableAction",
    "SpanCallbackHandler",
    "StreamingRunnableAction",
    "ToolCallsAction",
    "append_state",
    "extend_state",
    "from_state",
    "from_value",
    "has_tool_calls",
    "register_serde",
    "runnable_action",
    "step_config",
    "update_state",
]

register_serde()
