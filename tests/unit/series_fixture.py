"""Fixed rows of every kind, with fixed processes, as a collection would hand them to the telemetry:
the input of the golden scrape, of the documentation checks and of the OTLP encoder's tests."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence

from exporter.bpf import AttachResult
from exporter.config import load_config
from exporter.series.flows import (
    DIRECTION_INCOMING,
    DIRECTION_OUTGOING,
    FailedFigures,
    FailedKey,
    FlowFigures,
    FlowKey,
)
from exporter.series.lookups import LookupFigures, LookupKey
from exporter.series.peers import Peer, Remote
from exporter.series.requests import DB_ERROR, RequestFigures, RequestKey
from exporter.series.rows import AttributedRow, HistogramValue, Owner, Process, Row
from exporter.telemetry.collection import Collection
from exporter.telemetry.pipeline import plan
from exporter.telemetry.prometheus import Renderer
from exporter.telemetry.table import SeriesTable

RESOURCE = {"service.name": "netobs-exporter", "service.version": "0.0.0-test", "host.name": "node-1"}
TIME_NS = 1_700_000_000_000_000_000


def v4(*octets: int) -> bytes:
    return bytes(octets) + bytes(12)


CURL = Process({"process.pid": 4242, "process.executable.name": "curl", "process.command_line": "curl -s x",
                "netobs.running_mode": "host"}, {"_running_mode_": "host"}, "curl -s http://10.0.0.9/")
API = Process({"process.pid": 77, "process.executable.name": "api", "netobs.running_mode": "container",
               "container.id": "ab" * 32, "k8s.namespace.name": "shop", "k8s.pod.name": "api-7d4b9-x2x9z",
               "k8s.deployment.name": "api", 'k8s.pod.label.team': 'pay"ments\\'},
              {"_running_mode_": "container", "_container_id_": "ab" * 32}, "/api --port 8080")

# who has the peer addresses of the rows below in the cluster (Kubernetes.Peers)
WEB_POD = Peer("pod", "web-5f9c7-abcde", "shop", "Deployment", "web", "node-2")  # 10.0.0.7
GREETER = Peer("service", "greeter", "shop")  # 10.0.0.8
DB_NODE = Peer("node", "node-3", node="node-3")  # 10.0.0.5, a database on the host network

CLIENT_FLOW = FlowKey(2, 6, v4(10, 0, 0, 1), 0, v4(10, 0, 0, 9), 443, DIRECTION_OUTGOING)
SERVER_FLOW = FlowKey(2, 6, v4(10, 0, 0, 1), 8080, v4(10, 0, 0, 7), 0, DIRECTION_INCOMING)
UDP_FLOW = FlowKey(10, 17, bytes(15) + b"\x01", 0, bytes(15) + b"\x01", 53, DIRECTION_OUTGOING)


def rtt(buckets: int = 19) -> HistogramValue:
    """Three samples: two in the second bucket, one in the third (or +Inf when there are fewer)."""
    counts = [0] * buckets
    counts[min(1, buckets - 1)] += 2
    counts[min(2, buckets - 1)] += 1
    return HistogramValue(tuple(counts), 0.000153, 3)


def rows(rtt_buckets: int = 19) -> list[AttributedRow]:
    def at(row: Row, process: Process, domain: str | None = None, peer: Peer | None = None) -> AttributedRow:
        return AttributedRow(row, process, Remote(domain, peer))

    return [
        at(Row(CLIENT_FLOW, Owner(4242, "curl"),
               FlowFigures(87, 100204, 7, 9, 1, 3, 3, 0, 4.5e-05, 5.5e-05, rtt(rtt_buckets))), CURL, "api.example.com"),
        at(Row(SERVER_FLOW, Owner(77, "api"), FlowFigures(300612, 261, 12, 10, 0, 3, 2, 1, None, None, None)), API,
           peer=WEB_POD),
        at(Row(UDP_FLOW, Owner(4242, "curl"), FlowFigures(120, 360, 3, 3, *(None,) * 7)), CURL),
        at(Row(FailedKey(CLIENT_FLOW._replace(remote_port=444), 111), Owner(4242, "curl"), FailedFigures(1)), CURL),
        at(Row(LookupKey(True, "udp", "ipv6", "::1", 53, "api.example.com", "A", "NOERROR"), Owner(4242, "curl"),
               LookupFigures(HistogramValue((0, 0, 1) + (0,) * 17, 0.0004, 1), 1, 0.0004, 33, 49)), CURL),
        at(Row(LookupKey(True, "udp", "ipv6", "::1", 53, "nope.example", "AAAA", "NXDOMAIN"), Owner(4242, "curl"),
               LookupFigures(HistogramValue((0, 1) + (0,) * 18, 0.0002, 1), 1, None, 30, 30)), CURL),
        at(Row(RequestKey("http", True, "GET", "/users/{id}", "api.example.com", 200, "1.1", "ipv4", "10.0.0.9", 443,
                          tls=True),
               Owner(4242, "curl"),
               RequestFigures(HistogramValue((1,) + (0,) * 14, 0.0021, 1), HistogramValue((1,) + (0,) * 12, 0.0, 1),
                              HistogramValue((0, 0, 1) + (0,) * 10, 100.0, 1), 87, 204)), CURL),
        at(Row(RequestKey("http", False, "POST", "/orders", "", 503, "1.1", "ipv4", "10.0.0.1", 8080),
               Owner(77, "api"),
               RequestFigures(HistogramValue((0, 2) + (0,) * 13, 0.013, 2), HistogramValue((0, 2) + (0,) * 11, 80.0, 2),
                              HistogramValue((2,) + (0,) * 12, 0.0, 2), 400, 180)), API),
        at(Row(RequestKey("grpc", True, "POST", "/helloworld.Greeter/SayHello", "greeter.shop:50051", 200, "2", "ipv4",
                          "10.0.0.8", 50051, "14"),
               Owner(77, "api"),
               RequestFigures(HistogramValue((0, 0, 1) + (0,) * 12, 0.02, 1),
                              HistogramValue((0, 1) + (0,) * 11, 12.0, 1), HistogramValue((0,) * 13, 0.0, 1), 140, 60)),
           API, peer=GREETER),
        at(Row(RequestKey("grpc", False, "POST", "/shop.Orders/Get", "api.shop:9090", 200, "2", "ipv4", "10.0.0.1",
                          9090, "0"),
               Owner(77, "api"),
               RequestFigures(HistogramValue((3,) + (0,) * 14, 0.006, 3), HistogramValue((0, 3) + (0,) * 11, 36.0, 3),
                              HistogramValue((0, 3) + (0,) * 11, 45.0, 3), 420, 300)), API),
        at(Row(RequestKey("postgresql", True, "SELECT", "", "", DB_ERROR, "", "ipv4", "10.0.0.5", 5432, "22012"),
               Owner(77, "api"),
               RequestFigures(HistogramValue((0, 1) + (0,) * 13, 0.0002, 1), HistogramValue((0,) * 13, 0.0, 0),
                              HistogramValue((0,) * 13, 0.0, 0), 40, 90)), API, peer=DB_NODE),
    ]


class FixtureSource:
    """A collector that hands the telemetry nothing but its health: its rows are given attributed."""

    name = "netflow"

    def __init__(self, rtt_buckets: int = 19) -> None:
        self.rtt_buckets = rtt_buckets
        self.lock = threading.Lock()
        self.attach_results = [AttachResult("sock_send", "tp_btf/sock_send_length", True, None)]

    def refresh(self) -> None:
        pass

    def rows(self) -> Sequence[Row]:
        return [a.row for a in rows(self.rtt_buckets)]

    def lost(self) -> Mapping[str, int]:
        return {"flow_table_full": 0}

    def counters(self) -> Mapping[str, int]:
        return {"netobs.dns.names.folded": 2}


def collection(*settings: str) -> Collection:
    """A collection of the fixture under the default configuration plus `settings`, with every
    series visible, at a fixed time and with fixed durations."""
    config = load_config(None, {}, ["Attributes.Process=[process.executable.name, netobs.running_mode, "
                                    "container.id, k8s.namespace.name, k8s.pod.name, k8s.deployment.name, "
                                    "k8s.pod.label.*]", *settings])
    buckets = len(config.netflow.rtt_buckets) + 1
    processes = {(a.row.key, a.row.owner): (a.process, a.remote) for a in rows(buckets)}

    def attribute(_source: str, source_rows: Sequence[Row]) -> list[AttributedRow]:
        return [AttributedRow(r, *processes[r.key, r.owner]) for r in source_rows]

    table = SeriesTable(plan(config))
    return Collection([FixtureSource(buckets)], table, attribute, clock_ns=lambda: TIME_NS, timer=lambda: 0.0)


def renderer(c: Collection) -> Renderer:
    return Renderer(c.table, RESOURCE)
