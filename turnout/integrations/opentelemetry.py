"""OpenTelemetry for turnout: export runs as spans, record foreign spans, replay tracked apps.

- ``OpenTelemetryHook`` (a hook for ``ApplicationBuilder.with_hooks``) exports every application
  call (``run``, ``step``, ``iterate``...), every step attempt and every ``__tracer`` span as
  OpenTelemetry spans, nested call > step > span, with ``turnout.*``, ``session.id``, the GenAI
  (``gen_ai.*``) attributes the step logged and OpenInference span kinds. While a step's action
  runs its span is the current OpenTelemetry span, so instrumented libraries nest under it.
- ``TurnoutSpanProcessor`` is the reverse bridge: added to a ``TracerProvider``, it records the
  spans other instrumentation creates during a step as turnout spans, so the local tracker (and
  the UI) shows them too.
- ``export_tracked`` (the ``turnout export-otel`` command) replays applications recorded by the
  ``LocalTracker`` to an OTLP/HTTP endpoint, with their original times, tree and attributes.

The tracer provider is always passed in (default: the global one); nothing here installs one.
"""

from __future__ import annotations

import contextvars
import functools
import json
import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from turnout.core import tracing as _tracing
from turnout.core.serde import DEFAULT_SERDE
from turnout.core.tracing import ActionSpan, OpenSpan, TracerFactory
from turnout.core.tracking import read_log, tracking_home
from turnout.integrations._guard import missing_extra

try:
    from opentelemetry import context as otel_context
    from opentelemetry import trace
    from opentelemetry.context import Context
    from opentelemetry.exporter.otlp.proto.http import Compression
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.trace import Span, Status, StatusCode
except ImportError as _error:  # pragma: no cover - exercised in a subprocess
    raise missing_extra(
        "turnout.integrations.opentelemetry", 'pip install "turnout[opentelemetry]"', _error
    ) from _error

__all__ = [
    "DEFAULT_ENDPOINT",
    "ExportSummary",
    "ForeignSpanError",
    "OpenTelemetryHook",
    "TurnoutSpanProcessor",
    "export_tracked",
]

DEFAULT_ENDPOINT = "http://localhost:4318/v1/traces"
_KIND = "turnout.kind"  # on every span we export: how the bridge tells ours from foreign ones
_MAX_VALUE = 8_192
_LAST_CALLS = 1_024
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

    __slots__ = ("input_tokens", "output_tokens", "span", "token")

    def __init__(self, span: Span, token: object | None = None) -> None:
        self.span = span
        self.token = token
        self.input_tokens: int | None = None
        self.output_tokens: int | None = None


def _set_attributes(live: _Live, attributes: Mapping[str, Any]) -> None:
    """Copy logged attributes onto a span, mirroring GenAI names for OpenInference."""
    span = live.span
    if not span.is_recording():
        return
    for key, value in attributes.items():
        converted = otel_value(value)
        span.set_attribute(key, converted)
        mirror = _MIRRORED.get(key)
        if mirror is not None:
            span.set_attribute(mirror, converted)
        if key == "gen_ai.operation.name" and value in _OPERATION_KINDS:
            span.set_attribute("openinference.span.kind", _OPERATION_KINDS[str(value)])
        elif key in ("gen_ai.request.model", "gen_ai.usage.input_tokens"):
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


# -- the hook -------------------------------------------------------------------------------------


