"""LangChain runs as child spans of the running step, and the run configuration of a step.

``SpanCallbackHandler`` is a LangChain callback handler: every run LangChain reports (a chain,
prompt, chat model, LLM, parser, tool, retriever, nested chain) opens a span with
``TracerFactory.start_span`` when it starts and closes it when it ends or fails, nested under the
span of its parent run. Hooks receive these spans like any other, so the local tracker records
them and the OpenTelemetry hook exports them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.outputs import ChatGeneration, LLMResult

from turnout.core.tracing import OpenSpan, TracerFactory
from turnout.integrations._content import ContentCapture, content_attributes, current_capture
from turnout.integrations.langchain._content import genai_inputs, genai_outputs, genai_prompts

__all__ = ["SpanCallbackHandler"]

# LangChain's own metadata keys that name the model and its provider on model runs.
_MODEL_KEYS = ("ls_model_name",)
_INVOCATION_MODEL_KEYS = ("model", "model_name", "model_id")
_OPERATION = {"chat_model": "chat", "llm": "text_completion", "tool": "execute_tool"}


class _Run:
    __slots__ = ("capture", "first_token", "parent", "span", "started")

    def __init__(self, span: OpenSpan, parent: UUID | None) -> None:
        self.span = span
        self.parent = parent
        self.started = time.time()
        self.first_token = False
        self.capture: ContentCapture | None = None  # a model run recording its messages


class SpanCallbackHandler(BaseCallbackHandler):
    """Record LangChain runs as spans of the running turnout step.

    Each run becomes a span named after the run (``ChatPromptTemplate``, ``GenericFakeChatModel``,
    a tool's name, the ``run_name`` of the outermost run), with attributes
    ``langchain.run_type``, ``langchain.run_id`` and ``langchain.tags``; model runs add
    ``gen_ai.operation.name``, ``gen_ai.request.model``, ``gen_ai.provider.name``,
    ``gen_ai.usage.input_tokens`` / ``output_tokens`` (from the message's ``usage_metadata``)
    and, when streamed, ``turnout.first_token_time`` (epoch seconds) and
    ``gen_ai.response.time_to_first_chunk`` (seconds, the name every adapter uses;
    ``turnout.time_to_first_token``, the same value, is deprecated and will be removed). A
    failed run ends its span with the exception.

    Args:
        tracer: the step's tracer; by default the tracer of the step running when each run
            starts (``TracerFactory.current()``). Runs outside a step are not recorded.

    ``step_config()`` adds one for you; add one yourself only to a config you build by hand.
    """

    # Called on the event loop, not from executor threads, in async runs: spans then open and
    # close where the step runs, as TracerFactory.start_span asks.
    run_inline = True
    raise_error = False  # a tracing problem never fails the user's run

    def __init__(self, tracer: TracerFactory | None = None) -> None:
        super().__init__()
        self._tracer = tracer
        self._runs: dict[UUID, _Run] = {}
        self._lock = threading.Lock()

    @property
    def open_spans(self) -> int:
        """How many runs have started and not ended yet."""
        return len(self._runs)

    def end_all(self, exception: BaseException | None = None) -> None:
        """End the spans of runs that never reported their end (e.g. a stream left early),
        innermost first. When ``exception`` is a cancellation (``GeneratorExit``,
        ``CancelledError``: not an ``Exception``) they are marked ``turnout.cancelled``."""
        with self._lock:
            runs, self._runs = list(self._runs.values()), {}
        cancelled = _is_cancellation(exception)
        for run in reversed(runs):  # children opened after their parents: close them first
            _stop(run.span, exception, cancelled)

    # -- bookkeeping ---------------------------------------------------------------------------

    def _start(
        self,
        run_id: UUID,
        parent_run_id: UUID | None,
        name: str,
        run_type: str,
        tags: list[str] | None,
        attributes: dict[str, Any],
        capture: ContentCapture | None = None,
    ) -> None:
        tracer = self._tracer or TracerFactory.current()
        if tracer is None:
            return
        with self._lock:
            parent = self._runs.get(parent_run_id) if parent_run_id is not None else None
        span = tracer.start_span(name, parent=parent.span if parent is not None else None)
        run = _Run(span, parent_run_id)
        run.capture = capture
        with self._lock:
            self._runs[run_id] = run
        attributes = {
            "langchain.run_type": run_type,
            "langchain.run_id": str(run_id),
            **({"langchain.tags": list(tags)} if tags else {}),
            **attributes,
        }
        span.log_attributes(**attributes)

    def _end(self, run_id: UUID, error: BaseException | None = None) -> None:
        """End a run's span, after the spans of its runs still open (innermost first): a
        stream left early makes LangChain report a chain's end before its children's. Those
        children are marked ``turnout.cancelled``, as is the run when ``error`` is a
        cancellation."""
        with self._lock:
            run = self._runs.pop(run_id, None)
            if run is None:
                return
            cut_ids = {run_id}
            for rid, other in self._runs.items():  # in start order: parents before children
                if other.parent in cut_ids:
                    cut_ids.add(rid)
            cut = [self._runs.pop(rid) for rid in self._runs.copy() if rid in cut_ids]
        cancelled = _is_cancellation(error)
        for other in reversed(cut):
            _stop(other.span, error if cancelled else None, True)
        _stop(run.span, error, cancelled)

    def _attributes(self, run_id: UUID, attributes: dict[str, Any]) -> None:
        if not attributes:
            return
        with self._lock:
            run = self._runs.get(run_id)
        if run is not None:
            run.span.log_attributes(**attributes)

    # -- chains (runnables, prompts, parsers, nested chains) -----------------------------------

    def on_chain_start(
        self,
        serialized: dict[str, Any],
        inputs: dict[str, Any],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        name = _run_name(serialized, kwargs, "chain")
        run_type = str(kwargs.get("run_type") or "chain")
        self._start(run_id, parent_run_id, name, run_type, tags, {})

    def on_chain_end(
        self,
        outputs: dict[str, Any],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        self._end(run_id)

    def on_chain_error(
        self,
        error: BaseException,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        self._end(run_id, error)

    # Every kind of run ends the same way when it fails.
    on_llm_error = on_tool_error = on_retriever_error = on_chain_error

    # -- models ----------------------------------------------------------------------------------

    def on_chat_model_start(
        self,
        serialized: dict[str, Any],
        messages: list[list[Any]],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        name = _run_name(serialized, kwargs, "chat_model")
        attributes = _model_attributes("chat_model", metadata, kwargs)
        capture = current_capture()
        if capture.enabled:
            attributes |= content_attributes(capture, inputs=genai_inputs(messages))
        self._start(run_id, parent_run_id, name, "chat_model", tags, attributes, capture)

    def on_llm_start(
        self,
        serialized: dict[str, Any],
        prompts: list[str],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        name = _run_name(serialized, kwargs, "llm")
        attributes = _model_attributes("llm", metadata, kwargs)
        capture = current_capture()
        if capture.enabled:
            attributes |= content_attributes(capture, inputs=genai_prompts(prompts))
        self._start(run_id, parent_run_id, name, "llm", tags, attributes, capture)

    def on_llm_new_token(
        self,
        token: str | list[str | dict[str, Any]],
        *,
        chunk: Any = None,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        **kwargs: Any,
    ) -> None:
        with self._lock:
            run = self._runs.get(run_id)
            if run is None or run.first_token:
                return
            run.first_token = True
        now = time.time()
        run.span.log_attributes(
            **{
                "turnout.first_token_time": now,
                "gen_ai.response.time_to_first_chunk": now - run.started,
                "turnout.time_to_first_token": now - run.started,  # deprecated: the line above
            }
        )

    def on_llm_end(
        self,
        response: LLMResult,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        **kwargs: Any,
    ) -> None:
        attributes = _usage_attributes(response)
        with self._lock:
            run = self._runs.get(run_id)
        if run is not None and run.capture is not None and run.capture.enabled:
            attributes |= content_attributes(run.capture, outputs=genai_outputs(response))
        self._attributes(run_id, attributes)
        self._end(run_id)

    # -- tools and retrievers --------------------------------------------------------------------

    def on_tool_start(
        self,
        serialized: dict[str, Any],
        input_str: str,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        inputs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        name = _run_name(serialized, kwargs, "tool")
        attributes = {
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.tool.name": name,
            "openinference.span.kind": "TOOL",
        }
        self._start(run_id, parent_run_id, name, "tool", tags, attributes)

    def on_tool_end(
        self, output: Any, *, run_id: UUID, parent_run_id: UUID | None = None, **kwargs: Any
    ) -> None:
        self._end(run_id)

    def on_retriever_start(
        self,
        serialized: dict[str, Any],
        query: str,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        name = _run_name(serialized, kwargs, "retriever")
        attributes = {"gen_ai.operation.name": "retrieval", "openinference.span.kind": "RETRIEVER"}
        self._start(run_id, parent_run_id, name, "retriever", tags, attributes)

    def on_retriever_end(
        self,
        documents: Sequence[Any],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        self._attributes(run_id, {"langchain.documents": len(documents)})
        self._end(run_id)


def _run_name(serialized: Mapping[str, Any] | None, kwargs: Mapping[str, Any], default: str) -> str:
    name = kwargs.get("name")
    if isinstance(name, str) and name:
        return name
    if serialized:
        if isinstance(serialized.get("name"), str):
            return str(serialized["name"])
        ident = serialized.get("id")
        if isinstance(ident, list) and ident:
            return str(ident[-1])
    return default


def _model_attributes(
    run_type: str, metadata: Mapping[str, Any] | None, kwargs: Mapping[str, Any]
) -> dict[str, Any]:
    attributes: dict[str, Any] = {"gen_ai.operation.name": _OPERATION[run_type]}
    metadata = metadata or {}
    params = kwargs.get("invocation_params") or {}
    model = next((metadata[k] for k in _MODEL_KEYS if metadata.get(k)), None) or next(
        (params[k] for k in _INVOCATION_MODEL_KEYS if params.get(k)), None
    )
    if model is not None:
        attributes["gen_ai.request.model"] = str(model)
    if metadata.get("ls_provider"):
        attributes["gen_ai.provider.name"] = str(metadata["ls_provider"])
    return attributes


def _usage_attributes(response: LLMResult) -> dict[str, Any]:
    """Token usage and response model of a model run, summed over its generations."""
    inputs = outputs = 0
    found = False
    model: str | None = None
    for generation in (g for batch in response.generations for g in batch):
        if not isinstance(generation, ChatGeneration):
            continue
        usage = getattr(generation.message, "usage_metadata", None)
        if usage:
            found = True
            inputs += int(usage.get("input_tokens", 0))
            outputs += int(usage.get("output_tokens", 0))
        metadata = generation.message.response_metadata or {}
        model = model or metadata.get("model_name") or metadata.get("model")
    if not found:  # providers that only fill llm_output (older integrations, plain LLMs)
        usage = (response.llm_output or {}).get("token_usage") or {}
        if usage:
            found = True
            inputs = int(usage.get("prompt_tokens", usage.get("input_tokens", 0)))
            outputs = int(usage.get("completion_tokens", usage.get("output_tokens", 0)))
    attributes: dict[str, Any] = {}
    if found:
        attributes["gen_ai.usage.input_tokens"] = inputs
        attributes["gen_ai.usage.output_tokens"] = outputs
    if model:
        attributes["gen_ai.response.model"] = str(model)
    return attributes


def _is_cancellation(error: BaseException | None) -> bool:
    """A stream closed early or a task cancelled: not a failure of the run."""
    return error is not None and not isinstance(error, Exception)


def _stop(span: OpenSpan, error: BaseException | None, cancelled: bool) -> None:
    if cancelled:
        span.log_attributes(**{"turnout.cancelled": True})
    span.end(error)
