"""ctypes mirrors of bpf/dns.h. The collector checks their sizes against the object's BTF."""

from __future__ import annotations

import ctypes

DATA_MAX = 1024
COMM_LEN = 16
LOST_REASONS = ("ring_full", "calls_full")


class DnsEvent(ctypes.Structure):
    _fields_ = (
        ("ktime_ns", ctypes.c_uint64),
        ("sock", ctypes.c_uint64),
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
        ("pad", ctypes.c_uint8 * 6),
        ("comm", ctypes.c_char * COMM_LEN),
        ("data", ctypes.c_uint8 * DATA_MAX),
    )


HEADER_SIZE = DnsEvent.data.offset
MIRRORS: dict[str, type[ctypes.Structure]] = {"dns_event": DnsEvent}
