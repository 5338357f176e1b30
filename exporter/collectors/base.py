"""What every collector is: a BPF object it owns or shares, and aggregates it turns into rows.

Collectors that watch sockets (netflow, dns, l7) share one object, bpf/sockets.bpf.c, so that each
kernel event runs one program whichever of them are on (why: that file's head). `start_all` loads it
once for all of them; should that fail, each is tried with an object of its own, so one feature the
kernel refuses does not stop the others."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Mapping, Sequence

from exporter.bpf import AttachResult, BpfError, BpfObject, held_messages, objects_dir
from exporter.collectors.watchlist import KernelFilter
from exporter.series.rows import Row

log = logging.getLogger(__name__)
POLL_TIMEOUT_MS = 200
# Optional programs to load without, as on a kernel that refuses them (comma- or space-separated
# names): to compare, or to avoid, what they cost (docs/metrics.md).
WITHOUT_ENV = "NETOBS_WITHOUT_PROGRAMS"


class Collector:
    """Lifecycle: start() -> refresh() + rows(), and tick(), many times -> stop().

    Subclasses name their object and fill in configure(), refresh() and rows(). A collector of a
    shared object also names the programs it needs; the object's `<name>_enabled` constant turns it on.
    The telemetry holds self.lock around refresh() and rows()."""

    name = ""
    object_name = ""
    programs: frozenset[str] = frozenset()  # in a shared object: the programs this collector needs
    # programs it can do without, at some cost, on a kernel that refuses them (see load_object), and
    # what doing without them means, for the one line that says so
    optional_programs: frozenset[str] = frozenset()
    without_optional = ""

    def __init__(self) -> None:
        self.obj: BpfObject | None = None
        self.lock = threading.Lock()  # collections run on the HTTP and OTLP threads, tick() on the main one
        self.attach_results: list[AttachResult] = []
        self.records_interval: float | None = None  # seconds between records; None: Common.FlushOutL4Interval
        self._stopping = threading.Event()
        self._poller: threading.Thread | None = None
        self.kernel_filter: KernelFilter | None = None  # the filter maps every object has (netobs_filter.h)
        self._shared: SharedObject | None = None
        self.without: frozenset[str] = frozenset()  # optional programs this kernel refused

    def configure(self, obj: BpfObject) -> None:
        """Sets read-only constants and map sizes, before load."""

    def prepare(self, obj: BpfObject) -> None:
        """Fills maps after load, before attach."""

    def load(self) -> BpfObject:
        """Opens, configures, loads and prepares the object: everything but attaching."""
        return load_object_or_fewer([self])

    def sync_filter(self) -> None:
        """Brings the object's filter maps up to date; from the main thread only."""
        if self.obj is not None and self.kernel_filter is not None:
            self.kernel_filter.sync(self.obj)

    def start(self) -> list[AttachResult]:
        """Loads and attaches an object of its own."""
        start_together([self])
        return self.attach_results

    def attached(self) -> None:
        """Called once the programs are attached: start reading what needs a thread."""

    def refresh(self) -> None:
        """Brings what rows() returns up to date with the kernel's tables (under self.lock)."""

    def rows(self) -> Sequence[Row]:
        """The collector's series as they stand, each an unchanged Row object while its figures are;
        reading them changes nothing (under self.lock)."""
        return ()

    def lost(self) -> Mapping[str, int]:
        """Events or updates the kernel side could not record, by reason (cumulative)."""
        return {}

    def counters(self) -> Mapping[str, int]:
        """Self-metrics of its own: instrument name (exporter/series/instruments.py SELF) -> value."""
        return {}

    def tick(self, now: float) -> None:
        """Periodic housekeeping (expiry, timeouts), called about once a second from the main loop,
        without self.lock: take it around what refresh() and rows() also touch, not around slow I/O."""

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
            if self._shared is not None:
                self._shared.release(self)
            else:
                if self.kernel_filter is not None:
                    self.kernel_filter.forget(self.obj)
                self.obj.close()
            self.obj = None
            self._shared = None


