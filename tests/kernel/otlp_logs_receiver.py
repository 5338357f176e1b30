"""A tiny OTLP/gRPC logs receiver for tests, on a loopback port it can give up and take back.

It keeps every log record it gets, with its resource, so a test can look for the records the
exporter sent; stop() and start() again on the same port play an endpoint going down and back."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass
from typing import Any

import grpc
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest, ExportLogsServiceResponse
from opentelemetry.proto.collector.logs.v1.logs_service_pb2_grpc import (
    LogsServiceServicer,
    add_LogsServiceServicer_to_server,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from tests.kernel.harness import free_port


def any_value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    return getattr(value, kind) if kind else None


@dataclass(frozen=True)
class Record:
    body: Any
    attributes: dict[str, Any]
    event_name: str
    time_unix_nano: int
    resource: dict[str, Any]
    scope: str


class LogsReceiver(LogsServiceServicer):
    """OTLP/gRPC LogsService on 127.0.0.1:<port>, insecure."""

    def __init__(self) -> None:
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._lock = threading.Lock()
        self._records: list[Record] = []
        self._server: grpc.Server | None = None
        self.start()

    def Export(self, request: ExportLogsServiceRequest, context: grpc.ServicerContext) -> ExportLogsServiceResponse:
        received = []
        for resource_logs in request.resource_logs:
            resource = {kv.key: any_value(kv.value) for kv in resource_logs.resource.attributes}
            for scope_logs in resource_logs.scope_logs:
                for r in scope_logs.log_records:
                    received.append(Record(any_value(r.body), {kv.key: any_value(kv.value) for kv in r.attributes},
                                           r.event_name, r.time_unix_nano, resource, scope_logs.scope.name))
        with self._lock:
            self._records += received
        return ExportLogsServiceResponse()

    def start(self) -> None:
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        add_LogsServiceServicer_to_server(self, server)
        if server.add_insecure_port(f"127.0.0.1:{self.port}") != self.port:
            raise RuntimeError(f"cannot listen on 127.0.0.1:{self.port}")
        server.start()
        self._server = server

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop(grace=None).wait()
            self._server = None

    def records(self, where: Callable[[Record], bool] = lambda _: True) -> list[Record]:
        with self._lock:
            return [r for r in self._records if where(r)]

    def wait_for(self, where: Callable[[Record], bool], count: int, timeout: float = 30) -> list[Record]:
        """The matching records once there are at least `count` (or what there is after `timeout`)."""
        deadline = time.monotonic() + timeout
        found = self.records(where)
        while len(found) < count and time.monotonic() < deadline:
            time.sleep(0.2)
            found = self.records(where)
        return found
