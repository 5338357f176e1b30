"""Log delivery: the bounded queue, what it drops and counts, JSON lines, and the OTLP exporter choice."""

from __future__ import annotations

import io
import json
import logging
import threading
from collections.abc import Sequence

import pytest
from opentelemetry.sdk._logs import ReadableLogRecord
from opentelemetry.sdk._logs.export import LogRecordExporter, LogRecordExportResult
from opentelemetry.sdk.resources import Resource

from exporter.telemetry import logs as logs_module
from exporter.telemetry.logs import JsonLinesExporter, LogDelivery, LogSource, otlp_log_exporter

RESOURCE = Resource({"service.name": "test", "host.name": "node-1"})


class FakeExporter(LogRecordExporter):
    """Keeps what it exports; can be held inside export() or made to fail."""

    def __init__(self) -> None:
        self.bodies: list[str] = []
        self.results: list[LogRecordExportResult | Exception] = []  # next results, then SUCCESS
        self.entered = threading.Event()
        self.release = threading.Event()
        self.release.set()
        self.shut_down = False

    def export(self, batch: Sequence[ReadableLogRecord]) -> LogRecordExportResult:
        self.entered.set()
        self.release.wait(10)
        result = self.results.pop(0) if self.results else LogRecordExportResult.SUCCESS
        if isinstance(result, Exception):
            raise result
        if result == LogRecordExportResult.SUCCESS:
            self.bodies += [str(r.log_record.body) for r in batch]
        return result

    def shutdown(self) -> None:
        self.shut_down = True
        self.release.set()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True


def emit(delivery: LogDelivery, body: str) -> None:
    delivery.emit("test", "bash.command", body, {"process.pid": 1}, 1_000)


@pytest.fixture
def exporter() -> FakeExporter:
    return FakeExporter()


def test_records_are_delivered_in_order(exporter: FakeExporter) -> None:
    delivery = LogDelivery(RESOURCE, exporter, max_queue_size=100)
    for i in range(20):
        emit(delivery, f"cmd-{i}")
    assert delivery.processor.force_flush(5_000)
    assert exporter.bodies == [f"cmd-{i}" for i in range(20)]
    assert delivery.dropped() == {"queue_full": 0, "export_failed": 0}
    delivery.shutdown()


def test_a_full_queue_drops_new_records_and_counts_them(exporter: FakeExporter) -> None:
    delivery = LogDelivery(RESOURCE, exporter, max_queue_size=3)
    exporter.release.clear()
    emit(delivery, "first")
    assert exporter.entered.wait(5)  # the worker holds "first" inside export()
    for i in range(5):
        emit(delivery, f"queued-{i}")  # 3 fit, 2 do not
    assert delivery.dropped() == {"queue_full": 2, "export_failed": 0}
    exporter.release.set()
    assert delivery.processor.force_flush(5_000)
    assert exporter.bodies == ["first", "queued-0", "queued-1", "queued-2"]
    delivery.shutdown()


def test_failed_exports_are_counted_and_delivery_resumes(exporter: FakeExporter) -> None:
    exporter.results = [LogRecordExportResult.FAILURE, RuntimeError("exporter bug")]
    delivery = LogDelivery(RESOURCE, exporter, max_queue_size=100)
    emit(delivery, "lost-1")
    assert delivery.processor.force_flush(5_000)
    emit(delivery, "lost-2")
    assert delivery.processor.force_flush(5_000)
    emit(delivery, "delivered")
    assert delivery.processor.force_flush(5_000)
    assert exporter.bodies == ["delivered"]
    assert delivery.dropped() == {"queue_full": 0, "export_failed": 2}
    delivery.shutdown()


def test_shutdown_delivers_what_is_queued_then_ignores_records(exporter: FakeExporter) -> None:
    delivery = LogDelivery(RESOURCE, exporter, max_queue_size=100)
    for i in range(3):
        emit(delivery, f"cmd-{i}")
    delivery.shutdown()
    emit(delivery, "too late")
    assert exporter.bodies == ["cmd-0", "cmd-1", "cmd-2"]
    assert exporter.shut_down


def test_a_stuck_export_does_not_block_shutdown_forever(exporter: FakeExporter) -> None:
    delivery = LogDelivery(RESOURCE, exporter, max_queue_size=10)
    exporter.release.clear()
    emit(delivery, "stuck")
    assert exporter.entered.wait(5)
    delivery.processor.shutdown(timeout_millis=200)  # exporter.shutdown() releases the export
    assert exporter.shut_down


