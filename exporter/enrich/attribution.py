"""Who a process is: process, container and pod attributes, and whether the filters watch it.

One lookup per process, cached by (pid, start time): a reused pid is a new process. A cached answer
is rebuilt after Common.FlushMetaInterval, or as soon as the pods known change. A process that has
exited keeps its last answer for EXITED_GRACE (its series are still being read), then is forgotten.
Sources: /proc/<pid>/{stat,cmdline,cgroup}; the cgroup v2 directory's inode (the kernel's cgroup
id); the Docker Engine API; the pods of this node (kubernetes.py).

The kernel names the owner of each row by pid, start and cgroup id (Owner). A process gone before
user space ever saw it alive is attributed from those: its container from the names of its cgroup,
which the kernel recorded (`cgroup_path`, exporter/collectors/owners.py), or from the cgroup's
directory while it exists (its inode is the id), and its pod from the container id or the pod uid
in them."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace

from exporter.enrich import cgroups
from exporter.enrich.docker import ContainerMeta, DockerSource
from exporter.enrich.errors import SourceErrors
from exporter.enrich.filters import ContainerFacts, Filters
from exporter.enrich.kubernetes_pods import Pod, PodContainer, PodIndex
from exporter.enrich.process import ProcessFacts, read_process, start_and_comm
from exporter.series.attributes import POD_LABEL_PREFIX
from exporter.series.rows import Owner, Process

log = logging.getLogger(__name__)

EXITED_GRACE = 600.0  # seconds an exited process keeps its attributes
MAX_PAST = 16384  # answers of exited or replaced processes kept at most (oldest forgotten first; one
# forgotten while its rows live is built again from the kernel's facts)
AttributeMap = dict[str, str | int]
CgroupPath = Callable[[int], str | None]  # cgroup id -> a path ending with its last segments, if known


@dataclass(frozen=True)
class Workload:
    """One process as the series show it."""

    pid: int
    start: str
    cmdline: str
    attributes: AttributeMap  # every attribute known, selected per instrument later
    cgroup_id: int | None = None  # None: the process's cgroup v2 directory is not known
    container_id: str = ""
    container_watched: bool = True  # the container parameters alone
    watched: bool = True  # every filter parameter
    exited_at: float | None = None  # monotonic time the process was found gone
    records: dict[str, str] = field(default_factory=dict)  # iLogtail record fields
    process: Process = field(default_factory=lambda: Process({}))  # what series carry of it; see _shared

    def __post_init__(self) -> None:
        if not self.process.attributes and self.attributes:
            object.__setattr__(self, "process", Process(self.attributes, self.records, self.cmdline))


def image_name(ref: str) -> str:
    """`registry:5000/team/app:1.2@sha256:...` -> `registry:5000/team/app` (container.image.name)."""
    ref = ref.split("@", 1)[0]
    colon = ref.rfind(":")
    return ref[:colon] if colon > ref.rfind("/") else ref


class Attribution:
    def __init__(self, filters: Filters, ttl: float, errors: SourceErrors, *, proc: str = "/proc",
                 docker: DockerSource | None = None, pods: PodIndex | None = None,
                 cgroup_mount: str | None = None, pod_labels: Iterable[str] = ()) -> None:
        self.filters = filters
        self.ttl = ttl
        self.errors = errors
        self.proc = proc
        self.docker = docker
        self.pods = pods
        self.cgroup_mount = cgroup_mount
        self.pod_labels = tuple(pod_labels)
        self._lock = threading.Lock()
        self._cache: dict[int, tuple[Workload, float, int]] = {}  # pid -> (answer, expires, pods version)
        self._unknown: dict[tuple[int, str], Workload] = {}  # processes gone before they were ever seen
        # (pid, start) -> the answer of a process that exited or whose pid was reused, or of one known
        # only from the kernel's facts
        self._past: OrderedDict[tuple[int, str], Workload] = OrderedDict()
        self.cgroup_path: CgroupPath = lambda _cgroup_id: None
        self._cgroups = cgroups.CgroupIndex(cgroup_mount)

    # ------------------------------------------------------------------ lookups

    def owner(self, owner: Owner) -> Workload:
        """The process the kernel charged a row to: the live one while it is that process, its last
        answer once it has gone (or its pid is another process's), and, for a process never seen alive,
        an answer built from the kernel's facts: pid, name, and the container its cgroup names."""
        if not owner.start:
            return self.process(owner.pid, owner.comm)
        start = str(owner.start)
        with self._lock:
            past = self._past.get((owner.pid, start))
        if past is not None and self._same_cgroup(past, owner):
            return past
        current = self._current(owner.pid)
        if current is not None and current.start == start and self._same_cgroup(current, owner):
            return current
        return self._from_kernel(owner, start)

    @staticmethod
    def _same_cgroup(seen: Workload, owner: Owner) -> bool:
        """A process seen in another cgroup than the kernel's: seen between its fork and its move into
        a container (runc, `echo $$ > cgroup.procs`), before the exec that made the socket. The kernel's
        facts are the truer ones then."""
        return not owner.cgroup_id or seen.cgroup_id is None or seen.cgroup_id == owner.cgroup_id

    def _from_kernel(self, owner: Owner, start: str) -> Workload:
        path = None
        if owner.cgroup_id:  # the names the kernel recorded; else the directory, if it is still there
            path = self.cgroup_path(owner.cgroup_id) or self._cgroups.path(owner.cgroup_id)
        facts = ProcessFacts(owner.pid, start, owner.comm, "", f"0::{path}\n" if path is not None else "")
        workload = _exited(self._build(facts, owner.cgroup_id or None), time.monotonic())
        if path is not None or not owner.cgroup_id:  # else ask again: the names may come later
            self._remember(workload)
        return workload

    def _remember(self, workload: Workload) -> None:
        with self._lock:
            self._past[workload.pid, workload.start] = workload
            while len(self._past) > MAX_PAST:
                self._past.popitem(last=False)

    def process(self, pid: int, comm: str = "") -> Workload:
        """The process with this pid now; its last answer if it has exited; `comm` (the kernel's name)
        when it was never seen."""
        current = self._current(pid)
        return current if current is not None else self._unknown_answer(pid, comm)

    def _current(self, pid: int) -> Workload | None:
        """The process with this pid now, or its last answer if it has exited; None if never seen."""
        now = time.monotonic()
        with self._lock:
            cached = self._cache.get(pid)
        try:
            start, _ = start_and_comm(self.proc, pid)
        except (OSError, IndexError):
            return self._gone(pid, cached, now)
        version = self.pods.version if self.pods is not None else 0
        if cached is not None and cached[0].start == start and cached[1] > now and cached[2] == version:
            return cached[0]
        try:
            facts = read_process(self.proc, pid)
        except (OSError, IndexError):
            return self._gone(pid, cached, now)
        if cached is not None and cached[0].start and cached[0].start != facts.start:
            self._remember(_exited(cached[0], now) if cached[0].exited_at is None else cached[0])  # pid reused
        workload = _shared(self._build(facts), cached[0] if cached is not None else None)
        with self._lock:
            self._cache[pid] = (workload, now + self.ttl, version)
        return workload

    def _gone(self, pid: int, cached: tuple[Workload, float, int] | None, now: float) -> Workload | None:
        if cached is None:
            return None
        workload = cached[0]
        if workload.exited_at is None:
            workload = _exited(workload, now)
            with self._lock:
                self._cache[pid] = (workload, cached[1], cached[2])
        return workload

    def _unknown_answer(self, pid: int, comm: str) -> Workload:
        """A pid never seen alive and without the kernel's facts: its pid and name only."""
        with self._lock:
            unknown = self._unknown.get((pid, comm))
        if unknown is None:  # one answer per (pid, comm), so the stages that compare by identity see no change
            attributes: AttributeMap = {"process.pid": pid, "process.executable.name": comm}
            watched = self.filters.container_watched(None) and self.filters.process_watched(pid, comm)
            unknown = Workload(pid, "", comm, attributes, watched=watched and not self.filters.includes,
                               exited_at=time.monotonic())
            with self._lock:
                self._unknown[pid, comm] = unknown
        return unknown

    def live_pids(self) -> set[int]:
        return {int(name) for name in os.listdir(self.proc) if name.isdigit()}

    def scan(self) -> dict[int, Workload]:
        """Every live process (for the kernel's filter maps); forgets processes long gone."""
        live: dict[int, Workload] = {}
        for pid in self.live_pids():
            workload = self.process(pid)
            if workload.exited_at is None:
                live[workload.pid] = workload
        self.forget(set(live))
        return live

    def forget(self, live: set[int]) -> None:
        """Marks cached processes that are not in `live` as exited; drops those gone for long."""
        now = time.monotonic()
        with self._lock:
            for pid, (workload, _, _) in list(self._cache.items()):
                if pid not in live and workload.exited_at is None:
                    self._cache[pid] = (_exited(workload, now), *self._cache[pid][1:])
                elif workload.exited_at is not None and now - workload.exited_at > EXITED_GRACE:
                    del self._cache[pid]
            for key, workload in list(self._unknown.items()):
                if workload.exited_at is not None and now - workload.exited_at > EXITED_GRACE:
                    del self._unknown[key]
            for past_key, workload in list(self._past.items()):
                if workload.exited_at is not None and now - workload.exited_at > EXITED_GRACE:
                    del self._past[past_key]
            containers = {w.container_id for w, _, _ in self._cache.values() if w.container_id}
        if self.docker is not None:
            self.docker.forget(containers)

    # ------------------------------------------------------------------ building an answer

    def _build(self, facts: ProcessFacts, cgroup_id: int | None = None) -> Workload:
        """The answer for a process; `cgroup_id` when its cgroup path is only the kernel's suffix of it."""
        attributes: AttributeMap = {
            "process.pid": facts.pid,
            "process.executable.name": facts.comm,
            "process.command_line": facts.cmdline or facts.comm,
        }
        try:
            parsed = cgroups.parse_proc_cgroup(facts.cgroup)
        except ValueError as err:
            self.errors.count("cgroup", f"pid {facts.pid}: {err}")
            parsed = cgroups.ProcCgroup(None, {})
        if cgroup_id is None and self.cgroup_mount and parsed.unified is not None:
            cgroup_id = cgroups.cgroup_id(self.cgroup_mount, parsed.unified)
        ref = cgroups.container_of(parsed)
        container = self._container(ref, attributes) if ref is not None else None
        attributes["netobs.running_mode"] = "container" if ref is not None else "host"
        container_watched = self.filters.container_watched(container)
        watched = container_watched and self.filters.process_watched(facts.pid, facts.cmdline or facts.comm)
        return Workload(facts.pid, facts.start, facts.cmdline or facts.comm, attributes, cgroup_id,
                        ref.id if ref else "", container_watched, watched, records=_records(attributes))

    def _container(self, ref: cgroups.ContainerRef, attributes: AttributeMap) -> ContainerFacts:
        """Adds the container's and its pod's attributes; returns what the filters look at."""
        attributes["container.id"] = ref.id
        if ref.runtime:
            attributes["container.runtime.name"] = ref.runtime
        meta: ContainerMeta | None = None
        if self.docker is not None and ref.runtime in ("docker", ""):
            meta = self.docker.container(ref.id)
        pod, pod_container = self._pod(ref)
        names: list[str] = []
        if meta is not None:
            names.append(meta.name)
            attributes["container.runtime.name"] = "docker"
            attributes["container.name"] = meta.name
            attributes["container.image.name"] = image_name(meta.image)
        if pod_container is not None:
            names.append(pod_container.name)
            attributes.setdefault("container.name", pod_container.name)
            attributes.setdefault("container.image.name", image_name(pod_container.image))
            attributes["k8s.container.name"] = pod_container.name
        if pod is not None:
            attributes.update(_pod_attributes(pod, self.pod_labels))
        env = {**(pod_container.env if pod_container else {}), **(meta.env if meta else {})}
        return ContainerFacts(names=tuple(n for n in names if n), labels=meta.labels if meta else {}, env=env,
                              pod_name=pod.name if pod else None, namespace=pod.namespace if pod else None,
                              pod_labels=pod.labels if pod else {})

    def _pod(self, ref: cgroups.ContainerRef) -> tuple[Pod | None, PodContainer | None]:
        if self.pods is None:
            return None, None
        found = self.pods.by_container(ref.id)
        if found is not None:
            return found
        return (self.pods.by_uid(ref.pod_uid) if ref.pod_uid else None), None


def _exited(workload: Workload, now: float) -> Workload:
    return Workload(workload.pid, workload.start, workload.cmdline, workload.attributes, workload.cgroup_id,
                    workload.container_id, workload.container_watched, workload.watched, now, workload.records,
                    workload.process)


def _shared(workload: Workload, before: Workload | None) -> Workload:
    """A rebuilt answer keeps the Process of the one before when nothing in it changed, so the series
    stages, which compare processes by identity, see no change."""
    if before is None or before.start != workload.start:
        return workload
    old = before.process
    if old.attributes == workload.attributes and old.records == workload.records and old.cmdline == workload.cmdline:
        return replace(workload, process=old)
    return workload


def _pod_attributes(pod: Pod, label_keys: tuple[str, ...]) -> AttributeMap:
    out: AttributeMap = {"k8s.namespace.name": pod.namespace, "k8s.pod.name": pod.name, "k8s.pod.uid": pod.uid}
    if pod.node:
        out["k8s.node.name"] = pod.node
    out.update(pod.workload)
    for key in label_keys:
        if key in pod.labels:
            out[POD_LABEL_PREFIX + key] = pod.labels[key]
    return out


# iLogtail's fields for what we know of a process's container and pod
_RECORD_FIELDS = {
    "netobs.running_mode": "_running_mode_",
    "container.id": "_container_id_",
    "container.name": "_container_name_",
    "container.image.name": "_image_name_",
    "k8s.namespace.name": "_namespace_",
    "k8s.pod.name": "_pod_name_",
    "k8s.pod.uid": "_pod_uid_",
    "k8s.container.name": "_k8s_container_name_",
}


def _records(attributes: AttributeMap) -> dict[str, str]:
    return {name: str(attributes[key]) for key, name in _RECORD_FIELDS.items() if key in attributes}
