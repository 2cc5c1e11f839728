"""``OpenTelemetryHook``: application calls, steps and spans exported as OpenTelemetry spans."""

from __future__ import annotations

import contextvars
import threading
from collections import OrderedDict
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context

from turnout.core.tracing import ActionSpan, TracerFactory
from turnout.integrations._content import ContentCapture, end_scoped, scoped_capture
from turnout.integrations.opentelemetry._common import (
    _BRIDGING,
    _KIND,
    _app_attributes,
    _fail,
    _Live,
    _never_raises,
    _ns,
    _set_attributes,
    _span_attributes,
    _step_attributes,
    to_json,
)

__all__ = ["OpenTelemetryHook"]

_LAST_CALLS = 1_024


# Ended spans whose attachment is covered by another's (see OpenTelemetryHook._detach); shared
# by every hook, since two applications' streams may be read in turns in one context.
_WAITING: OrderedDict[int, _Live] = OrderedDict()
_WAITING_LOCK = threading.Lock()


class OpenTelemetryHook:
    """Export application calls, steps and ``__tracer`` spans as OpenTelemetry spans.

    Pass it to ``ApplicationBuilder.with_hooks``. Each public call (``run``, ``step``,
    ``iterate``, ``astream_result``...) is a span named ``turnout.<method>``; each step attempt a
    child span named after its action; each ``__tracer`` span (or ``start_span``) a child of its
    step or of its parent span. While the action runs, its step span (and inside a ``with
    __tracer(...)`` block, that span) is the current OpenTelemetry span, so spans of instrumented
    libraries nest under it. The call span's parent is the running step that spawned the
    application (``with_spawning_parent``), else whatever span is current when the call starts
    (a web request's, say).

    Args:
        tracer_provider: where spans go; default the global provider
            (``opentelemetry.trace.get_tracer_provider()``), which this hook never sets.
        tracer_name: the instrumentation scope name of the exported spans.
        capture_state: also export each step's input (the state keys it reads and its inputs)
            as ``input.value``, and the state keys it wrote and its result as
            ``output.value`` (JSON). Off by default: state may hold personal data.
        capture_content: record the prompts and completions of the model calls made by the
            OpenAI, LangChain and LlamaIndex adapters during this application's steps, on
            their LLM spans (``gen_ai.input.messages``, ``llm.input_messages.*``...; see
            ``capture_content()``): ``True`` with the default limits, a ``ContentCapture``
            for other limits or a ``redact`` callback, ``False`` to keep content out whatever
            the process-wide setting says. ``None`` (default) follows the process-wide
            ``capture_content()``, itself off unless
            ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true``.
    """

    # Children of parallel actions run in this process get this hook too, so their steps are
    # exported under the parent step (see turnout.core.children).
    cascade_to_children = True

    def __init__(
        self,
        tracer_provider: trace.TracerProvider | None = None,
        *,
        tracer_name: str = "turnout",
        capture_state: bool = False,
        capture_content: bool | ContentCapture | None = None,
    ) -> None:
        if tracer_provider is not None and not isinstance(tracer_provider, trace.TracerProvider):
            raise TypeError(
                f"OpenTelemetryHook(tracer_provider=...) takes an OpenTelemetry TracerProvider, "
                f"not {type(tracer_provider).__name__}: pass "
                f"opentelemetry.sdk.trace.TracerProvider() (or nothing, for the global one)."
            )
        if capture_content is not None and not isinstance(capture_content, bool | ContentCapture):
            raise TypeError(
                f"OpenTelemetryHook(capture_content={capture_content!r}): give True, False, "
                f"None (follow capture_content()) or a ContentCapture(...)"
            )
        from turnout import __version__

        provider = tracer_provider or trace.get_tracer_provider()
        self._tracer = provider.get_tracer(tracer_name, __version__)
        self.capture_state = capture_state
        self.capture_content: ContentCapture | None = (
            ContentCapture(enabled=capture_content)
            if isinstance(capture_content, bool)
            else capture_content
        )
        self._content_tokens: dict[tuple[str, int], object] = {}
        self._lock = threading.Lock()
        self._calls: dict[str, _Live] = {}
        self._last_call: OrderedDict[str, Context] = OrderedDict()
        self._steps: dict[tuple[str, int], _Live] = {}
        self._spans: dict[tuple[str, int, str], _Live] = {}
        # Streamed steps: their post_run_step comes before post_end_stream (Burr's order), so
        # a streamed step's span ends at its stream's end, with the item count set.
        self._streaming: set[tuple[str, int]] = set()
        self._ending: dict[tuple[str, int], _Live] = {}
        self._spawned_by: OrderedDict[str, tuple[str, int]] = OrderedDict()

    @_never_raises
    def post_application_create(
        self, *, app_id: str, spawning_parent_pointer: Any = None, **future_kwargs: Any
    ) -> None:
        pointer = spawning_parent_pointer
        if pointer is None or pointer.sequence_id is None:
            return
        with self._lock:
            self._spawned_by[app_id] = (pointer.app_id, pointer.sequence_id)
            while len(self._spawned_by) > _LAST_CALLS:
                self._spawned_by.popitem(last=False)

    def _detach(self, live: _Live) -> None:
        """Detach the span's context when it ends.

        Attachments form a stack per context. When the span is not on top here (another step,
        say a second stream read in turns, attached over it), detaching now would also undo
        the one on top, so it waits: when a later detach (by any hook) uncovers it, it is
        detached too. A
        stream abandoned and closed in another context never uncovers it; the waiting list
        is bounded."""
        if live.token is None:
            return
        if trace.get_current_span() is not live.span:
            with _WAITING_LOCK:
                _WAITING[id(live.span)] = live
                while len(_WAITING) > _LAST_CALLS:
                    _WAITING.popitem(last=False)
            return
        otel_context.detach(live.token)  # type: ignore[arg-type]
        live.token = None
        while True:  # uncover the ended spans that were waiting under it
            with _WAITING_LOCK:
                waiting = _WAITING.pop(id(trace.get_current_span()), None)
            if waiting is None or waiting.token is None:
                return
            token, waiting.token = waiting.token, None
            if not _reset_here(token):
                return

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
        with self._lock:
            spawner = self._steps.get(self._spawned_by.get(app_id, ("", -1)))
        # A child application spawned by a running step nests under it, even when it runs in a
        # thread that did not copy the step's context.
        parent = trace.set_span_in_context(spawner.span) if spawner is not None else None
        span = self._tracer.start_span(f"turnout.{method}", context=parent, attributes=attributes)
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
        if self.capture_content is not None:  # same context as the action, as above
            scoped = scoped_capture(app_id, sequence_id, self.capture_content)
            with self._lock:
                self._content_tokens[(app_id, sequence_id)] = scoped

    @_never_raises
    def post_run_step(
        self, *, app_id: str, sequence_id: int, state: Any, action: Any,
        result: dict[str, Any] | None = None, exception: BaseException | None = None,
        will_retry: bool = False, **future_kwargs: Any,
    ) -> None:  # fmt: skip
        with self._lock:
            live = self._steps.pop((app_id, sequence_id), None)
            scoped = self._content_tokens.pop((app_id, sequence_id), None)
            leftovers = [
                (key, self._spans.pop(key))
                for key in [k for k in self._spans if k[:2] == (app_id, sequence_id)]
            ]
        if scoped is not None:
            end_scoped(scoped)
        for _, span_live in leftovers:  # spans never ended: end them with their step
            span_live.span.set_attribute("turnout.unfinished", True)
            self._detach(span_live)
            span_live.span.end()
        if live is None:
            return
        span = live.span
        span.set_attribute("turnout.status", _status(exception, will_retry))
        if exception is not None:
            _fail(span, exception)
            span.set_attribute("turnout.will_retry", will_retry)
        elif self.capture_state and result is not None:
            written = {key: state[key] for key in action.writes if key in state}
            span.set_attribute("output.value", to_json({"state": written, "result": result}))
            span.set_attribute("output.mime_type", "application/json")
        self._detach(live)
        with self._lock:
            streamed = (app_id, sequence_id) in self._streaming
            if streamed:
                self._ending[(app_id, sequence_id)] = live
        if not streamed:
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
        if TracerFactory.current_span() is span:  # a `with` span is current inside its block; a
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
            live = self._spans.pop(key, None)
        if live is None:
            return
        if exception is not None:
            _fail(live.span, exception, end_time)
            if not isinstance(exception, Exception):  # a stream closed early, a task cancelled
                live.span.set_attribute("turnout.cancelled", True)
        self._detach(live)
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
    def pre_start_stream(self, *, app_id: str, sequence_id: int, **future_kwargs: Any) -> None:
        with self._lock:
            self._streaming.add((app_id, sequence_id))

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
            self._streaming.discard((app_id, sequence_id))
            ended = self._ending.pop((app_id, sequence_id), None)
            live = ended or self._steps.get((app_id, sequence_id))
        if live is not None:
            live.span.set_attribute("turnout.stream.items", items_streamed)
        if ended is not None:
            ended.span.end()


def _status(exception: BaseException | None, will_retry: bool) -> str:
    """The step's outcome, in the local tracker's words."""
    if exception is None:
        return "completed"
    if will_retry:
        return "retrying"
    return "failed" if isinstance(exception, Exception) else "cancelled"


def _reset_here(token: object) -> bool:
    """Undo an attach if it was made in this context; ``False`` (and nothing logged) if not.
    OpenTelemetry's default runtime context hands out ``contextvars`` tokens."""
    if isinstance(token, contextvars.Token):
        try:
            token.var.reset(token)
        except (ValueError, RuntimeError):  # another context's, or already used
            return False
        return True
    otel_context.detach(token)  # type: ignore[arg-type]
    return True