def test_json_lines_one_record_per_line() -> None:
    out = io.StringIO()
    delivery = LogDelivery(RESOURCE, JsonLinesExporter(out), max_queue_size=10)
    delivery.emit("netobs.bash", "bash.command", "ls -la", {"process.pid": 42, "bash.command.truncated": False},
                  1_700_000_000_000_000_000)
    delivery.emit("netobs.bash", "bash.command", "echo \"quoted\"\nsecond line", {}, 1_700_000_000_000_000_000)
    delivery.shutdown()
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    first, second = (json.loads(line) for line in lines)
    assert first["body"] == "ls -la" and first["event_name"] == "bash.command"
    assert first["attributes"] == {"process.pid": 42, "bash.command.truncated": False}
    assert first["timestamp"].startswith("2023-11-14T22:13:20")
    assert first["resource"]["attributes"]["host.name"] == "node-1"
    assert second["body"] == "echo \"quoted\"\nsecond line"


def test_host_name_comes_from_the_resource() -> None:
    delivery = LogDelivery(RESOURCE, FakeExporter(), max_queue_size=1)
    assert delivery.host_name == "node-1"
    delivery.shutdown()


def test_a_collector_with_bind_logs_is_a_log_source() -> None:
    from exporter.collectors.bash import BashCollector
    from exporter.collectors.netflow import NetflowCollector

    assert issubclass(BashCollector, LogSource)
    assert not issubclass(NetflowCollector, LogSource)


@pytest.fixture
def no_otlp_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", "OTEL_EXPORTER_OTLP_PROTOCOL",
                 "OTEL_EXPORTER_OTLP_LOGS_PROTOCOL"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_no_endpoint_no_otlp(no_otlp_env: pytest.MonkeyPatch) -> None:
    no_otlp_env.setenv("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "http://metrics-only:4318")
    assert otlp_log_exporter(None, None) is None


def test_configured_endpoint_over_http_gets_the_logs_path(no_otlp_env: pytest.MonkeyPatch) -> None:
    no_otlp_env.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://from-env:4318")
    exporter = otlp_log_exporter("http://collector:4318/", None)
    assert type(exporter).__module__.startswith("opentelemetry.exporter.otlp.proto.http")
    assert getattr(exporter, "_endpoint", None) == "http://collector:4318/v1/logs"


def test_configured_endpoint_over_grpc(no_otlp_env: pytest.MonkeyPatch) -> None:
    exporter = otlp_log_exporter("http://collector:4317", "grpc")
    assert type(exporter).__module__.startswith("opentelemetry.exporter.otlp.proto.grpc")
    assert exporter is not None
    exporter.shutdown()


def test_logs_endpoint_and_protocol_from_the_environment(no_otlp_env: pytest.MonkeyPatch) -> None:
    no_otlp_env.setenv("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", "http://logs:4317")
    no_otlp_env.setenv("OTEL_EXPORTER_OTLP_LOGS_PROTOCOL", "grpc")
    exporter = otlp_log_exporter(None, None)
    assert type(exporter).__module__.startswith("opentelemetry.exporter.otlp.proto.grpc")
    assert exporter is not None
    exporter.shutdown()
    no_otlp_env.setenv("OTEL_EXPORTER_OTLP_LOGS_PROTOCOL", "http/protobuf")
    exporter = otlp_log_exporter(None, None)
    assert getattr(exporter, "_endpoint", None) == "http://logs:4317"  # a per-signal endpoint is used as is


def told(exporter: FakeExporter, failures: int, records: int, caplog: pytest.LogCaptureFixture,
         ) -> tuple[LogDelivery, list[str]]:
    """`records` records delivered one batch each, the first `failures` exports failing: what was logged."""
    exporter.results = [LogRecordExportResult.FAILURE] * failures
    delivery = LogDelivery(RESOURCE, exporter, max_queue_size=100)
    with caplog.at_level(logging.INFO, logger="exporter.telemetry.logs"):
        for i in range(records):
            emit(delivery, f"r{i}")
            assert delivery.processor.force_flush(5_000)
    return delivery, [r.getMessage() for r in caplog.records if r.name == "exporter.telemetry.logs"]


def test_a_failing_delivery_is_told_once_then_again_when_it_works(exporter: FakeExporter,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    """An endpoint that is down: one warning however many batches fail, one line when it works again."""
    delivery, lines = told(exporter, 20, 21, caplog)
    assert len([m for m in lines if "delivery failing" in m]) == 1
    assert lines[-1] == "log records: delivery works again, after 20 records dropped"
    assert delivery.dropped() == {"queue_full": 0, "export_failed": 20}
    assert exporter.bodies == ["r20"]
    delivery.shutdown()


def test_a_lasting_failure_is_told_again_with_what_it_cost(exporter: FakeExporter, caplog: pytest.LogCaptureFixture,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(logs_module, "REMIND_S", 0.0)
    delivery, lines = told(exporter, 3, 3, caplog)
    assert "still failing" in lines[-1] and lines[-1].endswith("3 records dropped since it began")
    delivery.shutdown()
