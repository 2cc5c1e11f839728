"""A Haystack pipeline as a turnout graph: one action per component, in the pipeline's order."""

from __future__ import annotations

import graphlib
import itertools
from collections import Counter
from typing import Any

from haystack.core.pipeline.base import PipelineBase

from turnout.core.errors import ActionDefinitionError
from turnout.core.graph import Graph, GraphBuilder
from turnout.integrations.haystack._action import HaystackAction
from turnout.integrations.haystack._sockets import sockets_of

__all__ = ["haystack_pipeline_to_burr_graph", "pipeline_to_graph"]


def pipeline_to_graph(pipeline: Any) -> Graph:
    """A graph running ``pipeline``'s components one per step, in dependency order.

    Each component becomes a ``HaystackAction`` named after it. Its outputs go to state keys
    named after the output socket (``"component.socket"`` when two components have an output of
    that name); a connected input reads the key its sender writes; an open mandatory input
    reads the state key of its name, and an open optional one keeps its default. The graph is a
    straight line: a pipeline that joins (an input fed by several senders) or loops is refused,
    and a router's branches are not followed (every component runs in turn); run such pipelines
    as one ``HaystackAction(pipeline, ...)``. Add the entrypoint (the first component) and the
    state the open inputs read with ``ApplicationBuilder().with_graph(graph)``.
    """
    if not isinstance(pipeline, PipelineBase):
        raise ActionDefinitionError(
            f"pipeline_to_graph: expected a haystack Pipeline, got {type(pipeline).__name__}"
        )
    components = dict(pipeline.walk())
    edges = list(pipeline.graph.edges(data=True))
    fed: dict[tuple[str, str], tuple[str, str]] = {}
    for sender, receiver, data in edges:
        target = (str(receiver), str(data["to_socket"].name))
        if target in fed:
            raise ActionDefinitionError(
                f"pipeline_to_graph: input {'.'.join(target)!r} has several senders; a pipeline "
                f"that joins or branches runs as one HaystackAction(pipeline, ...)"
            )
        fed[target] = (str(sender), str(data["from_socket"].name))
    order = _order(components, edges)
    outputs = {
        (name, socket)
        for name, instance in components.items()
        for socket in sockets_of(instance, f"pipeline_to_graph({name})").outputs
    }
    counts = Counter(socket for _, socket in outputs)

    def key(name: str, socket: str) -> str:
        return socket if counts[socket] == 1 else f"{name}.{socket}"

    actions = {}
    for name in order:
        sockets = sockets_of(components[name], f"pipeline_to_graph({name})")
        spec: dict[str, Any] = {}
        for socket in sockets.inputs:
            if (name, socket) in fed:
                spec[socket] = key(*fed[(name, socket)])
            elif socket in sockets.mandatory:
                spec[socket] = socket
        output = {socket: key(name, socket) for socket in sockets.outputs}
        actions[name] = HaystackAction(components[name], input=spec, output=output, name=name)
    steps = list(itertools.pairwise(order))
    return GraphBuilder().with_actions(**actions).with_transitions(*steps).build()


# Burr's name for it, so that code written for burr.integrations.haystack runs.
haystack_pipeline_to_burr_graph = pipeline_to_graph


def _order(components: dict[str, Any], edges: list[Any]) -> list[str]:
    """The components in dependency order (ties by name); a cycle is refused."""
    sorter: graphlib.TopologicalSorter[str] = graphlib.TopologicalSorter()
    for name in sorted(components):
        sorter.add(name)
    for sender, receiver, _ in edges:
        sorter.add(str(receiver), str(sender))
    try:
        sorter.prepare()
    except graphlib.CycleError as error:
        raise ActionDefinitionError(
            f"pipeline_to_graph: the pipeline loops ({' -> '.join(error.args[1])}); run it as "
            f"one HaystackAction(pipeline, ...)"
        ) from error
    order: list[str] = []
    while sorter.is_active():
        ready = sorted(sorter.get_ready())
        order.extend(ready)
        sorter.done(*ready)
    return order
