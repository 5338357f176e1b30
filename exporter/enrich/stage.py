"""The attribution stage, assembled from the configuration: sources, the per-pid lookup, the rows'
processes and peers, and the scanner that keeps the kernel's filter verdicts current.

`attribute()` takes a collector's rows and gives each the Process it belongs to and what is known of
its peer (the address its key names, Key.peer): the DNS name and the Kubernetes identity behind it,
leaving out the rows of processes the filters do not watch. The kernel names a row's
process by pid and start, so a reused pid is another row, attributed to its own process even when
that process has gone (Attribution.owner); a row without a start keeps the first process its pid
was seen with. A row's peer keeps the first name found for it; its Kubernetes identity is looked up
again whenever the index of peers changed (PeerIndex.version), since an address passes from pod to
pod. A row, process and peer that did not change give the same AttributedRow object as before, so
the series table sees at once that nothing changed."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from exporter.config import Config
from exporter.enrich import cgroups
from exporter.enrich.attribution import Attribution, Workload
from exporter.enrich.docker import DockerSource
from exporter.enrich.domains import DomainCache
from exporter.enrich.errors import SourceErrors
from exporter.enrich.filters import Filters
from exporter.enrich.http_client import SourceError
from exporter.enrich.kubernetes import PodWatcher
from exporter.enrich.kubernetes_api import ApiServer, from_kubeconfig, in_cluster
from exporter.enrich.kubernetes_peer_index import PeerIndex
from exporter.enrich.kubernetes_peer_watch import PeerWatcher
from exporter.enrich.kubernetes_pods import PodIndex
from exporter.enrich.kubernetes_watch import Timing
from exporter.enrich.verdicts import kernel_verdicts, mode
from exporter.series.peers import NOWHERE, Peer, Remote
from exporter.series.rows import AttributedRow, Owner, Row

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


Publish = Callable[[dict[int, bool], dict[int, bool]], None]  # (cgroup verdicts, pid verdicts) for the kernel


@dataclass(slots=True)
class _Bound:
    """What attribution decided for one row (key and owner) of a collector."""

    workload: Workload
    remote: Remote
    domains_version: int  # DomainCache.version when a nameless peer was last looked up
    peers_version: int  # PeerIndex.version when the peer's Kubernetes identity was last looked up
    attributed: AttributedRow | None  # None: its process is not watched
    generation: int


class Enrichment:
    def __init__(self, config: Config, proc: str = "/proc", domains: DomainCache | None = None) -> None:
        self.errors = SourceErrors()
        self.filters = Filters(config.common, config.ebpf)
        self.filter_mode = mode(self.filters)
        self.publish: Publish = lambda cgroups, pids: None  # the kernel's filter maps (exporter/app.py)
        self.domains = domains
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
        # who is behind a peer address (Kubernetes.Peers): read with self.peers.peer(address)
        self.peers: PeerIndex | None = None
        self.peer_watcher: PeerWatcher | None = None
        if api is not None and config.kubernetes.peers_enabled:
            self.peers = PeerIndex()
            self.peer_watcher = PeerWatcher(api, self.peers, self.errors, config.kubernetes.peers_namespaces,
                                            Timing(resync=config.kubernetes.peers_resync_interval))
        mount = None
        try:
            mount = cgroups.unified_mount(Path(f"{proc}/self/mountinfo").read_text())
        except OSError as err:
            self.errors.count("cgroup", f"cannot read mountinfo: {err.strerror}")
        self.attribution = Attribution(self.filters, ttl, self.errors, proc=proc, docker=docker, pods=self.pods,
                                       cgroup_mount=mount, pod_labels=config.kubernetes.pod_labels)
        # takes the names of cgroups the kernel recorded since the last time (exporter/app.py)
        self.take_cgroups: Callable[[], None] = lambda: None
        self._bound: dict[str, dict[tuple[object, object], _Bound]] = {}  # collector -> row -> what it got
        self._generation = 0
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
        if self.peer_watcher is not None:
            self.peer_watcher.start()
            where = ", ".join(self.peer_watcher.namespaces) or "every namespace"
            log.info("kubernetes: watching pods and services (%s) and nodes, for peers", where)
        if self.filters.active:
            self.scan()
        self._scanner.start()

    def stop(self) -> None:
        self._stop.set()
        if self.watcher is not None:
            self.watcher.stop()
        if self.peer_watcher is not None:
            self.peer_watcher.stop()

    def scan(self) -> None:
        cgroup_verdicts, pid_verdicts = kernel_verdicts(self.filters, self.attribution.scan().values())
        self.publish(cgroup_verdicts, pid_verdicts)

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

    def attribute(self, collector: str, rows: Sequence[Row]) -> list[AttributedRow]:
        """The rows of watched processes, each with its process and its peer's name."""
        self._generation += 1
        generation = self._generation
        bound = self._bound.setdefault(collector, {})
        processes: dict[Owner, Workload] = {}  # one /proc look per process and call
        peers: dict[str, Peer | None] = {}  # one look in the index per address and call
        out = []
        for row in rows:
            owner = row.owner
            part = (row.key, owner)
            before = bound.get(part)
            current = processes.get(owner)
            if current is None:
                current = processes[owner] = self.attribution.owner(owner)
            workload = current
            if not owner.start and before is not None and before.workload.start \
                    and before.workload.start != current.start:
                workload = before.workload  # the pid was reused: the row keeps its first process
            if not workload.watched:
                bound[part] = _Bound(workload, NOWHERE, 0, 0, None, generation)
                continue
            remote, domains_version, peers_version = self._remote(row, before, peers)
            attributed = before.attributed if before is not None else None
            if attributed is None or attributed.row is not row or attributed.process is not workload.process \
                    or attributed.remote is not remote:
                attributed = AttributedRow(row, workload.process, remote)
            if before is None:
                bound[part] = _Bound(workload, remote, domains_version, peers_version, attributed, generation)
            else:
                before.workload, before.remote = workload, remote
                before.domains_version, before.peers_version = domains_version, peers_version
                before.attributed, before.generation = attributed, generation
            out.append(attributed)
        if len(bound) > len(rows):
            self._bound[collector] = {k: b for k, b in bound.items() if b.generation == generation}
        return out

    def _remote(self, row: Row, before: _Bound | None, peers: dict[str, Peer | None]) -> tuple[Remote, int, int]:
        """What is known of the row's peer, and the versions of the domain cache and the peer index it
        was looked up at. The same Remote object as before when nothing changed; the address is only
        formatted when something is to be looked up."""
        domains_version = self.domains.version if self.domains is not None else 0
        peers_version = self.peers.version if self.peers is not None else 0
        if before is not None and before.peers_version == peers_version and \
                (before.domains_version == domains_version or before.remote.domain is not None):
            return before.remote, before.domains_version, peers_version
        address = row.key.peer
        if address is None:
            return NOWHERE, domains_version, peers_version
        domain = self._domain(address, before, domains_version)
        peer = self._peer(address, before, peers_version, peers)
        if before is not None and before.remote.domain == domain and before.remote.peer == peer:
            return before.remote, domains_version, peers_version
        remote = Remote(domain, peer) if domain is not None or peer is not None else NOWHERE
        return remote, domains_version, peers_version

    def _domain(self, address: str, before: _Bound | None, version: int) -> str | None:
        """The name of the row's peer, kept once found."""
        if before is not None and before.remote.domain is not None:
            return before.remote.domain
        if self.domains is None or (before is not None and before.domains_version == version):
            return None
        return self.domains.name(address)

    def _peer(self, address: str, before: _Bound | None, version: int, peers: dict[str, Peer | None]) -> Peer | None:
        """Who has the row's peer address in the cluster. `version` was read before the look, so a
        change during it is looked at again next time."""
        if self.peers is None:
            return None
        if before is not None and before.peers_version == version:
            return before.remote.peer
        if address not in peers:
            peers[address] = self.peers.peer(address)
        return peers[address]

    def log_attributes(self, pid: int, comm: str) -> dict[str, str | int] | None:
        """Attributes for a log record of a process (every one known but its command line, which a bash
        record's body makes redundant); None when it is not watched."""
        workload = self.attribution.process(pid, comm)
        if not workload.watched:
            return None
        return {k: v for k, v in workload.attributes.items() if k != "process.command_line"}