class SharedObject:
    """An object loaded for several collectors; closed when the last of them stops."""

    def __init__(self, obj: BpfObject, members: Sequence[Collector]) -> None:
        self.obj = obj
        self._members = set(map(id, members))
        self._filter = members[0].kernel_filter

    def release(self, member: Collector) -> None:
        self._members.discard(id(member))
        if not self._members:
            if self._filter is not None:
                self._filter.forget(self.obj)
            self.obj.close()


def load_object(members: Sequence[Collector], without: frozenset[str] = frozenset()) -> BpfObject:
    """Opens the members' object, lets each configure it, loads it and lets each prepare it. In a
    shared object only the programs some member needs are loaded, and each member's feature is on.
    Programs in `without` are not loaded; each member sees those it named optional in m.without."""
    obj = BpfObject.open(objects_dir() / f"{members[0].object_name}.bpf.o")
    kernel_filter = members[0].kernel_filter
    for m in members:
        m.without = without & m.optional_programs
    try:
        if members[0].programs:
            wanted = frozenset().union(*(m.programs for m in members)) - without
            for program in obj.programs():
                obj.set_autoload(program, program in wanted)
            obj.set_rodata({f"{m.name}_enabled": True for m in members})
        for m in members:
            m.configure(obj)
        if kernel_filter is not None:
            kernel_filter.configure(obj)
        obj.load()
        for m in members:
            m.prepare(obj)
        if kernel_filter is not None:
            kernel_filter.sync(obj)
    except BaseException:
        obj.close()
        raise
    return obj


def load_object_or_fewer(members: Sequence[Collector]) -> BpfObject:
    """load_object(); if the kernel refuses it and members named optional programs, once more
    without them (a kernel may lack one kind of program the others do not need)."""
    optional = frozenset().union(*(m.optional_programs for m in members))
    if not optional:
        return load_object(members)
    forced = optional & frozenset(os.environ.get(WITHOUT_ENV, "").replace(",", " ").split())
    if forced:  # as a kernel that refuses them would have it
        log.warning("%s: loaded without %s (%s)", members[0].object_name, ", ".join(sorted(forced)), WITHOUT_ENV)
        return load_object(members, forced)
    refused: BpfError | None = None
    with held_messages() as held:  # libbpf's account of a refusal the exporter expects and handles
        try:
            obj = load_object(members)
        except BpfError as e:
            refused = e
    if refused is None:
        for message in held:
            log.warning("libbpf: %s", message)
        return obj
    for message in held:
        log.debug("libbpf: %s", message)
    obj = load_object(members, optional)
    consequences = "; ".join(m.without_optional for m in members if m.optional_programs and m.without_optional)
    log.warning("%s: this kernel refuses %s (%s)%s", members[0].object_name, ", ".join(sorted(optional)),
                refused, f": {consequences}" if consequences else "")
    return obj


def start_together(members: Sequence[Collector]) -> None:
    """Loads the members' object once and attaches its programs; raises BpfError if it cannot."""
    obj = load_object_or_fewer(members)
    results = obj.attach_all()
    shared = SharedObject(obj, members) if len(members) > 1 else None
    for m in members:
        m.obj, m._shared = obj, shared
        m.attach_results = [r for r in results if not m.programs or r.program in m.programs]
    for r in results:
        if not r.attached:
            log.warning("program %s (%s) not attached: %s", r.program, r.section, r.error)
    for m in members:
        m.attached()


def start_all(collectors: Sequence[Collector]) -> list[tuple[Collector, BpfError]]:
    """Starts the collectors, those of one object together; returns those that could not start.
    If a shared object fails to load, each of its collectors is tried alone, so the error names the
    collector it belongs to and the others still run."""
    groups: dict[str, list[Collector]] = {}
    for c in collectors:
        groups.setdefault(c.object_name if c.programs else f"{c.object_name}:{id(c)}", []).append(c)
    failures: list[tuple[Collector, BpfError]] = []
    for members in groups.values():
        try:
            if len(members) == 1:
                members[0].start()
            else:
                start_together(members)
            continue
        except BpfError as e:
            if len(members) == 1:
                failures.append((members[0], e))
                continue
            log.warning("%s: could not load %s together (%s); trying each alone",
                        members[0].object_name, ", ".join(m.name for m in members), e)
        for m in members:
            try:
                m.start()
            except BpfError as e:
                failures.append((m, e))
    return failures


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
