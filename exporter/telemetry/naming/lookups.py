"""How DNS rows are named: their attributes, and iLogtail's `protocols` records of protocol dns."""

from __future__ import annotations

from typing import Any

from exporter.series.lookups import LookupFigures, LookupKey
from exporter.series.rows import Attributes, Figure
from exporter.telemetry.naming.kinds import Kind, Point, remote_info


def lookup_attributes(key: LookupKey) -> Attributes:
    attrs: list[tuple[str, str | int]] = [
        ("dns.question.name", key.name),
        ("dns.question.type", key.qtype),
        ("dns.response_code", key.rcode),
    ]
    if key.rcode != "NOERROR":
        attrs.append(("error.type", key.rcode))
    attrs += [
        ("server.address", key.server_address),
        ("server.port", key.server_port),
        ("network.transport", key.transport),
        ("network.type", key.family),
        ("dnsflow.direction", "outgoing" if key.client else "incoming"),
    ]
    return tuple(attrs)


class Protocols:
    """iLogtail's `protocols` record of DNS: the lookups of a series in the interval."""

    def totals(self, figures: tuple[Figure, ...]) -> tuple[int, ...]:
        f: Any = figures
        return f.lookups, round(f.duration.sum * 1e9), f.request_bytes, f.response_bytes

    def wanted(self, deltas: tuple[int, ...]) -> bool:
        return deltas[0] != 0

    def record(self, key: LookupKey, deltas: tuple[int, ...]) -> tuple[str, dict[str, str]]:
        # the peer of a client is its server; a server's clients are not kept (one series for all)
        remote = remote_info(key.server_address, str(key.server_port), "dns") if key.client \
            else remote_info("", "", "client")
        return "protocols", {
            "protocol": "dns",
            "query_record": key.name,
            "query_type": key.qtype,
            "success": "1" if key.rcode == "NOERROR" else "0",
            "role": "client" if key.client else "server",
            "remote_info": remote,
            "total_count": str(deltas[0]),
            "total_latency_ns": str(deltas[1]),
            "total_req_bytes": str(deltas[2]),
            "total_resp_bytes": str(deltas[3]),
        }


def _figure(name: str) -> int:
    return LookupFigures._fields.index(name)


class LookupKind(Kind):
    name = "dns"
    points = (
        Point("dns.lookup.duration", _figure("duration")),
        Point("dns.lookups", _figure("lookups")),
        Point("dns.lookup.duration.max", _figure("duration_max_s")),
    )
    record = Protocols()

    def attributes(self, key: LookupKey, level: str, domain: str | None) -> Attributes:
        return lookup_attributes(key)


LOOKUPS = LookupKind()
