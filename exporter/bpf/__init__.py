"""The only code that talks to libbpf: open, set constants, load, attach, maps and ring buffers."""

from exporter.bpf._libbpf import held_messages
from exporter.bpf.errors import BpfError, NotSupported
from exporter.bpf.maps import BpfMap
from exporter.bpf.object import AttachResult, BpfObject, objects_dir
from exporter.bpf.ringbuf import RingBuffer
from exporter.bpf.tracefs import ensure_tracefs

__all__ = [
    "AttachResult",
    "BpfError",
    "BpfMap",
    "BpfObject",
    "NotSupported",
    "RingBuffer",
    "ensure_tracefs",
    "held_messages",
    "objects_dir",
]
