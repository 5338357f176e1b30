"""The rows of netflow: one per flow, and one per flow and errno of failed connections."""

from __future__ import annotations

from typing import NamedTuple

from exporter.series.addresses import AF_INET, AF_INET6, format_address
from exporter.series.rows import HistogramValue

IPPROTO_TCP, IPPROTO_UDP = 6, 17
DIRECTION_UNKNOWN, DIRECTION_INCOMING, DIRECTION_OUTGOING = 0, 1, 2  # enum netflow_direction


class FlowKey(NamedTuple):
    """One flow as the kernel keys it, without its pid (the row's owner): from the local process's
    side. Ports are 0 when folded to `*`; addresses are 16 bytes, IPv4 in the first 4."""

    family: int  # AF_INET, AF_INET6, AF_UNIX, or another address family
    protocol: int  # IPPROTO_TCP, IPPROTO_UDP, or 0
    local_address: bytes
    local_port: int
    remote_address: bytes
    remote_port: int
    direction: int

    @property
    def inet(self) -> bool:
        return self.family in (AF_INET, AF_INET6)

    @property
    def peer(self) -> str | None:
        return format_address(self.remote_address, self.family) if self.inet else None


class FlowFigures(NamedTuple):
    """Cumulative since the flow appeared. The TCP-only figures are None for other transports, and
    the RTT figures until the flow's first sample."""

    bytes_sent: int
    bytes_received: int
    packets_sent: int
    packets_received: int
    retransmits: int | None
    established: int | None
    closed: int | None
    active: int | None
    srtt_s: float | None
    rttvar_s: float | None
    rtt: HistogramValue | None


class FailedKey(NamedTuple):
    """Failed connection attempts of one flow with one errno."""

    flow: FlowKey
    error: int  # positive errno

    @property
    def peer(self) -> str | None:
        return self.flow.peer


class FailedFigures(NamedTuple):
    failed: int
