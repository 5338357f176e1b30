"""Request series of the application protocols: what the kernel counted, as rows.

The kernel (bpf/l7.c) pairs each request with its response and adds the exchange to a series
of cumulative figures. This module turns the increments read from it into series keyed the way
users slice them (role, process, method, route, status, server), folds a process's routes beyond
its cap into "~other" (a gRPC path is a route: one cap for both), and hands them on as rows. Pure
logic: the tests feed it increments directly."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

from exporter.series.peers import Peer
from exporter.series.requests import OTHER_ROUTE, RequestFigures, RequestKey
from exporter.series.rows import HistogramValue, Owner, Row


class SeriesKey(NamedTuple):
    protocol: str  # "http", "grpc", or the db.system.name: "redis", "postgresql", "mysql", "memcached"
    client: bool   # the process sent the request (client) rather than answered it (server)
    pid: int
    comm: str
    method: str     # HTTP method (gRPC: "POST"), or database operation
    route: str      # HTTP: the folded path; gRPC: the whole path "/package.Service/Method"
    authority: str  # Host header or :authority, as sent
    status: int     # HTTP status, or DB_OK / DB_ERROR; 0: no response
    version: str    # "1.0", "1.1", "2"
    family: str
    server_address: str  # the server's IP address
    server_port: int
    code: str = ""  # databases: the error code or memcached's reply; gRPC: grpc-status, "" when none was seen
    start: int = 0  # with pid: the process, for good (Owner)
    cgroup_id: int = 0
    tls: bool = False  # encrypted: the plaintext came from the TLS library
    clients: Peer | None = None  # a server's: its clients' workload, when known


@dataclass(frozen=True, slots=True)
class Increment:
    """What one kernel series gained since the previous read."""

    count: int
    sum_ns: int
    buckets: tuple[int, ...]
    request_bytes: int
    response_bytes: int
    request_body_sum: int
    response_body_sum: int
    request_body_buckets: tuple[int, ...]
    response_body_buckets: tuple[int, ...]
    last_ns: int


@dataclass(slots=True)
class Series:
    buckets: list[int]
    request_body_buckets: list[int]
    response_body_buckets: list[int]
    count: int = 0
    sum_ns: int = 0
    request_bytes: int = 0
    response_bytes: int = 0
    request_body_sum: int = 0
    response_body_sum: int = 0
    last_ns: int = 0
    row: Row | None = None  # the series' row, until it changes


def _add(into: list[int], values: tuple[int, ...]) -> None:
    for i, n in enumerate(values):
        into[i] += n


@dataclass
class RequestTracker:
    duration_bounds: int  # number of bounds of the duration histogram
    size_bounds: int
    max_routes_per_process: int
    expiry_ns: int
    series: dict[SeriesKey, Series] = field(default_factory=dict)
    folded: int = 0  # requests whose route was folded into ~other
    _routes: dict[int, set[str]] = field(default_factory=dict)  # pid -> routes it has series for

    def _fold(self, pid: int, route: str) -> str:
        routes = self._routes.setdefault(pid, set())
        if route in routes:
            return route
        if len(routes) >= self.max_routes_per_process:
            return OTHER_ROUTE
        routes.add(route)
        return route

    def add(self, key: SeriesKey, inc: Increment) -> None:
        route = self._fold(key.pid, key.route)
        if route != key.route:
            self.folded += inc.count
            key = key._replace(route=route)
        s = self.series.get(key)
        if s is None:
            s = self.series[key] = Series([0] * (self.duration_bounds + 1), [0] * (self.size_bounds + 1),
                                          [0] * (self.size_bounds + 1))
        s.count += inc.count
        s.sum_ns += inc.sum_ns
        _add(s.buckets, inc.buckets)
        _add(s.request_body_buckets, inc.request_body_buckets)
        _add(s.response_body_buckets, inc.response_body_buckets)
        s.request_bytes += inc.request_bytes
        s.response_bytes += inc.response_bytes
        s.request_body_sum += inc.request_body_sum
        s.response_body_sum += inc.response_body_sum
        s.last_ns = max(s.last_ns, inc.last_ns)
        s.row = None

    def expire(self, now_ns: int) -> None:
        idle = [k for k, s in self.series.items() if now_ns - s.last_ns > self.expiry_ns]
        for k in idle:
            del self.series[k]
        if idle:
            self._routes = {}
            for k in self.series:
                if k.route != OTHER_ROUTE:
                    self._routes.setdefault(k.pid, set()).add(k.route)

    # ------------------------------------------------------------------ output

    def rows(self) -> list[Row]:
        """A row per series; a series keeps its Row until it changes."""
        out = []
        for key, s in self.series.items():
            if s.row is None:
                s.row = _row(key, s)
            out.append(s.row)
        return out


def _row(key: SeriesKey, s: Series) -> Row:
    return Row(
        RequestKey(key.protocol, key.client, key.method, key.route, key.authority, key.status, key.version,
                   key.family, key.server_address, key.server_port, key.code, key.tls, key.clients),
        Owner(key.pid, key.comm, key.start, key.cgroup_id),
        RequestFigures(HistogramValue(tuple(s.buckets), s.sum_ns / 1e9, s.count),
                       HistogramValue(tuple(s.request_body_buckets), float(s.request_body_sum), s.count),
                       HistogramValue(tuple(s.response_body_buckets), float(s.response_body_sum), s.count),
                       s.request_bytes, s.response_bytes))
