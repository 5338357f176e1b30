"""The rows of DNS: one per process, role, server, question and response code."""

from __future__ import annotations

from typing import NamedTuple

from exporter.series.rows import HistogramValue


class LookupKey(NamedTuple):
    client: bool  # the process asked (outgoing) rather than answered (incoming)
    transport: str  # "udp" or "tcp"
    family: str  # "ipv4" or "ipv6"
    server_address: str  # the server: the peer of a client, the local address of a server
    server_port: int
    name: str  # the question, or "~other" once the process has Dns.MaxNamesPerProcess names
    qtype: str  # "A", "AAAA", ..., "TYPE<n>"
    rcode: str  # "NOERROR", "NXDOMAIN", ..., "TIMEOUT"

    @property
    def peer(self) -> str | None:
        return self.server_address if self.client else None  # a server's clients are not in its key


class LookupFigures(NamedTuple):
    duration: HistogramValue  # seconds, from the query to its answer (or Dns.Timeout)
    lookups: int
    duration_max_s: float | None  # longest in the current and previous window; None once both are empty
    request_bytes: int
    response_bytes: int
