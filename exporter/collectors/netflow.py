"""netflow: the kernel's per-flow aggregates (bpf/netflow.c) as rows, one per flow and process.

refresh() first runs the kernel's walk of TCP sockets (collect_tcp), which brings every TCP flow up to
date, then reads the flow table in batches and decodes only the entries whose bytes changed since the
last read; the others keep their Row object. tick() forgets flows idle for Netflow.SeriesExpiry with no
open connection, in the kernel and here, and keeps the host's addresses in step with netlink."""

from __future__ import annotations

import ctypes
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from exporter.bpf import BpfObject
from exporter.bpf.object import BpfIterator
from exporter.collectors import host, owners, sockets
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
)
from exporter.config import Config
from exporter.series.flows import IPPROTO_TCP, FailedFigures, FailedKey, FlowFigures, FlowKey
from exporter.series.rows import HistogramValue, Owner, Row

log = logging.getLogger(__name__)

WALK = "collect_tcp"  # the kernel's walk of TCP sockets, run before each read
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
    row: Row
    last_seen_ns: int
    active: int


class NetflowCollector(Collector):
    name = "netflow"
    object_name = sockets.OBJECT
    programs = sockets.SOCKET_CALLS | sockets.STATE_CHANGES | sockets.UDP_PEERS | frozenset({WALK, "sock_destroy"})
    # Without the walk of TCP sockets (a kernel may refuse iter/task_file), each TCP call brings its
    # flow up to date itself: as exact, ~250 ns more per call (docs/benchmarks.md).
    optional_programs = frozenset({WALK})
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
            "tcp_walk": WALK not in self.without,
        })
        obj.set_max_entries("flows", self.config.netflow.max_flows)

    def prepare(self, obj: BpfObject) -> None:
        self._sync_local_addresses(obj, {raw for raw, _family in host.addresses()})
        if WALK in self.without:
            return
        walk = obj.iterator(WALK)  # created now: a kernel without it fails here
        self._adopt_existing_connections(obj, walk)

    def _sync_local_addresses(self, obj: BpfObject, wanted: set[bytes]) -> None:
        addresses = obj.map("local_addrs")
        present = {bytes(k.addr) for k in addresses.keys(Addr16)}
        one = ctypes.c_uint8(1)
        for raw in wanted - present:
            addresses.update(Addr16.from_buffer_copy(raw), one)
        for raw in present - wanted:
            addresses.delete(Addr16.from_buffer_copy(raw))

    def _adopt_existing_connections(self, obj: BpfObject, walk: BpfIterator) -> None:
        """Connections open before start-up: the kernel never saw them connect or accept. A first walk
        records every listening port (so that an accepted connection is known as incoming), a second
        adopts each connection held by a process, which owns it; they count from now. Those whose flow
        finds no room in the flow table are counted as flow_table_full, as at run time; netflow runs
        on, and takes them in as room frees."""
        only = obj.map("walk_listeners_only")
        zero = ctypes.c_uint32(0)
        only.update(zero, ctypes.c_uint32(1))
        walk.run()
        only.update(zero, zero)
        before = self._lost_in_kernel(obj).get("flow_table_full", 0)
        walk.run()
        unfit = self._lost_in_kernel(obj).get("flow_table_full", 0) - before
        adopted = sum(COUNTS.unpack_from(value)[7] for _key, value in obj.map("flows").raw_items())
        log.info("netflow: %d connections open before start-up", adopted + unfit)
        if unfit:
            log.warning("netflow: %d connections open before start-up found no room in the flow table "
                        "(Netflow.MaxFlows=%d): counted as flow_table_full, and taken in as room frees",
                        unfit, self.config.netflow.max_flows)

    @staticmethod
    def _lost_in_kernel(obj: BpfObject) -> dict[str, int]:
        return {LOST_REASONS[k.value]: v.value
                for k, v in obj.map("netflow_lost").items(ctypes.c_uint32, ctypes.c_uint64)}

    # -------------------------------------------------------------- reading

    def refresh(self) -> None:
        """Reads the flow and failure tables; only entries whose bytes changed are decoded again."""
        if self.obj is None:
            return
        if WALK not in self.without:
            self.obj.iterator(WALK).run()  # every TCP socket's flow up to date
        flows: dict[bytes, _Flow] = {}
        for raw_key, value in self.obj.map("flows").raw_items():
            flow = self._flows.get(raw_key)
            if flow is None or flow.value != value:
                flow = self._decode(raw_key, value, flow)
            flows[raw_key] = flow
        self._flows = flows
        self._read_failed()
        self._rows = [f.row for f in flows.values()] + [row for _, row in self._failed.values()]

    def _decode(self, raw_key: bytes, value: bytes, before: _Flow | None) -> _Flow:
        if before is not None and value[SAMPLES] == before.value[SAMPLES] and value[COMM] == before.value[COMM]:
            return self._counts_changed(value, before)
        fields = STATS.unpack(value)
        sent, received, packets_sent, packets_received, retransmits, established, closed, active = fields[:8]
        rtt_sum_us, rtt_count, srtt_us, rttvar_us, last_seen_ns, cgroup_id, comm = fields[_RTT_SUM:]
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
        return _Flow(key, value, Row(key, owner, figures), last_seen_ns, active)

    @staticmethod
    def _counts_changed(value: bytes, before: _Flow) -> _Flow:
        """The usual change of a busy flow: its counters and the time of its last event, nothing else. The
        RTT samples and the process are taken as they were, and only the counters are read."""
        sent, received, packets_sent, packets_received, retransmits, established, closed, active = \
            COUNTS.unpack_from(value)
        row = before.row
        if before.key.protocol == IPPROTO_TCP:
            was: FlowFigures = row.figures  # type: ignore[assignment]  # a flow's row has FlowFigures
            figures = FlowFigures(sent, received, packets_sent, packets_received, retransmits, established, closed,
                                  max(active, 0), was.srtt_s, was.rttvar_s, was.rtt)
        else:
            figures = FlowFigures(sent, received, packets_sent, packets_received, *(None,) * 7)
        last_seen_ns = LAST_SEEN.unpack_from(value, LAST_SEEN_AT)[0]
        return _Flow(before.key, value, Row(before.key, row.owner, figures), last_seen_ns, active)

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
        return self._lost_in_kernel(self.obj)

    # -------------------------------------------------------------- housekeeping

    def tick(self, now: float) -> None:
        """Every few seconds: flows idle past the expiry go. Every FlushNetlinkInterval: the host's
        addresses (the netlink dump runs outside the lock)."""
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
        addresses = {raw for raw, _family in host.addresses()}
        with self.lock:
            self._sync_local_addresses(self.obj, addresses)

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
