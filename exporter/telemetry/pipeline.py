"""Wires the telemetry: the plan of every point from the configuration, the series table, the
collection, the Prometheus endpoint, the OTLP push, the records and the log records.

The path is one way: sources (the collectors) -> attribution (a callable given by the caller) ->
the series table -> the renderers. Nothing here knows what a collector or the attribution is."""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from opentelemetry.sdk.resources import OTELResourceDetector, Resource

from exporter import __version__
from exporter.config import AttributesConfig, Config
from exporter.series.attributes import selected_by
from exporter.series.instruments import ALL, with_bounds
from exporter.telemetry import logs, prometheus, web
from exporter.telemetry.collection import Attribute, Collection, HealthExtra, Source, unattributed
from exporter.telemetry.naming import Kind, Point
from exporter.telemetry.naming.flows import FAILED, FLOWS
from exporter.telemetry.otlp_encode import Encoder
from exporter.telemetry.otlp_push import MetricPusher
from exporter.telemetry.otlp_settings import metrics_settings
from exporter.telemetry.otlp_transport import OtlpMetricsClient
from exporter.telemetry.table import Plan, SeriesTable

log = logging.getLogger(__name__)

OFF = "off"  # Netflow.RttHistogram: no RTT histogram at all


def build_resource() -> Resource:
    """Our defaults, overridden by OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES."""
    defaults = Resource({"service.name": "netobs-exporter", "service.version": __version__,
                         "host.name": socket.gethostname()})
    return Resource.create({}).merge(defaults).merge(OTELResourceDetector().detect())


def plan(config: Config) -> Plan:
    """Where each point goes: netflow's levels (Netflow.Aggregation, Netflow.RttHistogram), the RTT
    buckets (Netflow.RttBuckets), the process attributes of each instrument, the tags and the limit."""
    netflow = config.netflow

    def level_of(kind: Kind, point: Point) -> str | None:
        if kind not in (FLOWS, FAILED):
            return kind.levels[0]
        if point.instrument == "netflow.tcp.rtt":
            return None if netflow.rtt_histogram == OFF else netflow.rtt_histogram
        return netflow.aggregation

    return Plan(instruments=with_bounds(ALL, "netflow.tcp.rtt", netflow.rtt_buckets), level_of=level_of,
                selection_of=selection(config.attributes), tags=tuple(sorted(config.common.tags.items())),
                max_series=config.telemetry.max_series_per_instrument)


def selection(attributes: AttributesConfig) -> Callable[[str], frozenset[str]]:
    """Attributes.Instruments' longest matching name or prefix, else Attributes.Process."""
    return lambda instrument: selected_by(instrument, attributes.process, attributes.instruments)


@dataclass
class Telemetry:
    collection: Collection
    renderer: prometheus.Renderer
    server: web.Server | None = None
    pusher: MetricPusher | None = None
    logs: logs.LogDelivery | None = None
    _extra: list[HealthExtra] = field(default_factory=list)

    def scrape(self, accept: str, accept_encoding: str) -> tuple[bytes, str, bool]:
        openmetrics = prometheus.negotiate(accept)
        gzip = prometheus.accepts_gzip(accept_encoding)
        with self.collection.lock:
            self.collection.fresh()
            body = self.renderer.render(openmetrics, gzip)
        return body, prometheus.OPENMETRICS if openmetrics else prometheus.TEXT, gzip

    def shutdown(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
        if self.pusher is not None:
            self.pusher.shutdown()
        if self.logs is not None:
            self.logs.shutdown()


def start(config: Config, sources: Sequence[Source], server: web.Server | None = None,
          attribute: Attribute = unattributed, health_extra: HealthExtra | None = None,
          environ: Mapping[str, str] = os.environ) -> Telemetry:
    """The metric and log pipeline; `server` (from web.bind) answers scrapes once it is built."""
    resource = build_resource()
    attributes = {k: v for k, v in resource.attributes.items() if isinstance(v, str | int)}
    table = SeriesTable(plan(config))
    collection = Collection(sources, table, attribute)
    telemetry = Telemetry(collection, prometheus.Renderer(table, attributes), server)
    settings = metrics_settings(config.telemetry.otlp_endpoint or None, config.telemetry.otlp_protocol or None,
                                environ)
    if settings is not None:
        telemetry.pusher = MetricPusher(collection, Encoder(attributes), OtlpMetricsClient(settings),
                                        settings.endpoint, environ)
        log.info("pushing metrics over OTLP (%s) to %s every %.0f s", settings.protocol, settings.endpoint,
                 telemetry.pusher.interval)
    log_sources = [s for s in sources if isinstance(s, logs.LogSource)]
    if log_sources:  # the logger provider exists only when some collector emits log records
        telemetry.logs = logs.start(resource, config.telemetry.otlp_endpoint or None,
                                    config.telemetry.otlp_protocol or None, config.bash.queue_size)
        for source in log_sources:
            source.bind_logs(telemetry.logs)
    collection.health_extra = _health_extra(telemetry, health_extra)
    if telemetry.pusher is not None:
        telemetry.pusher.start()
    if server is not None:
        web.serve(server, config.web.listen_address, config.web.telemetry_path, telemetry.scrape)
    return telemetry


def _health_extra(telemetry: Telemetry, more: HealthExtra | None) -> HealthExtra:
    """The self-metrics of the telemetry itself (log records dropped, OTLP pushes), and the caller's."""

    def extra() -> list[tuple[str, tuple[tuple[str, str | int], ...], int | float]]:
        out: list[tuple[str, tuple[tuple[str, str | int], ...], int | float]] = []
        if telemetry.logs is not None:
            out += [("netobs.bash.records.dropped", (("reason", reason),), n)
                    for reason, n in telemetry.logs.dropped().items()]
        if telemetry.pusher is not None:
            out += [("netobs.otlp.exports", (("outcome", outcome),), n)
                    for outcome, n in telemetry.pusher.outcomes.items()]
        return out + (more() if more is not None else [])

    return extra
