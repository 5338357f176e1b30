"""A fake Kubernetes API server for cluster-wide watches: pods, Services and nodes, in every namespace
or one, listed in pages and watched from a resourceVersion as the real one does: the events after that
version, then the new ones; an ERROR 410 Gone for a version older than the server keeps. Selectors are
recorded (`requests`), not applied. stop() and start() again play an API server that goes away and
comes back; expire() one that forgot the versions its watchers hold."""

from __future__ import annotations

import bisect
import json
import threading
import time
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

RESOURCES = {"Pod": "pods", "Service": "services", "Node": "nodes"}


def pod(name: str, namespace: str, ip: str | list[str] | None, *, uid: str = "", node: str = "n1",
        owner: tuple[str, str] | None = None, labels: dict[str, str] | None = None, phase: str = "Running",
        host_network: bool = False, created: str = "2024-05-01T10:00:00Z") -> dict[str, Any]:
    """A Pod as the API returns it, trimmed to what a watcher of peers reads and a little more."""
    ips = [ip] if isinstance(ip, str) else ip or []
    owners = [{"apiVersion": "apps/v1", "kind": owner[0], "name": owner[1], "uid": "o-" + name,
               "controller": True, "blockOwnerDeletion": True}] if owner else []
    status: dict[str, Any] = {"phase": phase, "hostIP": "192.168.0.1", "qosClass": "BestEffort",
                              "conditions": [{"type": "Ready", "status": "True"}]}
    if ips:
        status.update(podIP=ips[0], podIPs=[{"ip": i} for i in ips])
    return {
        "kind": "Pod", "apiVersion": "v1",
        "metadata": {"name": name, "namespace": namespace, "uid": uid or f"uid-{namespace}-{name}",
                     "resourceVersion": "1", "creationTimestamp": created, "labels": labels or {},
                     "ownerReferences": owners},
        "spec": {"nodeName": node, "hostNetwork": host_network, "restartPolicy": "Always",
                 "containers": [{"name": "app", "image": "registry.example/app:1", "resources": {}}]},
        "status": status,
    }


