"""Watches the cluster's pods, Services and nodes into a PeerIndex: who is on the other side of a connection.

One list+watch loop (exporter/enrich/kubernetes_watch.py) per resource, each with its own thread and
connection to the API server:
- pods: /api/v1/pods?fieldSelector=status.phase!=Succeeded,status.phase!=Failed. Ended pods' addresses
  are given to new pods: the server leaves them out of lists, and tells a pod that ends as DELETED;
- Services: /api/v1/services;
- nodes: /api/v1/nodes.
With namespaces given, pods and Services are listed and watched in each of them
(/api/v1/namespaces/<namespace>/pods ...): two loops per namespace, and nodes (which have no
namespace) as before. Peers in other namespaces stay addresses.

The API has no field projection for lists and watches of these resources: whole objects travel,
and only their Claims are kept. Errors are counted as netobs.enrich.errors{source="kubernetes_peers"}."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import quote

from exporter.enrich.errors import SourceErrors
from exporter.enrich.kubernetes_api import ApiServer
from exporter.enrich.kubernetes_peer_index import PeerIndex
from exporter.enrich.kubernetes_peers import Claim, parse_node_claim, parse_pod_claim, parse_service_claim
from exporter.enrich.kubernetes_watch import ListWatch, Timing

SOURCE = "kubernetes_peers"
LIVE_PODS = "status.phase!=Succeeded,status.phase!=Failed"
TIMING = Timing(resync=3600.0)


class PeerWatcher:
    def __init__(self, api: ApiServer, index: PeerIndex, errors: SourceErrors, namespaces: Sequence[str] = (),
                 timing: Timing = TIMING) -> None:
        self.index = index
        self.namespaces = tuple(namespaces)
        self.watches: list[ListWatch[Claim]] = []

        def add(path: str, what: str, parse: Callable[[Any], Claim], params: dict[str, str] | None = None) -> None:
            self.watches.append(ListWatch(api, path, parse, index.stream(what), errors, source=SOURCE, what=what,
                                          params=params, timing=timing))

        for namespace in self.namespaces or ("",):
            prefix = f"/api/v1/namespaces/{quote(namespace, safe='')}" if namespace else "/api/v1"
            where = f" in {namespace}" if namespace else ""
            add(f"{prefix}/pods", f"pods{where}", parse_pod_claim, {"fieldSelector": LIVE_PODS})
            add(f"{prefix}/services", f"services{where}", parse_service_claim)
        add("/api/v1/nodes", "nodes", parse_node_claim)

    def start(self) -> None:
        for watch in self.watches:
            watch.start()

    def stop(self) -> None:
        for watch in self.watches:
            watch.stop()

    def wait_synced(self, timeout: float) -> bool:
        """Waits until every resource has been listed once, for `timeout` seconds at most."""
        deadline = time.monotonic() + timeout
        return all(watch.synced.wait(max(deadline - time.monotonic(), 0.0)) for watch in self.watches)
