"""The cgroups the kernel saw owners in, by id, for attributing what a process did after it and its
cgroup are gone (bpf/include/netobs_owner.h).

The kernel writes a cgroup's directory name and its two ancestors' into `netobs_cgroups` the first
time it sees the cgroup; this takes the entries (reads and deletes them) and keeps the path they make,
a suffix of the real one, which is all the container parsers look at (exporter/enrich/cgroups.py).
After each take it adds 1 to `netobs_cgroups_taken`: a CPU that recorded a cgroup before the take
then looks again whether its names are there, and records them again if not."""

from __future__ import annotations

import ctypes
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable

from exporter.bpf import BpfError, BpfObject

MAP = "netobs_cgroups"
TAKEN = "netobs_cgroups_taken"
NAME_LEN = 128
LEVELS = 3
MAX_PATHS = 16384  # cgroups remembered, the least recently asked for forgotten first
RETAKE_S = 0.5  # a cgroup not found makes the next take wait at least this long


class CgroupNamesValue(ctypes.Structure):
    _fields_ = (("names", (ctypes.c_char * NAME_LEN) * LEVELS),)


MIRRORS: dict[str, type[ctypes.Structure]] = {"netobs_cgroup_names": CgroupNamesValue}


def path_of(value: CgroupNamesValue) -> str:
    """'/grandparent/parent/name' ('/' for the root cgroup, whose name is empty)."""
    names = [bytes(value.names[i]).split(b"\0", 1)[0].decode(errors="replace") for i in range(LEVELS)]
    segments = []
    for name in names:
        if not name:
            break
        segments.append(name)
    return "/" + "/".join(reversed(segments))


class CgroupNames:
    """cgroup id -> path (its last three segments), from the maps of the objects `objects` gives."""

    def __init__(self, objects: Callable[[], Iterable[BpfObject]]) -> None:
        self._objects = objects
        self._lock = threading.Lock()
        self._paths: OrderedDict[int, str] = OrderedDict()
        self._next_take = 0.0

    def path(self, cgroup_id: int) -> str | None:
        with self._lock:
            found = self._paths.get(cgroup_id)
            if found is None and time.monotonic() >= self._next_take:
                self._take()
                found = self._paths.get(cgroup_id)
                if found is None:
                    self._next_take = time.monotonic() + RETAKE_S
            if found is not None:
                self._paths.move_to_end(cgroup_id)
            return found

    def take(self) -> None:
        """Takes what the kernel recorded since the last take."""
        with self._lock:
            self._take()

    def _take(self) -> None:
        seen: set[int] = set()
        for obj in self._objects():
            if id(obj) in seen:
                continue
            seen.add(id(obj))
            try:
                bpf_map = obj.map(MAP)
                for key, value in bpf_map.items(ctypes.c_uint64, CgroupNamesValue):
                    self._paths[key.value] = path_of(value)
                    self._paths.move_to_end(key.value)
                    bpf_map.delete(key)
                taken = obj.map(TAKEN)
                zero = ctypes.c_uint32(0)
                count = taken.lookup(zero, ctypes.c_uint64)
                taken.update(zero, ctypes.c_uint64((count.value if count is not None else 0) + 1))
            except BpfError:
                continue  # an object without owners, or closing
        while len(self._paths) > MAX_PATHS:
            self._paths.popitem(last=False)
