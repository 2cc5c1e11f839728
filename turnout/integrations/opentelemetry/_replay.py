"""Replaying tracked applications to an OTLP/HTTP endpoint (``turnout export-otel``)."""

from __future__ import annotations

import functools
import hashlib
import os
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.trace import Span, Status, StatusCode

from turnout.core.serde import DEFAULT_SERDE, TAG
from turnout.core.tracking import TrackingWarning, tracking_home
from turnout.core.tracklog import (
    READS_UP_TO,
    REPR,
    AppRecord,
    AttrRecord,
    BeginRecord,
    EndRecord,
    LogChunk,
    Record,
    SpanEndRecord,
    SpanStartRecord,
    StreamEndRecord,
    StreamFirstRecord,
    first_app,
    read_records,
)
from turnout.integrations.opentelemetry._common import (
    _KIND,
    _app_attributes,
    _Live,
    _ns,
    _set_attributes,
    _span_attributes,
    _step_attributes,
)

__all__ = ["DEFAULT_ENDPOINT", "ExportSummary", "default_endpoint", "export_tracked"]

DEFAULT_ENDPOINT = "http://localhost:4318/v1/traces"


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


def traces_url(endpoint: str) -> str:
    """``endpoint`` with ``/v1/traces`` appended when it names no path (``http://host:4318``),
    as OpenTelemetry does for ``OTEL_EXPORTER_OTLP_ENDPOINT``; a URL with a path is kept."""
    if urlsplit(endpoint).path in ("", "/"):
        return endpoint.rstrip("/") + "/v1/traces"
    return endpoint


def export_tracked(
    project: str,
    app_ids: Iterable[str] | str | None = None,
    *,
    storage_dir: str | Path | None = None,
    endpoint: str | None = None,
    headers: Mapping[str, str] | None = None,
    compression: str | None = None,
    timeout: float = 10.0,
    service_name: str = "turnout",
    store: Any = None,
) -> ExportSummary:
    """Replay tracked applications to an OTLP/HTTP endpoint (``turnout export-otel``).

    Each application becomes one trace: a ``turnout.application`` root span, its step attempts
    and their spans below, with the original times and the attributes ``OpenTelemetryHook``
    exports live (the log holds no application calls, so steps hang from the root).

    Trace and span ids are derived from the project, the app id and each span's place in the
    log, so exporting an application twice sends the same ids again: a vendor that keys spans
    by id keeps one trace, not two copies (a log that grew in between adds the new spans).

    Args:
        project: the tracking project.
        app_ids: the applications to replay (one id or several); default every application
            of the project.
        storage_dir: the tracking directory (default ``$TURNOUT_HOME`` or ``~/.turnout``).
        endpoint: the traces URL; with no path (``http://host:4318``) ``/v1/traces`` is
            appended (default from ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` /
            ``OTEL_EXPORTER_OTLP_ENDPOINT``, else ``http://localhost:4318/v1/traces``).
        headers: HTTP headers (authentication for a vendor); default from
            ``OTEL_EXPORTER_OTLP_HEADERS``.
        compression: ``"gzip"``, ``"deflate"`` or ``"none"`` (default from the environment).
        timeout: seconds per export request.
        service_name: the ``service.name`` resource attribute.
        store: a tracking store to read instead of the tracking directory: an object with
            ``read_records(app_id)`` (a ``tracklog.LogChunk``) and ``list_app_ids()``, such as
            ``turnout.integrations.postgres_tracking.PostgresTracker`` of ``project``.

    Raises:
        FileNotFoundError: the project or an application is not in the tracking directory.
        ConnectionError: the endpoint did not accept the spans.
    """
    if isinstance(app_ids, str):
        app_ids = [app_ids]  # one id, not its characters
    if store is not None:
        apps = tuple(app_ids) if app_ids is not None else tuple(store.list_app_ids())
        sources = [_stored(store, app_id, project) for app_id in apps]
    else:
        apps, sources = _files(project, app_ids, storage_dir)
    url = traces_url(endpoint) if endpoint else default_endpoint()
    resource = Resource.create({SERVICE_NAME: service_name, "openinference.project.name": project})
    ids = _DerivedIds(project)
    provider = TracerProvider(resource=resource, id_generator=ids)
    memory = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    from turnout import __version__

    tracer = provider.get_tracer("turnout", __version__)
    steps: dict[tuple[str, int], Span] = {}  # every replayed step, for spawned children
    try:
        for source in _parents_first(sources):
            _Replay(tracer, steps, ids).run(source.label, source.read())
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


