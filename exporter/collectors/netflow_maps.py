"""Mirrors of bpf/netflow.h: ctypes structures, whose sizes the collector checks against the object's
BTF, and struct layouts of the same bytes for the maps read in bulk."""

from __future__ import annotations

import ctypes
import struct

RTT_BOUNDS = 18
COMM_LEN = 16

LOST_REASONS = ("flow_table_full", "failed_table_full", "no_socket_state")


class NetflowKey(ctypes.Structure):
    _fields_ = (
        ("local_addr", ctypes.c_uint8 * 16),
        ("remote_addr", ctypes.c_uint8 * 16),
        ("start", ctypes.c_uint64),
        ("pid", ctypes.c_uint32),
        ("local_port", ctypes.c_uint16),
        ("remote_port", ctypes.c_uint16),
        ("family", ctypes.c_uint16),
        ("protocol", ctypes.c_uint8),
        ("direction", ctypes.c_uint8),
    )


class NetflowStats(ctypes.Structure):
    _fields_ = (
        ("bytes_sent", ctypes.c_uint64),
        ("bytes_received", ctypes.c_uint64),
        ("packets_sent", ctypes.c_uint64),
        ("packets_received", ctypes.c_uint64),
        ("retransmits", ctypes.c_uint64),
        ("established", ctypes.c_uint64),
        ("closed", ctypes.c_uint64),
        ("active", ctypes.c_int64),
        ("rtt_buckets", ctypes.c_uint64 * (RTT_BOUNDS + 1)),
        ("rtt_sum_us", ctypes.c_uint64),
        ("rtt_count", ctypes.c_uint64),
        ("srtt_us", ctypes.c_uint32),
        ("rttvar_us", ctypes.c_uint32),
        ("last_seen_ns", ctypes.c_uint64),
        ("cgroup_id", ctypes.c_uint64),
        ("comm", ctypes.c_char * COMM_LEN),
    )


class NetflowFailedKey(ctypes.Structure):
    _fields_ = (("flow", NetflowKey), ("error", ctypes.c_uint32))


class Addr16(ctypes.Structure):
    _fields_ = (("addr", ctypes.c_uint8 * 16),)


MIRRORS: dict[str, type[ctypes.Structure]] = {
    "netflow_key": NetflowKey,
    "netflow_stats": NetflowStats,
    "netflow_failed_key": NetflowFailedKey,
}

# The same layouts for struct: local_addr, remote_addr, start, pid, local_port, remote_port, family, protocol,
# direction (and the padding to 8 bytes)
KEY = struct.Struct("<16s16sQIHHHBB4x")
# bytes_sent ... closed, active, rtt_buckets[19], rtt_sum_us, rtt_count, srtt_us, rttvar_us, last_seen_ns,
# cgroup_id, comm
STATS = struct.Struct(f"<7Qq{RTT_BOUNDS + 1}QQQIIQQ{COMM_LEN}s")
FAILED_KEY = struct.Struct(f"<{KEY.size}sI4x")  # the flow's key bytes, errno
# Parts of a flow's bytes, for reading only what changed: the counters (bytes_sent ... active), the RTT
# samples (histogram, srtt, rttvar), the time of its last event, the process name.
COUNTS = struct.Struct("<7Qq")
SAMPLES = slice(NetflowStats.rtt_buckets.offset, NetflowStats.last_seen_ns.offset)
LAST_SEEN = struct.Struct("<Q")
LAST_SEEN_AT = NetflowStats.last_seen_ns.offset
COMM = slice(NetflowStats.comm.offset, NetflowStats.comm.offset + COMM_LEN)
assert KEY.size == ctypes.sizeof(NetflowKey) and STATS.size == ctypes.sizeof(NetflowStats)
assert FAILED_KEY.size == ctypes.sizeof(NetflowFailedKey)
assert COUNTS.size == NetflowStats.rtt_buckets.offset
