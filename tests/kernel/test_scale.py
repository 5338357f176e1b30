"""Many flows: a real Prometheus scrapes the exporter while 1,000 loopback connections are open (2,000
flows), and every flow arrives, exactly once, within the 1 s scrape timeout; more sockets than the
kernel's first table of per-socket entries holds are each exact. The cost figures themselves are
bench/scale_bench.py's (docs/benchmarks.md)."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.kernel.connections import OpenConnections
from tests.kernel.harness import WITH_PID, Exporter, wait_until
from tests.kernel.prometheus import Prometheus

pytestmark = pytest.mark.usefixtures("bpf_ready")

CONNECTIONS = 1000
JOB = "netobs-scale"
BYTES = "netflow_bytes_total"


@pytest.fixture
def exporter() -> Iterator[Exporter]:
    e = Exporter(WITH_PID, "Common.DropLocalConnections=false")
    yield e
    assert e.stop() == 0


def test_prometheus_scrapes_two_thousand_flows_within_its_timeout(exporter: Exporter, tmp_path: Path) -> None:
    pid = str(os.getpid())
    connections = OpenConnections(CONNECTIONS)  # opened while the exporter watches, as connections usually are
    prometheus = Prometheus(f"127.0.0.1:{exporter.port}", JOB, tmp_path)
    try:
        ours = {str(p) for p in connections.ports}  # this process also talks to Prometheus and the exporter

        def exported() -> float:
            series = prometheus.query(f'netflow_tcp_active{{job="{JOB}",process_pid="{pid}"}}')
            return float(sum(1 for s in series if ours & {s["metric"]["source_port"], s["metric"]["destination_port"]}))

        assert wait_until(exported, lambda n: n >= 2 * CONNECTIONS, timeout=60) == 2 * CONNECTIONS
        # each listening port once as a server flow, with its one connection open; each as a destination once
        server = prometheus.query(f'netflow_tcp_active{{job="{JOB}",process_pid="{pid}",'
                                  'netflow_direction="incoming"}')
        assert sorted(int(s["metric"]["source_port"]) for s in server) == sorted(connections.ports)
        assert {s["value"][1] for s in server} == {"1"}
        received = prometheus.query(f'netflow_bytes_total{{job="{JOB}",process_pid="{pid}",'
                                    'netflow_direction="outgoing",network_io_direction="receive"}')
        assert sum(float(s["value"][1]) for s in received if s["metric"]["destination_port"] in ours) == \
            10 * CONNECTIONS
        (up,) = prometheus.query(f'up{{job="{JOB}"}}')
        (duration,) = prometheus.query(f'scrape_duration_seconds{{job="{JOB}"}}')
        (samples,) = prometheus.query(f'scrape_samples_scraped{{job="{JOB}"}}')
        assert up["value"][1] == "1"
        assert 0 < float(duration["value"][1]) < 1.0, duration  # the scrape timeout
        assert float(samples["value"][1]) >= 10 * 2 * CONNECTIONS
    finally:
        prometheus.stop()
        connections.close()


LABEL = re.compile(r'(\w+)="([^"]*)"')


def test_more_sockets_than_the_slot_table_holds_are_each_exact(bpf_ready: None) -> None:
    """9,000 connections held open (18,000 sockets) where each kernel table of slots has 16,384
    (bpf/include/netobs_slots.h): the sockets past it, and those whose slot another holds, keep their
    state in the hash map behind it. Every flow is exact while open, and after the close."""
    me = str(os.getpid())
    exp = Exporter(WITH_PID, "Common.DropLocalConnections=false", "Bash.Enabled=false", "Dns.Enabled=false",
                   "Telemetry.MaxSeriesPerInstrument=100000")
    connections = OpenConnections(9000)  # each: 1 byte from the client (never read), 10 from the server
    ours = {str(p) for p in connections.ports}

    def flows() -> dict[tuple[str, ...], set[float]]:
        """(metric, direction[, io]) -> the values of our 9,000 flows. 18,000 flows make a 60 MB page,
        which the Prometheus client's parser takes half a minute to read: only the lines wanted are."""
        out: dict[tuple[str, ...], list[float]] = {}
        for line in exp.scrape_text().splitlines():
            if not line.startswith(("netflow_bytes_total{", "netflow_tcp_")) or f'process_pid="{me}"' not in line:
                continue
            name, rest = line.split("{", 1)
            labels = dict(LABEL.findall(rest))
            direction = labels.get("netflow_direction", "")
            port = labels.get("destination_port" if direction == "outgoing" else "source_port")
            if port in ours:
                key = (name, direction, labels.get("network_io_direction", ""))
                out.setdefault(key, []).append(float(rest.rsplit(" ", 1)[1]))
        return {k: set(v) for k, v in out.items() if len(v) == len(ours)}

    try:
        expected = {(BYTES, "outgoing", "transmit"): {1}, (BYTES, "outgoing", "receive"): {10},
                    (BYTES, "incoming", "transmit"): {10}, (BYTES, "incoming", "receive"): {0},
                    ("netflow_tcp_active", "outgoing", ""): {1}, ("netflow_tcp_active", "incoming", ""): {1}}
        seen = flows()
        for _ in range(10):  # until every flow is in
            if all(k in seen for k in expected):
                break
            time.sleep(1)
            seen = flows()
        assert {k: seen.get(k) for k in expected} == expected
        spilled = {e["key"]: e["value"] for e in exp.kernel_map("netobs_spilled")}
        # so many entries are in the hash maps behind the slots: netflow's, and l7's of sockets it has
        # looked at and not yet decided about (a byte of no protocol): both places count exactly
        assert spilled[0] > 1000 and spilled[1] > 1000, spilled
        connections.close()
        closed = {**expected, ("netflow_tcp_active", "outgoing", ""): {0}, ("netflow_tcp_active", "incoming", ""): {0}}
        for direction in ("outgoing", "incoming"):
            closed[("netflow_tcp_established_total", direction, "")] = {1}
            closed[("netflow_tcp_closed_total", direction, "")] = {1}
        for _ in range(10):
            seen = flows()
            if {k: seen.get(k) for k in closed} == closed:
                break
            time.sleep(1)
        assert {k: seen.get(k) for k in closed} == closed
        lost = [line for line in exp.scrape_text().splitlines()
                if line.startswith("netobs_events_lost_total{") and 'collector="netflow"' in line]
        assert lost and all(float(line.rsplit(" ", 1)[1]) == 0 for line in lost), lost
    finally:
        connections.close()
        assert exp.stop() == 0
