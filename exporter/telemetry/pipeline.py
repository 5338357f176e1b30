"""Wires the telemetry: resource, meter and logger providers, Prometheus endpoint, OTLP push."""

from __future__ import annotations

import logging
import socket
from collections.abc import Sequence
from dataclasses import dataclass

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader
from opentelemetry.sdk.resources import OTELResourceDetector, Resource
from prometheus_client import CollectorRegistry

from exporter import __version__
from exporter.collectors.base import Collector
from exporter.config import Config
from exporter.enrich.stage import Enrichment
from exporter.telemetry import logs, self_metrics, web
from exporter.telemetry.kernel_metrics import KernelMetrics
from exporter.telemetry.readers import OtlpReader, PrometheusReader, otlp_exporter

log = logging.getLogger(__name__)


def build_resource() -> Resource:
    """Our defaults, overridden by OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES."""
    defaults = Resource({"service.name": "netobs-exporter", "service.version": __version__,
                         "host.name": socket.gethostname()})
    return Resource.create({}).merge(defaults).merge(OTELResourceDetector().detect())


@dataclass
class Telemetry:
    provider: MeterProvider
    kernel: KernelMetrics
    registry: CollectorRegistry
    server: web.Server | None
    logs: logs.LogDelivery | None = None

    def shutdown(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
        self.provider.shutdown(timeout_millis=5_000)
        if self.logs is not None:
            self.logs.shutdown()


def start(config: Config, collectors: Sequence[Collector], server: web.Server | None = None,
          enrichment: Enrichment | None = None) -> Telemetry:
    """The metric and log pipeline; `server` (from web.bind) answers scrapes once it is built."""
    kernel = KernelMetrics(collectors, config.common.tags, config.telemetry.max_series_per_instrument,
                           decorate=enrichment.decorate if enrichment is not None else None)
    registry = CollectorRegistry(auto_describe=False)
    readers: list[MetricReader] = [PrometheusReader(kernel, registry)]
    exporter = otlp_exporter(config.telemetry.otlp_endpoint or None, config.telemetry.otlp_protocol or None)
    if exporter is not None:
        readers.append(OtlpReader(kernel, exporter))
        log.info("pushing metrics over OTLP (%s)", type(exporter).__module__.split(".")[-3])
    resource = build_resource()
    provider = MeterProvider(resource=resource, metric_readers=readers)
    log_sources = [c for c in collectors if isinstance(c, logs.LogSource)]
    delivery = None
    if log_sources:  # the logger provider exists only when some collector emits log records
        delivery = logs.start(resource, config.telemetry.otlp_endpoint or None,
                              config.telemetry.otlp_protocol or None, config.bash.queue_size)
        for source in log_sources:
            source.bind_logs(delivery)
    self_metrics.register(provider.get_meter("netobs.exporter", __version__), collectors, kernel, delivery,
                          enrichment.errors if enrichment is not None else None)
    if server is not None:
        web.serve(server, config.web.listen_address, config.web.telemetry_path, registry)
    return Telemetry(provider, kernel, registry, server, delivery)
