"""Log records: the LoggerProvider, a bounded queue in front of the exporter, OTLP or JSON lines.

Capture must never wait for delivery. Records go into a queue of at most `max_queue_size`; one
worker thread exports them in batches as soon as they arrive. A full queue drops the new record,
a failed export drops its batch; both are counted by reason, and delivery goes on with the next
batch, so records flow again as soon as the endpoint is back."""

from __future__ import annotations

import inspect
import logging
import sys
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from typing import IO, Protocol, runtime_checkable

from opentelemetry._logs import LogRecord, SeverityNumber
from opentelemetry.sdk._logs import LoggerProvider, LogRecordProcessor, ReadableLogRecord, ReadWriteLogRecord
from opentelemetry.sdk._logs.export import LogRecordExporter, LogRecordExportResult
from opentelemetry.sdk.resources import Resource
from opentelemetry.util.types import AnyValue

from exporter import __version__
from exporter.telemetry.otlp import otlp_target

log = logging.getLogger(__name__)

DROP_REASONS = ("queue_full", "export_failed")
REMIND_S = 600.0  # a failure that lasts is told again this often, with what it cost


class _LastMessage(logging.Handler):
    """The OpenTelemetry OTLP exporters log every retry and every failed batch. Their lines are kept
    from the output (debug only) and the last one is remembered, to say why in the exporter's own
    rate-limited line."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.last = ""

    def emit(self, record: logging.LogRecord) -> None:
        self.last = " ".join(record.getMessage().split())[:300]
        log.debug("otlp exporter: %s", self.last)


OTLP_REASON = _LastMessage()
_otlp_logger = logging.getLogger("opentelemetry.exporter.otlp")
_otlp_logger.addHandler(OTLP_REASON)
_otlp_logger.propagate = False
MAX_BATCH = 512
# Older SDKs have no event name on a LogRecord; the record then carries it as an attribute.
EVENT_NAME_SUPPORTED = "event_name" in inspect.signature(LogRecord.__init__).parameters


class BoundedLogProcessor(LogRecordProcessor):
    """Queues records for one exporter; never blocks the caller of on_emit."""

    def __init__(self, exporter: LogRecordExporter, max_queue_size: int, max_batch: int = MAX_BATCH) -> None:
        self._exporter = exporter
        self._max_queue_size = max_queue_size
        self._max_batch = max_batch
        self._queue: deque[ReadableLogRecord] = deque()
        self._exporting = 0  # records taken from the queue and not yet exported
        self._closed = False
        self._condition = threading.Condition()
        self.dropped = dict.fromkeys(DROP_REASONS, 0)
        self._failing = 0  # exports failed in a row
        self._failed_records = 0
        self._reminded = 0.0
        self._worker = threading.Thread(target=self._work, name="netobs-log-export", daemon=True)
        self._worker.start()

    def on_emit(self, log_record: ReadWriteLogRecord) -> None:
        readable = ReadableLogRecord(
            log_record=log_record.log_record,
            resource=log_record.resource if log_record.resource is not None else Resource.get_empty(),
            instrumentation_scope=log_record.instrumentation_scope,
            limits=log_record.limits,
        )
        with self._condition:
            if self._closed:
                return
            if len(self._queue) >= self._max_queue_size:
                self.dropped["queue_full"] += 1
                return
            self._queue.append(readable)
            self._condition.notify_all()

    def _work(self) -> None:
        while True:
            with self._condition:
                while not self._queue and not self._closed:
                    self._condition.wait()
                if not self._queue:
                    return
                batch = [self._queue.popleft() for _ in range(min(self._max_batch, len(self._queue)))]
                self._exporting = len(batch)
            self._export(batch)
            with self._condition:
                self._exporting = 0
                self._condition.notify_all()

    def _export(self, batch: Sequence[ReadableLogRecord]) -> None:
        try:
            ok = self._exporter.export(batch) == LogRecordExportResult.SUCCESS
        except Exception:  # an exporter bug must not stop delivery
            log.exception("log export failed")
            ok = False
        if ok:
            if self._failing:
                log.info("log records: delivery works again, after %d records dropped", self._failed_records)
            self._failing = self._failed_records = 0
            return
        with self._condition:
            self.dropped["export_failed"] += len(batch)
        self._failing += 1
        self._failed_records += len(batch)
        now = time.monotonic()
        if self._failing == 1 or now - self._reminded >= REMIND_S:
            self._reminded = now
            reason = OTLP_REASON.last or "see --log.level=debug"
            if self._failing == 1:
                log.warning("log records: delivery failing (%s); records are dropped and counted in "
                            "netobs_bash_records_dropped_total{reason=\"export_failed\"}; logged again when it "
                            "works", reason)
            else:
                log.warning("log records: delivery still failing (%s): %d records dropped since it began",
                            reason, self._failed_records)

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Waits until every queued record has been handed to the exporter and its export finished."""
        deadline = time.monotonic() + timeout_millis / 1000
        with self._condition:
            while self._queue or self._exporting:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self._worker.is_alive():
                    return False
                self._condition.wait(remaining)
        return True

    def shutdown(self, timeout_millis: int = 5_000) -> None:
        self.force_flush(timeout_millis)
        with self._condition:
            self._closed = True
            self._condition.notify_all()
        self._exporter.shutdown()  # also interrupts an export stuck retrying
        self._worker.join(timeout_millis / 1000)


