"""The exporter's own health, as SDK observable instruments (few series, cheap)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from opentelemetry.metrics import CallbackOptions, Meter, Observation

from exporter.collectors.base import Collector
from exporter.enrich.errors import SourceErrors
from exporter.telemetry.kernel_metrics import KernelMetrics
from exporter.telemetry.logs import LogDelivery


def register(meter: Meter, collectors: Sequence[Collector], kernel: KernelMetrics,
             logs: LogDelivery | None = None, enrich_errors: SourceErrors | None = None) -> None:
    def attached(_: CallbackOptions) -> Iterable[Observation]:
        for c in collectors:
            for r in c.attach_results:
                yield Observation(int(r.attached), {"collector": c.name, "program": r.program})

    # The SDK calls these before the kernel metrics are merged in: collect first (the snapshot
    # is cached), so health describes this collection, not the previous one.
    def duration(_: CallbackOptions) -> Iterable[Observation]:
        kernel.metrics()
        for name, h in kernel.health.items():
            yield Observation(h.duration, {"collector": name})

    def success(_: CallbackOptions) -> Iterable[Observation]:
        kernel.metrics()
        for name, h in kernel.health.items():
            yield Observation(int(h.success), {"collector": name})

    def lost(_: CallbackOptions) -> Iterable[Observation]:
        for c in collectors:
            for reason, n in c.lost().items():
                yield Observation(n, {"collector": c.name, "reason": reason})

    def series(_: CallbackOptions) -> Iterable[Observation]:
        kernel.metrics()
        for h in kernel.health.values():
            for instrument, n in h.series.items():
                yield Observation(n, {"instrument": instrument})

    def dropped(_: CallbackOptions) -> Iterable[Observation]:
        kernel.metrics()
        for h in kernel.health.values():
            for instrument, _n in h.series.items():
                yield Observation(h.dropped.get(instrument, 0), {"instrument": instrument})

    def limit(_: CallbackOptions) -> Iterable[Observation]:
        yield Observation(kernel.max_series)

    def bash_commands(_: CallbackOptions) -> Iterable[Observation]:
        from exporter.collectors.bash import BashCollector

        for c in collectors:
            if isinstance(c, BashCollector):
                yield Observation(c.commands)

    def dns_names_folded(_: CallbackOptions) -> Iterable[Observation]:
        from exporter.collectors.dns import DnsCollector

        for c in collectors:
            if isinstance(c, DnsCollector):
                yield Observation(c.folded_names())

    def http_routes_folded(_: CallbackOptions) -> Iterable[Observation]:
        from exporter.collectors.l7 import L7Collector

        for c in collectors:
            if isinstance(c, L7Collector):
                yield Observation(c.folded_routes())

    def records_dropped(_: CallbackOptions) -> Iterable[Observation]:
        for reason, n in (logs.dropped() if logs is not None else {}).items():
            yield Observation(n, {"reason": reason})

    def enrich_errors_by_source(_: CallbackOptions) -> Iterable[Observation]:
        counts = enrich_errors.counts() if enrich_errors is not None else {}
        for source in ("docker", "kubernetes", "cgroup", "proc"):
            yield Observation(counts.get(source, 0), {"source": source})

    meter.create_observable_gauge("netobs.program.attached", [attached], unit="{state}",
                                  description="Whether a BPF program is attached (1) or not (0).")
    meter.create_observable_gauge("netobs.collector.duration", [duration], unit="s",
                                  description="How long the last collection of a collector took.")
    meter.create_observable_gauge("netobs.collector.success", [success], unit="{state}",
                                  description="Whether the last collection of a collector succeeded (1) or not (0).")
    meter.create_observable_counter("netobs.events.lost", [lost], unit="{event}",
                                    description="Events not turned into data (kernel table or ring buffer full, "
                                                "malformed message...), by collector and reason.")
    meter.create_observable_gauge("netobs.series", [series], unit="{series}",
                                  description="Series exported per instrument at the last collection.")
    meter.create_observable_counter("netobs.series.dropped", [dropped], unit="{series}",
                                    description="Series not exported because an instrument reached its series limit.")
    meter.create_observable_gauge("netobs.series.limit", [limit], unit="{series}",
                                  description="Most series an instrument exports (Telemetry.MaxSeriesPerInstrument).")
    meter.create_observable_counter("netobs.bash.commands", [bash_commands], unit="{command}",
                                    description="Commands typed in interactive bash and seen by the exporter.")
    meter.create_observable_counter("netobs.dns.names.folded", [dns_names_folded], unit="{lookup}",
                                    description="DNS lookups whose name was folded into ~other.")
    meter.create_observable_counter("netobs.http.routes.folded", [http_routes_folded], unit="{request}",
                                    description="HTTP requests whose route was folded into ~other "
                                                "(L7.MaxRoutesPerProcess).")
    meter.create_observable_counter("netobs.bash.records.dropped", [records_dropped], unit="{record}",
                                    description="Log records of bash commands not delivered, by reason.")
    meter.create_observable_counter("netobs.enrich.errors", [enrich_errors_by_source], unit="{error}",
                                    description="Errors of the metadata sources (Docker, Kubernetes, cgroup and "
                                                "/proc reads) by source; the last known metadata is kept.")
