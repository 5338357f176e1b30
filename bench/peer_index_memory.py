"""What the cluster-wide peer watch costs in memory: 10,000 pods, 5,000 Services and 100 nodes.

Two figures (docs/attribution.md#peers):
- the index alone (tracemalloc): what stays allocated once every object has gone through the same
  parse functions the watch uses, the objects themselves generated one at a time and dropped;
- the whole watch (RSS of this process): PeerWatcher listing and watching a fake API server that
  runs in a child process, so its own memory is not counted; the peak includes the pages of JSON
  being parsed.

Pods are shaped as a real API server sends them (managed fields, two containers, volumes, probes,
conditions), in 100 namespaces, owned by ReplicaSets of Deployments. No BPF is loaded.

    .venv/bin/python bench/peer_index_memory.py [--pods 10000 --services 5000 --nodes 100 --dual-stack]
"""

from __future__ import annotations

import argparse
import gc
import json
import multiprocessing
import sys
import time
import tracemalloc
from collections.abc import Iterator
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from exporter.enrich.errors import SourceErrors  # noqa: E402
from exporter.enrich.kubernetes_api import ApiServer  # noqa: E402
from exporter.enrich.kubernetes_peer_index import PeerIndex  # noqa: E402
from exporter.enrich.kubernetes_peer_watch import PeerWatcher  # noqa: E402
from exporter.enrich.kubernetes_peers import parse_node_claim, parse_pod_claim, parse_service_claim  # noqa: E402
from tests.kernel.fake_cluster import FakeCluster, node, pod, service  # noqa: E402

NAMESPACES = 100
MiB = 1 << 20


def _managed_fields(manager: str) -> dict[str, Any]:
    return {"manager": manager, "operation": "Update", "apiVersion": "v1", "time": "2024-05-01T10:00:01Z",
            "fieldsType": "FieldsV1", "fieldsV1": {"f:metadata": {"f:labels": {".": {}, "f:app": {},
                                                                                  "f:pod-template-hash": {}}},
                                                   "f:spec": {"f:containers": {'k:{"name":"app"}': {
                                                       ".": {}, "f:image": {}, "f:name": {}, "f:ports": {},
                                                       "f:resources": {"f:requests": {"f:cpu": {}}}}}}}}


