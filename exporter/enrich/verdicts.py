"""The filter's verdicts as the kernel takes them: per cgroup where a whole container shares one,
per process where it differs from what its cgroup (or the default) would say."""

from __future__ import annotations

from collections.abc import Iterable

from exporter.enrich.attribution import Workload
from exporter.enrich.filters import Filters

MODE_OFF, MODE_EXCLUDE, MODE_INCLUDE = 0, 1, 2  # NETOBS_FILTER_* in bpf/include/netobs_filter.h


def mode(filters: Filters) -> int:
    if filters.includes:
        return MODE_INCLUDE
    return MODE_EXCLUDE if filters.active else MODE_OFF


def kernel_verdicts(filters: Filters, workloads: Iterable[Workload]) -> tuple[dict[int, bool], dict[int, bool]]:
    """(cgroup id -> watched, tgid -> watched) for the kernel's filter maps.

    The kernel watches what it finds in neither map: a process or a container newer than the last scan.
    User space applies the filters to every row anyway (with the container a process's cgroup names,
    even once it is gone), so a process that lived between two scans is filtered too; the maps spare
    the kernel the work for what is known not to be watched, and hold the exceptions to that.

    A container's cgroup gets a verdict when the container parameters exclude it: it decides for every
    process in it, new ones too. A process gets one where it differs from its cgroup's (or from being
    watched)."""
    workloads = list(workloads)
    cgroups: dict[int, bool] = {}
    for w in workloads:
        if w.cgroup_id is not None and not w.container_watched:
            cgroups[w.cgroup_id] = False
    pids: dict[int, bool] = {}
    for w in workloads:
        expected = cgroups.get(w.cgroup_id, True) if w.cgroup_id is not None else True
        if w.watched != expected:
            pids[w.pid] = w.watched
    return cgroups, pids
