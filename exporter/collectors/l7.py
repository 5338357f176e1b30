"""l7: requests of application protocols (HTTP/1.x, HTTP/2, gRPC, the databases), paired and
counted in the kernel.

bpf/l7.c keeps one series of cumulative figures per (process, role, method, route, status,
server). Here they are read at each collection and tick, and only the increments of series that
changed are added to the RequestTracker, whose series are the rows: the cost follows the number
of series, never the request rate."""

from __future__ import annotations

import ctypes
import time
from collections.abc import Mapping, Sequence
from typing import Any

from exporter.bpf import BpfObject
from exporter.collectors import host, l7_tls, owners, sockets
from exporter.collectors.base import Collector, check_mirrors
from exporter.collectors.l7_maps import (
    DB_ERROR,
    LOST_REASONS,
    MIRRORS,
    PROTOCOLS,
    SIZE_BOUNDS,
    SeriesKey,
    SeriesStats,
)
from exporter.collectors.l7_requests import Increment, RequestTracker
from exporter.collectors.l7_requests import SeriesKey as RequestKey
from exporter.config import Config
from exporter.enrich.kubernetes_peer_ids import ClientIds
from exporter.series.addresses import NETWORK_TYPE, format_address
from exporter.series.instruments import DB_DURATION_BOUNDS_S, HTTP_DURATION_BOUNDS_S, SIZE_BOUNDS_BY
from exporter.series.requests import GRPC, HTTP
from exporter.series.rows import Row

CLIENTS_CAPACITY = 65536  # addresses of the cluster's pods and nodes the kernel numbers (`l7_clients`)

assert len(SIZE_BOUNDS_BY) == SIZE_BOUNDS
assert len(DB_DURATION_BOUNDS_S) == len(HTTP_DURATION_BOUNDS_S)


class Addr16(ctypes.Structure):
    _fields_ = (("addr", ctypes.c_uint8 * 16),)


