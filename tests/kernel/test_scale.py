"""A real Prometheus scrapes the exporter while 1,000 loopback connections are open (2,000 flows):
every flow arrives, exactly once, within the 1 s scrape timeout, and scrape_duration_seconds says
how long it took. The cost figures themselves are bench/scale_bench.py's (docs/benchmarks.md)."""

from __future__ import annotations

import os
import resource
import selectors
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.kernel.harness import WITH_PID, Exporter, wait_until
from tests.kernel.prometheus import Prometheus

pytestmark = pytest.mark.usefixtures("bpf_ready")

CONNECTIONS = 1000
JOB = "netobs-scale"


class OpenConnections:
    """CONNECTIONS connections on 127.0.0.1, each to a listener of its own, held by this process: one
    client and one server flow each (the client's ephemeral port folds, the listening port does not)."""

    def __init__(self) -> None:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft < 4 * CONNECTIONS:
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(max(hard, 4 * CONNECTIONS), 4 * CONNECTIONS), hard))
        self.sockets: list[socket.socket] = []
        self.ports: list[int] = []
        selector = selectors.DefaultSelector()
        for _ in range(CONNECTIONS):
            listener = socket.socket()
            listener.bind(("127.0.0.1", 0))
            listener.listen(1)
            self.ports.append(listener.getsockname()[1])
            client = socket.create_connection(("127.0.0.1", self.ports[-1]))
            server, _ = listener.accept()
            listener.close()
            client.sendall(b"q")
            server.sendall(b"a" * 10)
            self.sockets += [client, server]
            selector.register(client, selectors.EVENT_READ, data=client)
        waiting = {c.fileno(): 10 for c in self.sockets[::2]}
        while waiting:  # every client reads its 10 bytes
            events = selector.select(timeout=10)
            assert events, f"{len(waiting)} clients never got their answer"
            for key, _ in events:
                reader: socket.socket = key.data
                waiting[reader.fileno()] -= len(reader.recv(64))
                if not waiting[reader.fileno()]:
                    del waiting[reader.fileno()]
                    selector.unregister(reader)
        selector.close()

    def close(self) -> None:
        for s in self.sockets:
            s.close()


@pytest.fixture
def exporter() -> Iterator[Exporter]:
    e = Exporter(WITH_PID, "Common.DropLocalConnections=false")
    yield e
    assert e.stop() == 0


def test_prometheus_scrapes_two_thousand_flows_within_its_timeout(exporter: Exporter, tmp_path: Path) -> None:
    pid = str(os.getpid())
    connections = OpenConnections()  # opened while the exporter watches, as connections usually are
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
