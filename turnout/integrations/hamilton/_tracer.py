"""Hamilton lifecycle adapters that time each run and node of a driver as turnout spans."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from hamilton.lifecycle import (  # type: ignore[import-untyped]
    GraphExecutionHook,
    NodeExecutionHook,
)
from hamilton.lifecycle.base import (  # type: ignore[import-untyped]
    BasePostNodeExecuteAsync,
    BasePreNodeExecuteAsync,
)

from turnout.core.tracing import OpenSpan, TracerFactory
from turnout.integrations._notes import add_note

__all__ = ["GRAPH_SPAN", "NODE_SPAN_PREFIX", "AsyncHamiltonTracer", "HamiltonTracer", "type_name"]

GRAPH_SPAN = "hamilton.execute"
NODE_SPAN_PREFIX = "node:"


def type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp)


class _Spans:
    """Open spans of the Hamilton runs in progress, keyed by Hamilton's run id and node."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._graphs: dict[str, tuple[TracerFactory, OpenSpan]] = {}
        self._nodes: dict[tuple[str, str, str | None], OpenSpan] = {}

    def run_before_graph_execution(
        self,
        *,
        run_id: str,
        final_vars: list[str],
        inputs: dict[str, Any] | None = None,
        overrides: dict[str, Any] | None = None,
        **future_kwargs: Any,
    ) -> None:
        tracer = TracerFactory.current()
        if tracer is None:  # the driver runs outside a step: nothing to nest under
            return
        span = tracer.start_span(GRAPH_SPAN)
        span.log_attributes(
            **{
                "hamilton.run_id": run_id,
                "hamilton.final_vars": [str(v) for v in final_vars],
                "hamilton.inputs": sorted(inputs or {}),
                "hamilton.overrides": sorted(overrides or {}),
            }
        )
        with self._lock:  # the tracer too: executors may run nodes in other threads
            self._graphs[run_id] = (tracer, span)

    def run_after_graph_execution(
        self, *, run_id: str, error: Exception | None = None, **future_kwargs: Any
    ) -> None:
        with self._lock:
            run = self._graphs.pop(run_id, None)
        if run is not None:
            run[1].end(error)

    def _node_started(
        self, run_id: str, name: str, return_type: Any, tags: Mapping[str, Any], task_id: str | None
    ) -> None:
        with self._lock:
            run = self._graphs.get(run_id)
        if run is None:  # no graph span (the driver runs outside a step, or a foreign run)
            return
        tracer, parent = run
        span = tracer.start_span(NODE_SPAN_PREFIX + name, parent=parent)
        span.log_attributes(
            **{
                "hamilton.node.name": name,
                "hamilton.node.type": type_name(return_type),
                "hamilton.node.tags": {str(k): str(v) for k, v in tags.items()},
                **({"hamilton.task_id": task_id} if task_id is not None else {}),
            }
        )
        with self._lock:
            self._nodes[(run_id, name, task_id)] = span

    def _node_ended(
        self, run_id: str, name: str, task_id: str | None, error: BaseException | None
    ) -> None:
        if error is not None:
            add_note(error, f"raised by Hamilton node {name!r}")
        with self._lock:
            span = self._nodes.pop((run_id, name, task_id), None)
        if span is not None:
            span.end(error)


class HamiltonTracer(_Spans, GraphExecutionHook, NodeExecutionHook):  # type: ignore[misc]
    """Hamilton lifecycle adapter for the sync ``Driver``: one span per run and per node.

    ``Hamilton`` adds it to the drivers it builds. Add it yourself to a driver you build and pass
    in: ``driver.Builder().with_modules(m).with_adapters(HamiltonTracer()).build()``. Outside a
    turnout step it does nothing.
    """

    def run_before_node_execution(
        self,
        *,
        node_name: str,
        node_tags: dict[str, Any],
        node_return_type: type,
        run_id: str,
        task_id: str | None = None,
        **future_kwargs: Any,
    ) -> None:
        self._node_started(run_id, node_name, node_return_type, node_tags, task_id)

    def run_after_node_execution(
        self,
        *,
        node_name: str,
        error: Exception | None,
        run_id: str,
        task_id: str | None = None,
        **future_kwargs: Any,
    ) -> None:
        self._node_ended(run_id, node_name, task_id, error)


class AsyncHamiltonTracer(
    _Spans,
    GraphExecutionHook,  # type: ignore[misc]
    BasePreNodeExecuteAsync,  # type: ignore[misc]
    BasePostNodeExecuteAsync,  # type: ignore[misc]
):
    """Hamilton lifecycle adapter for the ``AsyncDriver``.

    Its node hooks are Hamilton's async ones, which run around the awaited node: the sync node
    hooks fire around the creation of the node's coroutine on that driver and would time nothing.
    """

    async def pre_node_execute(
        self, *, run_id: str, node_: Any, task_id: str | None = None, **future_kwargs: Any
    ) -> None:
        self._node_started(run_id, node_.name, node_.type, node_.tags, task_id)

    async def post_node_execute(
        self,
        *,
        run_id: str,
        node_: Any,
        error: Exception | None = None,
        task_id: str | None = None,
        **future_kwargs: Any,
    ) -> None:
        self._node_ended(run_id, node_.name, task_id, error)