def _text(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("latin-1")


def _seconds_ns(bounds: tuple[float, ...]) -> bytes:
    return b"".join(round(b * 1e9).to_bytes(8, "little") for b in bounds)


def _version(raw: int) -> str:
    """HTTP's version from the kernel's 10, 11 or 20: "1.0", "1.1", or "2" as OpenTelemetry writes
    HTTP/2 (network.protocol.version); "" when the kernel did not read it."""
    if not raw:
        return ""
    major, minor = divmod(raw, 10)
    return str(major) if major >= 2 else f"{major}.{minor}"


def _code(protocol: str, status: int, raw: bytes) -> str:
    """The error code (or reply) of a database series: MySQL's is a 2-byte number."""
    if protocol == "mysql":
        return str(int.from_bytes(raw[:2], "little")) if status == DB_ERROR else ""
    return _text(raw)


class L7Collector(Collector):
    name = "l7"
    object_name = sockets.OBJECT
    programs = sockets.SOCKET_CALLS | sockets.STATE_CHANGES
    # uprobes: a kernel that refuses them still gets cleartext
    without_optional = "TLS plaintext is not seen"

    def __init__(self, config: Config) -> None:
        super().__init__()
        self.config = config
        l7 = config.l7
        kinds = l7.tls_libraries if l7.tls_enabled else frozenset()
        self.tls = l7_tls.TlsTracer(l7.tls_rescan_interval, kinds) if kinds else None
        if kinds:
            self.programs = self.programs | l7_tls.TlsTracer.programs(kinds)
            self.optional_programs = l7_tls.TlsTracer.programs(kinds)
        self.tracker = RequestTracker(
            duration_bounds=len(HTTP_DURATION_BOUNDS_S), size_bounds=len(SIZE_BOUNDS_BY),
            max_routes_per_process=l7.max_routes_per_process, expiry_ns=int(l7.series_expiry * 1e9))
        self.records_interval = config.common.flush_out_l7_interval
        self._seen: dict[int, tuple[Any, ...]] = {}  # kernel series fingerprint -> figures at the last read
        # a server's clients by workload (Kubernetes.Peers): set by the app when the cluster is watched
        self.clients: ClientIds | None = None

    # -------------------------------------------------------------- set-up

    def configure(self, obj: BpfObject) -> None:
        check_mirrors(obj, MIRRORS | owners.MIRRORS)
        common, l7 = self.config.common, self.config.l7
        obj.set_rodata({
            "capture_bytes": l7.capture_bytes,
            "sampling": round(common.sampling),
            "drop_local": common.drop_local_connections,
            "protocols": sum(1 << n for n, (name, _) in PROTOCOLS.items() if name in common.include_protocols),
            "duration_bounds_ns": _seconds_ns(HTTP_DURATION_BOUNDS_S),
            "db_duration_bounds_ns": _seconds_ns(DB_DURATION_BOUNDS_S),
            "size_bounds": b"".join(int(b).to_bytes(8, "little") for b in SIZE_BOUNDS_BY),
            "max_connections": l7.max_connections,
            "tls_enabled": self.tls is not None and not self.without,
            "go_tls_enabled": self.tls is not None and not self.without and "go" in l7.tls_libraries,
        })
        obj.set_max_entries("tls_conns", l7.max_connections)
        obj.set_max_entries("l7_series", l7.max_series)
        obj.set_max_entries("l7_clients", CLIENTS_CAPACITY)
        obj.set_max_entries("statements", l7.max_statements)

    def prepare(self, obj: BpfObject) -> None:
        one = ctypes.c_uint8(1)
        addresses = obj.map("local_addrs")
        for raw, _family in host.addresses():
            addresses.update(Addr16.from_buffer_copy(raw), one)

    def attached(self) -> None:
        if self.tls is not None and self.obj is not None and not self.without:
            self.tls.start(self.obj, time.monotonic())
            self.attach_results = [*self.attach_results, *self.tls.results]

    # -------------------------------------------------------------- reading

    def tick(self, now: float) -> None:
        if self.tls is not None and self.obj is not None and not self.without:
            known = len(self.tls.results)
            self.tls.tick(self.obj, time.monotonic())
            if len(self.tls.results) != known:  # a new list: the HTTP thread reads it
                self.attach_results = [*self.attach_results, *self.tls.results[known:]]
        with self.lock:
            now_ns = time.monotonic_ns()
            self._drain(now_ns, expire=True)
            self.tracker.expire(now_ns)

    def refresh(self) -> None:
        self._drain(time.monotonic_ns())

    def rows(self) -> Sequence[Row]:
        return self.tracker.rows()

    def _drain(self, now_ns: int, expire: bool = False) -> None:
        """Adds what the kernel counted since the last read; with `expire`, forgets kernel series idle
        past L7.SeriesExpiry. One map read per series."""
        if self.obj is None:
            return
        if self.clients is not None:
            clients = self.obj.map("l7_clients")
            self.clients.sync(lambda key, n: clients.update(Addr16.from_buffer_copy(key), ctypes.c_uint32(n)),
                              lambda key: clients.delete(Addr16.from_buffer_copy(key)))
        series = self.obj.map("l7_series")
        for fingerprint, stats in series.items(ctypes.c_uint64, SeriesStats):
            raw = fingerprint.value
            figures = (stats.count, stats.sum_ns, tuple(stats.buckets), stats.request_bytes, stats.response_bytes,
                       stats.request_body_sum, stats.response_body_sum, tuple(stats.request_body_buckets),
                       tuple(stats.response_body_buckets))
            before = self._seen.get(raw)
            if before is None or before[0] != stats.count:
                self._seen[raw] = figures
                delta = figures if before is None else tuple(_minus(a, b) for a, b in zip(figures, before, strict=True))
                self.tracker.add(self._key(stats.key, stats.comm, stats.cgroup_id, self.clients), Increment(
                    count=delta[0], sum_ns=delta[1], buckets=delta[2], request_bytes=delta[3],
                    response_bytes=delta[4], request_body_sum=delta[5], response_body_sum=delta[6],
                    request_body_buckets=delta[7], response_body_buckets=delta[8], last_ns=stats.last_ns))
            if expire and now_ns - stats.last_ns > self.tracker.expiry_ns:
                series.delete(fingerprint)
                self._seen.pop(raw, None)

    @staticmethod
    def _key(key: SeriesKey, comm: bytes, cgroup_id: int, clients: ClientIds | None = None) -> RequestKey:
        protocol = PROTOCOLS.get(key.protocol, ("", "unknown"))[1]
        # gRPC: the path, whole. An HTTP/1.x target without a path (absolute form) is "/"; an HTTP/2 :path
        # that referred to a header table entry the kernel did not know stays empty (docs/grpc.md)
        route = _text(key.target) if protocol in (HTTP, GRPC) else ""
        if not route and protocol == HTTP and key.version != 20:
            route = "/"
        return RequestKey(
            protocol=protocol, client=bool(key.client), pid=key.pid,
            comm=comm.decode(errors="replace"), method=_text(key.op), route=route,
            authority=_text(key.authority), status=key.status, version=_version(key.version),
            code=_code(protocol, key.status, bytes(key.code)),
            family=NETWORK_TYPE.get(key.family, ""), server_address=format_address(bytes(key.server_addr), key.family),
            server_port=key.server_port, start=key.start, cgroup_id=cgroup_id, tls=bool(key.tls),
            clients=clients.peer(key.client_peer) if clients is not None and key.client_peer else None)

    def lost(self) -> Mapping[str, int]:
        counts = dict.fromkeys(LOST_REASONS, 0)
        if self.obj is not None:
            for k, v in self.obj.map("l7_lost").items(ctypes.c_uint32, ctypes.c_uint64):
                counts[LOST_REASONS[k.value]] = v.value
        return counts

    def counters(self) -> Mapping[str, int]:
        tls = self.tls.counters() if self.tls is not None else {}
        return {"netobs.http.routes.folded": self.tracker.folded, **tls}


def _minus(a: Any, b: Any) -> Any:
    if isinstance(a, tuple):
        return tuple(x - y for x, y in zip(a, b, strict=True))
    return a - b
