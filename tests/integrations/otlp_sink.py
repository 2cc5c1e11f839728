"""A local OTLP/HTTP trace receiver for tests: the real wire format, no extra process.

``OTLPSink`` serves ``POST /v1/traces`` on 127.0.0.1 (port 0) with the standard library's
``ThreadingHTTPServer``, decodes each ``ExportTraceServiceRequest`` (gzip or deflate bodies
too) and keeps its spans as plain ``SinkSpan`` records. Use the ``otlp_sink`` fixture (import it
into a test module) or ``with OTLPSink() as sink:``; point an ``OTLPSpanExporter`` at
``sink.endpoint`` and, after ``provider.force_flush()``, read ``sink.spans``. The export call
returns only once the request was handled, so no waiting is needed.
"""

from __future__ import annotations

import gzip
import threading
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

pytest.importorskip("opentelemetry.proto")

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

__all__ = ["OTLPSink", "SinkSpan", "otlp_sink"]


@dataclass(frozen=True, kw_only=True)
class SinkSpan:
    """One received span, decoded (ids as lowercase hex, ``parent_span_id`` "" for a root)."""

    name: str
    trace_id: str
    span_id: str
    parent_span_id: str
    start_ns: int
    end_ns: int
    attributes: dict[str, Any]
    status_code: int  # 0 unset, 1 ok, 2 error (the protobuf enum)
    status_message: str
    events: list[tuple[str, dict[str, Any]]]
    resource: dict[str, Any]
    scope: str
    kind: int = field(default=1)


def any_value(value: AnyValue) -> Any:
    """A protobuf ``AnyValue`` as a Python value (arrays as tuples, maps as dicts)."""
    which = value.WhichOneof("value")
    if which is None:
        return None
    if which == "array_value":
        return tuple(any_value(item) for item in value.array_value.values)
    if which == "kvlist_value":
        return {kv.key: any_value(kv.value) for kv in value.kvlist_value.values}
    return getattr(value, which)


def _attributes(kvs: Any) -> dict[str, Any]:
    return {kv.key: any_value(kv.value) for kv in kvs}


class OTLPSink:
    """The receiver; see the module docstring.

    Attributes:
        spans: every span received, in arrival order.
        requests: each request's ``Content-Encoding`` header ("" if none) and body size.
        headers: each request's headers, names in lowercase.
        status: the HTTP status to answer with (set 503 to test a failing endpoint).
    """

    def __init__(self) -> None:
        self.spans: list[SinkSpan] = []
        self.requests: list[tuple[str, int]] = []
        self.headers: list[dict[str, str]] = []
        self.status = 200
        self._lock = threading.Lock()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                encoding = self.headers.get("Content-Encoding", "")
                headers = {k.lower(): v for k, v in self.headers.items()}
                sink._receive(self.path, encoding, body, headers)
                answer = ExportTraceServiceResponse().SerializeToString()
                self.send_response(sink.status if self.path == "/v1/traces" else 404)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # keep test output clean

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        # A short poll interval: stop() returns at once instead of after up to half a second.
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def endpoint(self) -> str:
        """The traces URL to give an ``OTLPSpanExporter``."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/v1/traces"

    def _receive(self, path: str, encoding: str, body: bytes, headers: dict[str, str]) -> None:
        if path != "/v1/traces" or self.status != 200:
            return
        if encoding == "gzip":
            body = gzip.decompress(body)
        elif encoding == "deflate":
            body = zlib.decompress(body)
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        received = []
        for resource_spans in request.resource_spans:
            resource = _attributes(resource_spans.resource.attributes)
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    received.append(
                        SinkSpan(
                            name=span.name,
                            trace_id=span.trace_id.hex(),
                            span_id=span.span_id.hex(),
                            parent_span_id=span.parent_span_id.hex(),
                            start_ns=span.start_time_unix_nano,
                            end_ns=span.end_time_unix_nano,
                            attributes=_attributes(span.attributes),
                            status_code=span.status.code,
                            status_message=span.status.message,
                            events=[(e.name, _attributes(e.attributes)) for e in span.events],
                            resource=resource,
                            scope=scope_spans.scope.name,
                            kind=span.kind,
                        )
                    )
        with self._lock:
            self.requests.append((encoding, len(body)))
            self.headers.append(headers)
            self.spans.extend(received)

    def by_name(self, name: str) -> list[SinkSpan]:
        """The received spans called ``name``."""
        return [span for span in self.spans if span.name == name]

    def start(self) -> OTLPSink:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def __enter__(self) -> OTLPSink:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@pytest.fixture
def otlp_sink() -> Iterator[OTLPSink]:
    """A running ``OTLPSink``, stopped after the test."""
    with OTLPSink() as sink:
        yield sink
