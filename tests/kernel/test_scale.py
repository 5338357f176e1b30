"""A real Prometheus scrapes the exporter while 1,000 loopback connections are open (2,000 flows):
every flow arrives, exactly once, within the 1 s scrape timeout, and scrape_duration_seconds says
how long it took. The cost figures themselves are bench/scale_bench.py's (docs/benchmarks.md)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.kernel.connections import OpenConnections
from tests.kernel.harness import WITH_PID, Exporter, wait_until
from tests.kernel.prometheus import Prometheus

pytestmark = pytest.mark.usefixtures("bpf_ready")

CONNECTIONS = 1000
JOB = "netobs-scale"


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