def realistic_pod(i: int, nodes: int, dual_stack: bool) -> dict[str, Any]:
    namespace, deployment = f"team-{i % NAMESPACES}", f"svc-{i // 5}"
    ips = [f"10.{64 + i // 65536}.{i // 256 % 256}.{i % 256}"]
    if dual_stack:
        ips.append(f"fd00:10:244::{i:x}")
    p = pod(f"{deployment}-7d4b9c8f6-{i:05d}", namespace, ips, uid=f"0000{i:04d}-aaaa-bbbb-cccc-{i:012d}",
            node=f"node-{i % nodes}", owner=("ReplicaSet", f"{deployment}-7d4b9c8f6"),
            labels={"app": deployment, "pod-template-hash": "7d4b9c8f6", "team": namespace})
    p["metadata"]["managedFields"] = [_managed_fields("kube-controller-manager"), _managed_fields("kubelet")]
    p["metadata"]["annotations"] = {"kubectl.kubernetes.io/restartedAt": "2024-05-01T09:59:00Z"}
    container = {"name": "app", "image": f"registry.example/{deployment}:1.2.3", "imagePullPolicy": "IfNotPresent",
                 "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}],
                 "env": [{"name": "LOG_LEVEL", "value": "info"}, {"name": "POD_IP", "valueFrom": {
                     "fieldRef": {"apiVersion": "v1", "fieldPath": "status.podIP"}}}],
                 "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}},
                 "readinessProbe": {"httpGet": {"path": "/ready", "port": 8080, "scheme": "HTTP"},
                                    "periodSeconds": 10, "timeoutSeconds": 1, "failureThreshold": 3},
                 "volumeMounts": [{"name": "kube-api-access", "readOnly": True,
                                   "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"}],
                 "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File"}
    sidecar = {**container, "name": "proxy", "image": "registry.example/envoy:1.30", "ports": []}
    p["spec"].update(containers=[container, sidecar], serviceAccountName="default", dnsPolicy="ClusterFirst",
                     tolerations=[{"key": "node.kubernetes.io/not-ready", "operator": "Exists",
                                   "effect": "NoExecute", "tolerationSeconds": 300}],
                     volumes=[{"name": "kube-api-access", "projected": {"defaultMode": 420, "sources": [
                         {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                         {"configMap": {"name": "kube-root-ca.crt",
                                        "items": [{"key": "ca.crt", "path": "ca.crt"}]}}]}}])
    p["status"]["conditions"] = [{"type": t, "status": "True", "lastTransitionTime": "2024-05-01T10:00:02Z"}
                                 for t in ("PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady",
                                           "PodScheduled")]
    p["status"]["containerStatuses"] = [
        {"name": c["name"], "image": c["image"], "imageID": f"{c['image']}@sha256:{'c' * 64}",
         "containerID": f"containerd://{i:064x}", "ready": True, "restartCount": 0, "started": True,
         "state": {"running": {"startedAt": "2024-05-01T10:00:01Z"}}} for c in (container, sidecar)]
    return p


def realistic_service(i: int, dual_stack: bool) -> dict[str, Any]:
    ips = [f"10.96.{i // 256}.{i % 256}"] + ([f"fd00:96::{i:x}"] if dual_stack else [])
    s = service(f"svc-{i}", f"team-{i % NAMESPACES}", ips, uid=f"5e7e{i:04d}-aaaa-bbbb-cccc-{i:012d}")
    s["metadata"]["labels"] = {"app": f"svc-{i}"}
    return s


def objects(args: argparse.Namespace) -> Iterator[dict[str, Any]]:
    yield from (realistic_pod(i, args.nodes, args.dual_stack) for i in range(args.pods))
    yield from (realistic_service(i, args.dual_stack) for i in range(args.services))
    yield from (node(f"node-{i}", f"192.168.{i // 256}.{i % 256}") for i in range(args.nodes))


def index_alone(args: argparse.Namespace) -> tuple[int, int]:
    """(bytes retained by the index, addresses), objects parsed one at a time."""
    parse = {"Pod": parse_pod_claim, "Service": parse_service_claim, "Node": parse_node_claim}
    gc.collect()
    tracemalloc.start()
    index = PeerIndex()
    streams = {kind: index.stream(kind) for kind in parse}
    claims: dict[str, list[Any]] = {kind: [] for kind in parse}
    for obj in objects(args):
        claims[obj["kind"]].append(parse[obj["kind"]](obj))
    for kind, found in claims.items():
        streams[kind].replace(found)
    del claims, found
    gc.collect()
    retained = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return retained, len(index)


def serve(args: argparse.Namespace, pipe: Connection) -> None:
    cluster = FakeCluster(list(objects(args)))
    sizes = {r: sum(len(json.dumps(o)) for o in found.values()) for r, found in cluster.objects.items()}
    pipe.send((cluster.port, sizes))
    pipe.recv()  # until the parent is done
    cluster.stop()  # ends the watches: the watcher's threads end quietly


def memory(reset_peak: bool = False) -> tuple[int, int]:
    """(VmRSS, VmHWM) of this process, bytes; reset_peak first makes the peak the current RSS."""
    if reset_peak:
        Path("/proc/self/clear_refs").write_text("5")
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
    return int(fields["VmRSS"].split()[0]) * 1024, int(fields["VmHWM"].split()[0]) * 1024


def whole_watch(args: argparse.Namespace) -> None:
    parent, child = multiprocessing.get_context("fork").Pipe()
    server = multiprocessing.get_context("fork").Process(target=serve, args=(args, child), daemon=True)
    server.start()
    port, sizes = parent.recv()
    gc.collect()
    rss_before, _ = memory(reset_peak=True)
    index, errors = PeerIndex(), SourceErrors()
    watcher = PeerWatcher(ApiServer(f"http://127.0.0.1:{port}"), index, errors)
    began = time.monotonic()
    watcher.start()
    assert watcher.wait_synced(300), "not synced"
    took = time.monotonic() - began
    gc.collect()
    rss_after, peak_after = memory()
    counted = errors.counts()  # before the server stops: a watch starting then would count its refusal
    watcher.stop()
    parent.send("done")
    server.join()
    print(f"whole watch: synced in {took:.1f} s; RSS +{(rss_after - rss_before) / MiB:.1f} MiB after the lists, "
          f"peak +{(peak_after - rss_before) / MiB:.1f} MiB while listing; errors {counted}")
    print("JSON the API server sends this node at each full list: "
          + ", ".join(f"{r} {size / MiB:.1f} MiB" for r, size in sizes.items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=10_000)
    parser.add_argument("--services", type=int, default=5_000)
    parser.add_argument("--nodes", type=int, default=100)
    parser.add_argument("--dual-stack", action="store_true", help="an IPv6 address too on every pod and Service")
    args = parser.parse_args()
    count = args.pods + args.services + args.nodes
    whole_watch(args)  # first: memory freed by the other run would be reused, and the RSS understated
    retained, addresses = index_alone(args)
    print(f"{args.pods} pods, {args.services} services, {args.nodes} nodes: {addresses} addresses")
    print(f"index alone (tracemalloc): {retained / MiB:.1f} MiB, {retained / count:.0f} bytes per object")


if __name__ == "__main__":
    main()
