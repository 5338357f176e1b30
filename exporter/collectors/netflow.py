"""netflow: reads the kernel's per-flow aggregates and turns them into points and records."""

from __future__ import annotations

import ctypes
import errno
import json
import logging
import time
from collections.abc import Mapping
from typing import Any

from exporter.bpf import BpfObject
from exporter.collectors import sockdiag, sockets
from exporter.collectors.base import Collector, check_mirrors
from exporter.collectors.netflow_maps import (
    DIRECTION_INCOMING,
    DIRECTION_OUTGOING,
    LOST_REASONS,
    MIRRORS,
    Addr16,
    FailedKey,
    FlowKey,
    FlowStats,
    Seed,
)
from exporter.config import Config
from exporter.enrich.addresses import AF_INET, AF_INET6, AF_UNIX, NETWORK_TYPE, address_type, format_address
from exporter.enrich.domains import DomainCache
from exporter.enrich.process import ProcessInfo
from exporter.telemetry.instruments import RTT_BOUNDS_S
from exporter.telemetry.points import Attributes, HistogramValue, Snapshot

log = logging.getLogger(__name__)

TRANSPORT = {6: "tcp", 17: "udp"}
DIRECTION = {DIRECTION_INCOMING: "incoming", DIRECTION_OUTGOING: "outgoing"}
ROLE = {DIRECTION_OUTGOING: "client", DIRECTION_INCOMING: "server"}
ROLE_PEER = {"client": "server", "server": "client", "unknown": "unknown"}
TRANSMIT: Attributes = (("network.io.direction", "transmit"),)
RECEIVE: Attributes = (("network.io.direction", "receive"),)


def read_ephemeral_range(path: str = "/proc/sys/net/ipv4/ip_local_port_range") -> tuple[int, int]:
    with open(path) as f:
        low, high = (int(x) for x in f.read().split())
    return low, high


def flow_attributes(key: FlowKey, comm: bytes) -> Attributes:
    """The attributes of a flow's series, from the local process's point of view."""
    family = key.family
    attrs: list[tuple[str, str | int]] = []
    if family in (AF_INET, AF_INET6):
        local = format_address(bytes(key.local_addr), family)
        remote = format_address(bytes(key.remote_addr), family)
        attrs += [
            ("network.transport", TRANSPORT.get(key.protocol, "other")),
            ("network.type", NETWORK_TYPE[family]),
            ("source.address", local),
            ("source.port", str(key.local_port) if key.local_port else "*"),
            ("destination.address", remote),
            ("destination.port", str(key.remote_port) if key.remote_port else "*"),
            ("netflow.source.address.type", address_type(local)),
            ("netflow.destination.address.type", address_type(remote)),
        ]
    else:
        attrs.append(("network.transport", "unix" if family == AF_UNIX else "other"))
    if key.direction in DIRECTION:
        attrs.append(("netflow.direction", DIRECTION[key.direction]))
    attrs += [("process.pid", key.pid), ("process.executable.name", comm.decode(errors="replace"))]
    return tuple(attrs)


def error_name(code: int) -> str:
    return errno.errorcode.get(code, "_OTHER") if code else "_OTHER"


