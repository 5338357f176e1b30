"""Runs the exporter: the collectors, the attribution stage and the telemetry, wired one way
(kernel -> collectors -> attribution -> series table -> /metrics, OTLP, records), and a clean stop."""

from __future__ import annotations

import logging
import signal
import threading
import time

from exporter.bpf import AttachResult, BpfError, ensure_tracefs
from exporter.collectors import dns_enabled, enabled_collectors
from exporter.collectors.base import Collector, start_all
from exporter.collectors.bash import BashCollector
from exporter.collectors.l7 import CLIENTS_CAPACITY, L7Collector
from exporter.collectors.owners import CgroupNames
from exporter.collectors.watchlist import KernelFilter
from exporter.config import Config, ConfigError
from exporter.enrich.domains import DomainCache
from exporter.enrich.kubernetes_peer_ids import ClientIds
from exporter.enrich.stage import Enrichment
from exporter.telemetry import pipeline, web
from exporter.telemetry.records import RecordDeltas, RecordsWriter

log = logging.getLogger(__name__)

ENRICH_SOURCES = ("docker", "kubernetes", "cgroup", "proc")


def domain_cache(config: Config) -> DomainCache | None:
    """Names learnt from DNS answers, for destination.domain: only when the dns collector runs."""
    if not dns_enabled(config):
        return None
    dns = config.dns
    return DomainCache(dns.domain_cache_size, dns.domain_ttl_min, dns.domain_ttl_max)


def start_collectors(config: Config, enrichment: Enrichment | None = None, domains: DomainCache | None = None
                     ) -> tuple[list[Collector], list[tuple[str, str]]]:
    """Starts the attribution stage, then every enabled collector, so that their programs attach with the
    filter's verdicts in place; a collector that cannot start is reported, the others run."""
    failures: list[tuple[str, str]] = []
    try:
        collectors = enabled_collectors(config, domains.learn if domains is not None else None)
        if collectors:
            ensure_tracefs()
    except BpfError as e:
        return [], [("*", str(e))]
    if enrichment is not None:
        kernel_filter = KernelFilter(enrichment.filter_mode)
        enrichment.publish = kernel_filter.publish
        for collector in collectors:
            collector.kernel_filter = kernel_filter
            if isinstance(collector, BashCollector):
                collector.attribute = enrichment.log_attributes
            if isinstance(collector, L7Collector) and enrichment.peers is not None:
                collector.clients = ClientIds(enrichment.peers, CLIENTS_CAPACITY)
        enrichment.start()
    for collector, error in start_all(collectors):
        log.error("collector %s not started: %s", collector.name, error)
        failures.append((collector.name, str(error)))
    started = [c for c in collectors if c.name not in {name for name, _ in failures}]
    if enrichment is not None:
        names = CgroupNames(lambda: [c.obj for c in started if c.obj is not None])
        enrichment.attribution.cgroup_path = names.path
        enrichment.take_cgroups = names.take
    return started, failures


def run(config: Config) -> int:
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    try:
        server = web.bind(config.web.listen_address, config.web.config_file)
    except web.ListenError as e:
        log.error("%s", e)
        return 1
    except ConfigError as e:  # the web config file changed since the command line was checked
        log.error("%s", e)
        return 2
    domains = domain_cache(config)
    enrichment = Enrichment(config, domains=domains)
    collectors, failures = start_collectors(config, enrichment, domains)
    if failures and not collectors:
        enrichment.stop()
        server.server_close()
        return 1

    def enrich_errors() -> list[tuple[str, tuple[tuple[str, str | int], ...], int | float]]:
        counts = enrichment.errors.counts()
        return [("netobs.enrich.errors", (("source", source),), counts.get(source, 0)) for source in ENRICH_SOURCES]

    telemetry = pipeline.start(config, collectors, server, attribute=enrichment.attribute, health_extra=enrich_errors)
    records = RecordsWriter(config.telemetry.records) if config.telemetry.records else None
    intervals = {c.name: c.records_interval or config.common.flush_out_l4_interval for c in collectors}
    next_records = {name: time.monotonic() + interval for name, interval in intervals.items()}
    deltas = {c.name: RecordDeltas() for c in collectors}
    log.info("running with %s", ", ".join(c.name for c in collectors) or "no collectors")
    try:
        while not stop.wait(1.0):
            now = time.monotonic()
            for c in collectors:
                c.tick(now)  # takes c.lock itself, around what touches shared state only
                c.sync_filter()
            enrichment.take_cgroups()  # before the kernel's table of them fills
            if records is None:
                continue
            for c in collectors:
                if now >= next_records[c.name]:
                    next_records[c.name] = now + intervals[c.name]
                    with telemetry.collection.lock:
                        telemetry.collection.fresh()
                        rows = telemetry.collection.attributed(c.name)
                    records.write(deltas[c.name].records(rows))
    finally:
        log.info("stopping")
        telemetry.shutdown()
        enrichment.stop()
        for c in collectors:
            c.stop()
        if records is not None:
            records.close()
    return 0


def check_config(config: Config) -> int:
    """Loads and attaches every enabled program, prints one line per program, detaches."""
    collectors, failures = start_collectors(config)
    rows: list[tuple[str, AttachResult | None, str]] = []
    for c in collectors:
        rows += [(c.name, r, "attached" if r.attached else f"FAILED: {r.error}") for r in c.attach_results]
        c.stop()
    rows += [(name, None, f"FAILED: {error}") for name, error in failures]
    width = max([len(r.program) for _, r, _ in rows if r] + [7])
    print(f"{'COLLECTOR':<10} {'PROGRAM':<{width}} {'SECTION':<40} RESULT")
    for name, r, result in rows:
        print(f"{name:<10} {(r.program if r else '-'):<{width}} {(r.section if r else '-'):<40} {result}")
    ok = not failures and all(r.attached for _, r, _ in rows if r)
    return 0 if ok else 1
