"""Haystack's tracing as child spans of the running turnout step.

Haystack reports what it runs (``haystack.pipeline.run``, one ``haystack.component.run`` per
component visit, agent steps, generator calls) to one process-global tracer,
``haystack.tracing.tracer``. While at least one ``trace_haystack()`` block is open, a
``HaystackTracer`` sits behind that proxy; when the last block closes, the tracer found there is
put back, so Haystack is left as it was found. Inside a turnout step each Haystack span becomes
a span opened with ``TracerFactory.start_span``: its parent is the turnout span of its Haystack
parent, and the outermost one nests under the step (or the innermost ``__tracer`` span open
around the call). Outside a step, spans go to the tracer that was there before.

Component spans are named after the component (``retriever``, ``llm``) and carry the OpenInference
span kind and ``gen_ai.operation.name`` of what the component is (a generator, retriever,
embedder, ranker, tool, agent); a generator's token usage and model, read from its output, are
recorded as ``gen_ai.*`` attributes. Inputs and outputs themselves (the component content tags
and the pipeline's ``haystack.pipeline.input_data``) are recorded only when Haystack's content
tracing is on (``HAYSTACK_CONTENT_TRACING_ENABLED=true``).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Mapping
from contextvars import ContextVar, Token
from typing import Any

from haystack.tracing.tracer import NullTracer, Span, Tracer, enable_tracing
from haystack.tracing.tracer import tracer as haystack_tracer
from haystack.tracing.utils import coerce_tag_value

from turnout.core.tracing import OpenSpan, TracerFactory

__all__ = ["HaystackSpan", "HaystackTracer", "trace_haystack"]

_COMPONENT_RUN = "haystack.component.run"
_COMPONENT_NAME = "haystack.component.name"
_COMPONENT_TYPE = "haystack.component.type"
_COMPONENT_OUTPUT = "haystack.component.output"
# Tags Haystack sets as plain tags that carry the user's data (the pipeline's input): recorded
# only with content tracing on, like the content tags.
_CONTENT_TAGS = frozenset({"haystack.pipeline.input_data"})

# The innermost Haystack span open in this thread or task (Haystack's async pipeline runs sync
# components with asyncio.to_thread, which copies the context, so they see their parent).
_CURRENT: ContextVar[HaystackSpan | None] = ContextVar("turnout_haystack_span", default=None)

# (suffix of a component's class name, OpenInference span kind, gen_ai.operation.name)
_KINDS = (
    ("ChatGenerator", "LLM", "chat"),
    ("Generator", "LLM", "text_completion"),
    ("Retriever", "RETRIEVER", "retrieval"),
    ("Embedder", "EMBEDDING", "embeddings"),
    ("Ranker", "RERANKER", None),
    ("ToolInvoker", "TOOL", "execute_tool"),
    ("Agent", "AGENT", "invoke_agent"),
)


class HaystackSpan(Span):
    """A Haystack span recorded as a turnout span (``raw_span()`` is the ``OpenSpan``)."""

    def __init__(self, span: OpenSpan, kind: str | None) -> None:
        self._span = span
        self._kind = kind

    def set_tag(self, key: str, value: Any) -> None:
        """Record a tag as an attribute: primitives as they are, anything else as Haystack's
        JSON text of it (what its own OpenTelemetry tracer sends)."""
        self._span.log_attributes(**{key: _value(value)})

    def set_content_tag(self, key: str, value: Any) -> None:
        """Record usage and model of a generator's output always, the content itself only
        when Haystack's content tracing is on."""
        if key == _COMPONENT_OUTPUT and self._kind == "LLM":
            usage = _usage(value)
            if usage:
                self._span.log_attributes(**usage)
        if haystack_tracer.is_content_tracing_enabled:
            self.set_tag(key, value)

    def raw_span(self) -> Any:
        return self._span

    def get_correlation_data_for_logs(self) -> dict[str, Any]:
        """What Haystack's structured logs carry to find this span: its action and uid."""
        span = self._span.span
        if span is None:
            return {}
        return {"turnout.action": span.action, "turnout.span_uid": span.uid}


class HaystackTracer(Tracer):
    """Haystack's ``Tracer`` interface over turnout spans; see the module docstring.

    ``trace_haystack()`` installs one for you. ``fallback`` receives the spans started outside
    a turnout step (by default Haystack's no-op tracer).
    """

    def __init__(self, fallback: Tracer | None = None) -> None:
        self.fallback: Tracer = fallback or NullTracer()

    @contextlib.contextmanager
    def trace(
        self,
        operation_name: str,
        tags: dict[str, Any] | None = None,
        parent_span: Span | None = None,
    ) -> Iterator[Span]:
        step = TracerFactory.current()
        if step is None:
            with self.fallback.trace(operation_name, tags=tags, parent_span=parent_span) as span:
                yield span
            return
        tags = dict(tags or {})
        parent = parent_span if isinstance(parent_span, HaystackSpan) else _CURRENT.get()
        name, kind, attributes = _describe(operation_name, tags)
        opened = step.start_span(name, parent=parent._span if parent is not None else None)
        span = HaystackSpan(opened, kind)
        content = haystack_tracer.is_content_tracing_enabled
        tags = {k: _value(v) for k, v in tags.items() if content or k not in _CONTENT_TAGS}
        opened.log_attributes(**attributes, **tags)
        token = _CURRENT.set(span)
        try:
            yield span
        except BaseException as error:
            _reset(token)
            opened.end(error)
            raise
        _reset(token)
        opened.end()

    def current_span(self) -> Span | None:
        if TracerFactory.current() is None:
            return self.fallback.current_span()
        return _CURRENT.get()


