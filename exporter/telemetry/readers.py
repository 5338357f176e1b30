"""Metric readers that merge the kernel metrics into what the SDK collected."""

from __future__ import annotations

import os
from typing import Any

from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics.export import MetricExporter, MetricsData, PeriodicExportingMetricReader
from prometheus_client import CollectorRegistry

from exporter.telemetry.kernel_metrics import KernelMetrics


class PrometheusReader(PrometheusMetricReader):
    def __init__(self, kernel: KernelMetrics, registry: CollectorRegistry) -> None:
        super().__init__(registry=registry, scope_info_enabled=False)
        self._kernel = kernel

    def _receive_metrics(self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any) -> None:
        super()._receive_metrics(self._kernel.merge(metrics_data), timeout_millis, **kwargs)


class OtlpReader(PeriodicExportingMetricReader):
    def __init__(self, kernel: KernelMetrics, exporter: MetricExporter) -> None:
        super().__init__(exporter)
        self._kernel = kernel

    def _receive_metrics(self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any) -> None:
        super()._receive_metrics(self._kernel.merge(metrics_data), timeout_millis, **kwargs)


def otlp_exporter(endpoint: str | None, protocol: str | None) -> MetricExporter | None:
    """An OTLP metric exporter when an endpoint is configured (the config's endpoint wins over
    OTEL_EXPORTER_OTLP_*), else None. The protocol defaults to http/protobuf, as the
    OpenTelemetry specification says."""
    env = os.environ
    explicit = bool(endpoint)
    endpoint = endpoint or env.get("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    if not endpoint:
        return None
    protocol = (protocol or env.get("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL")
                or env.get("OTEL_EXPORTER_OTLP_PROTOCOL") or "http/protobuf")
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter as Grpc

        return Grpc(endpoint=endpoint if explicit else None)
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter as Http

    if explicit:
        return Http(endpoint=endpoint.rstrip("/") + "/v1/metrics")
    return Http()
