"""What the hook, the bridge and the replay share: attribute names and value conversion."""

from __future__ import annotations

import contextvars
import functools
import json
import logging
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ParamSpec, TypeVar

from opentelemetry import trace
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.trace import Span, Status, StatusCode

from turnout.core.serde import DEFAULT_SERDE
from turnout.integrations._content import is_content

_KIND = "turnout.kind"  # on every span we export: how the bridge tells ours from foreign ones
_MAX_VALUE = 8_192
logger = logging.getLogger("turnout.opentelemetry")

# True while the bridge opens a turnout span for a foreign span: the hook must not export it.
_BRIDGING: contextvars.ContextVar[bool] = contextvars.ContextVar("turnout_otel_bridging")

# gen_ai.operation.name -> the OpenInference span kind Phoenix shows.
_OPERATION_KINDS = {
    "chat": "LLM",
    "text_completion": "LLM",
    "generate_content": "LLM",
    "embeddings": "EMBEDDING",
    "retrieval": "RETRIEVER",
    "execute_tool": "TOOL",
    "create_agent": "AGENT",
    "invoke_agent": "AGENT",
}
# GenAI names mirrored under the OpenInference names, so Phoenix shows models and token counts.
_MIRRORED = {
    "gen_ai.request.model": "llm.model_name",
    "gen_ai.provider.name": "llm.provider",
    "gen_ai.usage.input_tokens": "llm.token_count.prompt",
    "gen_ai.usage.output_tokens": "llm.token_count.completion",
}

P = ParamSpec("P")
R = TypeVar("R")


def _never_raises(method: Callable[P, None]) -> Callable[P, None]:
    """Telemetry never interrupts a run: a failure is logged, the step goes on."""

    @functools.wraps(method)
    def guarded(*args: P.args, **kwargs: P.kwargs) -> None:
        try:
            method(*args, **kwargs)
        except Exception:
            logger.exception("OpenTelemetry export failed in %s", method.__name__)

    return guarded


def global_provider_with(
    processor: Callable[[], SpanProcessor], added: weakref.WeakSet[TracerProvider]
) -> trace.TracerProvider:
    """The global tracer provider, with ``processor()`` added to it once (``added`` remembers
    the providers it went to). Like Burr, an SDK ``TracerProvider`` is installed as the global
    one first when none is set; a foreign provider gets no processor."""
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        trace.set_tracer_provider(TracerProvider())  # ignored (with a log line) if one is set
        provider = trace.get_tracer_provider()
    if isinstance(provider, TracerProvider) and provider not in added:
        provider.add_span_processor(processor())
        added.add(provider)
    return provider


# -- attribute values -----------------------------------------------------------------------------


def otel_value(value: Any) -> str | bool | int | float | tuple[Any, ...]:
    """``value`` as an attribute value every OpenTelemetry backend takes: primitives as they
    are, a list of one primitive type as a tuple, anything else as JSON (or its ``repr``)."""
    if isinstance(value, bool | str | float):
        return value if not isinstance(value, str) else value[:_MAX_VALUE]
    if isinstance(value, int):
        return value if -(2**63) <= value < 2**63 else str(value)
    if isinstance(value, list | tuple) and value:
        kinds = {type(item) for item in value}
        if len(kinds) == 1 and kinds <= {str, bool, int, float}:
            return tuple(value)
    return to_json(value)


def to_json(value: Any) -> str:
    """JSON text of ``value`` through turnout's serde (registered types included); its
    ``repr`` if it cannot be encoded."""
    try:
        text = json.dumps(value, ensure_ascii=False, default=_encode_one)
    except (TypeError, ValueError):  # e.g. keys that are not strings, or a cycle
        text = repr(value)
    return text[:_MAX_VALUE]


def _encode_one(value: Any) -> Any:
    try:
        return DEFAULT_SERDE.encode(value)
    except Exception:
        return repr(value)


class _Live:
    """An exported span in progress and what the hook tracks about it."""

    __slots__ = ("input_tokens", "kind", "output_tokens", "span", "token")

    def __init__(self, span: Span, token: object | None = None) -> None:
        self.span = span
        self.token = token
        self.kind: str | None = None  # an OpenInference kind the adapter gave (not CHAIN)
        self.input_tokens: int | None = None
        self.output_tokens: int | None = None


def _set_attributes(live: _Live, attributes: Mapping[str, Any]) -> None:
    """Copy logged attributes onto a span, mirroring GenAI names for OpenInference."""
    span = live.span
    if not span.is_recording():
        return
    for key, value in attributes.items():
        # message content was bounded by its capture policy: cutting it again would break
        # its JSON
        converted = value if isinstance(value, str) and is_content(key) else otel_value(value)
        if key == "openinference.span.kind":
            live.kind = str(value)
        span.set_attribute(key, converted)
        mirror = _MIRRORED.get(key)
        if mirror is not None:
            span.set_attribute(mirror, converted)
        if key == "gen_ai.operation.name" and value in _OPERATION_KINDS:
            live.kind = _OPERATION_KINDS[str(value)]
            span.set_attribute("openinference.span.kind", live.kind)
        elif key in ("gen_ai.request.model", "gen_ai.usage.input_tokens") and live.kind is None:
            # a model or token counts make an LLM span, unless the adapter said what it is
            # (an embedding call names its model too)
            span.set_attribute("openinference.span.kind", "LLM")
        if key == "gen_ai.usage.input_tokens" and isinstance(value, int):
            live.input_tokens = value
        elif key == "gen_ai.usage.output_tokens" and isinstance(value, int):
            live.output_tokens = value
    if live.input_tokens is not None and live.output_tokens is not None:
        span.set_attribute("llm.token_count.total", live.input_tokens + live.output_tokens)


def _app_attributes(app_id: str, partition_key: str | None) -> dict[str, Any]:
    attributes: dict[str, Any] = {
        "turnout.app_id": app_id,
        "session.id": app_id,
        "gen_ai.conversation.id": app_id,
    }
    if partition_key is not None:
        attributes["turnout.partition_key"] = partition_key
    return attributes


def _step_attributes(
    app_id: str, partition_key: str | None, sequence_id: int, action: str,
    reads: Sequence[str], writes: Sequence[str], attempt: int,
) -> dict[str, Any]:  # fmt: skip
    return {
        **_app_attributes(app_id, partition_key),
        _KIND: "step",
        "openinference.span.kind": "CHAIN",
        "graph.node.id": action,
        "turnout.sequence_id": sequence_id,
        "turnout.action": action,
        "turnout.reads": tuple(reads),
        "turnout.writes": tuple(writes),
        "turnout.attempt": attempt,
    }


def _span_attributes(
    app_id: str, partition_key: str | None, sequence_id: int, action: str, uid: str,
    dependencies: Sequence[str],
) -> dict[str, Any]:  # fmt: skip
    attributes = {
        **_app_attributes(app_id, partition_key),
        _KIND: "span",
        "openinference.span.kind": "CHAIN",
        "turnout.sequence_id": sequence_id,
        "turnout.action": action,
        "turnout.span_uid": uid,
    }
    if dependencies:
        attributes["turnout.span_dependencies"] = tuple(dependencies)
    return attributes


def _ns(seconds: float) -> int:
    return int(seconds * 1e9)


def _fail(span: Span, exception: BaseException, when: float | None = None) -> None:
    span.set_status(Status(StatusCode.ERROR, f"{type(exception).__name__}: {exception}"))
    span.record_exception(exception, timestamp=None if when is None else _ns(when))