def _reset(token: Token[HaystackSpan | None]) -> None:
    # an async generator's span closed from another context: nothing to undo there
    with contextlib.suppress(ValueError):
        _CURRENT.reset(token)


class _Installed:
    """The shared tracer, how many ``trace_haystack()`` blocks are open, and what it replaced."""

    lock = threading.Lock()
    blocks = 0
    tracer: HaystackTracer | None = None


@contextlib.contextmanager
def trace_haystack() -> Iterator[HaystackTracer]:
    """Record Haystack's spans as child spans of the turnout step running inside the block.

    The actions of this module open one around every run; open one yourself around a pipeline
    you run inside your own ``@action``. Blocks nest and may be open in several threads at once;
    the tracer found in ``haystack.tracing.tracer`` is put back when the last one closes (unless
    something replaced ours meanwhile, which is then left alone).
    """
    with _Installed.lock:
        if _Installed.blocks == 0:
            _Installed.tracer = HaystackTracer(haystack_tracer.actual_tracer)
            enable_tracing(_Installed.tracer)
        _Installed.blocks += 1
        installed = _Installed.tracer
    assert installed is not None
    try:
        yield installed
    finally:
        with _Installed.lock:
            _Installed.blocks -= 1
            if _Installed.blocks == 0:
                if haystack_tracer.actual_tracer is installed:
                    haystack_tracer.actual_tracer = installed.fallback
                _Installed.tracer = None


def _describe(operation: str, tags: Mapping[str, Any]) -> tuple[str, str | None, dict[str, Any]]:
    """The span's name, its kind (``None``: a chain) and the attributes naming what it is."""
    attributes: dict[str, Any] = {"haystack.operation": operation}
    if operation != _COMPONENT_RUN:
        return operation, None, attributes
    name = str(tags.get(_COMPONENT_NAME) or tags.get(_COMPONENT_TYPE) or operation)
    kind = component_kind(str(tags.get(_COMPONENT_TYPE) or ""))
    if kind is None:
        return name, None, attributes
    attributes["openinference.span.kind"] = kind[0]
    if kind[1] is not None:
        attributes["gen_ai.operation.name"] = kind[1]
    if kind[0] == "TOOL":
        attributes["gen_ai.tool.name"] = name
    if kind[0] == "AGENT":
        attributes["gen_ai.agent.name"] = name
    return name, kind[0], attributes


def component_kind(type_name: str) -> tuple[str, str | None] | None:
    """(OpenInference span kind, ``gen_ai.operation.name``) of a component class named
    ``type_name`` (Haystack names them by what they are: ``OpenAIChatGenerator``,
    ``InMemoryBM25Retriever``, ...); ``None`` for the rest (builders, routers, joiners)."""
    for suffix, kind, operation in _KINDS:
        if type_name.endswith(suffix):
            return kind, operation
    return None


def _value(value: Any) -> Any:
    if isinstance(value, bool | str | int | float):
        return value
    return coerce_tag_value(value)


def _usage(output: Any) -> dict[str, Any]:
    """Token usage and model of a generator's output (``replies`` of ``ChatMessage`` with
    ``meta``, or ``meta`` beside string replies), summed over its replies."""
    if not isinstance(output, Mapping):
        return {}
    metas: list[Any] = []
    for reply in output.get("replies") or ():
        meta = getattr(reply, "meta", None)
        if isinstance(meta, Mapping):
            metas.append(meta)
    metas.extend(m for m in output.get("meta") or () if isinstance(m, Mapping))
    found: dict[str, Any] = {}
    inputs = outputs = 0
    counted = False
    for meta in metas:
        usage = meta.get("usage")
        if isinstance(usage, Mapping):
            counted = True
            inputs += int(usage.get("prompt_tokens", usage.get("input_tokens", 0)) or 0)
            outputs += int(usage.get("completion_tokens", usage.get("output_tokens", 0)) or 0)
        if isinstance(meta.get("model"), str) and "gen_ai.response.model" not in found:
            found["gen_ai.response.model"] = meta["model"]
    if counted:
        found["gen_ai.usage.input_tokens"] = inputs
        found["gen_ai.usage.output_tokens"] = outputs
    return found