@dataclass(frozen=True, kw_only=True, slots=True)
class _Source:
    """One application to replay: what messages call it, its first app record, its records."""

    label: str
    app: AppRecord | None
    read: Callable[[], LogChunk]


def _files(
    project: str, app_ids: Iterable[str] | None, storage_dir: str | Path | None
) -> tuple[tuple[str, ...], list[_Source]]:
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
    sources = []
    for app_id in apps:
        path = tracker.log_path(app_id)
        if not path.is_file():
            raise FileNotFoundError(
                f"no tracked application {app_id!r} in project {project!r} "
                f"({path} does not exist); known: {tracker.list_app_ids()}"
            )
        sources.append(
            _Source(
                label=str(path), app=first_app(path), read=functools.partial(read_records, path)
            )
        )
    return apps, sources


def _stored(store: Any, app_id: str, project: str) -> _Source:
    chunk = store.read_records(app_id)
    if not chunk.records:
        raise FileNotFoundError(
            f"no tracked application {app_id!r} in project {project!r} of {store!r}; "
            f"known: {store.list_app_ids()}"
        )
    app = next((r for r in chunk.records if isinstance(r, AppRecord)), None)
    return _Source(label=f"the records of app {app_id!r}", app=app, read=lambda: chunk)


def _parents_first(sources: list[_Source]) -> list[_Source]:
    """The applications ordered so that one spawned by another comes after it."""
    parent_of: dict[str, str] = {}
    by_app: dict[str, _Source] = {}
    for source in sources:
        app = source.app
        app_id = app.app_id if app else source.label
        by_app[app_id] = source
        spawner = (app.spawning_parent if app else None) or {}
        if spawner.get("app_id"):
            parent_of[app_id] = spawner["app_id"]
    ordered: list[_Source] = []
    placed: set[str] = set()

    def place(app_id: str, chain: frozenset[str]) -> None:
        if app_id in placed or app_id in chain:
            return
        parent = parent_of.get(app_id)
        if parent in by_app:
            place(parent, chain | {app_id})
        placed.add(app_id)
        ordered.append(by_app[app_id])

    for app_id in by_app:
        place(app_id, frozenset())
    return ordered


class _DerivedIds(IdGenerator):
    """Ids from ``(project, app id, label)`` rather than random: the replay sets ``key`` before
    starting each span, so a second export of the same log repeats the same ids."""

    def __init__(self, project: str) -> None:
        self.project = project
        self.key: tuple[str, str] = ("", "")

    def _digest(self, *parts: str, size: int) -> int:
        data = "\x1f".join((self.project, *parts)).encode("utf-8")
        return int.from_bytes(hashlib.blake2b(data, digest_size=size).digest(), "big") or 1

    def generate_trace_id(self) -> int:
        return self._digest(self.key[0], size=16)

    def generate_span_id(self) -> int:
        return self._digest(*self.key, size=8)


