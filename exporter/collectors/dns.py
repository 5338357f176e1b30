"""dns: lookups seen in the DNS messages processes send and receive, and the names they resolve.

The kernel side (bpf/dns.c) copies each DNS message, or DNS-over-TCP stream chunk, into a
ring buffer. A thread here drains it, decodes the header and hands the chunk to the
LookupTracker, which pairs queries with answers and aggregates. UDP lookups are paired and counted
in the kernel; refresh() adds what it counted since the last read, and rows() are the series of
both. tick() turns overdue queries into timeouts. Answers also tell `learn_names` which names
resolved to which addresses (destination.domain on netflow series)."""

from __future__ import annotations

import ctypes
import logging
import struct
import time
from collections.abc import Mapping, Sequence

from exporter.bpf import BpfObject
from exporter.collectors import owners, sockets
from exporter.collectors.base import Collector, check_mirrors
from exporter.collectors.dns_lookups import TIMEOUT, Chunk, Increment, LearnNames, LookupTracker, SeriesKey
from exporter.collectors.dns_maps import (
    DATA_MAX,
    EARLY_EXPIRED,
    EARLY_NS,
    HEADER_SIZE,
    LOST_REASONS,
    MIRRORS,
    Early,
    PendingKey,
    SeriesStats,
)
from exporter.collectors.dns_maps import Pending as KernelPending
from exporter.collectors.dns_maps import SeriesKey as KernelSeriesKey
from exporter.collectors.dns_wire import name_from_wire, rcode_name, type_name
from exporter.config import Config
from exporter.series.addresses import NETWORK_TYPE, format_address
from exporter.series.instruments import DNS_BOUNDS_S
from exporter.series.rows import Row

__all__ = ["DnsCollector", "LearnNames", "decode"]

log = logging.getLogger(__name__)

LEARN_INTERVAL_NS = 10**9  # an answer per name and second goes up to teach the DomainCache
TRANSPORT = {6: "tcp", 17: "udp"}


# struct dns_event up to data[]; the same layout as DnsEvent, read without building a ctypes object
HEADER = struct.Struct("<QQQQ16s16sIIHHHHBBB5x16s")
assert HEADER.size == HEADER_SIZE


def decode(raw: memoryview | bytes) -> Chunk | None:
    """The chunk of one ring-buffer record; None for a record too short to hold its header."""
    if len(raw) < HEADER_SIZE:
        return None
    (ktime_ns, sock, start, cgroup_id, local, remote, pid, length, local_port, remote_port, family, captured,
     protocol, sent, paired, comm) = HEADER.unpack_from(raw)
    network_type = NETWORK_TYPE.get(family)
    transport = TRANSPORT.get(protocol)
    if network_type is None or transport is None:
        return None
    captured = min(captured, len(raw) - HEADER_SIZE)
    return Chunk(
        ktime_ns=ktime_ns, sock=sock, pid=pid, comm=comm.split(b"\0", 1)[0].decode(errors="replace"),
        transport=transport, family=network_type,
        local_address=format_address(local, family), local_port=local_port,
        remote_address=format_address(remote, family), remote_port=remote_port,
        sent=bool(sent), length=length, data=bytes(raw[HEADER_SIZE:HEADER_SIZE + captured]), paired=bool(paired),
        start=start, cgroup_id=cgroup_id,
    )


