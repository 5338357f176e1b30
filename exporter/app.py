"""Runs the exporter: start the collectors, serve and push telemetry, stop cleanly."""

from __future__ import annotations

import logging
import signal
import threading
import time

from exporter.bpf import AttachResult, BpfError, ensure_tracefs
from exporter.collectors import enabled_collectors
from exporter.collectors.base import Collector, start_all
from exporter.config import Config
from exporter.enrich.stage import Enrichment
from exporter.telemetry import pipeline, web
from exporter.telemetry.records import RecordsWriter

log = logging.getLogger(__name__)


def start_collectors(config: Config, enrichment: Enrichment | None = None
                     ) -> tuple[list[Collector], list[tuple[str, str]]]:
    """Starts every enabled collector; one that cannot start is reported, the others run."""
    failures: list[tuple[str, str]] = []
    try:
        collectors = enabled_collectors(config)
        if collectors:
            ensure_tracefs()
    except BpfError as e:
        return [], [("*", str(e))]
    if enrichment is not None:
        for collector in collectors:
            enrichment.bind(collector)
    for collector, error in start_all(collectors):
        log.error("collector %s not started: %s", collector.name, error)
        failures.append((collector.name, str(error)))
    started = [c for c in collectors if c.name not in {name for name, _ in failures}]
    return started, failures


def run(config: Config) -> int:
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    try:
        server = web.bind(config.web.listen_address)
    except web.ListenError as e:
        log.error("%s", e)
        return 1
    enrichment = Enrichment(config)
    enrichment.start()
    collectors, failures = start_collectors(config, enrichment)
    if failures and not collectors:
        enrichment.stop()
        server.server_close()
        return 1
    telemetry = pipeline.start(config, collectors, server, enrichment=enrichment)
    records = RecordsWriter(config.telemetry.records) if config.telemetry.records else None
    intervals = {c.name: c.records_interval or config.common.flush_out_l4_interval for c in collectors}
    next_records = {name: time.monotonic() + interval for name, interval in intervals.items()}
    log.info("running with %s", ", ".join(c.name for c in collectors) or "no collectors")
    try:
        while not stop.wait(1.0):
            now = time.monotonic()
            for c in collectors:
                c.tick(now)  # takes c.lock itself, around what touches shared state only
                c.sync_filter()
            if records is None:
                continue
            for c in collectors:
                if now >= next_records[c.name]:
                    next_records[c.name] = now + intervals[c.name]
                    with c.lock:
                        written = c.records()
                    records.write(enrichment.records(written))
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
