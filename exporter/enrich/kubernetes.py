"""Watches the pods of this node on the Kubernetes API server and keeps them in a PodIndex.

Why the API server rather than the kubelet's /pods: a watch tells changes as they happen, for one
list at start and after each expiry, where the kubelet can only be polled; and the watch needs RBAC
on pods only (`get`, `list`, `watch`), which a DaemonSet's service account is commonly given, while
the kubelet's API wants `nodes/proxy`, a much wider right. `fieldSelector=spec.nodeName=<node>`
keeps the traffic to this node's pods.

The list and watch loop (410 Gone, backoff, errors counted as netobs.enrich.errors{source="kubernetes"})
is exporter/enrich/kubernetes_watch.py's."""

from __future__ import annotations

from exporter.enrich.errors import SourceErrors
from exporter.enrich.kubernetes_api import ApiServer
from exporter.enrich.kubernetes_pods import Pod, PodIndex, parse_pod
from exporter.enrich.kubernetes_watch import ListWatch, Timing

WATCH_SECONDS = 300  # the server ends a watch after this (with some jitter)
BACKOFF_MIN, BACKOFF_MAX = 1.0, 60.0
TIMEOUT = 15.0  # seconds for a list, and of silence on a watch beyond its end


class _PodSink:
    def __init__(self, index: PodIndex) -> None:
        self.index = index

    def replace(self, items: list[Pod]) -> None:
        self.index.replace(items)

    def upsert(self, item: Pod) -> None:
        self.index.upsert(item)

    def delete(self, item: Pod) -> None:
        self.index.delete(item.uid)


class PodWatcher:
    def __init__(self, api: ApiServer, node: str, index: PodIndex, errors: SourceErrors) -> None:
        self.node = node
        self.index = index
        timing = Timing(watch_seconds=WATCH_SECONDS, backoff_min=BACKOFF_MIN, backoff_max=BACKOFF_MAX,
                        timeout=TIMEOUT)
        self._watch = ListWatch(api, "/api/v1/pods", parse_pod, _PodSink(index), errors, source="kubernetes",
                                what=f"pods on node {node}", params={"fieldSelector": f"spec.nodeName={node}"},
                                timing=timing)
        self.synced = self._watch.synced  # set once the first list has been read

    def start(self) -> None:
        self._watch.start()

    def stop(self) -> None:
        self._watch.stop()
