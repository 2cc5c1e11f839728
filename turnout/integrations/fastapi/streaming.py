"""Server-Sent Events of a served application: what its runs publish, and the streams.

A run publishes to its application's ``EventBus`` in this worker (a hook for step begin/end,
the run loop for streamed items and the final state); every open stream of that app gets each
event. Events (the SSE ``event`` field, JSON ``data``):

* ``step_begin``: ``{"action", "sequence_id", "inputs"}``
* ``item``: ``{"action", "sequence_id", "index", "item"}`` (a streaming action's items)
* ``step_end``: ``{"action", "sequence_id", "result", "delta": [{"op", "key", "value"}],
  "error": null | {"type", "message"}}``
* ``state``: the application as ``GET /apps/{id}`` shows it, after each run
* ``error``: an error body (``ActionFailed``, a conflict), when a run failed

The stream ends when no request drives the application in this worker any more. The framing
is sse-starlette's (``EventSourceResponse``), which also sends keep-alive comments.

A bus also hands every event to its sinks (``forward``): a relay (``relay.py``) attaches one to
carry the events to streams in other workers.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import AsyncIterator, Mapping
from typing import Any, Protocol

from fastapi.encoders import jsonable_encoder

__all__ = ["EventBus", "EventHook", "Sink", "jsonable", "sse_events", "sse_message"]

_END = object()


def jsonable(value: Any, depth: int = 0) -> Any:
    """``value`` as JSON-compatible data: mappings and sequences walked here (a suspension
    record is a mapping), leaves through FastAPI's encoder; ``repr`` for what it cannot
    encode, so a state holding an odd object still shows."""
    if depth > 32:  # a cycle, or data too deep to show
        return repr(value)
    if isinstance(value, Mapping):
        return {str(k): jsonable(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v, depth + 1) for v in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        # FastAPI's encoder deep-copies a dataclass (asdict), with whatever it holds.
        fields = dataclasses.fields(value)
        return {f.name: jsonable(getattr(value, f.name), depth + 1) for f in fields}
    try:
        return jsonable_encoder(value)
    except Exception:
        return repr(value)


class Sink(Protocol):
    """Where a bus also sends its events (a relay to other workers)."""

    def publish(self, event: str, data: Any) -> None: ...

    def close(self) -> None: ...


class EventBus:
    """Fans one application's events out to its open streams (unbounded queues: a slow reader
    only holds memory of this run) and to its sinks."""

    def __init__(self) -> None:
        self._queues: list[asyncio.Queue[Any]] = []
        self.sinks: list[Sink] = []
        self.closed = False

    def forward(self, sink: Sink) -> None:
        """Send every later event, and the close, to ``sink`` too."""
        self.sinks.append(sink)

    def subscribe(self) -> asyncio.Queue[Any]:
        queue: asyncio.Queue[Any] = asyncio.Queue()
        if self.closed:
            queue.put_nowait(_END)
        self._queues.append(queue)
        return queue

    def publish(self, event: str, data: Any) -> None:
        for queue in self._queues:
            queue.put_nowait((event, data))
        for sink in self.sinks:
            sink.publish(event, data)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for queue in self._queues:
            queue.put_nowait(_END)
        for sink in self.sinks:
            sink.close()


class EventHook:
    """The lifecycle hook a served application is built with: step begin and end on the bus."""

    def __init__(self, bus: EventBus) -> None:
        self.bus = bus
        self.sequence_id: int | None = None  # of the step running now
        self.failed: tuple[str, int, BaseException] | None = None  # the last failed step

    async def pre_run_step(
        self, *, sequence_id: int, action: Any, inputs: dict[str, Any], **future_kwargs: Any
    ) -> None:
        self.sequence_id = sequence_id
        self.bus.publish(
            "step_begin",
            {"action": action.name, "sequence_id": sequence_id, "inputs": _public(inputs)},
        )

    async def post_run_step(
        self,
        *,
        sequence_id: int,
        action: Any,
        result: dict[str, Any] | None,
        exception: BaseException | None,
        changes: tuple[Any, ...],
        will_retry: bool = False,
        **future_kwargs: Any,
    ) -> None:
        if exception is not None and not will_retry:
            self.failed = (action.name, sequence_id, exception)
        error = (
            None
            if exception is None
            else {"type": type(exception).__name__, "message": str(exception)}
        )
        self.bus.publish(
            "step_end",
            {
                "action": action.name,
                "sequence_id": sequence_id,
                "result": jsonable(result),
                "delta": [{"op": c.op, "key": c.key, "value": jsonable(c.value)} for c in changes],
                "error": error,
            },
        )


def _public(inputs: Mapping[str, Any]) -> Any:
    """The inputs a caller gave (not the injected ``__context``, ``__tracer``)."""
    return jsonable({k: v for k, v in inputs.items() if not k.startswith("__")})


async def sse_events(queue: asyncio.Queue[Any]) -> AsyncIterator[dict[str, str]]:
    """The events of ``queue`` as sse-starlette messages, until the bus closes."""
    while True:
        entry = await queue.get()
        if entry is _END:
            return
        event, data = entry
        yield sse_message(event, data)


def sse_message(event: str, data: Any) -> dict[str, str]:
    """One sse-starlette message: ``event`` with ``data`` as JSON."""
    return {"event": event, "data": json.dumps(data)}