class NetflowCollector(Collector):
    name = "netflow"
    object_name = sockets.OBJECT
    programs = sockets.SOCKET_CALLS | sockets.STATE_CHANGES | sockets.UDP_PEERS | frozenset(
        {"netflow_tcp_retransmit", "flush_sockets"})
    # Without the socket-storage iterator (a kernel may refuse iter/bpf_sk_storage_map), every TCP
    # call brings its flow up to date itself: as exact, ~400 ns more per call (docs/metrics.md).
    optional_programs = frozenset({"flush_sockets"})

    def __init__(self, config: Config, domains: DomainCache | None = None) -> None:
        super().__init__()
        self.config = config
        self.domains = domains
        self._unnamed: set[bytes] = set()  # flows whose destination had no known name yet
        self.expiry_ns = int(config.netflow.series_expiry * 1e9)
        self._attrs: dict[bytes, Attributes] = {}
        self._last_records: dict[bytes, tuple[int, int, int, int]] = {}
        self._next_netlink = 0.0
        self._seed_cookies: set[int] = set()
        self._processes = ProcessInfo(config.common.flush_meta_interval)

    # -------------------------------------------------------------- set-up

    def configure(self, obj: BpfObject) -> None:
        check_mirrors(obj, MIRRORS)
        common = self.config.common
        low, high = read_ephemeral_range()
        bounds_us = b"".join(round(b * 1e6).to_bytes(4, "little") for b in RTT_BOUNDS_S)
        obj.set_rodata({
            "ephemeral_port_min": low,
            "ephemeral_port_max": high,
            "drop_unix": common.drop_unix_socket,
            "drop_unknown": common.drop_unknown_socket,
            "drop_local": common.drop_local_connections,
            "rtt_sample_interval_ns": int(self.config.netflow.rtt_sample_interval * 1e9),
            "rtt_bounds_us": bounds_us,
            "flush_iterator": "flush_sockets" not in self.without,
        })
        obj.set_max_entries("flows", self.config.netflow.max_flows)

    def prepare(self, obj: BpfObject) -> None:
        if "flush_sockets" not in self.without:
            obj.map_iterator("flush_sockets", "sock_states")  # created now: a kernel without it fails here
        self._sync_local_addresses(obj, {raw for raw, _family in sockdiag.host_addresses()})
        self._seed_existing_connections(obj)

    def _sync_local_addresses(self, obj: BpfObject, wanted: set[bytes]) -> None:
        addresses = obj.map("local_addrs")
        present = {bytes(k.addr) for k in addresses.keys(Addr16)}
        one = ctypes.c_uint8(1)
        for raw in wanted - present:
            addresses.update(Addr16.from_buffer_copy(raw), one)
        for raw in present - wanted:
            addresses.delete(Addr16.from_buffer_copy(raw))

    def _seed_existing_connections(self, obj: BpfObject) -> None:
        """Connections open before start-up: the kernel never saw them connect or accept.
        Until the kernel first sees one (and counts it itself), it counts in `active` here."""
        low, high = read_ephemeral_range()
        local = {raw for raw, _family in sockdiag.host_addresses()}
        seeds, flows = obj.map("seeds"), obj.map("flows")
        for conn in sockdiag.established_tcp():
            key = conn.flow_key(low, high)
            if self._dropped(key, local):
                continue
            seed = Seed(flow=key, comm=conn.comm.encode()[:15])
            seeds.update(ctypes.c_uint64(conn.cookie), seed)
            self._seed_cookies.add(conn.cookie)
            if flows.lookup(key, FlowStats) is None:  # programs are not attached yet: no race
                flows.update(key, FlowStats(comm=seed.comm, last_seen_ns=time.monotonic_ns()))
        log.info("netflow: %d connections open before start-up", len(self._seed_cookies))

    def _dropped(self, key: FlowKey, local_addresses: set[bytes]) -> bool:
        """The kernel's flow_dropped(), for flows built here."""
        remote = bytes(key.remote_addr)
        loopback = remote[0] == 127 if key.family == AF_INET else remote == bytes(15) + b"\x01"
        if self.config.common.drop_local_connections and (loopback or remote in local_addresses):
            return True
        return self.kernel_filter is not None and self.kernel_filter.watched(key.pid) is False

    def _unclaimed_seeds(self) -> dict[bytes, int]:
        """flow key -> open connections from before start-up that the kernel has not seen yet."""
        assert self.obj is not None
        counts: dict[bytes, int] = {}
        if self._seed_cookies:
            for _cookie, seed in self.obj.map("seeds").items(ctypes.c_uint64, Seed):
                raw = bytes(seed.flow)
                counts[raw] = counts.get(raw, 0) + 1
        return counts

    def tick(self, now: float) -> None:
        """Every FlushNetlinkInterval: host addresses, and seeds of connections that closed
        unseen. The netlink dumps run outside the lock, so scrapes never wait for them."""
        if self.obj is None or now < self._next_netlink:
            return
        self._next_netlink = now + self.config.common.flush_netlink_interval
        addresses = {raw for raw, _family in sockdiag.host_addresses()}
        with self.lock:
            self._sync_local_addresses(self.obj, addresses)
            if self._seed_cookies:
                pending = {c.value for c in self.obj.map("seeds").keys(ctypes.c_uint64)}
                self._seed_cookies &= pending  # the kernel claimed the others
        if not self._seed_cookies:
            return
        alive = sockdiag.tcp_cookies()
        with self.lock:
            seeds = self.obj.map("seeds")
            for cookie in self._seed_cookies - alive:
                seeds.delete(ctypes.c_uint64(cookie))
            self._seed_cookies &= alive

    # -------------------------------------------------------------- reading

    def _read_flows(self) -> list[tuple[FlowKey, FlowStats]]:
        """All flows, minus those idle for longer than the expiry (deleted from the kernel).
        Open connections not yet seen by the kernel are added to `active`."""
        assert self.obj is not None
        if "flush_sockets" not in self.without:
            self.obj.map_iterator("flush_sockets", "sock_states").run()  # bytes still held per socket
        flows = self.obj.map("flows")
        now = time.monotonic_ns()
        unclaimed = self._unclaimed_seeds()
        live: list[tuple[FlowKey, FlowStats]] = []
        for key, stats in flows.items(FlowKey, FlowStats):
            stats.active += unclaimed.get(bytes(key), 0)
            if stats.active <= 0 and now - stats.last_seen_ns > self.expiry_ns:
                flows.delete(key)
                self._attrs.pop(bytes(key), None)
                self._unnamed.discard(bytes(key))
                self._last_records.pop(bytes(key), None)
            else:
                live.append((key, stats))
        return live

    def _attributes(self, key: FlowKey, comm: bytes) -> Attributes:
        """A flow's attributes, computed once; destination.domain is added the first time the
        destination's name is known (DNS answers seen by the dns collector), then kept."""
        raw = bytes(key)
        attrs = self._attrs.get(raw)
        if attrs is not None and raw not in self._unnamed:
            return attrs
        if attrs is None:
            attrs = flow_attributes(key, comm)
        if self.domains is not None and key.family in (AF_INET, AF_INET6):
            name = self.domains.name(format_address(bytes(key.remote_addr), key.family))
            if name is None:
                self._unnamed.add(raw)
            else:
                attrs += (("destination.domain", name),)
                self._unnamed.discard(raw)
        self._attrs[raw] = attrs
        return attrs

    def snapshot(self) -> Snapshot:
        flows = self._read_flows()
        snap: Snapshot = {name: {} for name in (
            "netflow.bytes", "netflow.packets", "netflow.tcp.retransmits", "netflow.tcp.established",
            "netflow.tcp.closed", "netflow.tcp.active", "netflow.tcp.rtt", "netflow.tcp.srtt",
            "netflow.tcp.rttvar", "netflow.tcp.failed")}
        live_keys = set()
        for key, s in flows:
            attrs = self._attributes(key, s.comm)
            live_keys.add(bytes(key))
            snap["netflow.bytes"][attrs + TRANSMIT] = s.bytes_sent
            snap["netflow.bytes"][attrs + RECEIVE] = s.bytes_received
            snap["netflow.packets"][attrs + TRANSMIT] = s.packets_sent
            snap["netflow.packets"][attrs + RECEIVE] = s.packets_received
            if key.protocol != 6:
                continue
            snap["netflow.tcp.retransmits"][attrs] = s.retransmits
            snap["netflow.tcp.established"][attrs] = s.established
            snap["netflow.tcp.closed"][attrs] = s.closed
            snap["netflow.tcp.active"][attrs] = max(s.active, 0)
            if s.rtt_count:
                snap["netflow.tcp.rtt"][attrs] = HistogramValue(
                    tuple(s.rtt_buckets), s.rtt_sum_us / 1e6, s.rtt_count)
                snap["netflow.tcp.srtt"][attrs] = s.srtt_us / 1e6
                snap["netflow.tcp.rttvar"][attrs] = s.rttvar_us / 1e6
        self._read_failed(snap, live_keys)
        return snap

    def _read_failed(self, snap: Snapshot, live_keys: set[bytes]) -> None:
        assert self.obj is not None
        failed = self.obj.map("failed")
        for fkey, count in failed.items(FailedKey, ctypes.c_uint64):
            raw = bytes(fkey.flow)
            if raw not in live_keys:  # its flow expired
                failed.delete(fkey)
                continue
            attrs = self._attrs[raw] + (("error.type", error_name(fkey.error)),)
            snap["netflow.tcp.failed"][attrs] = count.value

    def lost(self) -> Mapping[str, int]:
        if self.obj is None:
            return {}
        return {LOST_REASONS[k.value]: v.value
                for k, v in self.obj.map("netflow_lost").items(ctypes.c_uint32, ctypes.c_uint64)}

    # -------------------------------------------------------------- records

    def records(self) -> list[dict[str, Any]]:
        """iLogtail `statistics` records: what each flow did since the previous call."""
        if self.obj is None:
            return []
        out = []
        now = str(int(time.time()))
        for key, s in self._read_flows():
            raw = bytes(key)
            totals = (s.bytes_sent, s.bytes_received, s.packets_sent, s.packets_received)
            before = self._last_records.get(raw, (0, 0, 0, 0))
            self._last_records[raw] = totals
            if totals == before:
                continue
            d = [a - b for a, b in zip(totals, before, strict=True)]
            command = self._processes.cmdline(key.pid, s.comm.decode(errors="replace"))
            out.append(ilogtail_statistics(key, command, d, now))
        return out


def ilogtail_statistics(key: FlowKey, comm: str, deltas: list[int], now: str) -> dict[str, Any]:
    family = key.family
    inet = family in (AF_INET, AF_INET6)
    remote = format_address(bytes(key.remote_addr), family) if inet else ""
    port = str(key.remote_port) if key.remote_port else "*"
    role = ROLE.get(key.direction, "unknown")
    return {
        "type": "statistics",
        "_process_pid_": str(key.pid),
        "_process_cmd_": comm,
        "_running_mode_": "host",
        # iLogtail's form: compact JSON with a trailing newline
        "remote_info": json.dumps({"remote_ip": remote, "remote_port": port, "remote_type": ROLE_PEER[role]},
                                  separators=(",", ":")) + "\n",
        "socket_type": "inet_socket" if inet else ("unix_socket" if family == AF_UNIX else "unknown_socket"),
        "role": role,
        "send_bytes": str(deltas[0]),
        "recv_bytes": str(deltas[1]),
        "send_packets": str(deltas[2]),
        "recv_packets": str(deltas[3]),
        "send_total_latency": "0",
        "recv_total_latency": "0",
        "__time__": now,
    }