def service(name: str, namespace: str, ips: list[str] | str, *, uid: str = "") -> dict[str, Any]:
    """A Service; ips "None" for a headless one."""
    ips = [ips] if isinstance(ips, str) else ips
    return {
        "kind": "Service", "apiVersion": "v1",
        "metadata": {"name": name, "namespace": namespace, "uid": uid or f"uid-svc-{namespace}-{name}",
                     "resourceVersion": "1", "creationTimestamp": "2024-05-01T09:00:00Z"},
        "spec": {"type": "ClusterIP", "clusterIP": ips[0], "clusterIPs": ips, "selector": {"app": name},
                 "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080}]},
        "status": {"loadBalancer": {}},
    }


def node(name: str, internal: str, external: str = "") -> dict[str, Any]:
    addresses = [{"type": "InternalIP", "address": internal}, {"type": "Hostname", "address": name}]
    if external:
        addresses.append({"type": "ExternalIP", "address": external})
    return {
        "kind": "Node", "apiVersion": "v1",
        "metadata": {"name": name, "uid": f"uid-node-{name}", "resourceVersion": "1",
                     "creationTimestamp": "2024-05-01T08:00:00Z"},
        "spec": {"podCIDR": "10.244.0.0/24"},
        "status": {"addresses": addresses, "nodeInfo": {"kubeletVersion": "v1.31.0"}},
    }


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.0"  # watch bodies run until the connection closes

    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        cluster = self.server.cluster
        url = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        cluster.requests.append(self.path)
        parts = url.path.strip("/").split("/")
        namespace = ""
        if parts[:3] == ["api", "v1", "namespaces"] and len(parts) == 5:
            namespace, parts = parts[3], ["api", "v1", parts[4]]
        if len(parts) != 3 or parts[:2] != ["api", "v1"] or parts[2] not in RESOURCES.values():
            return self._json(404, {"kind": "Status", "status": "Failure", "code": 404})
        if query.get("watch") in ("1", "true"):
            return self._watch(parts[2], namespace, query)
        self._list(parts[2], namespace, query)

    def _json(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _list(self, resource: str, namespace: str, query: dict[str, str]) -> None:
        cluster = self.server.cluster
        with cluster.lock:
            items = [o for o in cluster.objects[resource].values() if _in(o, namespace)]
            version = cluster.version
        start = int(query.get("continue") or 0)
        limit = int(query.get("limit") or 0) or len(items)
        page, rest = items[start:start + limit], len(items) - start - limit
        meta: dict[str, Any] = {"resourceVersion": str(version)}
        if rest > 0:
            meta.update({"continue": str(start + limit), "remainingItemCount": rest})
        self._json(200, {"kind": "List", "apiVersion": "v1", "metadata": meta, "items": page})

    def _watch(self, resource: str, namespace: str, query: dict[str, str]) -> None:
        cluster = self.server.cluster
        since = int(query.get("resourceVersion") or cluster.version)
        deadline = time.monotonic() + float(query.get("timeoutSeconds") or 1800)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        with cluster.lock:
            if since < cluster.oldest:
                self._send({"type": "ERROR", "object": {"kind": "Status", "status": "Failure", "code": 410,
                                                         "reason": "Expired", "message": "too old resource version"}})
                return
            position = bisect.bisect_right([e[0] for e in cluster.log], since)
            generation = cluster.generation
            cluster.watching += 1
        try:
            while time.monotonic() < deadline:
                with cluster.lock:
                    if cluster.generation != generation or self.server.stopped:
                        return
                    if position == len(cluster.log):
                        cluster.lock.wait(0.05)
                    events, position = cluster.log[position:], len(cluster.log)
                for _, kind, event_resource, obj in events:
                    if event_resource == resource and _in(obj, namespace):
                        self._send({"type": kind, "object": obj})
        except OSError:
            pass
        finally:
            with cluster.lock:
                cluster.watching -= 1

    def _send(self, event: dict[str, Any]) -> None:
        self.wfile.write(json.dumps(event).encode() + b"\n")
        self.wfile.flush()


def _in(obj: dict[str, Any], namespace: str) -> bool:
    return not namespace or obj["metadata"].get("namespace") == namespace


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    cluster: FakeCluster
    stopped: bool


class FakeCluster:
    """GET /api/v1/{pods,services,nodes} and /api/v1/namespaces/<ns>/{pods,services}, list and watch."""

    def __init__(self, objects: Sequence[dict[str, Any]] = (), port: int = 0) -> None:
        self.lock = threading.Condition()
        self.objects: dict[str, dict[str, dict[str, Any]]] = {r: {} for r in RESOURCES.values()}
        self.version = 100
        self.oldest = 0  # a watch from a version older than this gets 410 Gone
        self.generation = 0  # moved by expire() and stop(): the watches open end
        self.log: list[tuple[int, str, str, dict[str, Any]]] = []  # (version, type, resource, object)
        self.requests: list[str] = []
        self.watching = 0  # watches open
        self.port = port
        self.server: _Server | None = None
        for obj in objects:
            self.change("ADDED", obj)
        self.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def lists(self, resource: str) -> int:
        """How many list requests (first pages) for a resource the server answered."""
        return sum(1 for p in list(self.requests) if urlsplit(p).path.endswith("/" + resource)
                   and "watch=1" not in p and "continue=" not in p)

    def start(self) -> None:
        server = _Server(("127.0.0.1", self.port), _Handler)
        server.cluster, server.stopped = self, False
        self.port = server.server_port
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        self.server = server

    def stop(self) -> None:
        """Ends every watch and refuses connections from now on."""
        assert self.server is not None
        with self.lock:
            self.server.stopped = True
            self.lock.notify_all()
        self.server.shutdown()
        self.server.server_close()
        self.server = None

    def change(self, kind: str, obj: dict[str, Any]) -> None:
        """ADDED, MODIFIED or DELETED: kept for the next list, told to the watches (open now or later)."""
        resource = RESOURCES[obj["kind"]]
        with self.lock:
            self.version += 1
            obj = json.loads(json.dumps(obj))  # the caller may change its copy
            obj["metadata"]["resourceVersion"] = str(self.version)
            if kind == "DELETED":
                self.objects[resource].pop(obj["metadata"]["uid"], None)
            else:
                self.objects[resource][obj["metadata"]["uid"]] = obj
            self.log.append((self.version, kind, resource, obj))
            self.lock.notify_all()

    def kubeconfig(self, path: str) -> str:
        with open(path, "w") as f:
            json.dump({"apiVersion": "v1", "kind": "Config", "current-context": "test",
                       "clusters": [{"name": "test", "cluster": {"server": self.url}}],
                       "users": [{"name": "test", "user": {"token": "not-a-secret"}}],
                       "contexts": [{"name": "test", "context": {"cluster": "test", "user": "test"}}]}, f)
        return path

    def expire(self) -> None:
        """Forgets every version until now, and ends the watches open: their next watch gets 410 Gone."""
        with self.lock:
            self.version += 1
            self.oldest = self.version
            self.generation += 1
            self.lock.notify_all()
