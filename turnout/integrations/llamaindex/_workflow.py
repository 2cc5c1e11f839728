"""``workflow_action``: a LlamaIndex ``Workflow`` as an async (optionally streaming) action."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from llama_index.core.workflow import StartEvent, StopEvent, Workflow
from pydantic_core import PydanticSerializationError

from turnout.core.action import Action
from turnout.core.retry import RetryPolicy
from turnout.integrations.llamaindex._actions import _build, _check, _field, _Spec
from turnout.integrations.llamaindex._convert import to_output

__all__ = ["WorkflowLike", "workflow_action"]


@runtime_checkable
class WorkflowLike(Protocol):
    """A ``Workflow``: ``run(**kwargs)`` returns an awaitable handler with ``stream_events()``."""

    def run(self, *args: Any, **kwargs: Any) -> Any: ...


def workflow_action(
    workflow: WorkflowLike,
    *,
    input: Any = (),
    output: Any = "result",
    stream: bool = False,
    reads: Sequence[str] | None = None,
    writes: Sequence[str] | None = None,
    tags: Sequence[str] = (),
    name: str | None = None,
    retry: RetryPolicy | None = None,
) -> Action:
    """An async action that runs a LlamaIndex ``Workflow`` and awaits its result.

    Its output is the workflow's result (responses and nodes made plain data); the result is
    ``{"result": ...}``. Run the app with ``arun``/``astream_result``.

    Args:
        workflow: a ``Workflow`` instance.
        input: input spec giving ``run()``'s keyword arguments (a mapping: ``["topic"]`` or
            ``{"query": "question"}``) or a ``StartEvent``; the default passes none.
        output: output spec for the workflow's result.
        stream: a streaming action: one ``{"event": <class name>, "delta": <event fields>}``
            item per event the workflow writes to its stream (``stream_events()``), then
            ``{"result": ...}``.
        reads: extra state keys (required for a function input spec).
        writes: extra state keys (required for a function output spec).
        tags: the action's tags.
        name: the action's name (else given by ``with_actions(name=...)``).
        retry: a ``RetryPolicy`` for failed steps.
    """
    owner = f"workflow_action({type(workflow).__name__})"
    _check(workflow, WorkflowLike, owner, "a Workflow")
    if not isinstance(workflow, Workflow):
        raise TypeError(
            f"{owner}: {workflow!r} is not a LlamaIndex Workflow; subclass "
            f"llama_index.core.workflow.Workflow and pass an instance (a query or chat engine "
            f"goes to query_action/chat_action, a pipeline to ingest_action)"
        )

    def start(value: Any) -> Any:
        if isinstance(value, StartEvent):
            return workflow.run(start_event=value)
        if isinstance(value, Mapping):
            return workflow.run(**{str(k): v for k, v in value.items()})
        raise TypeError(
            f"{owner}: the input is {value!r}; give run()'s keyword arguments as a mapping, e.g. "
            f"input=['topic'] or input={{'query': 'question'}}, or a StartEvent"
        )

    async def run(value: Any) -> Any:
        return {"result": to_output(await start(value))}

    async def stream_events(value: Any) -> AsyncIterator[dict[str, Any]]:
        handler = start(value)
        try:
            async for event in handler.stream_events():
                if not isinstance(event, StopEvent):
                    yield {"event": type(event).__name__, "delta": _event_data(event)}
            result = await handler
        finally:
            if not handler.is_done():  # the caller stopped early or the stream failed
                await handler.cancel_run()
        yield {"result": to_output(result)}

    spec = _Spec(
        owner=owner, call=stream_events if stream else run, input=input, output=output,
        unwrap=_field("result"), reads=reads, writes=writes,
    )  # fmt: skip
    return _build(spec, stream=stream, is_async=True, tags=tags, name=name, retry=retry)


def _event_data(event: Any) -> Any:
    try:
        return event.model_dump(mode="json")
    except (PydanticSerializationError, TypeError, ValueError):
        return {"repr": repr(event)}
