"""Haystack for turnout: components and pipelines as actions, Haystack's spans as child spans.

Install with ``pip install "turnout[haystack]"`` (haystack-ai)::

    from turnout.integrations.haystack import HaystackAction

    retrieve = HaystackAction(
        InMemoryBM25Retriever(document_store=store),
        input={"query": "question", "top_k": from_value(2)},
        output={"documents": "documents"},
    )

``HaystackAction`` takes any ``@component`` or a ``Pipeline``; its input spec says which state
keys (or constants) feed which inputs and its output spec where the outputs go, with the
vocabulary every adapter shares (``from_state``, ``from_value``, ``update_state``,
``append_state``, ``extend_state``, re-exported here). Burr's form ``HaystackAction(component,
reads=[...], writes=[...], bound_params={...})`` works too. Each run opens Haystack's tracer
inside ``trace_haystack()``: the pipeline's and each component's spans nest under the step span,
so the local tracker and the OpenTelemetry hook record them. ``pipeline_to_graph(pipeline)``
(Burr's ``haystack_pipeline_to_burr_graph``) makes a straight pipeline a graph of one action per
component. Importing this module registers
JSON serde for Haystack's ``Document`` and ``ChatMessage`` (``register_serde``).
"""

from __future__ import annotations

from turnout.integrations._guard import missing_extra

try:
    import haystack
    import haystack.tracing  # noqa: F401
except ImportError as _error:  # pragma: no cover - exercised in a subprocess
    raise missing_extra(
        "turnout.integrations.haystack", 'pip install "turnout[haystack]"', _error
    ) from _error

from turnout.integrations._mapping import (
    append_state,
    extend_state,
    from_state,
    from_value,
    update_state,
)
from turnout.integrations.haystack._action import HaystackAction
from turnout.integrations.haystack._graph import haystack_pipeline_to_burr_graph, pipeline_to_graph
from turnout.integrations.haystack._serde import register_serde
from turnout.integrations.haystack._tracing import HaystackSpan, HaystackTracer, trace_haystack

__all__ = [
    "HaystackAction",
    "HaystackSpan",
    "HaystackTracer",
    "append_state",
    "extend_state",
    "from_state",
    "from_value",
    "haystack_pipeline_to_burr_graph",
    "pipeline_to_graph",
    "register_serde",
    "trace_haystack",
    "update_state",
]

register_serde()
