"""What every collector is: a BPF object it owns, and aggregates it turns into points."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any

from exporter.bpf import AttachResult, BpfError, BpfObject, objects_dir
from exporter.collectors.watchlist import KernelFilter
from exporter.telemetry.points import Snapshot

log = logging.getLogger(__name__)
POLL_TIMEOUT_MS = 200


class Collector:
    """Lifecycle: start() -> snapshot()/tick() many times -> stop().

    Subclasses name their object and fill in configure() and snapshot()."""

    name = ""
    object_name = ""

    def __init__(self) -> None:
        self.obj: BpfObject | None = None
        self.lock = threading.Lock()  # snapshot() runs on the HTTP thread, tick() on the main one
        self.attach_results: list[AttachResult] = []
        self.records_interval: float | None = None  # seconds between records(); None: Common.FlushOutL4Interval
        self._stopping = threading.Event()
        self._poller: threading.Thread | None = None
        self.kernel_filter: KernelFilter | None = None  # the filter maps every object has (netobs_filter.h)

    def configure(self, obj: BpfObject) -> None:
        """Sets read-only constants and map sizes, before load."""

    def prepare(self, obj: BpfObject) -> None:
        """Fills maps after load, before attach."""

    def load(self) -> BpfObject:
        """Opens, configures, loads and prepares the object: everything but attaching."""
        obj = BpfObject.open(objects_dir() / f"{self.object_name}.bpf.o")
        try:
            self.configure(obj)
            if self.kernel_filter is not None:
                self.kernel_filter.configure(obj)
            obj.load()
            self.prepare(obj)
            if self.kernel_filter is not None:
                self.kernel_filter.sync(obj)
        except BaseException:
            obj.close()
            raise
        return obj

    def sync_filter(self) -> None:
        """Brings the object's filter maps up to date; from the main thread only."""
        if self.obj is not None and self.kernel_filter is not None:
            self.kernel_filter.sync(self.obj)

    def start(self) -> list[AttachResult]:
        obj = self.obj = self.load()
        self.attach_results = obj.attach_all()
        for r in self.attach_results:
            if not r.attached:
                log.warning("program %s (%s) not attached: %s", r.program, r.section, r.error)
        return self.attach_results

    def snapshot(self) -> Snapshot:
        return {}

    def lost(self) -> Mapping[str, int]:
        """Events or updates the kernel side could not record, by reason (cumulative)."""
        return {}

    def tick(self, now: float) -> None:
        """Periodic housekeeping, called about once a second from the main loop, without
        self.lock: take it around what snapshot() also touches, not around slow I/O."""

    def records(self) -> list[dict[str, Any]]:
        """iLogtail-style records for the interval since the last call."""
        return []

    def poll_ring_buffer(self, map_name: str, on_record: Callable[[memoryview | bytes], None]) -> None:
        """Drains a ring buffer of the loaded object from a thread of its own, until stop()."""
        assert self.obj is not None and self._poller is None
        ring = self.obj.ring_buffer(map_name, on_record)

        def poll() -> None:
            try:
                while not self._stopping.is_set():
                    ring.poll(POLL_TIMEOUT_MS)
            except BpfError as error:
                log.error("%s: stopped reading %s: %s", self.name, map_name, error)

        self._poller = threading.Thread(target=poll, name=f"{self.name}-{map_name}", daemon=True)
        self._poller.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._poller is not None:
            self._poller.join(timeout=5)
            self._poller = None
        if self.obj is not None:
            if self.kernel_filter is not None:
                self.kernel_filter.forget(self.obj)
            self.obj.close()
            self.obj = None


def check_mirrors(obj: BpfObject, mirrors: Mapping[str, type]) -> None:
    """Refuses to run when a ctypes mirror no longer matches the struct the object was built with."""
    import ctypes

    for struct_name, mirror in mirrors.items():
        size = obj.btf_type_size(struct_name)
        if size is not None and size != ctypes.sizeof(mirror):
            raise BpfError(
                f"{obj.name}: struct {struct_name} is {size} bytes in the object but "
                f"{ctypes.sizeof(mirror)} in {mirror.__module__}.{mirror.__name__}"
            )
