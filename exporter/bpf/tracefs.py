"""ensure_tracefs: make tracefs available, which libbpf reads to attach tracepoint programs."""

from __future__ import annotations

import ctypes
import pathlib

from exporter.bpf._libbpf import libc
from exporter.bpf.errors import NotSupported, errno_reason

TRACEFS = pathlib.Path("/sys/kernel/tracing")
DEBUGFS_TRACING = pathlib.Path("/sys/kernel/debug/tracing")


def _mounted_tracefs() -> pathlib.Path | None:
    for mount_point in (TRACEFS, DEBUGFS_TRACING):
        if (mount_point / "events").is_dir():
            return mount_point
    return None


def ensure_tracefs() -> pathlib.Path:
    """The tracefs mount point, mounting tracefs on /sys/kernel/tracing when none is mounted."""
    mount_point = _mounted_tracefs()
    if mount_point is not None:
        return mount_point
    if not TRACEFS.is_dir():
        raise NotSupported(f"tracefs: {TRACEFS} does not exist (kernel built without tracing?)")
    if libc().mount(b"tracefs", str(TRACEFS).encode(), b"tracefs", 0, None) != 0:
        reason = errno_reason(ctypes.get_errno())
        raise NotSupported(f"tracefs: cannot mount on {TRACEFS}: {reason}")
    if not (TRACEFS / "events").is_dir():
        raise NotSupported(f"tracefs: mounted on {TRACEFS} but it has no events directory")
    return TRACEFS
