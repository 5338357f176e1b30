"""Keeps the filter maps of every loaded object (bpf/include/netobs_filter.h) in step with the verdicts.

The scanner (exporter/enrich/stage.py) publishes the verdicts from its own thread; objects are written
from the main thread only (at start, before attach, and at every tick), so a map is never written
while its object closes."""

from __future__ import annotations

import ctypes
import logging
import threading

from exporter.bpf import BpfError, BpfMap, BpfObject

log = logging.getLogger(__name__)

CGROUP_MAP = "netobs_cgroup_verdicts"
PID_MAP = "netobs_pid_verdicts"


class KernelFilter:
    def __init__(self, mode: int) -> None:
        self.mode = mode
        self._lock = threading.Lock()
        self._cgroups: dict[int, bool] = {}
        self._pids: dict[int, bool] = {}
        self._written: dict[int, tuple[dict[int, bool], dict[int, bool]]] = {}  # id(obj) -> what it holds
        self.failed_writes = 0

    def publish(self, cgroups: dict[int, bool], pids: dict[int, bool]) -> None:
        with self._lock:
            self._cgroups, self._pids = cgroups, pids

    def configure(self, obj: BpfObject) -> None:
        """Before load: the mode."""
        obj.set_rodata({"netobs_filter_mode": self.mode})

    def sync(self, obj: BpfObject) -> None:
        """Writes what changed since the last sync of this object."""
        if not self.mode:
            return
        with self._lock:
            cgroups, pids = self._cgroups, self._pids
        had_cgroups, had_pids = self._written.get(id(obj), ({}, {}))
        if cgroups is had_cgroups and pids is had_pids:
            return
        self._write(obj.map(CGROUP_MAP), ctypes.c_uint64, had_cgroups, cgroups)
        self._write(obj.map(PID_MAP), ctypes.c_uint32, had_pids, pids)
        self._written[id(obj)] = (cgroups, pids)

    def forget(self, obj: BpfObject) -> None:
        self._written.pop(id(obj), None)

    def _write(self, bpf_map: BpfMap, key_type: type[ctypes.c_uint64] | type[ctypes.c_uint32],
               had: dict[int, bool], wanted: dict[int, bool]) -> None:
        try:
            for key in had.keys() - wanted.keys():
                bpf_map.delete(key_type(key))
            for key, verdict in wanted.items():
                if had.get(key) != verdict:
                    bpf_map.update(key_type(key), ctypes.c_uint8(verdict))
        except BpfError as err:  # a full map: the render-time filter still applies
            self.failed_writes += 1
            log.warning("filter: cannot write %s: %s", bpf_map.name, err)

    def watched(self, pid: int) -> bool | None:
        """The published verdict of a pid, when it has its own."""
        with self._lock:
            return self._pids.get(pid)
