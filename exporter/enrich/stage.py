"""The attribution stage, assembled from the configuration: sources, the per-pid lookup, the series
decoration, the records' fields, and the scanner that keeps the kernel's filter verdicts current."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from pathlib import Path
from typing import Any

from exporter.collectors.base import Collector
from exporter.collectors.watchlist import KernelFilter
from exporter.config import Config
from exporter.enrich import cgroups
from exporter.enrich.attribution import Attribution
from exporter.enrich.docker import DockerSource
from exporter.enrich.errors import SourceErrors
from exporter.enrich.filters import Filters
from exporter.enrich.http_client import SourceError
from exporter.enrich.kubernetes import PodWatcher
from exporter.enrich.kubernetes_api import ApiServer, from_kubeconfig, in_cluster
from exporter.enrich.kubernetes_pods import PodIndex
from exporter.enrich.series import SeriesAttribution
from exporter.enrich.verdicts import kernel_verdicts, mode
from exporter.telemetry.points import Snapshot

log = logging.getLogger(__name__)

SCAN_INTERVAL = 2.0  # seconds between looks for new processes, when a filter is set
FIRST_SYNC_WAIT = 5.0  # seconds the start waits for the first list of pods, when filters need them


def node_name(configured: str) -> str:
    return configured or os.environ.get("NODE_NAME") or socket.gethostname()


def _api_server(config: Config) -> ApiServer | None:
    k8s = config.kubernetes
    if not k8s.enabled:
        return None
    if k8s.kubeconfig:
        return from_kubeconfig(k8s.kubeconfig)
    return in_cluster(os.environ)


class Enrichment:
    def __init__(self, config: Config, proc: str = "/proc") -> None:
        self.errors = SourceErrors()
        self.filters = Filters(config.common, config.ebpf)
        self.kernel_filter = KernelFilter(mode(self.filters))
        ttl = config.common.flush_meta_interval
        docker_socket = config.containers.docker_socket
        docker = DockerSource(docker_socket, ttl, self.errors) if docker_socket else None
        self.pods: PodIndex | None = None
        self.watcher: PodWatcher | None = None
        try:
            api = _api_server(config)
        except SourceError as err:
            self.errors.count("kubernetes", str(err))
            api = None
        if api is not None:
            self.pods = PodIndex()
            self.watcher = PodWatcher(api, node_name(config.kubernetes.node_name), self.pods, self.errors)
        mount = None
        try:
            mount = cgroups.unified_mount(Path(f"{proc}/self/mountinfo").read_text())
        except OSError as err:
            self.errors.count("cgroup", f"cannot read mountinfo: {err.strerror}")
        self.attribution = Attribution(self.filters, ttl, self.errors, proc=proc, docker=docker, pods=self.pods,
                                       cgroup_mount=mount, pod_labels=config.kubernetes.pod_labels)
        self.series = SeriesAttribution(self.attribution, config.attributes.process, config.attributes.instruments)
        self._meta_interval = ttl
        self._stop = threading.Event()
        self._scanner = threading.Thread(target=self._scan_loop, name="attribution-scan", daemon=True)

    def start(self) -> None:
        """Starts the sources; when the filters are set, resolves them once before returning, so the
        programs attach with their verdicts in place."""
        if self.watcher is not None:
            self.watcher.start()
            log.info("kubernetes: watching the pods of node %s", self.watcher.node)
            if self.filters.active:
                self.watcher.synced.wait(FIRST_SYNC_WAIT)
        if self.filters.active:
            self.scan()
        self._scanner.start()

    def stop(self) -> None:
        self._stop.set()
        if self.watcher is not None:
            self.watcher.stop()

    def scan(self) -> None:
        cgroup_verdicts, pid_verdicts = kernel_verdicts(self.filters, self.attribution.scan().values())
        self.kernel_filter.publish(cgroup_verdicts, pid_verdicts)

    def _scan_loop(self) -> None:
        interval = SCAN_INTERVAL if self.filters.active else self._meta_interval
        while not self._stop.wait(interval):
            began = time.monotonic()
            try:
                if self.filters.active:
                    self.scan()
                else:
                    self.attribution.forget(self.attribution.live_pids())
            except OSError as err:
                self.errors.count("proc", f"scanning processes: {err}")
            log.debug("attribution scan took %.1f ms", (time.monotonic() - began) * 1e3)

    # ------------------------------------------------------------------ outputs

    def bind(self, collector: Collector) -> None:
        """Before it starts: the collector's objects get the filter maps, bash its records' attributes."""
        from exporter.collectors.bash import BashCollector

        collector.kernel_filter = self.kernel_filter
        if isinstance(collector, BashCollector):
            collector.attribute = self.log_attributes

    def decorate(self, collector: str, snapshot: Snapshot) -> Snapshot:
        return self.series.decorate(collector, snapshot)

    def records(self, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """iLogtail records with their process's container and pod fields; those of unwatched processes
        are dropped."""
        out = []
        for record in records:
            pid = record.get("_process_pid_")
            if pid is None or not str(pid).isdigit():
                out.append(record)
                continue
            workload = self.attribution.process(int(pid), str(record.get("_process_cmd_", "")))
            if workload.watched:
                out.append({**record, **workload.records})
        return out

    def log_attributes(self, pid: int, comm: str) -> dict[str, str | int] | None:
        """Attributes for a log record of a process (every one known but its command line, which a bash
        record's body makes redundant); None when it is not watched."""
        workload = self.attribution.process(pid, comm)
        if not workload.watched:
            return None
        return {k: v for k, v in workload.attributes.items() if k != "process.command_line"}
