"""Sends serialized OTLP metric requests to a collector, over gRPC (exporter/telemetry/otlp_grpc.py)
or HTTP/protobuf (exporter/telemetry/otlp_http.py), as exporter/telemetry/otlp_settings.py says.
Transient failures are retried with exponential backoff until the send's timeout has passed; the
caller gets one OtlpError and decides how to report it."""

from __future__ import annotations

import logging
import random
import threading
import time
from typing import Protocol

from exporter.telemetry.otlp_replies import AttemptFailed, one_line
from exporter.telemetry.otlp_settings import PROTOCOLS, OtlpSettings

log = logging.getLogger(__name__)

FIRST_BACKOFF = 1.0  # seconds before the first retry, doubled at each one


class OtlpError(Exception):
    """A push that failed for good (after retries): str() is one line saying why (endpoint, status/code, reason)."""


def backoff_delay(retry: int) -> float:
    """Seconds to wait before retry number `retry` (0 for the first): 1, 2, 4 ... with ±20 % jitter."""
    return FIRST_BACKOFF * 2 ** min(retry, 20) * random.uniform(0.8, 1.2)


class Transport(Protocol):
    def export(self, request: bytes, timeout: float) -> tuple[int, str]:
        """One attempt: (rejected data points, the server's message), or AttemptFailed."""
        ...

    def close(self) -> None: ...


def transport(settings: OtlpSettings) -> Transport:
    """The transport of the settings' protocol. Each imports its library only when it is chosen:
    grpc alone adds ~25 MB to the exporter's memory and requests ~15 MB, and a node that does not
    push (the default) needs neither."""
    if settings.protocol == "grpc":
        from exporter.telemetry.otlp_grpc import GrpcTransport
        return GrpcTransport(settings)
    from exporter.telemetry.otlp_http import HttpTransport
    return HttpTransport(settings)


class OtlpMetricsClient:
    def __init__(self, settings: OtlpSettings) -> None:
        if settings.protocol not in PROTOCOLS:
            raise ValueError(f"unsupported OTLP protocol {settings.protocol!r}")
        self.settings = settings
        self._closed = threading.Event()
        self._transport = transport(settings)
        self._warned_rejections = False

    def send(self, request: bytes) -> None:
        """Sends one serialized ExportMetricsServiceRequest; retries transient failures with exponential backoff and
        jitter until settings.timeout has passed; raises OtlpError when it gives up or the failure is not transient."""
        where, timeout = self.settings.endpoint, self.settings.timeout
        deadline = time.monotonic() + timeout
        attempts = 0
        while True:
            if self._closed.is_set():
                raise OtlpError(f"{where}: the OTLP client is closed")
            attempts += 1
            try:
                rejected, message = self._transport.export(request, max(deadline - time.monotonic(), 0.001))
            except AttemptFailed as failure:
                if not failure.retryable:
                    raise OtlpError(f"{where}: {failure.reason}") from None
                delay = failure.delay if failure.delay is not None else backoff_delay(attempts - 1)
                if time.monotonic() + delay >= deadline:
                    tries = f"{attempts} attempt{'s' if attempts > 1 else ''}"
                    raise OtlpError(f"{where}: {failure.reason} (gave up after {tries}, timeout {timeout:g} s)") \
                        from None
                log.debug("OTLP push to %s failed (%s); retrying in %.2f s", where, failure.reason, delay)
                if self._closed.wait(delay):
                    raise OtlpError(f"{where}: {failure.reason} (closed while waiting to retry)") from None
                continue
            if rejected > 0:
                self._report_rejections(rejected, message)
            return

    def _report_rejections(self, rejected: int, message: str) -> None:
        level = logging.DEBUG if self._warned_rejections else logging.WARNING
        self._warned_rejections = True
        log.log(level, "OTLP endpoint %s rejected %d data points: %s%s", self.settings.endpoint, rejected,
                one_line(message) or "no reason given",
                "" if level == logging.DEBUG else " (later rejections are logged at debug level)")

    def close(self) -> None:
        """Stops a retry wait at once; an attempt in flight ends at its timeout (HTTP) or is cancelled (gRPC)."""
        self._closed.set()
        self._transport.close()


