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
    """(cgroup id -> watched, tgid -> watched), holding only what differs from the mode's default.

    A container's cgroup gets the container parameters' verdict when it decides for every process in
    it: always when the container is excluded, and when it is watched if no per-process parameter is
    set. New processes in that container then get it at once, before user space has seen them."""
    default = mode(filters) == MODE_EXCLUDE
    workloads = list(workloads)
    cgroups: dict[int, bool] = {}
    for w in workloads:
        decides = not w.container_watched or not filters.per_process
        if w.container_id and w.cgroup_id is not None and decides and w.container_watched != default:
            cgroups[w.cgroup_id] = w.container_watched
    pids: dict[int, bool] = {}
    for w in workloads:
        expected = cgroups.get(w.cgroup_id, default) if w.cgroup_id is not None else default
        if w.watched != expected:
            pids[w.pid] = w.watched
    return cgroups, pids
