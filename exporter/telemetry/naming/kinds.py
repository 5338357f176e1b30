"""How a kind of row is named: which instruments its figures feed, its attributes at each
aggregation level, and its iLogtail record. Each is made once per series, never per collection."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from exporter.series.attributes import (
    PEER_KIND,
    PEER_NAMESPACE,
    PEER_NODE,
    PEER_POD,
    PEER_SERVICE,
    PEER_WORKLOAD_KIND,
    PEER_WORKLOAD_NAME,
)
from exporter.series.peers import Peer, Remote
from exporter.series.rows import Attributes, Figure, Owner, Process

SERIES = "series"  # the one level of kinds whose series cannot be coarsened


@dataclass(frozen=True)
class Point:
    """One instrument a figure of the row feeds."""

    instrument: str
    figure: int  # index in the row's figures
    extra: Attributes = ()  # attributes this point adds to the row's (network.io.direction)


class RecordFormat(Protocol):
    """An iLogtail record per row and interval, with what the row counted in that interval."""

    def totals(self, figures: tuple[Figure, ...]) -> tuple[int, ...]:
        """The cumulative numbers whose differences a record reports."""
        ...

    def wanted(self, deltas: tuple[int, ...]) -> bool:
        """Whether an interval with these differences makes a record."""
        ...

    def record(self, key: Any, deltas: tuple[int, ...]) -> tuple[str, dict[str, str]]:
        """The record's type and its own fields (those of its process are the writer's)."""
        ...


class Kind:
    name = ""
    points: tuple[Point, ...] = ()
    levels: tuple[str, ...] = (SERIES,)  # the first is the default
    record: RecordFormat | None = None

    def attributes(self, key: Any, level: str, remote: Remote) -> Attributes:
        """The key's attributes at `level`; `remote` is what is known of the key's peer (Key.peer)."""
        raise NotImplementedError


def peer_attributes(peer: Peer | None, workload: bool = False) -> Attributes:
    """The attributes of the Kubernetes identity behind a series' peer address; none for an address
    outside the cluster. `workload`: for a series that does not keep the address, a pod that has an
    owner workload is named by it alone, without its own name and node, so the pods of one workload
    make one series."""
    if peer is None:
        return ()
    attrs: list[tuple[str, str | int]] = [(PEER_KIND, peer.kind)]
    if peer.namespace:
        attrs.append((PEER_NAMESPACE, peer.namespace))
    if peer.kind == "service":
        attrs.append((PEER_SERVICE, peer.name))
    elif peer.kind == "node":
        attrs.append((PEER_NODE, peer.name))
    elif workload and peer.workload_name:
        attrs += [(PEER_WORKLOAD_KIND, peer.workload_kind), (PEER_WORKLOAD_NAME, peer.workload_name)]
    else:
        attrs.append((PEER_POD, peer.name))
        if peer.node:
            attrs.append((PEER_NODE, peer.node))
        if peer.workload_name:
            attrs += [(PEER_WORKLOAD_KIND, peer.workload_kind), (PEER_WORKLOAD_NAME, peer.workload_name)]
    return tuple(attrs)


class ProtocolRecord:
    """iLogtail's `protocols` record: what one series counted in the interval. Its exchanges are the
    duration histogram's count and sum; its figures also hold their request and response bytes. A
    client's peer is its server; a server's clients have no address in its key."""

    peer_type = "server"  # `remote_type` of a client's server

    def totals(self, figures: tuple[Figure, ...]) -> tuple[int, ...]:
        f: Any = figures
        return f.duration.count, round(f.duration.sum * 1e9), f.request_bytes, f.response_bytes

    def wanted(self, deltas: tuple[int, ...]) -> bool:
        return deltas[0] != 0

    def fields(self, key: Any) -> dict[str, str]:
        """The protocol's own fields, before the role."""
        raise NotImplementedError

    def record(self, key: Any, deltas: tuple[int, ...]) -> tuple[str, dict[str, str]]:
        remote = remote_info(key.server_address, str(key.server_port), self.peer_type) if key.client \
            else remote_info("", "", "client")
        return "protocols", {
            **self.fields(key),
            "role": "client" if key.client else "server",
            "remote_info": remote,
            "total_count": str(deltas[0]),
            "total_latency_ns": str(deltas[1]),
            "total_req_bytes": str(deltas[2]),
            "total_resp_bytes": str(deltas[3]),
        }


def remote_info(ip: str, port: str, peer_type: str) -> str:
    """iLogtail's `remote_info`: a compact JSON object in a string, with a trailing newline."""
    return json.dumps({"remote_ip": ip, "remote_port": port, "remote_type": peer_type}, separators=(",", ":")) + "\n"


def ilogtail_record(kind: str, fields: Mapping[str, str], owner: Owner, process: Process, now: str) -> dict[str, str]:
    """A whole iLogtail record: its type, its process, its own fields, the time, and the container and pod
    fields of its process (iLogtail's names), when it has any."""
    records = process.records
    return {"type": kind, "_process_pid_": str(owner.pid), "_process_cmd_": process.cmdline or owner.comm,
            "_running_mode_": records.get("_running_mode_", "host"), **fields, "__time__": now,
            **{k: v for k, v in records.items() if k != "_running_mode_"}}