class OpenTelemetryHook:
    """Export application calls, steps and ``__tracer`` spans as OpenTelemetry spans.

    Pass it to ``ApplicationBuilder.with_hooks``. Each public call (``run``, ``step``,
    ``iterate``, ``astream_result``...) is a span named ``turnout.<method>``; each step attempt a
    child span named after its action; each ``__tracer`` span (or ``start_span``) a child of its
    step or of its parent span. While the action runs, its step span (and inside a ``with
    __tracer(...)`` block, that span) is the current OpenTelemetry span, so spans of instrumented
    libraries nest under it. The call span's parent is whatever span is current when the call
    starts (a web request's, say).

    Args:
        tracer_provider: where spans go; default the global provider
            (``opentelemetry.trace.get_tracer_provider()``), which this hook never sets.
        tracer_name: the instrumentation scope name of the exported spans.
        capture_state: also export each step's input (the state keys it reads and its inputs)
            as ``input.value`` and the state keys it wrote and its result as ``output.value``
            (JSON). Off by default: state
            may hold personal data.
    """

    def __init__(
        self,
        tracer_provider: trace.TracerProvider | None = None,
        *,
        tracer_name: str = "turnout",
        capture_state: bool = False,
    ) -> None:
        if tracer_provider is not None and not isinstance(tracer_provider, trace.TracerProvider):
            raise TypeError(
                f"OpenTelemetryHook(tracer_provider=...) takes an OpenTelemetry TracerProvider, "
                f"not {type(tracer_provider).__name__}: pass "
                f"opentelemetry.sdk.trace.TracerProvider() (or nothing, for the global one)."
            )
        from turnout import __version__

        provider = tracer_provider or trace.get_tracer_provider()
        self._tracer = provider.get_tracer(tracer_name, __version__)
        self.capture_state = capture_state
        self._lock = threading.Lock()
        self._calls: dict[str, _Live] = {}
        self._last_call: OrderedDict[str, Context] = OrderedDict()
        self._steps: dict[tuple[str, int], _Live] = {}
        self._spans: dict[tuple[str, int, str], _Live] = {}
        self._skipped: set[tuple[str, int, str]] = set()

    # -- application calls ------------------------------------------------------------------------

    @_never_raises
    def pre_run_execute_call(
        self, *, app_id: str, partition_key: str | None, method: str, **future_kwargs: Any
    ) -> None:
        attributes = {
            **_app_attributes(app_id, partition_key),
            _KIND: "application",
            "openinference.span.kind": "CHAIN",
            "turnout.method": method,
        }
        span = self._tracer.start_span(f"turnout.{method}", attributes=attributes)
        with self._lock:
            self._calls[app_id] = _Live(span)
            self._last_call[app_id] = trace.set_span_in_context(span)
            self._last_call.move_to_end(app_id)
            while len(self._last_call) > _LAST_CALLS:
                self._last_call.popitem(last=False)

    @_never_raises
    def post_run_execute_call(
        self, *, app_id: str, exception: BaseException | None = None, **future_kwargs: Any
    ) -> None:
        with self._lock:
            live = self._calls.pop(app_id, None)
        if live is None:
            return
        if exception is not None:
            _fail(live.span, exception)
        live.span.end()

    # -- steps ------------------------------------------------------------------------------------

    @_never_raises
    def pre_run_step(
        self, *, app_id: str, partition_key: str | None, sequence_id: int, state: Any,
        action: Any, inputs: dict[str, Any], attempt: int = 1, **future_kwargs: Any,
    ) -> None:  # fmt: skip
        with self._lock:
            call = self._calls.get(app_id)
            # A stream from stream_result runs after its call returned: it nests under that call.
            parent = trace.set_span_in_context(call.span) if call else self._last_call.get(app_id)
        attributes = _step_attributes(
            app_id, partition_key, sequence_id, action.name, action.reads, action.writes, attempt
        )
        if self.capture_state:
            reads = {key: state[key] for key in action.reads if key in state}
            given = {k: v for k, v in inputs.items() if not k.startswith("_")}  # not __tracer
            attributes["input.value"] = to_json({"state": reads, "inputs": given})
            attributes["input.mime_type"] = "application/json"
        span = self._tracer.start_span(action.name, context=parent, attributes=attributes)
        # The engine fires this hook and runs the action in the same contextvars context (sync,
        # async and streaming), so attaching here makes the step span current for the action.
        token = otel_context.attach(trace.set_span_in_context(span))
        with self._lock:
            self._steps[(app_id, sequence_id)] = _Live(span, token)

    @_never_raises
    def post_run_step(
        self, *, app_id: str, sequence_id: int, state: Any, action: Any,
        result: dict[str, Any] | None = None, exception: BaseException | None = None,
        will_retry: bool = False, **future_kwargs: Any,
    ) -> None:  # fmt: skip
        with self._lock:
            live = self._steps.pop((app_id, sequence_id), None)
            leftovers = [
                (key, self._spans.pop(key))
                for key in [k for k in self._spans if k[:2] == (app_id, sequence_id)]
            ]
            self._skipped = {k for k in self._skipped if k[:2] != (app_id, sequence_id)}
        for _, span_live in leftovers:  # spans never ended: end them with their step
            span_live.span.set_attribute("turnout.unfinished", True)
            _detach(span_live)
            span_live.span.end()
        if live is None:
            return
        span = live.span
        if exception is not None:
            _fail(span, exception)
            span.set_attribute("turnout.will_retry", will_retry)
        elif self.capture_state and result is not None:
            written = {key: state[key] for key in action.writes if key in state}
            span.set_attribute("output.value", to_json({"state": written, "result": result}))
            span.set_attribute("output.mime_type", "application/json")
        _detach(live)
        span.end()

    # -- spans and attributes ---------------------------------------------------------------------

    @_never_raises
    def pre_start_span(
        self, *, action: str, action_sequence_id: int, span: ActionSpan,
        span_dependencies: list[str], app_id: str, partition_key: str | None,
        **future_kwargs: Any,
    ) -> None:  # fmt: skip
        key = (app_id, action_sequence_id, span.uid)
        if _BRIDGING.get(False):  # a foreign OpenTelemetry span: it is exported already
            with self._lock:
                self._skipped.add(key)
            return
        with self._lock:
            parent = None
            if span.parent is not None:
                parent = self._spans.get((app_id, action_sequence_id, span.parent.uid))
            if parent is None:
                parent = self._steps.get((app_id, action_sequence_id))
        attributes = _span_attributes(
            app_id, partition_key, action_sequence_id, action, span.uid, span_dependencies
        )
        exported = self._tracer.start_span(
            span.name,
            context=trace.set_span_in_context(parent.span) if parent is not None else None,
            attributes=attributes,
            start_time=_ns(span.start_time),
        )
        token = None
        if _tracing._SPAN.get() is span:  # a `with` span is current inside its block; a
            # start_span() span is not (see TracerFactory.start_span), so neither is its export
            token = otel_context.attach(trace.set_span_in_context(exported))
        with self._lock:
            self._spans[key] = _Live(exported, token)

    @_never_raises
    def post_end_span(
        self, *, action_sequence_id: int, span: ActionSpan, app_id: str,
        exception: BaseException | None = None, end_time: float | None = None,
        **future_kwargs: Any,
    ) -> None:  # fmt: skip
        key = (app_id, action_sequence_id, span.uid)
        with self._lock:
            self._skipped.discard(key)
            live = self._spans.pop(key, None)
        if live is None:
            return
        if exception is not None:
            _fail(live.span, exception, end_time)
        _detach(live)
        live.span.end(end_time=None if end_time is None else _ns(end_time))

    @_never_raises
    def do_log_attributes(
        self, *, attributes: dict[str, Any], action_sequence_id: int, span: ActionSpan | None,
        app_id: str, **future_kwargs: Any,
    ) -> None:  # fmt: skip
        with self._lock:
            if span is None:
                live = self._steps.get((app_id, action_sequence_id))
            else:
                live = self._spans.get((app_id, action_sequence_id, span.uid))
        if live is not None:
            _set_attributes(live, attributes)

    # -- streams ----------------------------------------------------------------------------------

    @_never_raises
    def post_stream_item(
        self, *, app_id: str, sequence_id: int, item_index: int, stream_initialize_time: float,
        first_stream_item_start_time: float, **future_kwargs: Any,
    ) -> None:  # fmt: skip
        if item_index != 0:
            return
        with self._lock:
            live = self._steps.get((app_id, sequence_id))
        if live is not None:
            first = first_stream_item_start_time - stream_initialize_time
            live.span.set_attribute("gen_ai.response.time_to_first_chunk", first)
            live.span.add_event(
                "turnout.stream.first_item", timestamp=_ns(first_stream_item_start_time)
            )

    @_never_raises
    def post_end_stream(
        self, *, app_id: str, sequence_id: int, items_streamed: int, **future_kwargs: Any
    ) -> None:
        with self._lock:
            live = self._steps.get((app_id, sequence_id))
        if live is not None:
            live.span.set_attribute("turnout.stream.items", items_streamed)


