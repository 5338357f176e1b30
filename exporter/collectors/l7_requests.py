"""Request series of the application protocols: what the kernel counted, as metrics and records.

The kernel (bpf/l7.c) pairs each request with its response and adds the exchange to a series
of cumulative figures. This module turns the increments read from it into series keyed the way
users slice them (role, process, method, route, status, server), folds a process's routes beyond
its cap into "~other", and renders OpenTelemetry points and iLogtail `protocols` records. Pure
logic: the tests feed it increments directly."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import NamedTuple

from exporter.telemetry.points import Attributes, HistogramValue, Points, Snapshot

OTHER_ROUTE = "~other"
NO_RESPONSE = "no_response"  # error.type of a request whose connection closed before its response


class SeriesKey(NamedTuple):
    protocol: str  # "http", or the db.system.name: "redis", "postgresql", "mysql", "memcached"
    client: bool   # the process sent the request (client) rather than answered it (server)
    pid: int
    comm: str
    method: str     # HTTP method, or database operation
    route: str      # HTTP only
    authority: str  # Host header, as sent
    status: int     # HTTP status, or DB_OK / DB_ERROR; 0: no response
    version: str    # "1.0", "1.1"
    family: str
    server_address: str  # the server's IP address
    server_port: int
    code: str = ""  # databases: the error code (SQLSTATE, MySQL number, Redis prefix) or memcached's reply


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


@dataclass(frozen=True, slots=True)
class RecordTotals:
    count: int
    latency_ns: int
    request_bytes: int
    response_bytes: int


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
    _recorded: dict[SeriesKey, RecordTotals] = field(default_factory=dict)

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

    def expire(self, now_ns: int) -> None:
        idle = [k for k, s in self.series.items() if now_ns - s.last_ns > self.expiry_ns]
        for k in idle:
            del self.series[k]
            self._recorded.pop(k, None)
        if idle:
            self._routes = {}
            for k in self.series:
                if k.route != OTHER_ROUTE:
                    self._routes.setdefault(k.pid, set()).add(k.route)

    # ------------------------------------------------------------------ output

    def snapshot(self) -> Snapshot:
        out: Snapshot = {}
        for key, s in self.series.items():
            role = "client" if key.client else "server"
            if key.protocol != "http":
                _point(out, f"db.{role}.operation.duration", db_attributes(key),
                       HistogramValue(tuple(s.buckets), s.sum_ns / 1e9, s.count))
                continue
            attrs = http_attributes(key)
            _point(out, f"http.{role}.request.duration", attrs,
                   HistogramValue(tuple(s.buckets), s.sum_ns / 1e9, s.count))
            _point(out, f"http.{role}.request.body.size", attrs,
                   HistogramValue(tuple(s.request_body_buckets), float(s.request_body_sum), s.count))
            _point(out, f"http.{role}.response.body.size", attrs,
                   HistogramValue(tuple(s.response_body_buckets), float(s.response_body_sum), s.count))
        return out

    def take_records(self) -> dict[SeriesKey, RecordTotals]:
        """What each series counted since the previous call (iLogtail's records are per interval)."""
        out = {}
        for key, s in self.series.items():
            now = RecordTotals(s.count, s.sum_ns, s.request_bytes, s.response_bytes)
            before = self._recorded.get(key, RecordTotals(0, 0, 0, 0))
            if now.count != before.count:
                out[key] = RecordTotals(now.count - before.count, now.latency_ns - before.latency_ns,
                                        now.request_bytes - before.request_bytes,
                                        now.response_bytes - before.response_bytes)
            self._recorded[key] = now
        return out


def _point(out: Snapshot, instrument: str, attrs: Attributes, value: HistogramValue) -> None:
    """Series that differ only in what the attributes leave out (the server's IP under one Host) add up."""
    points: Points = out.setdefault(instrument, {})
    had = points.get(attrs)
    if isinstance(had, HistogramValue):
        value = HistogramValue(tuple(a + b for a, b in zip(had.bucket_counts, value.bucket_counts, strict=True)),
                               had.sum + value.sum, had.count + value.count)
    points[attrs] = value


def host_of(authority: str) -> str:
    """The host of a Host header value: "example.com:8080" -> "example.com", "[::1]:80" -> "::1"."""
    if authority.startswith("["):
        return authority[1:].split("]", 1)[0]
    if authority.count(":") == 1:
        return authority.split(":", 1)[0]
    return authority


def error_type(key: SeriesKey) -> str | None:
    """OpenTelemetry's rule: 5xx is an error for servers, 4xx and 5xx for clients."""
    if key.status == 0:
        return NO_RESPONSE
    if key.status >= 500 or (key.client and key.status >= 400):
        return str(key.status)
    return None


def http_attributes(key: SeriesKey) -> Attributes:
    attrs: list[tuple[str, str | int]] = [("http.request.method", key.method)]
    if key.status:
        attrs.append(("http.response.status_code", key.status))
    attrs.append(("http.route", key.route))
    error = error_type(key)
    if error:
        attrs.append(("error.type", error))
    attrs += [
        ("network.protocol.name", "http"),
        ("network.protocol.version", key.version),
        ("network.transport", "tcp"),
        ("network.type", key.family),
        ("server.address", host_of(key.authority) or key.server_address),
        ("server.port", key.server_port),
        ("process.pid", key.pid),
        ("process.executable.name", key.comm),
    ]
    return tuple(attrs)


DB_OK, DB_ERROR = 1, 2  # SeriesKey.status of a database operation; 0: no response


def db_error_type(key: SeriesKey) -> str | None:
    if key.status == 0:
        return NO_RESPONSE
    if key.status == DB_ERROR:
        return key.code or "_OTHER"
    return None


def db_attributes(key: SeriesKey) -> Attributes:
    attrs: list[tuple[str, str | int]] = [("db.system.name", key.protocol)]
    if key.method:
        attrs.append(("db.operation.name", key.method))
    if key.code:
        attrs.append(("db.response.status_code", key.code))
    error = db_error_type(key)
    if error:
        attrs.append(("error.type", error))
    attrs += [
        ("network.transport", "tcp"),
        ("network.type", key.family),
        ("server.address", key.server_address),
        ("server.port", key.server_port),
        ("process.pid", key.pid),
        ("process.executable.name", key.comm),
    ]
    return tuple(attrs)


# iLogtail's protocol names
_RECORD_PROTOCOL = {"postgresql": "pgsql"}


def protocol_record(key: SeriesKey, totals: RecordTotals, cmdline: str, now: str) -> dict[str, str]:
    """An iLogtail `protocols` record. A server's clients are not kept (one series for all). For
    databases, `method` is the operation and `resp_code` the error code (or memcached's reply)."""
    remote = {"remote_ip": key.server_address, "remote_port": str(key.server_port), "remote_type": "server"} \
        if key.client else {"remote_ip": "", "remote_port": "", "remote_type": "client"}
    http = key.protocol == "http"
    return {
        "type": "protocols",
        "_process_pid_": str(key.pid),
        "_process_cmd_": cmdline,
        "_running_mode_": "host",
        "protocol": _RECORD_PROTOCOL.get(key.protocol, key.protocol),
        "version": key.version,
        "host": key.authority,
        "method": key.method,
        "url": key.route,
        "resp_code": str(key.status) if http else (db_error_type(key) or key.code or "OK"),
        "role": "client" if key.client else "server",
        "remote_info": json.dumps(remote, separators=(",", ":")) + "\n",
        "total_count": str(totals.count),
        "total_latency_ns": str(totals.latency_ns),
        "total_req_bytes": str(totals.request_bytes),
        "total_resp_bytes": str(totals.response_bytes),
        "__time__": now,
    }
