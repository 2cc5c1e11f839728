"""``workflow_action``: a LlamaIndex ``Workflow`` as an async (optionally streaming) action,
with human-in-the-loop runs that halt on an ``InputRequiredEvent`` and resume on a later step."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from llama_index.core.workflow import (
    Context,
    Event,
    HumanResponseEvent,
    InputRequiredEvent,
    StartEvent,
    StopEvent,
    Workflow,
)
from pydantic_core import PydanticSerializationError

from turnout.core.action import Action
from turnout.core.condition import Condition
from turnout.core.retry import RetryPolicy
from turnout.core.state import State
from turnout.integrations._mapping import declared_names
from turnout.integrations.llamaindex._actions import (
    _check,
    _field,
    _LlamaIndexAction,
    _LlamaIndexStreamingAction,
    _Spec,
)
from turnout.integrations.llamaindex._convert import to_output

__all__ = ["WorkflowLike", "workflow_action", "workflow_waiting"]

_NO_ANSWER: Any = object()


@runtime_checkable
class WorkflowLike(Protocol):
    """A ``Workflow``: ``run(**kwargs)`` returns an awaitable handler with ``stream_events()``."""

    def run(self, *args: Any, **kwargs: Any) -> Any: ...


@dataclass(frozen=True, kw_only=True, slots=True)
class _Start:
    """What a step of a human-in-the-loop workflow starts from."""

    value: Any
    waiting: Mapping[str, Any] | None
    answer: Any


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
    inputs: Sequence[str] = (),
    waiting: str | None = None,
    answer: str = "response",
) -> Action:
    """An async action that runs a LlamaIndex ``Workflow`` and awaits its result.

    Its output is the workflow's result made plain data (responses, nodes, messages, agent
    outputs); the result is ``{"result": ...}``. Run the app with ``arun``/``astream_result``.

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
        inputs: names of application inputs passed to ``run()`` as keyword arguments (the
            input spec reads them like state keys).
        waiting: human in the loop: a state key. When the workflow writes an
            ``InputRequiredEvent`` to its stream, the step ends there: the result is
            ``{"result": None, "input_required": {"event": <class name>, "request":
            <its fields>}, ...}``; ``state[waiting]`` holds the request and the workflow's
            context (``Context.to_dict()``: JSON, so a persister keeps it across processes);
            the output is not written (its keys not yet in state are set to ``None``). The
            next step of this action resumes that run with the answer given as the input
            named ``answer`` (a value becomes ``HumanResponseEvent(response=value)``, a
            mapping its fields; an ``Event`` is sent as it is), until the workflow stops
            (``state[waiting]`` is then ``None`` and the output written) or asks again.
            Route on ``workflow_waiting(waiting)``.
        answer: the name of the input carrying the human's answer.
    """
    owner = f"workflow_action({type(workflow).__name__})"
    _check(workflow, WorkflowLike, owner, "a Workflow")
    if not isinstance(workflow, Workflow):
        raise TypeError(
            f"{owner}: {workflow!r} is not a LlamaIndex Workflow; subclass "
            f"llama_index.core.workflow.Workflow and pass an instance (a query or chat engine "
            f"goes to query_action/chat_action, a pipeline to ingest_action)"
        )
    if waiting is not None:
        waiting = (declared_names([waiting], "waiting", owner) or [waiting])[0]

    def start(value: Any) -> Any:
        if isinstance(value, StartEvent):
            return workflow.run(start_event=value)
        if isinstance(value, Mapping):
            return workflow.run(**{str(k): v for k, v in value.items()})
        raise TypeError(
            f"{owner}: the input is {value!r}; give run()'s keyword arguments as a mapping, e.g. "
            f"input=['topic'] or input={{'query': 'question'}}, or a StartEvent"
        )

    def resume(begin: _Start) -> Any:
        assert begin.waiting is not None
        if begin.answer is _NO_ANSWER:
            request = begin.waiting.get("request")
            raise ValueError(
                f"{owner}: the workflow waits for an answer to {request!r}; pass it: "
                f"app.astep(inputs={{{answer!r}: ...}})"
            )
        stored = dict(begin.waiting["context"])
        handler = workflow.run(ctx=Context.from_dict(workflow, stored, _serializer(workflow)))
        handler.ctx.send_event(_response(begin.answer, owner))
        return handler

    async def events(begin: Any) -> AsyncIterator[dict[str, Any]]:
        if isinstance(begin, _Start):
            handler = resume(begin) if begin.waiting else start(begin.value)
        else:
            handler = start(begin)
        try:
            async for event in handler.stream_events():
                if waiting is not None and isinstance(event, InputRequiredEvent):
                    request = {"event": type(event).__name__, "request": _event_data(event)}
                    context = handler.ctx.to_dict()
                    yield {"result": None, "input_required": request, "context": context}
                    return
                if not isinstance(event, StopEvent):
                    yield {"event": type(event).__name__, "delta": _event_data(event)}
            result = await handler
        finally:
            if not handler.is_done():  # the caller stopped early, the stream failed, or halted
                await handler.cancel_run()
        yield {"result": to_output(result)}

    async def run(begin: Any) -> Any:
        if waiting is None:
            return {"result": to_output(await start(begin))}
        last: Any = None
        async for item in events(begin):
            last = item
        return last

    spec = _Spec(
        owner=owner, call=events if stream else run, input=input, output=output,
        unwrap=_field("result"), reads=reads, writes=writes, inputs=inputs,
    )  # fmt: skip
    cls = _WaitingStream if stream else _Waiting
    if waiting is None:
        cls = _LlamaIndexStreamingAction if stream else _LlamaIndexAction  # type: ignore[assignment]
    act = cls(spec, is_async=True, tags=tags, name=name, retry=retry)
    if isinstance(act, _WaitingMixin):
        assert waiting is not None
        act._waiting_key, act._answer = waiting, answer
    return act


def workflow_waiting(waiting: str = "workflow_waiting") -> Condition:
    """A transition condition: a workflow run halted on an ``InputRequiredEvent`` waits in
    ``state[waiting]`` for its answer (see ``workflow_action(waiting=...)``)::

        .with_transitions(("review", "review", workflow_waiting("review_waiting")),
                          ("review", "publish"))
    """

    def resolver(state: State) -> bool:
        return state.get(waiting) is not None

    return Condition([waiting], resolver, name=f"workflow_waiting({waiting!r})")


class _WaitingMixin:
    """A human-in-the-loop workflow action: reads and writes the waiting key, takes the
    answer as an optional input, and writes the output only when the run has stopped."""

    _waiting_key: str
    _answer: str
    _spec: _Spec

    @property
    def reads(self) -> list[str]:
        return [*self._spec.reads, self._waiting_key]

    @property
    def writes(self) -> list[str]:
        return [*self._spec.writes, self._waiting_key]

    @property
    def inputs(self) -> list[str] | tuple[list[str], list[str]]:
        return list(self._spec.inputs), [self._answer]

    def _input(self, state: State, given: dict[str, Any]) -> Any:
        given = dict(given)
        reply = given.pop(self._answer, _NO_ANSWER)
        value = super()._input(state, given)  # type: ignore[misc]
        return _Start(value=value, waiting=state.get(self._waiting_key), answer=reply)

    def update(self, result: dict[str, Any], state: State) -> State:
        if result.get("input_required") is not None:
            waits = {**result["input_required"], "context": result["context"]}
            # The output waits for the run's end; keys it will write that are not in the
            # state yet are set to None (every declared write must be written).
            unset = {key: None for key in self._spec.writes if key not in state}
            return state.update(**unset, **{self._waiting_key: waits})
        state = self._spec.update(result, state)
        return state.update(**{self._waiting_key: None})


class _Waiting(_WaitingMixin, _LlamaIndexAction):
    pass


class _WaitingStream(_WaitingMixin, _LlamaIndexStreamingAction):
    pass


def _serializer(workflow: Workflow) -> Any:
    """The serializer to load a stored context with: the workflow's own if it set one, else JSON
    resolving only the workflow's events and state type. LlamaIndex's default imports whatever
    class a stored record names; the waiting context is persisted state, so it may not choose."""
    if getattr(workflow, "serializer", None) is not None:
        return workflow.serializer
    from workflows.context.serializers import JsonSerializer
    from workflows.context.state_store import infer_state_type

    return JsonSerializer(allowed_types=[*workflow.events, infer_state_type(workflow)])


def _response(reply: Any, owner: str) -> Event:
    if isinstance(reply, Event):
        return reply
    if isinstance(reply, Mapping):
        try:
            return HumanResponseEvent(**{str(k): v for k, v in reply.items()})
        except (TypeError, ValueError) as error:
            raise TypeError(
                f"{owner}: the answer {reply!r} is not a HumanResponseEvent's fields: {error}"
            ) from error
    return HumanResponseEvent(response=reply)  # type: ignore[call-arg]


def _event_data(event: Any) -> Any:
    """An event's fields as JSON data; the free-form fields of an ``Event`` (kept in its
    ``_data``, e.g. ``InputRequiredEvent(prefix=...)``) are fields like the others."""
    try:
        data = event.model_dump(mode="json")
    except (PydanticSerializationError, TypeError, ValueError):
        return {"repr": repr(event)}
    extra = data.pop("_data", None) if isinstance(data, dict) else None
    return {**data, **extra} if isinstance(extra, dict) else data
