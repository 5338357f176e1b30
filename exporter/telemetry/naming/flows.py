"""How netflow's rows are named: the flow attributes at each aggregation level, and iLogtail's
`statistics` records."""

from __future__ import annotations

import errno
from typing import Any

from exporter.series.addresses import AF_UNIX, NETWORK_TYPE, address_type, format_address
from exporter.series.flows import (
    DIRECTION_INCOMING,
    DIRECTION_OUTGOING,
    IPPROTO_TCP,
    IPPROTO_UDP,
    FailedFigures,
    FailedKey,
    FlowFigures,
    FlowKey,
)
from exporter.series.peers import NOWHERE, Remote
from exporter.series.rows import Attributes, Figure
from exporter.telemetry.naming.kinds import Kind, Point, peer_attributes, remote_info

# Aggregation levels (Netflow.Aggregation, Netflow.RttHistogram), finest first: what each keeps of the
# two ends. Coarser levels add up the flows that differ only in what they leave out.
FLOW = "flow"  # source address and port, destination address and port
PEER = "peer"  # destination address and port: a workload and the service it talks to
PEER_ADDRESS = "peer_address"  # destination address: a workload and the host it talks to
WORKLOAD = "workload"  # neither: a workload's traffic by transport and direction, and by peer workload
LEVELS = (FLOW, PEER, PEER_ADDRESS, WORKLOAD)

TRANSPORT = {IPPROTO_TCP: "tcp", IPPROTO_UDP: "udp"}
DIRECTION = {DIRECTION_INCOMING: "incoming", DIRECTION_OUTGOING: "outgoing"}
ROLE = {DIRECTION_OUTGOING: "client", DIRECTION_INCOMING: "server"}
ROLE_PEER = {"client": "server", "server": "client", "unknown": "unknown"}
TRANSMIT: Attributes = (("network.io.direction", "transmit"),)
RECEIVE: Attributes = (("network.io.direction", "receive"),)


def _port(port: int) -> str:
    return str(port) if port else "*"


def flow_attributes(key: FlowKey, level: str, remote: Remote = NOWHERE) -> Attributes:
    """A flow's attributes, from the local process's point of view, at an aggregation level. The
    remote end's Kubernetes identity is kept at every level: where the address is not, it stands for
    it, by workload (peer_attributes)."""
    attrs: list[tuple[str, str | int]] = []
    if key.inet:
        attrs += [("network.transport", TRANSPORT.get(key.protocol, "other")),
                  ("network.type", NETWORK_TYPE[key.family])]
        if level == FLOW:
            local = format_address(key.local_address, key.family)
            attrs += [("source.address", local), ("source.port", _port(key.local_port)),
                      ("netflow.source.address.type", address_type(local))]
        if level != WORKLOAD:
            address = format_address(key.remote_address, key.family)
            attrs += [("destination.address", address), ("netflow.destination.address.type", address_type(address))]
            if level != PEER_ADDRESS:
                attrs.append(("destination.port", _port(key.remote_port)))
            if remote.domain is not None:
                attrs.append(("destination.domain", remote.domain))
        attrs += peer_attributes(remote.peer, workload=level == WORKLOAD)
    else:
        attrs.append(("network.transport", "unix" if key.family == AF_UNIX else "other"))
    if key.direction in DIRECTION:
        attrs.append(("netflow.direction", DIRECTION[key.direction]))
    return tuple(attrs)


def _figure(name: str) -> int:
    return FlowFigures._fields.index(name)


class FlowKind(Kind):
    name = "netflow"
    levels = LEVELS
    points = (
        Point("netflow.bytes", _figure("bytes_sent"), TRANSMIT),
        Point("netflow.bytes", _figure("bytes_received"), RECEIVE),
        Point("netflow.packets", _figure("packets_sent"), TRANSMIT),
        Point("netflow.packets", _figure("packets_received"), RECEIVE),
        Point("netflow.tcp.retransmits", _figure("retransmits")),
        Point("netflow.tcp.established", _figure("established")),
        Point("netflow.tcp.closed", _figure("closed")),
        Point("netflow.tcp.active", _figure("active")),
        Point("netflow.tcp.rtt", _figure("rtt")),
        Point("netflow.tcp.srtt", _figure("srtt_s")),
        Point("netflow.tcp.rttvar", _figure("rttvar_s")),
    )

    def attributes(self, key: FlowKey, level: str, remote: Remote) -> Attributes:
        return flow_attributes(key, level, remote)


class FailedKind(Kind):
    name = "netflow.failed"
    levels = LEVELS
    points = (Point("netflow.tcp.failed", FailedFigures._fields.index("failed")),)

    def attributes(self, key: FailedKey, level: str, remote: Remote) -> Attributes:
        return (*flow_attributes(key.flow, level, remote), ("error.type", error_name(key.error)))


def error_name(code: int) -> str:
    return errno.errorcode.get(code, "_OTHER") if code else "_OTHER"


class Statistics:
    """iLogtail's `statistics` record: what a flow sent and received in the interval."""

    def totals(self, figures: tuple[Figure, ...]) -> tuple[int, ...]:
        f: Any = figures
        return f.bytes_sent, f.bytes_received, f.packets_sent, f.packets_received

    def wanted(self, deltas: tuple[int, ...]) -> bool:
        return any(deltas)

    def record(self, key: FlowKey, deltas: tuple[int, ...]) -> tuple[str, dict[str, str]]:
        role = ROLE.get(key.direction, "unknown")
        remote = format_address(key.remote_address, key.family) if key.inet else ""
        socket_type = "inet_socket" if key.inet else ("unix_socket" if key.family == AF_UNIX else "unknown_socket")
        return "statistics", {
            "remote_info": remote_info(remote, _port(key.remote_port), ROLE_PEER[role]),
            "socket_type": socket_type,
            "role": role,
            "send_bytes": str(deltas[0]),
            "recv_bytes": str(deltas[1]),
            "send_packets": str(deltas[2]),
            "recv_packets": str(deltas[3]),
            "send_total_latency": "0",
            "recv_total_latency": "0",
        }


FlowKind.record = Statistics()
FLOWS = FlowKind()
FAILED = FailedKind()
