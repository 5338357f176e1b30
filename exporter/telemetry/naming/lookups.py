"""How DNS rows are named: their attributes, and iLogtail's `protocols` records of protocol dns."""

from __future__ import annotations

from exporter.series.lookups import LookupFigures, LookupKey
from exporter.series.peers import Remote
from exporter.series.rows import Attributes
from exporter.telemetry.naming.kinds import Kind, Point, ProtocolRecord, peer_attributes


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


class Protocols(ProtocolRecord):
    """iLogtail's `protocols` record of DNS: the lookups of a series in the interval."""

    peer_type = "dns"

    def fields(self, key: LookupKey) -> dict[str, str]:
        return {"protocol": "dns", "query_record": key.name, "query_type": key.qtype,
                "success": "1" if key.rcode == "NOERROR" else "0"}


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

    def attributes(self, key: LookupKey, level: str, remote: Remote) -> Attributes:
        return lookup_attributes(key) + peer_attributes(remote.peer)  # an asking process's DNS server


LOOKUPS = LookupKind()
