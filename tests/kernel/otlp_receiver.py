"""Tiny OTLP metrics receivers for tests: gRPC and HTTP/protobuf on a free loopback port.

Both keep every ExportMetricsServiceRequest they get, so a test can look for the data points
the exporter pushed."""

from __future__ import annotations

import gzip
import threading
import time
from collections.abc import Callable, Iterable
from concurrent import futures
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import grpc
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2_grpc import (
    MetricsServiceServicer,
    add_MetricsServiceServicer_to_server,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.metrics.v1.metrics_pb2 import Metric


def attributes(pairs: Iterable[KeyValue]) -> dict[str, Any]:
    """OTLP key-values as a plain dict (string, int, double and bool values)."""
    return {kv.key: any_value(kv.value) for kv in pairs}


def any_value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    return getattr(value, kind) if kind else None


@dataclass(frozen=True)
class Received:
    """One metric of one request, with the resource attributes it came with."""

    resource: dict[str, Any]
    metric: Metric


class _Store:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: list[ExportMetricsServiceRequest] = []

    def add(self, request: ExportMetricsServiceRequest) -> None:
        with self._lock:
            self.requests.append(request)

    def metrics(self, name: str) -> list[Received]:
        """Every received metric called `name`, oldest first."""
        with self._lock:
            requests = list(self.requests)
        return [Received(attributes(rm.resource.attributes), m)
                for request in requests for rm in request.resource_metrics
                for sm in rm.scope_metrics for m in sm.metrics if m.name == name]

    def wait_for(self, found: Callable[[], Any], timeout: float = 15) -> Any:
        """The first truthy result of found(), polled until `timeout` (then its last result)."""
        deadline = time.monotonic() + timeout
        result = found()
        while not result and time.monotonic() < deadline:
            time.sleep(0.2)
            result = found()
        return result


class GrpcReceiver(_Store):
    """OTLP/gRPC MetricsService on 127.0.0.1:<free port>, insecure."""

    def __init__(self) -> None:
        super().__init__()
        store = self

        class Servicer(MetricsServiceServicer):
            def Export(self, request: ExportMetricsServiceRequest,
                       context: grpc.ServicerContext) -> ExportMetricsServiceResponse:
                store.add(request)
                return ExportMetricsServiceResponse()

        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        add_MetricsServiceServicer_to_server(Servicer(), self._server)
        self.port = self._server.add_insecure_port("127.0.0.1:0")
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._server.start()

    def close(self) -> None:
        self._server.stop(grace=None)

    def __enter__(self) -> GrpcReceiver:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


class HttpReceiver(_Store):
    """OTLP/HTTP with protobuf bodies: POST /v1/metrics on 127.0.0.1:<port> (a free one by default)."""

    def __init__(self, port: int = 0) -> None:
        super().__init__()
        store = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                if self.path != "/v1/metrics":
                    self._reply(404, b"")
                    return
                if self.headers.get("Content-Type") != "application/x-protobuf":
                    self._reply(415, b"")
                    return
                store.add(ExportMetricsServiceRequest.FromString(body))
                self._reply(200, ExportMetricsServiceResponse().SerializeToString())

            def _reply(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        self.endpoint = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self._server.serve_forever, name="otlp-http", daemon=True).start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> HttpReceiver:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
