"""OTLP metric push: every OTEL_METRIC_EXPORT_INTERVAL, the latest collection, encoded request by
request (exporter/telemetry/otlp_encode.py) and sent (exporter/telemetry/otlp_transport.py).

The collection's lock is held only to take a snapshot of references to the series; encoding and
sending happen outside it, so scrapes never wait for a slow collector. A failed push is reported
once when pushes start failing and once when they work again (with how many failed), not at every
push, and counted in netobs_otlp_exports_total{outcome}. Stopping pushes once more."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Mapping

from exporter.telemetry.collection import Collection
from exporter.telemetry.otlp_encode import Encoder, snapshot
from exporter.telemetry.otlp_transport import OtlpError, OtlpMetricsClient

log = logging.getLogger(__name__)
REMIND_S = 600.0  # a failure that lasts is told again this often

DEFAULT_INTERVAL_MS = 60_000  # the OpenTelemetry specification's defaults
DEFAULT_TIMEOUT_MS = 30_000


def _milliseconds(environ: Mapping[str, str], name: str, default: int) -> float:
    text = environ.get(name, "")
    try:
        value = float(text) if text else default
    except ValueError:
        log.warning("%s=%r is not a number of milliseconds; using %d", name, text, default)
        value = default
    return max(value, 1.0) / 1000


class MetricPusher:
    def __init__(self, collection: Collection, encoder: Encoder, client: OtlpMetricsClient, endpoint: str,
                 environ: Mapping[str, str] = os.environ) -> None:
        self.collection = collection
        self.encoder = encoder
        self.client = client
        self.endpoint = endpoint
        self.interval = _milliseconds(environ, "OTEL_METRIC_EXPORT_INTERVAL", DEFAULT_INTERVAL_MS)
        self.timeout = _milliseconds(environ, "OTEL_METRIC_EXPORT_TIMEOUT", DEFAULT_TIMEOUT_MS)
        self.outcomes = {"success": 0, "failure": 0}
        self._failing = 0  # pushes failed in a row
        self._reminded = 0.0  # when a lasting failure was last told
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="otlp-metrics", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.push()

    def push(self) -> bool:
        with self.collection.lock:
            self.collection.fresh()
            snap = snapshot(self.collection.table)
        began, cpu = time.monotonic(), time.thread_time()
        requests = sent = 0
        try:
            for request in self.encoder.requests(snap):
                if time.monotonic() - began > self.timeout:
                    raise OtlpError(f"push to {self.endpoint} took longer than OTEL_METRIC_EXPORT_TIMEOUT")
                self.client.send(request)
                requests += 1
                sent += len(request)
        except OtlpError as e:
            self._failed(str(e))
            return False
        log.debug("pushed %d requests (%d bytes) in %.0f ms, %.0f ms of CPU", requests, sent,
                  (time.monotonic() - began) * 1e3, (time.thread_time() - cpu) * 1e3)
        self.outcomes["success"] += 1
        if self._failing:
            log.info("OTLP metrics push to %s works again, after %d failed pushes", self.endpoint, self._failing)
            self._failing = 0
        return True

    def _failed(self, reason: str) -> None:
        self.outcomes["failure"] += 1
        self._failing += 1
        now = time.monotonic()
        if self._failing == 1:
            self._reminded = now
            log.warning("OTLP metrics push failing: %s (trying again every %.0f s; logged again when it works)",
                        reason, self.interval)
        elif now - self._reminded >= REMIND_S:
            self._reminded = now
            log.warning("OTLP metrics push still failing: %s (%d pushes failed in a row; the next that works "
                        "sends the current values)", reason, self._failing)
        else:
            log.debug("OTLP metrics push failed again (%d in a row): %s", self._failing, reason)

    def shutdown(self) -> None:
        """Stops the timer, pushes once more, closes the connection."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=self.timeout + 5)
        try:
            self.push()
        finally:
            self.client.close()
