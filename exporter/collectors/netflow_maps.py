"""ctypes mirrors of bpf/netflow.h. The collector checks their sizes against the object's BTF."""

from __future__ import annotations

import ctypes

RTT_BOUNDS = 18
COMM_LEN = 16

DIRECTION_UNKNOWN, DIRECTION_INCOMING, DIRECTION_OUTGOING = 0, 1, 2
LOST_REASONS = ("flow_table_full", "failed_table_full", "no_socket_state")


class FlowKey(ctypes.Structure):
    _fields_ = (
        ("local_addr", ctypes.c_uint8 * 16),
        ("remote_addr", ctypes.c_uint8 * 16),
        ("pid", ctypes.c_uint32),
        ("local_port", ctypes.c_uint16),
        ("remote_port", ctypes.c_uint16),
        ("family", ctypes.c_uint16),
        ("protocol", ctypes.c_uint8),
        ("direction", ctypes.c_uint8),
    )


class FlowStats(ctypes.Structure):
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
        ("comm", ctypes.c_char * COMM_LEN),
    )


class FailedKey(ctypes.Structure):
    _fields_ = (("flow", FlowKey), ("error", ctypes.c_uint32))


class Seed(ctypes.Structure):
    _fields_ = (("flow", FlowKey), ("comm", ctypes.c_char * COMM_LEN))


class Addr16(ctypes.Structure):
    _fields_ = (("addr", ctypes.c_uint8 * 16),)


MIRRORS: dict[str, type[ctypes.Structure]] = {
    "netflow_key": FlowKey,
    "netflow_stats": FlowStats,
    "netflow_failed_key": FailedKey,
    "netflow_seed": Seed,
}
