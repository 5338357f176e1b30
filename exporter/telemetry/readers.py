"""Metric readers that merge the kernel metrics into what the SDK collected."""

from __future__ import annotations

from typing import Any

from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics.export import MetricExporter, MetricsData, PeriodicExportingMetricReader
from prometheus_client import CollectorRegistry

from exporter.telemetry.kernel_metrics import KernelMetrics
from exporter.telemetry.otlp import otlp_target


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
    """An OTLP metric exporter when an endpoint is configured, else None (see otlp_target)."""
    target = otlp_target("metrics", endpoint, protocol)
    if target is None:
        return None
    if target.protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter as Grpc

        return Grpc(endpoint=target.endpoint)
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter as Http

    return Http(endpoint=target.endpoint)
