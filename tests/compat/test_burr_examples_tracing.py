"""The pattern of Burr's ``tracing-and-spans`` example, run on turnout.

Burr's example (and its OpenTelemetry notebook, ``with_tracker(..., use_otel_tracing=True)``)
ran on turnout with only ``burr`` replaced by ``turnout`` in its imports, against a fake OpenAI
server: the tracker recorded the spans Burr records (names, uids, nesting, dependencies) and
the attributes on them, and OpenTelemetry got the spans Burr exports. This program of our own
keeps what it depends on: ``__tracer`` spans nested in sync and async actions,
``span_dependencies``, attributes on spans and on the step, ``@trace`` on a helper, and a span
opened by an OpenTelemetry-instrumented library inside a step. The values asserted are Burr 0.43's.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from turnout.core import ApplicationBuilder, State, action
from turnout.core.tracking import read_log
from turnout.tracking.base import SyncTrackingClient
from turnout.tracking.client import LocalTrackingClient
from turnout.visibility import TracerFactory, trace


@trace()
def score(text: str) -> int:
    return len(text.split())


@action(reads=[], writes=["question", "plan"])
def plan(state: State, question: str, __tracer: TracerFactory) -> tuple[dict[str, Any], State]:
    with __tracer("parse") as span:
        words = question.split()
        span.log_attributes(words=len(words))
    with __tracer("search", span_dependencies=["parse"]):
        with __tracer("connect"):
            _library_call("search.client")
        with __tracer("query", span_dependencies=["connect"]) as span:
            hits = score(question)
            span.log_attributes(hits=hits)
    __tracer.log_attributes(model="stand-in")
    steps = [f"look up {word}" for word in words]
    return {"plan": steps}, state.update(question=question, plan=steps)


@action(reads=["plan"], writes=["answer"])
async def answer(state: State, __tracer: TracerFactory) -> tuple[dict[str, Any], State]:
    async with __tracer("draft"):
        await asyncio.sleep(0)
        __tracer.log_attributes(drafts=1)  # inside the span: on the span, as on Burr
        async with __tracer("polish", span_dependencies=["draft"]):
            text = "; ".join(state["plan"])
    return {"answer": text}, state.update(answer=text)


def _library_call(name: str) -> None:
    """What an OpenTelemetry-instrumented client does (only when OpenTelemetry is installed)."""
    try:
        from opentelemetry import trace as otel
    except ImportError:  # the core test run has no extras
        return
    with otel.get_tracer_provider().get_tracer("some.library").start_as_current_span(name) as s:
        s.set_attribute("library.calls", 1)


def _app(tracker: Any, **tracker_options: Any) -> Any:
    return (
        ApplicationBuilder()
        .with_actions(plan, answer)
        .with_transitions(("plan", "answer"))
        .with_tracker(tracker, **tracker_options)
        .with_identifiers(app_id="research")
        .with_entrypoint("plan")
        .build()
    )


def _run(app: Any) -> Any:
    return asyncio.run(app.arun(halt_after=["answer"], inputs={"question": "why is sky blue"}))


# The spans Burr 0.43 records for this program: step, uid, name, parent uid, dependencies.
SPANS = [
    (0, "0:0", "parse", None, []),
    (0, "0:1", "search", None, ["parse"]),
    (0, "0:1.0", "connect", "0:1", []),
    (0, "0:1.1", "query", "0:1", ["connect"]),
    (0, "0:1.1.0", "score", "0:1.1", []),
    (1, "1:0", "draft", None, []),
    (1, "1:0.0", "polish", "1:0", ["draft"]),
]
ATTRIBUTES = [
    (0, "0:0", {"words": 4}),
    (0, "0:1.1.0", {"text": "why is sky blue"}),
    (0, "0:1.1.0", {"return": 4}),
    (0, "0:1.1", {"hits": 4}),
    (0, None, {"model": "stand-in"}),
    (1, "1:0", {"drafts": 1}),
]


class SpanRecorder(SyncTrackingClient):
    """The span and attribute hooks, as a custom tracker sees them."""

    def __init__(self) -> None:
        self.spans: list[tuple[Any, ...]] = []
        self.attributes: list[tuple[Any, ...]] = []

    def copy(self) -> SpanRecorder:
        return self

    def pre_start_span(self, **kw: Any) -> None:
        span = kw["span"]
        parent = span.parent.uid if span.parent is not None else None
        self.spans.append(
            (kw["action_sequence_id"], span.uid, span.name, parent, kw["span_dependencies"])
        )

    def do_log_attributes(self, **kw: Any) -> None:
        span = kw["span"].uid if kw["span"] is not None else None
        # @trace's own keys (Burr's __burr_function*, turnout's turnout.function*) left out
        kept = {k: v for k, v in kw["attributes"].items() if "function" not in k}
        if kept:
            self.attributes.append((kw["action_sequence_id"], span, kept))

    def post_application_create(self, **kw: Any) -> None: ...
    def pre_run_step(self, **kw: Any) -> None: ...
    def post_run_step(self, **kw: Any) -> None: ...
    def post_end_span(self, **kw: Any) -> None: ...
    def pre_start_stream(self, **kw: Any) -> None: ...
    def post_stream_item(self, **kw: Any) -> None: ...
    def post_end_stream(self, **kw: Any) -> None: ...


def test_a_custom_tracker_sees_burrs_spans_and_attributes() -> None:
    recorder = SpanRecorder()
    _, result, _ = _run(_app(recorder))
    assert result == {"answer": "look up why; look up is; look up sky; look up blue"}
    assert recorder.spans == SPANS
    assert recorder.attributes == ATTRIBUTES


def test_the_local_tracker_records_the_spans_and_attributes(tmp_path: Path) -> None:
    tracker = LocalTrackingClient("tracing", tmp_path)
    _run(_app(tracker))
    records = list(read_log(tracker.log_path("research")))
    spans = [
        (r["seq"], r["span"], r["name"], r["parent"], list(r.get("dependencies", [])))
        for r in records
        if r["t"] == "span_start"
    ]
    assert spans == SPANS
    attributes: dict[tuple[int, str | None], dict[str, Any]] = {}
    for r in records:
        if r["t"] == "attr" and "function" not in r["key"]:
            attributes.setdefault((r["seq"], r["span"]), {})[r["key"]] = r["value"]
    expected: dict[tuple[int, str | None], dict[str, Any]] = {}
    for seq, span, values in ATTRIBUTES:
        expected.setdefault((seq, span), {}).update(values)
    assert attributes == expected
    ends = [(r["seq"], r["span"]) for r in records if r["t"] == "span_end"]
    assert sorted(ends) == sorted((seq, uid) for seq, uid, *_ in SPANS)


# -- with_tracker(..., use_otel_tracing=True) ---------------------------------------------------


def _nesting(spans: Any) -> list[tuple[str, str | None]]:
    """(span, parent span) names, in the order they ended."""
    names = {span.context.span_id: span.name for span in spans}
    out = []
    for span in spans:
        parent = names.get(span.parent.span_id) if span.parent is not None else None
        # turnout's step spans nest under a span for the application call (here "turnout.arun");
        # Burr exports no such span, so its step spans are roots.
        out.append((span.name, None if parent == "turnout.arun" else parent))
    return [pair for pair in out if pair[0] != "turnout.arun"]


def test_use_otel_tracing_exports_the_spans_burr_exports(
    otel_exporter: Any, tmp_path: Path
) -> None:
    _run(_app(LocalTrackingClient("tracing", tmp_path), use_otel_tracing=True))
    assert _nesting(otel_exporter.get_finished_spans()) == [
        ("parse", "plan"),
        ("search.client", "connect"),
        ("connect", "search"),
        ("score", "query"),
        ("query", "search"),
        ("search", "plan"),
        ("plan", None),
        ("polish", "draft"),
        ("draft", "answer"),
        ("answer", None),
    ]
    exported = {span.name: span for span in otel_exporter.get_finished_spans()}
    assert exported["query"].attributes["hits"] == 4
    assert exported["plan"].attributes["model"] == "stand-in"
    assert exported["draft"].attributes["drafts"] == 1
    assert exported["search.client"].attributes["library.calls"] == 1


def test_use_otel_tracing_records_the_library_span_in_the_tracker(
    otel_exporter: Any, tmp_path: Path
) -> None:
    tracker = LocalTrackingClient("tracing", tmp_path)
    _run(_app(tracker, use_otel_tracing=True))
    records = list(read_log(tracker.log_path("research")))
    spans = [(r["span"], r["name"], r["parent"]) for r in records if r["t"] == "span_start"]
    # The example's spans keep the uids they have without OpenTelemetry (Burr 0.43 renumbers
    # them under a span per step, "0:0.0", ...); the library's span nests where it was opened.
    assert spans[:4] == [
        ("0:0", "parse", None),
        ("0:1", "search", None),
        ("0:1.0", "connect", "0:1"),
        ("0:1.0.0", "search.client", "0:1.0"),
    ]
    library = [r for r in records if r["t"] == "attr" and r["span"] == "0:1.0.0"]
    assert ("library.calls", 1) in [(r["key"], r["value"]) for r in library]