def _detach(live: _Live) -> None:
    """Detach the span's context if it is still the current one here. A stream abandoned and
    closed elsewhere ends its step in another context, where there is nothing to detach."""
    if live.token is not None and trace.get_current_span() is live.span:
        otel_context.detach(live.token)  # type: ignore[arg-type]
    live.token = None


# -- the reverse bridge ---------------------------------------------------------------------------


class ForeignSpanError(Exception):
    """How a failed foreign OpenTelemetry span shows in turnout: its status or exception text."""


class TurnoutSpanProcessor(SpanProcessor):
    """Record spans that other OpenTelemetry instrumentation creates during a step as turnout
    spans (so the local tracker and the UI show them), keeping their nesting.

    Add it to the provider the instrumentation uses
    (``provider.add_span_processor(TurnoutSpanProcessor())``). A span started while a step runs
    (in its thread or task, or where its context was copied) opens a turnout span through
    ``TracerFactory.current().start_span``; when it ends, its attributes, ids and status are
    logged on it. Spans started outside steps, and the spans ``OpenTelemetryHook`` exports, are
    left alone, and the hook does not export the recorded copies again.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open: dict[int, OpenSpan] = {}

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        try:
            self._start(span)
        except Exception:
            logger.exception("could not record the OpenTelemetry span %r in turnout", span)

    def _start(self, span: Any) -> None:
        if _KIND in (span.attributes or {}):
            return  # one of ours
        tracer = TracerFactory.current()
        if tracer is None:
            return  # not inside a step
        parent = None
        if span.parent is not None:
            with self._lock:
                parent = self._open.get(span.parent.span_id)
        token = _BRIDGING.set(True)
        try:
            opened = tracer.start_span(span.name, parent=parent)
        finally:
            _BRIDGING.reset(token)
        with self._lock:
            self._open[span.context.span_id] = opened

    def on_end(self, span: ReadableSpan) -> None:
        try:
            self._end(span)
        except Exception:
            logger.exception("could not record the end of the OpenTelemetry span %r", span)

    def _end(self, span: ReadableSpan) -> None:
        context = span.context
        if context is None:
            return
        with self._lock:
            opened = self._open.pop(context.span_id, None)
        if opened is None:
            return
        attributes: dict[str, Any] = {
            key: list(value) if isinstance(value, tuple) else value
            for key, value in (span.attributes or {}).items()
        }
        attributes["otel.trace_id"] = f"{context.trace_id:032x}"
        attributes["otel.span_id"] = f"{context.span_id:016x}"
        attributes["otel.span_kind"] = span.kind.name
        opened.log_attributes(**attributes)
        opened.end(exception=_foreign_error(span))

    def shutdown(self) -> None:
        with self._lock:
            self._open.clear()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


def _foreign_error(span: ReadableSpan) -> ForeignSpanError | None:
    if span.status.status_code is not StatusCode.ERROR:
        return None
    for event in span.events:
        if event.name == "exception" and event.attributes:
            kind = event.attributes.get("exception.type", "")
            return ForeignSpanError(f"{kind}: {event.attributes.get('exception.message', '')}")
    return ForeignSpanError(span.status.description or "the span's status is ERROR")


# -- replaying tracked applications ---------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class ExportSummary:
    """What ``export_tracked`` sent.

    Attributes:
        endpoint: the OTLP/HTTP traces URL.
        apps: the app ids replayed.
        spans: how many spans were exported.
    """

    endpoint: str
    apps: tuple[str, ...]
    spans: int


def default_endpoint() -> str:
    """The OTLP/HTTP traces URL from the environment, as the OTLP exporter reads it."""
    url = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    if url:
        return url
    base = os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    return base.rstrip("/") + "/v1/traces" if base else DEFAULT_ENDPOINT


def export_tracked(
    project: str,
    app_ids: Iterable[str] | None = None,
    *,
    storage_dir: str | Path | None = None,
    endpoint: str | None = None,
    headers: Mapping[str, str] | None = None,
    compression: str | None = None,
    timeout: float = 10.0,
    service_name: str = "turnout",
) -> ExportSummary:
    """Replay tracked applications to an OTLP/HTTP endpoint (``turnout export-otel``).

    Each application becomes one trace: a ``turnout.application`` root span, its step attempts
    and their spans below, with the original times and the attributes ``OpenTelemetryHook``
    exports live (the log holds no application calls, so steps hang from the root).

    Args:
        project: the tracking project.
        app_ids: the applications to replay; default every application of the project.
        storage_dir: the tracking directory (default ``$TURNOUT_HOME`` or ``~/.turnout``).
        endpoint: the traces URL (default from ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` /
            ``OTEL_EXPORTER_OTLP_ENDPOINT``, else ``http://localhost:4318/v1/traces``).
        headers: HTTP headers (authentication for a vendor); default from
            ``OTEL_EXPORTER_OTLP_HEADERS``.
        compression: ``"gzip"``, ``"deflate"`` or ``"none"`` (default from the environment).
        timeout: seconds per export request.
        service_name: the ``service.name`` resource attribute.

    Raises:
        FileNotFoundError: the project or an application is not in the tracking directory.
        ConnectionError: the endpoint did not accept the spans.
    """
    from turnout.core.tracking import LocalTracker

    tracker = LocalTracker(project, storage_dir)
    if not tracker.project_dir.is_dir():
        home = tracking_home(storage_dir)
        known = sorted(p.name for p in home.iterdir() if p.is_dir()) if home.is_dir() else []
        raise FileNotFoundError(
            f"no tracking project {project!r} under {home} (projects there: {known or 'none'}); "
            f"pass --dir (or storage_dir=) where the LocalTracker wrote it"
        )
    apps = tuple(app_ids) if app_ids is not None else tuple(tracker.list_app_ids())
    paths = [tracker.log_path(app_id) for app_id in apps]
    for app_id, path in zip(apps, paths, strict=True):
        if not path.is_file():
            raise FileNotFoundError(
                f"no tracked application {app_id!r} in project {project!r} "
                f"({path} does not exist); known: {tracker.list_app_ids()}"
            )
    url = endpoint or default_endpoint()
    resource = Resource.create({SERVICE_NAME: service_name, "openinference.project.name": project})
    provider = TracerProvider(resource=resource)
    memory = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    from turnout import __version__

    tracer = provider.get_tracer("turnout", __version__)
    try:
        for path in paths:
            _Replay(tracer).run(path)
        spans = memory.get_finished_spans()
    finally:
        provider.shutdown()
    chosen = None if compression is None else Compression(compression.lower())
    exporter = OTLPSpanExporter(
        endpoint=url, headers=dict(headers) if headers else None, timeout=timeout,
        compression=chosen,
    )  # fmt: skip
    try:
        for start in range(0, len(spans), 512):
            if exporter.export(spans[start : start + 512]) is not SpanExportResult.SUCCESS:
                raise ConnectionError(
                    f"the OTLP endpoint {url} did not accept the spans (unreachable, or it "
                    f"refused them: see the log above); check --endpoint and --header"
                )
    finally:
        exporter.shutdown()  # type: ignore[no-untyped-call]
    return ExportSummary(endpoint=url, apps=apps, spans=len(spans))


class _Replay:
    """Turns one application's log into spans, in log order."""

    def __init__(self, tracer: trace.Tracer) -> None:
        self._tracer = tracer
        self._root: Span | None = None
        self._app: tuple[str, str | None] = ("", None)
        self._graph: dict[str, dict[str, Any]] = {}
        self._steps: dict[int, _Live] = {}
        self._spans: dict[tuple[int, str], _Live] = {}
        self._actions: dict[int, str] = {}
        self._last = 0.0

    def run(self, path: Path) -> None:
        for record in read_log(path):
            when = record.get("time")
            if isinstance(when, int | float):
                self._last = max(self._last, float(when))
            handler = getattr(self, f"_on_{record.get('t')}", None)
            if handler is not None and (self._root is not None or record.get("t") == "app"):
                handler(record)
        for live in [*self._spans.values(), *self._steps.values()]:
            live.span.set_attribute("turnout.unfinished", True)
            live.span.end(end_time=_ns(self._last))
        if self._root is not None:
            self._root.end(end_time=_ns(self._last))

    def _on_app(self, record: dict[str, Any]) -> None:
        if self._root is not None:
            return  # a resumed run appends another app line: same application, same trace
        self._app = (record["app_id"], record.get("partition_key"))
        self._graph = {a["name"]: a for a in record.get("graph", {}).get("actions", [])}
        attributes = {
            **_app_attributes(*self._app),
            _KIND: "application",
            "openinference.span.kind": "CHAIN",
            "turnout.replayed": True,
        }
        self._root = self._tracer.start_span(
            "turnout.application", attributes=attributes, start_time=_ns(record["time"])
        )

    def _on_begin(self, record: dict[str, Any]) -> None:
        assert self._root is not None
        name, seq = record["action"], record["seq"]
        declared = self._graph.get(name, {})
        attributes = _step_attributes(
            *self._app, seq, name, declared.get("reads", ()), declared.get("writes", ()),
            record.get("attempt", 1),
        )  # fmt: skip
        span = self._tracer.start_span(
            name, context=trace.set_span_in_context(self._root), attributes=attributes,
            start_time=_ns(record["time"]),
        )  # fmt: skip
        self._steps[seq] = _Live(span)
        self._actions[seq] = name

    def _on_end(self, record: dict[str, Any]) -> None:
        live = self._steps.pop(record["seq"], None)
        if live is None:
            return
        for key in [k for k in self._spans if k[0] == record["seq"]]:
            self._spans.pop(key).span.end(end_time=_ns(record["time"]))
        if record.get("error"):
            _replay_failure(live.span, record["error"], record["time"])
            live.span.set_attribute("turnout.will_retry", record.get("status") == "retrying")
        live.span.end(end_time=_ns(record["time"]))

    def _on_span_start(self, record: dict[str, Any]) -> None:
        seq = record["seq"]
        parent = self._spans.get((seq, record.get("parent") or "")) or self._steps.get(seq)
        if parent is None:
            return
        action = self._actions.get(seq, "")
        attributes = _span_attributes(*self._app, seq, action, record["span"], ())
        span = self._tracer.start_span(
            record.get("name", "span"), context=trace.set_span_in_context(parent.span),
            attributes=attributes, start_time=_ns(record["time"]),
        )  # fmt: skip
        self._spans[(seq, record["span"])] = _Live(span)

    def _on_span_end(self, record: dict[str, Any]) -> None:
        live = self._spans.pop((record["seq"], record["span"]), None)
        if live is None:
            return
        if record.get("error"):
            _replay_failure(live.span, record["error"], record["time"])
        live.span.end(end_time=_ns(record["time"]))

    def _on_attr(self, record: dict[str, Any]) -> None:
        seq, uid = record["seq"], record.get("span")
        live = self._spans.get((seq, uid)) if uid else self._steps.get(seq)
        if live is not None:
            _set_attributes(live, {record["key"]: _logged_value(record.get("value"))})

    def _on_stream_first(self, record: dict[str, Any]) -> None:
        live = self._steps.get(record["seq"])
        if live is not None:
            live.span.add_event("turnout.stream.first_item", timestamp=_ns(record["time"]))

    def _on_stream_end(self, record: dict[str, Any]) -> None:
        live = self._steps.get(record["seq"])
        if live is not None:
            live.span.set_attribute("turnout.stream.items", record.get("items", 0))


def _logged_value(value: Any) -> Any:
    """A logged attribute as it was before the tracker encoded it, as far as OTel cares."""
    if isinstance(value, dict) and value.get("__turnout__") == "repr":
        return value.get("v", "")
    try:
        return DEFAULT_SERDE.decode(value)
    except Exception:
        return value


def _replay_failure(span: Span, error: str, when: float) -> None:
    """An error logged as a traceback text, as the ``exception`` event the live hook records."""
    last = error.strip().splitlines()[-1] if error.strip() else error
    kind, _, message = last.partition(": ")
    span.set_status(Status(StatusCode.ERROR, last))
    span.add_event(
        "exception",
        {"exception.type": kind, "exception.message": message, "exception.stacktrace": error},
        timestamp=_ns(when),
    )
