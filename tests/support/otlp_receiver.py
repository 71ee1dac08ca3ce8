"""A tiny OTLP/HTTP receiver on 127.0.0.1: what a collector sees of the app's spans.

It accepts ``POST /v1/traces`` with protobuf bodies (gzip or not), keeps every raw body (the
privacy checks search the bytes as sent) and decodes each as ``opentelemetry-proto``'s
``ExportTraceServiceRequest``. ``hang=True`` makes it read the request and never answer, the
collector that holds every export until its timeout; ``release()`` then answers the held
requests and every later one, so that a test can let its exporter finish before it ends (an
exporter left retrying against a closed port draws its backoff jitter from the global
``random`` module in its own thread, which a later Hypothesis test reports as its own error).
"""

from __future__ import annotations

import gzip
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

TRACES_PATH = "/v1/traces"


def any_value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    return None if kind is None else getattr(value, kind)


def attributes(pairs: Iterator[KeyValue] | Any) -> dict[str, Any]:
    return {kv.key: any_value(kv.value) for kv in pairs}


@dataclass(frozen=True)
class ReceivedSpan:
    name: str
    attributes: dict[str, Any]
    resource: dict[str, Any]
    trace_id: bytes
    span_id: bytes
    parent_span_id: bytes
    status_code: int


class OTLPReceiver:
    def __init__(self, *, hang: bool = False) -> None:
        self.hang = hang
        self.bodies: list[bytes] = []
        self.requests: list[ExportTraceServiceRequest] = []
        self.posts = 0  # every POST that arrived, answered or not
        self._lock = threading.Lock()
        self._release = threading.Event()
        self._closed = False
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])
        self.url = f"http://127.0.0.1:{self.port}"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver._lock:
                    receiver.posts += 1
                if receiver.hang:
                    receiver._release.wait()
                    if receiver._closed:
                        return
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                if self.path != TRACES_PATH:
                    self.send_error(404)
                    return
                request = ExportTraceServiceRequest.FromString(body)
                with receiver._lock:
                    receiver.bodies.append(body)
                    receiver.requests.append(request)
                answer = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

        return Handler

    def spans(self) -> list[ReceivedSpan]:
        with self._lock:
            requests = list(self.requests)
        out: list[ReceivedSpan] = []
        for request in requests:
            for rs in request.resource_spans:
                resource = attributes(rs.resource.attributes)
                for scope_spans in rs.scope_spans:
                    for span in scope_spans.spans:
                        out.append(
                            ReceivedSpan(
                                span.name,
                                attributes(span.attributes),
                                resource,
                                span.trace_id,
                                span.span_id,
                                span.parent_span_id,
                                span.status.code,
                            )
                        )
        return out

    def raw(self) -> bytes:
        with self._lock:
            return b"".join(self.bodies)

    def wait_spans(self, predicate: Any, timeout_s: float = 15.0) -> list[ReceivedSpan]:
        """The spans once ``predicate(spans)`` holds (the app exports in batches)."""
        deadline = time.monotonic() + timeout_s
        spans = self.spans()
        while not predicate(spans) and time.monotonic() < deadline:
            time.sleep(0.05)
            spans = self.spans()
        return spans

    def release(self) -> None:
        """Answer the held requests, and every later one, as a healthy collector does."""
        self.hang = False
        self._release.set()

    def close(self) -> None:
        self._closed = True
        self._release.set()
        self.server.shutdown()
        self.server.server_close()


@contextmanager
def otlp_receiver(*, hang: bool = False) -> Iterator[OTLPReceiver]:
    receiver = OTLPReceiver(hang=hang)
    thread = threading.Thread(target=receiver.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        receiver.close()
        thread.join(timeout=5)