class DnsCollector(Collector):
    name = "dns"
    object_name = sockets.OBJECT
    programs = sockets.SOCKET_CALLS | sockets.UDP_PEERS

    def __init__(self, config: Config, learn_names: LearnNames | None = None) -> None:
        super().__init__()
        self.config = config
        dns = config.dns
        self.tracker = LookupTracker(
            timeout=dns.timeout, max_names_per_process=dns.max_names_per_process, max_pending=dns.max_pending,
            series_expiry=dns.series_expiry, bounds=DNS_BOUNDS_S, max_window=config.common.flush_out_l7_interval,
            learn=learn_names, capture=DATA_MAX)
        self.records_interval = config.common.flush_out_l7_interval
        self._kernel_seen: dict[bytes, tuple[int, int, tuple[int, ...], int, int]] = {}  # series key -> figures read
        self._unmatched_early = 0  # answers whose query never came (the kernel's `early`)

    # -------------------------------------------------------------- set-up

    def configure(self, obj: BpfObject) -> None:
        check_mirrors(obj, MIRRORS | owners.MIRRORS)
        ports = list(self.config.dns.ports)
        ports += [0] * (8 - len(ports))
        obj.set_rodata({
            "dns_ports": b"".join(p.to_bytes(2, "little") for p in ports),
            "bounds_ns": b"".join(round(b * 1e9).to_bytes(8, "little") for b in DNS_BOUNDS_S),
            "window_ns": self.tracker.window_ns,
            "learn_interval_ns": LEARN_INTERVAL_NS,
        })
        obj.set_max_entries("pending", self.config.dns.max_pending)
        obj.set_max_entries("dns_series", self.config.dns.max_series)

    def attached(self) -> None:
        self.poll_ring_buffer("dns_events", self._on_event)

    def _on_event(self, raw: memoryview | bytes) -> None:
        chunk = decode(raw)
        if chunk is None:
            return
        with self.lock:
            if chunk.paired:
                self.tracker.learn(chunk.data, chunk.length)
            else:
                self.tracker.observe(chunk)

    # -------------------------------------------------------------- reading

    def tick(self, now: float) -> None:
        with self.lock:
            now_ns = time.monotonic_ns()
            self._drain_kernel(now_ns, expire=True)
            self._time_out_kernel_queries(now_ns)
            self.tracker.expire(now_ns)

    def refresh(self) -> None:
        self._drain_kernel(time.monotonic_ns())

    def rows(self) -> Sequence[Row]:
        return self.tracker.rows(time.monotonic_ns())

    # -------------------------------------------------------------- the kernel's UDP lookups

    def _drain_kernel(self, now_ns: int, expire: bool = False) -> None:
        """Adds what the kernel counted since the last read to the tracker's series; with `expire`,
        forgets kernel series idle past Dns.SeriesExpiry. Costs one map read per series."""
        if self.obj is None:
            return
        series = self.obj.map("dns_series")
        # oldest first: when a process passes Dns.MaxNamesPerProcess, its earlier names keep their series
        for key, stats in sorted(series.items(KernelSeriesKey, SeriesStats), key=lambda kv: kv[1].last_ns):
            raw = bytes(key)
            seen = self._kernel_seen.get(raw)
            figures = (stats.count, stats.sum_ns, tuple(stats.buckets), stats.request_bytes, stats.response_bytes)
            if seen is None or seen[0] != stats.count:
                before = seen or (0, 0, (0,) * len(figures[2]), 0, 0)
                self._kernel_seen[raw] = figures
                self.tracker.add(self._series_key(key, stats.comm, stats.cgroup_id), Increment(
                    stats.count - before[0], stats.sum_ns - before[1],
                    tuple(a - b for a, b in zip(figures[2], before[2], strict=True)),
                    stats.window, stats.max_ns, stats.previous_max_ns, stats.last_ns,
                    stats.request_bytes - before[3], stats.response_bytes - before[4]))
            if expire and now_ns - stats.last_ns > self.tracker.expiry_ns:
                series.delete(key)
                self._kernel_seen.pop(raw, None)

    def _time_out_kernel_queries(self, now_ns: int) -> None:
        """The kernel's queries that waited longer than Dns.Timeout become TIMEOUT lookups; its answers that
        waited for a query that never came, unmatched ones."""
        if self.obj is None:
            return
        timeout_ns = self.tracker.timeout_ns
        pending = self.obj.map("pending")
        for pkey, query in pending.items(PendingKey, KernelPending):
            if now_ns - query.ktime_ns < timeout_ns:
                continue
            pending.delete(pkey)
            end_ns = query.ktime_ns + timeout_ns
            timed_out = self._series_key(query.series, query.comm, query.cgroup_id)._replace(rcode=TIMEOUT)
            self.tracker.add(timed_out, Increment(1, timeout_ns, None, end_ns // self.tracker.window_ns, timeout_ns, 0,
                                            end_ns, query.request_bytes, 0))
        # An answer that came before its query waits for it DNS_EARLY_NS (bpf/dns.h); the kernel never
        # takes one older, so one older than twice that is an answer no query came for.
        early = self.obj.map("early")
        expired = self._unmatched_early
        for pkey, answer in early.items(PendingKey, Early):
            if now_ns - answer.ktime_ns > 2 * EARLY_NS and early.delete(pkey):
                self._unmatched_early += 1
        if self._unmatched_early != expired:  # after the deletes: the kernel's count never falls below the table
            self.obj.map("early_count").update(ctypes.c_uint32(EARLY_EXPIRED), ctypes.c_uint64(self._unmatched_early))

    def _series_key(self, key: KernelSeriesKey, comm: bytes, cgroup_id: int) -> SeriesKey:
        name = name_from_wire(bytes(key.name[:key.name_len])) or "."
        return SeriesKey(
            client=bool(key.client), pid=key.pid, comm=comm.decode(errors="replace"), start=key.start,
            cgroup_id=cgroup_id, transport="udp",
            family=NETWORK_TYPE.get(key.family, ""), server_address=format_address(bytes(key.server_addr), key.family),
            server_port=key.server_port, name=name, qtype=type_name(key.qtype), rcode=rcode_name(key.rcode))

    def lost(self) -> Mapping[str, int]:
        counts = dict(self.tracker.skipped.counts)
        counts["tcp_desync"] += self.tracker.tcp_desyncs()
        counts["unmatched"] = counts.get("unmatched", 0) + self._unmatched_early
        if self.obj is not None:
            for k, v in self.obj.map("dns_lost").items(ctypes.c_uint32, ctypes.c_uint64):
                reason = LOST_REASONS[k.value]  # unmatched and pending_full happen on both sides
                counts[reason] = counts.get(reason, 0) + v.value
        return counts

    def counters(self) -> Mapping[str, int]:
        return {"netobs.dns.names.folded": self.tracker.folded}
