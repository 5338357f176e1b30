"""ctypes mirrors of bpf/dns.h. The collector checks their sizes against the object's BTF."""

from __future__ import annotations

import ctypes

DATA_MAX = 1024
COMM_LEN = 16
NAME_MAX = 128
BOUNDS = 19
EARLY_NS = 1_000_000_000  # DNS_EARLY_NS
EARLY_EXPIRED = 2  # bpf/dns.c early_count: the answers user space counted unmatched and deleted
LOST_REASONS = ("ring_full", "pending_full", "series_full", "unmatched")


class DnsEvent(ctypes.Structure):
    _fields_ = (
        ("ktime_ns", ctypes.c_uint64),
        ("sock", ctypes.c_uint64),
        ("start", ctypes.c_uint64),
        ("cgroup_id", ctypes.c_uint64),
        ("local_addr", ctypes.c_uint8 * 16),
        ("remote_addr", ctypes.c_uint8 * 16),
        ("pid", ctypes.c_uint32),
        ("length", ctypes.c_uint32),
        ("local_port", ctypes.c_uint16),
        ("remote_port", ctypes.c_uint16),
        ("family", ctypes.c_uint16),
        ("captured", ctypes.c_uint16),
        ("protocol", ctypes.c_uint8),
        ("sent", ctypes.c_uint8),
        ("paired", ctypes.c_uint8),
        ("pad", ctypes.c_uint8 * 5),
        ("comm", ctypes.c_char * COMM_LEN),
        ("data", ctypes.c_uint8 * DATA_MAX),
    )


class PendingKey(ctypes.Structure):
    _fields_ = (
        ("sock", ctypes.c_uint64),
        ("name_hash", ctypes.c_uint64),
        ("id", ctypes.c_uint16),
        ("qtype", ctypes.c_uint16),
        ("slot", ctypes.c_uint8),
        ("pad", ctypes.c_uint8 * 3),
    )


class SeriesKey(ctypes.Structure):
    _fields_ = (
        ("server_addr", ctypes.c_uint8 * 16),
        ("start", ctypes.c_uint64),
        ("pid", ctypes.c_uint32),
        ("server_port", ctypes.c_uint16),
        ("qtype", ctypes.c_uint16),
        ("family", ctypes.c_uint16),
        ("client", ctypes.c_uint8),
        ("rcode", ctypes.c_uint8),
        ("name_len", ctypes.c_uint8),
        ("pad", ctypes.c_uint8 * 3),
        ("name", ctypes.c_uint8 * NAME_MAX),
    )


class Pending(ctypes.Structure):
    _fields_ = (
        ("ktime_ns", ctypes.c_uint64),
        ("request_bytes", ctypes.c_uint64),
        ("remote_addr", ctypes.c_uint8 * 16),
        ("remote_port", ctypes.c_uint16),
        ("pad", ctypes.c_uint8 * 6),
        ("cgroup_id", ctypes.c_uint64),
        ("series", SeriesKey),
        ("comm", ctypes.c_char * COMM_LEN),
    )


class SeriesStats(ctypes.Structure):
    _fields_ = (
        ("count", ctypes.c_uint64),
        ("sum_ns", ctypes.c_uint64),
        ("buckets", ctypes.c_uint64 * (BOUNDS + 1)),
        ("window", ctypes.c_uint64),
        ("max_ns", ctypes.c_uint64),
        ("previous_max_ns", ctypes.c_uint64),
        ("last_ns", ctypes.c_uint64),
        ("request_bytes", ctypes.c_uint64),
        ("response_bytes", ctypes.c_uint64),
        ("cgroup_id", ctypes.c_uint64),
        ("comm", ctypes.c_char * COMM_LEN),
    )


class Early(ctypes.Structure):
    _fields_ = (
        ("ktime_ns", ctypes.c_uint64),
        ("response_bytes", ctypes.c_uint64),
        ("rcode", ctypes.c_uint8),
        ("pad", ctypes.c_uint8 * 7),
    )


HEADER_SIZE = DnsEvent.data.offset
MIRRORS: dict[str, type[ctypes.Structure]] = {
    "dns_event": DnsEvent, "dns_pending_key": PendingKey, "dns_series_key": SeriesKey,
    "dns_pending": Pending, "dns_series": SeriesStats, "dns_early": Early,
}
