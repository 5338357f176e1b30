"""The single table of instruments: name, kind, unit and description of every metric, the
exporter's own included.

Names follow OpenTelemetry semantic conventions where one exists; in Prometheus the
exporter adds the unit and `_total` suffixes (netflow.bytes -> netflow_bytes_total,
netflow.tcp.rtt -> netflow_tcp_rtt_seconds_bucket). docs/metrics.md mirrors this table."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

Kind = Literal["counter", "updowncounter", "gauge", "histogram"]

# Seconds; DNS lookups from 100 µs (a cache on the node) to 10 s (retries against a dead server).
DNS_BOUNDS_S: tuple[float, ...] = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075,
    0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
)

# Seconds; OpenTelemetry's advice for http.*.request.duration and rpc.*.call.duration.
HTTP_DURATION_BOUNDS_S: tuple[float, ...] = (
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
)

# Seconds; OpenTelemetry's advice for db.client.operation.duration (1 ms ... 10 s), extended down to
# 100 µs: caches and databases on the node answer in well under a millisecond.
DB_DURATION_BOUNDS_S: tuple[float, ...] = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0,
)

# Bytes; message body sizes from empty to 64 MiB, by powers of four.
SIZE_BOUNDS_BY: tuple[float, ...] = (
    0, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864,
)


@dataclass(frozen=True)
class Instrument:
    name: str
    kind: Kind
    unit: str
    description: str
    bounds: tuple[float, ...] = ()  # histograms; netflow.tcp.rtt's come from Netflow.RttBuckets (with_bounds)


def _table(*instruments: Instrument) -> dict[str, Instrument]:
    return {i.name: i for i in instruments}


NETFLOW = _table(
    Instrument("netflow.bytes", "counter", "By",
               "Bytes sent (network.io.direction=transmit) or received (receive) by local processes on the flow."),
    Instrument("netflow.packets", "counter", "{packet}",
               "TCP segments or UDP datagrams sent (transmit) or received (receive) on the flow."),
    Instrument("netflow.tcp.retransmits", "counter", "{segment}",
               "TCP segments retransmitted on the flow, as counted by the kernel (tcpi_total_retrans)."),
    Instrument("netflow.tcp.established", "counter", "{connection}",
               "TCP connections established on the flow: connected (outgoing) or accepted (incoming)."),
    Instrument("netflow.tcp.closed", "counter", "{connection}",
               "TCP connections of the flow that reached the CLOSE state."),
    Instrument("netflow.tcp.failed", "counter", "{connection}",
               "TCP connection attempts that failed before being established, by errno (error.type)."),
    Instrument("netflow.tcp.active", "updowncounter", "{connection}",
               "TCP connections of the flow currently open."),
    Instrument("netflow.tcp.rtt", "histogram", "s",
               "Smoothed TCP round-trip time, sampled at most once per RttSampleInterval per connection."),
    Instrument("netflow.tcp.srtt", "gauge", "s",
               "Smoothed round-trip time (tcpi_rtt) of the flow's connection with the latest activity."),
    Instrument("netflow.tcp.rttvar", "gauge", "s",
               "Round-trip time variance (tcpi_rttvar) of the flow's connection with the latest activity."),
)

DNS = _table(
    Instrument("dns.lookup.duration", "histogram", "s",
               "Time from a DNS query to its answer, as the asking (outgoing) or answering (incoming) process saw "
               "it; an unanswered query counts as TIMEOUT with Dns.Timeout as its duration.", DNS_BOUNDS_S),
    Instrument("dns.lookups", "counter", "{lookup}",
               "DNS queries answered or timed out, by name, type and response code."),
    Instrument("dns.lookup.duration.max", "gauge", "s",
               "Longest DNS lookup of the series in the current and the previous Common.FlushOutL7Interval."),
)

_HTTP_SIDES = {
    "server": "as the answering process saw it: from reading the request's first bytes to writing the "
              "response's last",
    "client": "as the asking process saw it: from writing the request's first bytes to reading the "
              "response's last",
}

HTTP = _table(*(
    instrument
    for role, seen in _HTTP_SIDES.items()
    for instrument in (
        Instrument(f"http.{role}.request.duration", "histogram", "s",
                   f"Duration of HTTP requests, {seen}; a request whose connection closed first has "
                   "error.type=no_response.", HTTP_DURATION_BOUNDS_S),
        Instrument(f"http.{role}.request.body.size", "histogram", "By",
                   f"Size of HTTP request bodies ({role} side), after any transfer encoding.", SIZE_BOUNDS_BY),
        Instrument(f"http.{role}.response.body.size", "histogram", "By",
                   f"Size of HTTP response bodies ({role} side), after any transfer encoding.", SIZE_BOUNDS_BY),
    )
))

_RPC_SIDES = {
    "server": "as the answering process saw them: from reading the request's first frame to writing the "
              "END_STREAM of the response",
    "client": "as the calling process saw them: from writing the request's first frame to reading the "
              "END_STREAM of the response",
}

RPC = _table(*(
    Instrument(f"rpc.{role}.call.duration", "histogram", "s",
               f"Duration of gRPC calls, {seen}; a streaming call is one call, and a call whose stream was reset "
               "or whose connection closed before any status has error.type=no_response.", HTTP_DURATION_BOUNDS_S)
    for role, seen in _RPC_SIDES.items()
))

DB = _table(
    Instrument("db.client.operation.duration", "histogram", "s",
               "Duration of database and cache operations (Redis, PostgreSQL, MySQL, memcached) as the client "
               "process saw them: from writing the request to reading the end of its response.",
               DB_DURATION_BOUNDS_S),
    Instrument("db.server.operation.duration", "histogram", "s",
               "Duration of the same operations as the server process saw them: from reading the request to "
               "writing the end of its response.", DB_DURATION_BOUNDS_S),
)

# The exporter's own health (scope netobs.exporter); few series, made anew at every collection.
SELF = _table(
    Instrument("netobs.program.attached", "gauge", "{state}", "Whether a BPF program is attached (1) or not (0)."),
    Instrument("netobs.collector.duration", "gauge", "s",
               "How long the last read of a collector's kernel tables took."),
    Instrument("netobs.collector.success", "gauge", "{state}",
               "Whether the last collection of a collector succeeded (1) or not (0)."),
    Instrument("netobs.events.lost", "counter", "{event}",
               "Events not turned into data (kernel table or ring buffer full, malformed message...), "
               "by collector and reason."),
    Instrument("netobs.series", "gauge", "{series}", "Series exported per instrument at the last collection."),
    Instrument("netobs.series.dropped", "counter", "{series}",
               "Series not exported because an instrument reached its series limit, summed over collections."),
    Instrument("netobs.series.limit", "gauge", "{series}",
               "Most series an instrument exports (Telemetry.MaxSeriesPerInstrument)."),
    Instrument("netobs.bash.commands", "counter", "{command}",
               "Commands typed in interactive bash and seen by the exporter."),
    Instrument("netobs.dns.names.folded", "counter", "{lookup}", "DNS lookups whose name was folded into ~other."),
    Instrument("netobs.http.routes.folded", "counter", "{request}",
               "HTTP requests and gRPC calls whose route or path was folded into ~other (L7.MaxRoutesPerProcess)."),
    Instrument("netobs.tls.files", "gauge", "{file}",
               "Files whose TLS library calls are traced: shared libraries, and binaries linking one statically."),
    Instrument("netobs.tls.attach.failures", "counter", "{file}",
               "Files holding a TLS library that could not be traced (each is logged once)."),
    Instrument("netobs.bash.records.dropped", "counter", "{record}",
               "Log records of bash commands not delivered, by reason."),
    Instrument("netobs.enrich.errors", "counter", "{error}",
               "Errors of the metadata sources (Docker, Kubernetes, cgroup and /proc reads) by source; the last "
               "known metadata is kept."),
    Instrument("netobs.otlp.exports", "counter", "{export}",
               "OTLP metric pushes by outcome (success or failure); a push may be several requests."),
)

KERNEL: dict[str, Instrument] = {**NETFLOW, **DNS, **HTTP, **RPC, **DB}
ALL: dict[str, Instrument] = {**KERNEL, **SELF}
SCOPES = {"netobs.kernel": KERNEL, "netobs.exporter": SELF}  # OTLP instrumentation scope -> its instruments


def scope_of(name: str) -> str:
    return "netobs.kernel" if name in KERNEL else "netobs.exporter"


def with_bounds(instruments: dict[str, Instrument], name: str, bounds: tuple[float, ...]) -> dict[str, Instrument]:
    """The table with one histogram's bucket bounds replaced (Netflow.RttBuckets)."""
    return {**instruments, name: replace(instruments[name], bounds=bounds)}
