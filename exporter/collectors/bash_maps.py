"""ctypes mirrors of bpf/bash.h. The collector checks their sizes against the object's BTF."""

from __future__ import annotations

import ctypes

LINE_MAX = 4096
COMM_LEN = 16
LOST_REASONS = ("ring_full", "read_failed")


class BashEvent(ctypes.Structure):
    _fields_ = (
        ("ktime_ns", ctypes.c_uint64),
        ("pid", ctypes.c_uint32),
        ("uid", ctypes.c_uint32),
        ("len", ctypes.c_uint32),
        ("truncated", ctypes.c_uint8),
        ("pad", ctypes.c_uint8 * 3),
        ("comm", ctypes.c_char * COMM_LEN),
        ("line", ctypes.c_char * (LINE_MAX + 1)),
    )


MIRRORS: dict[str, type[ctypes.Structure]] = {"bash_event": BashEvent}
