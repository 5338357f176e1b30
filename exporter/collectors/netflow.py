"""netflow: the kernel's per-flow aggregates (bpf/netflow.c) as rows, one per flow and process.

refresh() reads the flow table in batches and decodes only the entries whose bytes changed since
the last read; the others keep their Row object. tick() forgets flows idle for Netflow.SeriesExpiry
with no open connection, in the kernel and here, and keeps the host's addresses and the connections
from before start-up in step with sock_diag."""

from __future__ import annotations

import ctypes
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from exporter.bpf import BpfError, BpfObject
from exporter.collectors import owners, sockdiag, sockets
from exporter.collectors.base import Collector, check_mirrors
from exporter.collectors.netflow_maps import (
    COMM,
    COUNTS,
    FAILED_KEY,
    KEY,
    LAST_SEEN,
    LAST_SEEN_AT,
    LOST_REASONS,
    MIRRORS,
    RTT_BOUNDS,
    SAMPLES,
    STATS,
    Addr16,
    NetflowFailedKey,
    NetflowKey,
    NetflowStats,
    Seed,
)
from exporter.config import Config
from exporter.series.addresses import AF_INET
from exporter.series.flows import IPPROTO_TCP, FailedFigures, FailedKey, FlowFigures, FlowKey
from exporter.series.rows import HistogramValue, Owner, Row

log = logging.getLogger(__name__)

NO_BOUND_US = 0xFFFFFFFF  # pads Netflow.RttBuckets to the kernel's RTT_BOUNDS: larger samples go to +Inf


def read_ephemeral_range(path: str = "/proc/sys/net/ipv4/ip_local_port_range") -> tuple[int, int]:
    with open(path) as f:
        low, high = (int(x) for x in f.read().split())
    return low, high


def decode_key(raw: bytes) -> tuple[FlowKey, int, int]:
    """A kernel flow key: the row's key, and the pid and process start it holds."""
    local, remote, start, pid, local_port, remote_port, family, protocol, direction = KEY.unpack(raw)
    return FlowKey(family, protocol, local, local_port, remote, remote_port, direction), pid, start


_RTT_SUM = 8 + RTT_BOUNDS + 1  # STATS: 8 counters, the RTT buckets, then rtt_sum_us ... comm