class JsonLinesExporter(LogRecordExporter):
    """Each record as one line of JSON (the SDK's own record format), flushed at once."""

    def __init__(self, out: IO[str] | None = None) -> None:
        self._out = out
        self._lock = threading.Lock()

    def export(self, batch: Sequence[ReadableLogRecord]) -> LogRecordExportResult:
        lines = "".join(record.to_json(indent=None) + "\n" for record in batch)
        out = self._out or sys.stdout  # whatever stdout is at the time
        with self._lock:
            out.write(lines)
            out.flush()
        return LogRecordExportResult.SUCCESS

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True


def otlp_log_exporter(endpoint: str | None, protocol: str | None) -> LogRecordExporter | None:
    """An OTLP log exporter when an endpoint is configured, else None (see otlp_target)."""
    target = otlp_target("logs", endpoint, protocol)
    if target is None:
        return None
    if target.protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter as Grpc

        return Grpc(endpoint=target.endpoint)
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter as Http

    return Http(endpoint=target.endpoint)


class LogDelivery:
    """The logger provider and where its records go; `emit` is safe from any thread."""

    def __init__(self, resource: Resource, exporter: LogRecordExporter, max_queue_size: int) -> None:
        self.processor = BoundedLogProcessor(exporter, max_queue_size)
        self.provider = LoggerProvider(resource=resource)
        self.provider.add_log_record_processor(self.processor)
        self.host_name = str(resource.attributes.get("host.name", ""))

    def emit(self, scope: str, event_name: str, body: str, attributes: Mapping[str, AnyValue],
             time_ns: int) -> None:
        now = time.time_ns()
        if EVENT_NAME_SUPPORTED:
            record = LogRecord(timestamp=time_ns, observed_timestamp=now, severity_number=SeverityNumber.INFO,
                               severity_text="INFO", body=body, attributes=attributes, event_name=event_name)
        else:
            record = LogRecord(timestamp=time_ns, observed_timestamp=now, severity_number=SeverityNumber.INFO,
                               severity_text="INFO", body=body, attributes={**attributes, "event.name": event_name})
        self.provider.get_logger(scope, __version__).emit(record)

    def dropped(self) -> dict[str, int]:
        """Records dropped so far, by reason (queue_full, export_failed)."""
        return dict(self.processor.dropped)

    def shutdown(self) -> None:
        self.provider.shutdown()


@runtime_checkable
class LogSource(Protocol):
    """A collector whose events become log records once it is given a LogDelivery."""

    def bind_logs(self, logs: LogDelivery) -> None: ...


def start(resource: Resource, endpoint: str | None, protocol: str | None, max_queue_size: int) -> LogDelivery:
    exporter = otlp_log_exporter(endpoint, protocol)
    delivery = LogDelivery(resource, exporter or JsonLinesExporter(), max_queue_size)
    log.info("delivering log records %s", "over OTLP" if exporter is not None else "as JSON lines on stdout")
    return delivery