class _Replay:
    """Turns one application's log into spans, in log order. A child application whose
    spawning parent was replayed first nests under the parent's step."""

    def __init__(
        self, tracer: trace.Tracer, steps: dict[tuple[str, int], Span], ids: _DerivedIds
    ) -> None:
        self._tracer = tracer
        self._ids = ids
        self._attempts: dict[int, int] = {}  # begin records seen per sequence id
        self._all_steps = steps
        self._root: Span | None = None
        self._app: tuple[str, str | None] = ("", None)
        self._graph: dict[str, dict[str, Any]] = {}
        self._steps: dict[int, _Live] = {}
        self._spans: dict[tuple[int, str], _Live] = {}
        self._actions: dict[int, str] = {}
        self._last = 0.0

    def run(self, label: str, chunk: LogChunk) -> None:
        if chunk.version is not None and chunk.version > READS_UP_TO:
            warnings.warn(
                f"{label} is a tracking log in format version {chunk.version}; this turnout reads "
                f"versions up to {READS_UP_TO}, so its spans are exported as far as it "
                f"understands them: upgrade turnout (pip install -U turnout) to export it all.",
                TrackingWarning,
                stacklevel=4,
            )
        for record in chunk.records:
            when = getattr(record, "time", None)
            if isinstance(when, int | float):
                self._last = max(self._last, float(when))
            if self._root is not None or isinstance(record, AppRecord):
                self._on(record)
        for live in [*self._spans.values(), *self._steps.values()]:
            live.span.set_attribute("turnout.unfinished", True)
            live.span.end(end_time=_ns(self._last))
        if self._root is not None:
            self._root.end(end_time=_ns(self._last))

    def _on(self, record: Record) -> None:
        if isinstance(record, AppRecord):
            self._on_app(record)
        elif isinstance(record, BeginRecord):
            self._on_begin(record)
        elif isinstance(record, EndRecord):
            self._on_end(record)
        elif isinstance(record, SpanStartRecord):
            self._on_span_start(record)
        elif isinstance(record, SpanEndRecord):
            self._on_span_end(record)
        elif isinstance(record, AttrRecord):
            self._on_attr(record)
        elif isinstance(record, StreamFirstRecord):
            live = self._steps.get(record.seq)
            if live is not None:
                live.span.add_event("turnout.stream.first_item", timestamp=_ns(record.time))
        elif isinstance(record, StreamEndRecord):
            live = self._steps.get(record.seq)
            if live is not None:
                live.span.set_attribute("turnout.stream.items", record.items)

    def _on_app(self, record: AppRecord) -> None:
        if self._root is not None:
            return  # a resumed run appends another app line: same application, same trace
        self._app = (record.app_id, record.partition_key)
        actions = record.graph.get("actions", [])
        self._graph = {a["name"]: a for a in actions if isinstance(a, dict) and "name" in a}
        attributes = {
            **_app_attributes(*self._app),
            _KIND: "application",
            "openinference.span.kind": "CHAIN",
            "turnout.replayed": True,
        }
        spawner = record.spawning_parent or {}
        self._ids.key = (self._app[0], "application")
        parent = self._all_steps.get((spawner.get("app_id", ""), spawner.get("sequence_id", -1)))
        self._root = self._tracer.start_span(
            "turnout.application",
            context=trace.set_span_in_context(parent) if parent is not None else None,
            attributes=attributes,
            start_time=_ns(record.time),
        )

    def _on_begin(self, record: BeginRecord) -> None:
        assert self._root is not None
        name, seq = record.action, record.seq
        declared = self._graph.get(name, {})
        attributes = _step_attributes(
            *self._app, seq, name, declared.get("reads", ()), declared.get("writes", ()),
            record.attempt,
        )  # fmt: skip
        self._attempts[seq] = self._attempts.get(seq, 0) + 1
        self._ids.key = (self._app[0], f"step/{seq}/{self._attempts[seq]}")
        span = self._tracer.start_span(
            name, context=trace.set_span_in_context(self._root), attributes=attributes,
            start_time=_ns(record.time),
        )  # fmt: skip
        self._steps[seq] = _Live(span)
        self._actions[seq] = name
        self._all_steps[(self._app[0], seq)] = span

    def _on_end(self, record: EndRecord) -> None:
        live = self._steps.pop(record.seq, None)
        if live is None:
            return
        for key in [k for k in self._spans if k[0] == record.seq]:
            self._spans.pop(key).span.end(end_time=_ns(record.time))
        live.span.set_attribute("turnout.status", record.status)
        if record.error:
            _replay_failure(live.span, record.error, record.time)
            live.span.set_attribute("turnout.will_retry", record.status == "retrying")
        live.span.end(end_time=_ns(record.time))

    def _on_span_start(self, record: SpanStartRecord) -> None:
        seq = record.seq
        parent = self._spans.get((seq, record.parent or "")) or self._steps.get(seq)
        if parent is None:
            return
        action = self._actions.get(seq, "")
        attributes = _span_attributes(
            *self._app, seq, action, record.span, list(record.dependencies)
        )
        attempt = self._attempts.get(seq, 1)
        self._ids.key = (self._app[0], f"span/{seq}/{attempt}/{record.span}")
        span = self._tracer.start_span(
            record.name, context=trace.set_span_in_context(parent.span),
            attributes=attributes, start_time=_ns(record.time),
        )  # fmt: skip
        self._spans[(seq, record.span)] = _Live(span)

    def _on_span_end(self, record: SpanEndRecord) -> None:
        live = self._spans.pop((record.seq, record.span), None)
        if live is None:
            return
        if record.error:
            _replay_failure(live.span, record.error, record.time)
        live.span.end(end_time=_ns(record.time))

    def _on_attr(self, record: AttrRecord) -> None:
        seq, uid = record.seq, record.span
        live = self._spans.get((seq, uid)) if uid else self._steps.get(seq)
        if live is not None:
            _set_attributes(live, {record.key: _logged_value(record.value)})


def _logged_value(value: Any) -> Any:
    """A logged attribute as it was before the tracker encoded it, as far as OTel cares."""
    if isinstance(value, dict) and value.get(TAG) == REPR:
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