def _comm(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode(errors="replace")


@dataclass(slots=True)
class _Flow:
    """What the collector knows of one kernel entry since the last read."""

    key: FlowKey
    value: bytes  # the entry's bytes, as last decoded
    unclaimed: int  # connections from before start-up the kernel has not seen yet, counted in `active`
    row: Row
    last_seen_ns: int
    active: int


class NetflowCollector(Collector):
    name = "netflow"
    object_name = sockets.OBJECT
    programs = sockets.SOCKET_CALLS | sockets.STATE_CHANGES | sockets.UDP_PEERS | frozenset(
        {"netflow_tcp_retransmit", "flush_sockets"})
    # Without the socket-storage iterator (a kernel may refuse iter/bpf_sk_storage_map), every TCP
    # call brings its flow up to date itself: as exact, ~400 ns more per call (docs/metrics.md).
    optional_programs = frozenset({"flush_sockets"})
    without_optional = "netflow brings each TCP flow up to date at every socket call instead (docs/benchmarks.md)"

    def __init__(self, config: Config) -> None:
        super().__init__()
        self.config = config
        self.expiry_ns = int(config.netflow.series_expiry * 1e9)
        self.rtt_buckets = len(config.netflow.rtt_buckets) + 1
        self._flows: dict[bytes, _Flow] = {}  # kernel key -> what it held at the last read
        self._failed: dict[bytes, tuple[int, Row]] = {}  # kernel failed key -> (count, row)
        self._rows: list[Row] = []
        self._next_netlink = 0.0
        self._next_expiry = 0.0
        self._seed_cookies: set[int] = set()
        self._existing: list[sockdiag.Connection] = []  # open at start-up, until seeded
        self._startup_lost = 0  # of those, the ones the flow table had no room for

    # -------------------------------------------------------------- set-up

    def configure(self, obj: BpfObject) -> None:
        check_mirrors(obj, MIRRORS | owners.MIRRORS)
        common = self.config.common
        low, high = read_ephemeral_range()
        bounds = [round(b * 1e6) for b in self.config.netflow.rtt_buckets]
        bounds += [NO_BOUND_US] * (RTT_BOUNDS - len(bounds))
        obj.set_rodata({
            "ephemeral_port_min": low,
            "ephemeral_port_max": high,
            "drop_unix": common.drop_unix_socket,
            "drop_unknown": common.drop_unknown_socket,
            "drop_local": common.drop_local_connections,
            "rtt_sample_interval_ns": int(self.config.netflow.rtt_sample_interval * 1e9),
            "rtt_bounds_us": b"".join(b.to_bytes(4, "little") for b in bounds),
            "flush_iterator": "flush_sockets" not in self.without,
        })
        obj.set_max_entries("flows", self.config.netflow.max_flows)
        # the connections open now, found before load so that the seeds table is made to hold them all
        self._existing = list(sockdiag.established_tcp())
        obj.set_max_entries("seeds", max(len(self._existing), 1))

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
        Until the kernel first sees one (and counts it itself), it counts in `active` here. Those whose
        flow finds no room in the flow table are counted as flow_table_full, as the kernel counts a
        flow it has no room for; netflow runs on, and takes them in when room frees."""
        low, high = read_ephemeral_range()
        local = {raw for raw, _family in sockdiag.host_addresses()}
        seeds, flows = obj.map("seeds"), obj.map("flows")
        unfit = 0
        for conn in self._existing:
            key = conn.flow_key(low, high)
            if self._dropped(key, local):
                continue
            seed = Seed(flow=key, cgroup_id=conn.cgroup_id, comm=conn.comm.encode()[:15])
            if flows.lookup(key, NetflowStats) is None:  # programs are not attached yet: no race
                try:
                    flows.update(key, NetflowStats(comm=seed.comm, cgroup_id=conn.cgroup_id,
                                                   last_seen_ns=time.monotonic_ns()))
                except BpfError:  # full: the kernel adopts it like a connection from after start-up
                    unfit += 1
                    continue
            seeds.update(ctypes.c_uint64(conn.cookie), seed)
            self._seed_cookies.add(conn.cookie)
        self._existing = []
        self._startup_lost = unfit
        log.info("netflow: %d connections open before start-up", len(self._seed_cookies) + unfit)
        if unfit:
            log.warning("netflow: %d connections open before start-up found no room in the flow table "
                        "(Netflow.MaxFlows=%d): counted as flow_table_full, and taken in as room frees",
                        unfit, self.config.netflow.max_flows)

    def _dropped(self, key: NetflowKey, local_addresses: set[bytes]) -> bool:
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

    # -------------------------------------------------------------- reading

    def refresh(self) -> None:
        """Reads the flow and failure tables; only entries whose bytes changed are decoded again."""
        if self.obj is None:
            return
        if "flush_sockets" not in self.without:
            self.obj.map_iterator("flush_sockets", "sock_states").run()  # bytes still held per socket
        unclaimed = self._unclaimed_seeds()
        flows: dict[bytes, _Flow] = {}
        for raw_key, value in self.obj.map("flows").raw_items():
            seeds = unclaimed.get(raw_key, 0)
            flow = self._flows.get(raw_key)
            if flow is None or flow.value != value or flow.unclaimed != seeds:
                flow = self._decode(raw_key, value, seeds, flow)
            flows[raw_key] = flow
        self._flows = flows
        self._read_failed()
        self._rows = [f.row for f in flows.values()] + [row for _, row in self._failed.values()]

    def _decode(self, raw_key: bytes, value: bytes, unclaimed: int, before: _Flow | None) -> _Flow:
        if before is not None and value[SAMPLES] == before.value[SAMPLES] and value[COMM] == before.value[COMM]:
            return self._counts_changed(value, unclaimed, before)
        fields = STATS.unpack(value)
        sent, received, packets_sent, packets_received, retransmits, established, closed, active = fields[:8]
        rtt_sum_us, rtt_count, srtt_us, rttvar_us, last_seen_ns, cgroup_id, comm = fields[_RTT_SUM:]
        active += unclaimed
        if before is not None:
            key, owner = before.key, before.row.owner
            if value[COMM] != before.value[COMM]:
                owner = owner._replace(comm=_comm(comm))
        else:
            key, pid, start = decode_key(raw_key)
            owner = Owner(pid, _comm(comm), start, cgroup_id)
        if key.protocol == IPPROTO_TCP:
            sampled = rtt_count > 0
            rtt = HistogramValue(fields[8:8 + self.rtt_buckets], rtt_sum_us / 1e6, rtt_count) if sampled else None
            figures = FlowFigures(
                sent, received, packets_sent, packets_received, retransmits, established, closed, max(active, 0),
                srtt_us / 1e6 if sampled else None, rttvar_us / 1e6 if sampled else None, rtt)
        else:
            figures = FlowFigures(sent, received, packets_sent, packets_received, *(None,) * 7)
        return _Flow(key, value, unclaimed, Row(key, owner, figures), last_seen_ns, active)

    @staticmethod
    def _counts_changed(value: bytes, unclaimed: int, before: _Flow) -> _Flow:
        """The usual change of a busy flow: its counters and the time of its last event, nothing else. The
        RTT samples and the process are taken as they were, and only the counters are read."""
        sent, received, packets_sent, packets_received, retransmits, established, closed, active = \
            COUNTS.unpack_from(value)
        active += unclaimed
        row = before.row
        if before.key.protocol == IPPROTO_TCP:
            was: FlowFigures = row.figures  # type: ignore[assignment]  # a flow's row has FlowFigures
            figures = FlowFigures(sent, received, packets_sent, packets_received, retransmits, established, closed,
                                  max(active, 0), was.srtt_s, was.rttvar_s, was.rtt)
        else:
            figures = FlowFigures(sent, received, packets_sent, packets_received, *(None,) * 7)
        last_seen_ns = LAST_SEEN.unpack_from(value, LAST_SEEN_AT)[0]
        return _Flow(before.key, value, unclaimed, Row(before.key, row.owner, figures), last_seen_ns, active)

    def _read_failed(self) -> None:
        assert self.obj is not None
        failed: dict[bytes, tuple[int, Row]] = {}
        for raw_key, value in self.obj.map("failed").raw_items():
            count = int.from_bytes(value, "little")
            known = self._failed.get(raw_key)
            if known is None or known[0] != count:
                flow_raw, error = FAILED_KEY.unpack(raw_key)
                key, pid, start = decode_key(flow_raw)
                flow = self._flows.get(flow_raw)
                owner = flow.row.owner if flow is not None else Owner(pid, "", start)
                known = (count, Row(FailedKey(key, error), owner, FailedFigures(count)))
            failed[raw_key] = known
        self._failed = failed

    def rows(self) -> Sequence[Row]:
        return self._rows

    def lost(self) -> Mapping[str, int]:
        if self.obj is None:
            return {}
        counts = {LOST_REASONS[k.value]: v.value
                  for k, v in self.obj.map("netflow_lost").items(ctypes.c_uint32, ctypes.c_uint64)}
        counts["flow_table_full"] = counts.get("flow_table_full", 0) + self._startup_lost
        return counts

    # -------------------------------------------------------------- housekeeping

    def tick(self, now: float) -> None:
        """Every few seconds: flows idle past the expiry go. Every FlushNetlinkInterval: host addresses,
        and seeds of connections that closed unseen (the netlink dumps run outside the lock)."""
        if self.obj is None:
            return
        if now >= self._next_expiry:
            self._next_expiry = now + min(max(self.config.netflow.series_expiry / 10, 1.0), 10.0)
            with self.lock:
                self.refresh()  # expire on what the kernel holds now, not on an old read
                self._expire(time.monotonic_ns())
        if now < self._next_netlink:
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

    def _expire(self, now_ns: int) -> None:
        """Deletes flows with no open connection and nothing new for Netflow.SeriesExpiry, with their
        failures, from the kernel and from the rows."""
        assert self.obj is not None
        idle = [k for k, f in self._flows.items() if f.active <= 0 and now_ns - f.last_seen_ns > self.expiry_ns]
        if not idle:
            return
        flows, failed = self.obj.map("flows"), self.obj.map("failed")
        gone = set(idle)
        for raw_key in idle:
            flows.delete(NetflowKey.from_buffer_copy(raw_key))
            del self._flows[raw_key]
        for raw_key in [k for k in self._failed if FAILED_KEY.unpack(k)[0] in gone]:
            failed.delete(NetflowFailedKey.from_buffer_copy(raw_key))
            del self._failed[raw_key]
        self._rows = [f.row for f in self._flows.values()] + [row for _, row in self._failed.values()]
