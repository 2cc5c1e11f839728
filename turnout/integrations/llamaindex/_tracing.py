"""LlamaIndex instrumentation spans as child spans of the running turnout step.

LlamaIndex reports every instrumented call (``RetrieverQueryEngine.query``, ``MockLLM.complete``,
a Workflow step, ...) to the span handlers of its process-global root dispatcher. While at least
one ``trace_llamaindex()`` block is open, one ``TurnoutSpanHandler`` (and its event handler) sits
on that dispatcher; when the last block closes, both are removed, so the dispatcher is left as it
was found. The handler only records spans that start inside a ``trace_llamaindex()`` block and
inside a turnout step; everything else passes through untouched.

Each LlamaIndex span becomes a span opened with ``TracerFactory.start_span``: its parent is the
turnout span of its LlamaIndex parent, and the outermost one nests under the step (or under the
innermost ``__tracer`` span open around the call). LLM events add ``gen_ai.*`` attributes
(operation, model, token usage when the LLM reports it).
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import re
import threading
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from typing import Any

from llama_index.core.instrumentation.event_handlers import BaseEventHandler
from llama_index.core.instrumentation.events import BaseEvent
from llama_index.core.instrumentation.events.llm import (
    LLMChatEndEvent,
    LLMChatStartEvent,
    LLMCompletionEndEvent,
    LLMCompletionStartEvent,
)
from llama_index.core.instrumentation.span import SimpleSpan
from llama_index.core.instrumentation.span_handlers import BaseSpanHandler
from llama_index_instrumentation import get_dispatcher
from pydantic import PrivateAttr

from turnout.core.tracing import OpenSpan, TracerFactory
from turnout.integrations._content import content_attributes, current_capture, text_message
from turnout.integrations._spans import records
from turnout.integrations.llamaindex._content import genai_message, genai_messages

__all__ = ["TurnoutSpanHandler", "trace_llamaindex"]

# Set by trace_llamaindex(); LlamaIndex's own threads and tasks copy the context, so spans of
# work started inside the block (a workflow's steps, a streaming chat's writer thread) see it.
_BLOCK: ContextVar[_Block | None] = ContextVar("turnout_llamaindex_block", default=None)
_UUID_SUFFIX = re.compile(r"-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\Z")
_USAGE_KEYS = {
    "gen_ai.usage.input_tokens": ("input_tokens", "prompt_tokens"),
    "gen_ai.usage.output_tokens": ("output_tokens", "completion_tokens"),
}


def span_name(span_id: str) -> str:
    """``"RetrieverQueryEngine.query"`` for ``"RetrieverQueryEngine.query-<uuid>"``."""
    return _UUID_SUFFIX.sub("", span_id)


class _Block:
    """One ``trace_llamaindex()`` block: the LlamaIndex span ids it recorded."""

    __slots__ = ("ids",)

    def __init__(self) -> None:
        self.ids: set[str] = set()


class TurnoutSpanHandler(BaseSpanHandler[SimpleSpan]):
    """Opens a turnout span for each LlamaIndex span inside a step; see the module docstring.

    ``trace_llamaindex()`` installs the shared instance; users need not create one.
    """

    _spans: dict[str, OpenSpan] = PrivateAttr(default_factory=dict)
    _spans_lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    @classmethod
    def class_name(cls) -> str:
        return "TurnoutSpanHandler"

    def open_span(self, span_id: str | None) -> OpenSpan | None:
        """The turnout span recording LlamaIndex span ``span_id``, if it is open."""
        if span_id is None:
            return None
        with self._spans_lock:
            return self._spans.get(span_id)

    def span_enter(
        self,
        id_: str,
        bound_args: inspect.BoundArguments,
        instance: Any | None = None,
        parent_id: str | None = None,
        tags: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        block = _BLOCK.get()
        if block is None:
            return
        tracer = TracerFactory.current()
        if tracer is None:
            return
        # No recorded parent: nest under the step (or the innermost __tracer span around us).
        span = tracer.start_span(span_name(id_), parent=self.open_span(parent_id))
        span.log_attributes(
            **{"llamaindex.span_id": id_, **_kind_attributes(instance), **_tag_attributes(tags)}
        )
        with self._spans_lock:
            self._spans[id_] = span
            block.ids.add(id_)

    def span_exit(
        self,
        id_: str,
        bound_args: inspect.BoundArguments,
        instance: Any | None = None,
        result: Any | None = None,
        **kwargs: Any,
    ) -> None:
        self._end(id_, None)

    def span_drop(
        self,
        id_: str,
        bound_args: inspect.BoundArguments,
        instance: Any | None = None,
        err: BaseException | None = None,
        **kwargs: Any,
    ) -> None:
        self._end(id_, err)

    def _end(self, id_: str, err: BaseException | None) -> None:
        with self._spans_lock:
            span = self._spans.pop(id_, None)
        if span is not None:
            span.end(exception=err)

    def end_all(self, spans: set[str]) -> None:
        """End those of ``spans`` LlamaIndex never closed (an abandoned stream)."""
        for id_ in sorted(spans):
            self._end(id_, None)

    # Abstract in the base class, which calls them from the span_enter/exit/drop overridden above.
    def new_span(
        self,
        id_: str,
        bound_args: inspect.BoundArguments,
        instance: Any | None = None,
        parent_span_id: str | None = None,
        tags: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> SimpleSpan | None:
        return None

    def prepare_to_exit_span(
        self,
        id_: str,
        bound_args: inspect.BoundArguments,
        instance: Any | None = None,
        result: Any | None = None,
        **kwargs: Any,
    ) -> SimpleSpan | None:
        return None

    def prepare_to_drop_span(
        self,
        id_: str,
        bound_args: inspect.BoundArguments,
        instance: Any | None = None,
        err: BaseException | None = None,
        **kwargs: Any,
    ) -> SimpleSpan | None:
        return None


class _UsageEventHandler(BaseEventHandler):
    """Adds ``gen_ai.*`` attributes to the span of an LLM call from its start and end events."""

    spans: TurnoutSpanHandler

    @classmethod
    def class_name(cls) -> str:
        return "TurnoutUsageEventHandler"

    def handle(self, event: BaseEvent, **kwargs: Any) -> None:
        span = self.spans.open_span(event.span_id)
        if span is None:
            return
        if isinstance(event, LLMChatStartEvent | LLMCompletionStartEvent):
            chat = isinstance(event, LLMChatStartEvent)
            attributes: dict[str, Any] = {
                "gen_ai.operation.name": "chat" if chat else "text_completion"
            }
            model = _model_name(event.model_dict)
            if model is not None:
                attributes["gen_ai.request.model"] = model
            capture = current_capture()
            if capture.enabled:
                sent = (
                    genai_messages(event.messages)
                    if isinstance(event, LLMChatStartEvent)
                    else [text_message("user", event.prompt)]
                )
                attributes |= content_attributes(capture, inputs=sent)
            span.log_attributes(**attributes)
        elif isinstance(event, LLMChatEndEvent | LLMCompletionEndEvent):
            found: dict[str, Any] = dict(_usage(event.response))
            capture = current_capture()
            if capture.enabled and event.response is not None:
                answer = (
                    genai_message(event.response.message, "stop")
                    if isinstance(event, LLMChatEndEvent)
                    else text_message("assistant", event.response.text, finish_reason="stop")
                )
                found |= content_attributes(capture, outputs=[answer])
            if found:
                span.log_attributes(**found)


@functools.cache
def _kinds() -> tuple[tuple[type, str, str | None], ...]:
    """(LlamaIndex base class, OpenInference span kind, ``gen_ai.operation.name``)."""
    from llama_index.core.agent.workflow import BaseWorkflowAgent
    from llama_index.core.base.base_retriever import BaseRetriever
    from llama_index.core.base.embeddings.base import BaseEmbedding
    from llama_index.core.base.llms.base import BaseLLM
    from llama_index.core.postprocessor.types import BaseNodePostprocessor
    from llama_index.core.tools.types import BaseTool

    return (
        (BaseLLM, "LLM", None),  # chat or text_completion: set from the LLM's events
        (BaseEmbedding, "EMBEDDING", "embeddings"),
        (BaseRetriever, "RETRIEVER", "retrieval"),
        (BaseNodePostprocessor, "RERANKER", None),
        (BaseTool, "TOOL", "execute_tool"),
        (BaseWorkflowAgent, "AGENT", "invoke_agent"),
    )


def _kind_attributes(instance: Any) -> dict[str, Any]:
    """The span kind (OpenInference) and GenAI operation of a call on ``instance``: an LLM,
    embedding model, retriever, node postprocessor (reranker), tool or agent; nothing for
    the rest (query and chat engines, workflows: CHAIN)."""
    if instance is None:
        return {}
    for base, kind, operation in _kinds():
        if isinstance(instance, base):
            found: dict[str, Any] = {"openinference.span.kind": kind}
            if operation is not None:
                found["gen_ai.operation.name"] = operation
            if kind == "TOOL":
                name = getattr(getattr(instance, "metadata", None), "name", None)
                if isinstance(name, str) and name:
                    found["gen_ai.tool.name"] = name
            label = getattr(instance, "name" if kind == "AGENT" else "model_name", None)
            if kind == "AGENT" and isinstance(label, str):
                found["gen_ai.agent.name"] = label
            elif kind == "EMBEDDING" and isinstance(label, str):
                found["gen_ai.request.model"] = label
            return found
    return {}


def _tag_attributes(tags: Mapping[str, Any] | None) -> dict[str, Any]:
    return {f"llamaindex.tag.{key}": value for key, value in (tags or {}).items()}


def _model_name(model_dict: Mapping[str, Any]) -> str | None:
    for key in ("model", "model_name"):
        value = model_dict.get(key)
        if isinstance(value, str) and value:
            return value
    return None


def _usage(response: Any) -> dict[str, int]:
    """Token counts from a ``ChatResponse``/``CompletionResponse``: its ``additional_kwargs``
    (where LlamaIndex LLM integrations put them) or the ``usage`` of its raw provider reply."""
    if response is None:
        return {}
    sources: list[Any] = [getattr(response, "additional_kwargs", None)]
    raw = getattr(response, "raw", None)
    usage = raw.get("usage") if isinstance(raw, Mapping) else getattr(raw, "usage", None)
    sources.append(usage)
    found: dict[str, int] = {}
    for source in sources:
        for name, keys in _USAGE_KEYS.items():
            for key in keys:
                value = (
                    source.get(key) if isinstance(source, Mapping) else getattr(source, key, None)
                )
                if isinstance(value, int) and name not in found:
                    found[name] = value
    return found


class _Installation:
    """The shared handlers and how many ``trace_llamaindex()`` blocks use them."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.users = 0
        self.spans = TurnoutSpanHandler()
        self.events = _UsageEventHandler(spans=self.spans)

    def acquire(self) -> None:
        with self.lock:
            if self.users == 0:
                dispatcher = get_dispatcher()
                dispatcher.add_span_handler(self.spans)
                dispatcher.add_event_handler(self.events)
            self.users += 1

    def release(self) -> None:
        with self.lock:
            self.users -= 1
            if self.users == 0:
                dispatcher = get_dispatcher()
                _remove(dispatcher.span_handlers, self.spans)
                _remove(dispatcher.event_handlers, self.events)


def _remove(handlers: list[Any], handler: Any) -> None:
    # By identity: pydantic's == would call two handlers with equal fields the same one.
    for i, item in enumerate(handlers):
        if item is handler:
            del handlers[i]
            return


_INSTALLATION = _Installation()


@contextlib.contextmanager
def trace_llamaindex() -> Iterator[None]:
    """Record the LlamaIndex spans of the work inside this block as child spans of the step.

    The adapter's actions use it already; wrap your own calls in it inside any action::

        @action(reads=["q"], writes=["a"])
        def answer(state: State) -> State:
            with trace_llamaindex():
                return state.update(a=str(engine.query(state["q"])))

    Outside a step it records nothing. Blocks may nest and run concurrently; the handlers leave
    the dispatcher when the last block ends, and spans the block left open are ended then.
    """
    if not records("llama_index"):  # an instrumentor records the spans: no duplicates
        yield
        return
    _INSTALLATION.acquire()
    block = _Block()
    token = _BLOCK.set(block)
    try:
        yield
    finally:
        with contextlib.suppress(ValueError):  # a generator closed from another context
            _BLOCK.reset(token)
        _INSTALLATION.spans.end_all(block.ids)
        _INSTALLATION.release()
