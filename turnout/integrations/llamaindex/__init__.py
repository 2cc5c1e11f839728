"""LlamaIndex as turnout actions: query engines, chat engines, retrievers, ingestion pipelines and
Workflows, with streaming, LlamaIndex spans as child spans of the step, and JSON serde.

Install with ``pip install "turnout[llamaindex]"``::

    from turnout.integrations.llamaindex import query_action

    answer = query_action(index.as_query_engine(), input="question", output="answer")
    app = ApplicationBuilder().with_actions(answer=answer)...

Each factory takes an input spec (which state keys feed the object) and an output spec (where its
output goes) from the shared vocabulary re-exported here (``from_state``, ``from_value``,
``update_state``, ``append_state``, ``extend_state``). Outputs are plain JSON-ready data by
default: a response becomes ``{"response": text, "source_nodes": [{"text", "score", "id",
"metadata"}]}``. Chat history kept in state is a list of ``ChatMessage``, which this module
registers with turnout's serde (as are nodes), so persisters and trackers store it as JSON.
"""

from __future__ import annotations

from turnout.integrations._guard import missing_extra

try:
    import llama_index.core
    import llama_index.core.instrumentation
    import llama_index.core.workflow  # noqa: F401
except ImportError as _error:  # pragma: no cover - exercised in a subprocess
    raise missing_extra(
        "turnout.integrations.llamaindex", 'pip install "turnout[llamaindex]"', _error
    ) from _error

from turnout.integrations._mapping import (
    append_state,
    extend_state,
    from_state,
    from_value,
    update_state,
)
from turnout.integrations.llamaindex._actions import (
    ChatEngineLike,
    IngestionPipelineLike,
    QueryEngineLike,
    RetrieverLike,
    chat_action,
    ingest_action,
    query_action,
    retrieve_action,
)
from turnout.integrations.llamaindex._convert import (
    node_to_dict,
    register_serde,
    response_to_dict,
    to_chat_message,
)
from turnout.integrations.llamaindex._tracing import TurnoutSpanHandler, trace_llamaindex
from turnout.integrations.llamaindex._workflow import (
    WorkflowLike,
    workflow_action,
    workflow_waiting,
)

register_serde()

__all__ = [
    "ChatEngineLike",
    "IngestionPipelineLike",
    "QueryEngineLike",
    "RetrieverLike",
    "TurnoutSpanHandler",
    "WorkflowLike",
    "append_state",
    "chat_action",
    "extend_state",
    "from_state",
    "from_value",
    "ingest_action",
    "node_to_dict",
    "query_action",
    "register_serde",
    "response_to_dict",
    "retrieve_action",
    "to_chat_message",
    "trace_llamaindex",
    "update_state",
    "workflow_action",
    "workflow_waiting",
]
