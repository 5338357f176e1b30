"""A fake Docker Engine API on a unix socket and a fake Kubernetes API server on 127.0.0.1, serving
real-shaped JSON for the test's containers and pods. Both read-only, as the exporter uses them."""

from __future__ import annotations

import json
import os
import queue
import socket
import socketserver
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


class _DockerHandler(BaseHTTPRequestHandler):
    server: _DockerServer

    def address_string(self) -> str:  # a unix socket has no client address
        return "docker-client"

    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        parts = urlsplit(self.path).path.strip("/").split("/")
        if parts and parts[0].startswith("v1."):
            parts = parts[1:]
        self.server.requests.append(self.path)
        found = self.server.containers.get(parts[1]) if len(parts) == 3 and parts[0] == "containers" else None
        body = json.dumps(found or {"message": "No such container"}).encode()
        self.send_response(200 if found else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class _DockerServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    containers: dict[str, dict[str, Any]]
    requests: list[str]


class FakeDocker:
    """GET /containers/{id}/json for the containers given (id -> inspect answer)."""

    def __init__(self, path: str, containers: dict[str, dict[str, Any]]) -> None:
        if os.path.exists(path):
            os.unlink(path)
        self.path = path
        self.server = _DockerServer(path, _DockerHandler)
        self.server.containers = containers
        self.server.requests = []
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        os.unlink(self.path)


def docker_inspect(container_id: str, name: str, image: str, labels: dict[str, str],
                   env: dict[str, str]) -> dict[str, Any]:
    """The shape of `docker inspect`, trimmed to its usual top-level fields."""
    return {
        "Id": container_id, "Created": "2024-05-01T10:00:00.000000000Z", "Path": "/docker-entrypoint.sh",
        "State": {"Status": "running", "Running": True, "Pid": 4242},
        "Image": "sha256:" + "b" * 64, "Name": f"/{name}", "RestartCount": 0, "Driver": "overlay2",
        "HostConfig": {"NetworkMode": "bridge", "CgroupParent": ""},
        "Config": {"Hostname": container_id[:12], "Env": [f"{k}={v}" for k, v in env.items()],
                   "Cmd": ["app"], "Image": image, "Labels": labels},
        "NetworkSettings": {"Networks": {"bridge": {"IPAddress": "172.17.0.2"}}},
    }


def pod(uid: str, name: str, namespace: str, node: str, labels: dict[str, str],
        owner: tuple[str, str] | None, containers: list[tuple[str, str, str, dict[str, str]]]) -> dict[str, Any]:
    """A Pod as the API returns it; containers are (name, image, runtime://id, env)."""
    owners = [{"apiVersion": "apps/v1", "kind": owner[0], "name": owner[1], "uid": "0" * 8 + uid[8:],
               "controller": True, "blockOwnerDeletion": True}] if owner else []
    return {
        "kind": "Pod", "apiVersion": "v1",
        "metadata": {"name": name, "namespace": namespace, "uid": uid, "resourceVersion": "1",
                     "creationTimestamp": "2024-05-01T10:00:00Z", "labels": labels, "ownerReferences": owners},
        "spec": {"nodeName": node, "restartPolicy": "Always", "serviceAccountName": "default",
                 "containers": [{"name": c[0], "image": c[1], "env": [{"name": k, "value": v} for k, v in c[3].items()]
                                 + [{"name": "SECRET", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}],
                                 "resources": {}} for c in containers]},
        "status": {"phase": "Running", "podIP": "10.244.1.7", "qosClass": "Burstable",
                   "containerStatuses": [{"name": c[0], "image": c[1], "imageID": "docker.io/x@sha256:" + "c" * 64,
                                          "containerID": c[2], "ready": True, "restartCount": 0,
                                          "state": {"running": {"startedAt": "2024-05-01T10:00:01Z"}}}
                                         for c in containers]},
    }


class _K8sHandler(BaseHTTPRequestHandler):
    server: _K8sServer
    protocol_version = "HTTP/1.0"  # watch bodies run until the connection closes

    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        self.server.requests.append(self.path)
        if url.path != "/api/v1/pods":
            return self._json(404, {"kind": "Status", "status": "Failure", "code": 404})
        node = query.get("fieldSelector", "").removeprefix("spec.nodeName=")
        if query.get("watch") in ("1", "true"):
            return self._watch(node)
        items = [p for p in self.server.pods.values() if p["spec"]["nodeName"] == node]
        self._json(200, {"kind": "PodList", "apiVersion": "v1",
                         "metadata": {"resourceVersion": str(self.server.version)}, "items": items})

    def _json(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _watch(self, node: str) -> None:
        events: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.server.watchers.append(events)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        try:
            while (event := events.get()) is not None:
                if event["object"].get("spec", {}).get("nodeName", node) == node:
                    self.wfile.write(json.dumps(event).encode() + b"\n")
                    self.wfile.flush()
        except OSError:
            pass
        finally:
            self.server.watchers.remove(events)


class _K8sServer(ThreadingHTTPServer):
    daemon_threads = True
    pods: dict[str, dict[str, Any]]
    version: int
    requests: list[str]
    watchers: list[queue.Queue[dict[str, Any] | None]]


class FakeKubernetes:
    """GET /api/v1/pods (list and watch, by spec.nodeName) on 127.0.0.1:port; stop() and start() again
    to play an API server that goes away and comes back."""

    def __init__(self, port: int, pods: list[dict[str, Any]]) -> None:
        self.port = port
        self.pods = {p["metadata"]["uid"]: p for p in pods}
        self.version = 100
        self.requests: list[str] = []
        self.server: _K8sServer | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        server = _K8sServer(("127.0.0.1", self.port), _K8sHandler)
        server.pods, server.version, server.requests, server.watchers = self.pods, self.version, self.requests, []
        threading.Thread(target=server.serve_forever, daemon=True).start()
        self.server = server

    def stop(self) -> None:
        """Ends every watch and refuses connections from now on."""
        assert self.server is not None
        for watcher in list(self.server.watchers):
            watcher.put(None)
        self.server.shutdown()
        self.server.server_close()
        self.server = None

    def change(self, kind: str, obj: dict[str, Any]) -> None:
        """ADDED, MODIFIED or DELETED: kept for the next list, sent to the watches open now."""
        self.version += 1
        obj["metadata"]["resourceVersion"] = str(self.version)
        if kind == "DELETED":
            self.pods.pop(obj["metadata"]["uid"], None)
        else:
            self.pods[obj["metadata"]["uid"]] = obj
        if self.server is not None:
            self.server.version = self.version
            for watcher in list(self.server.watchers):
                watcher.put({"type": kind, "object": obj})

    def kubeconfig(self, path: str) -> str:
        with open(path, "w") as f:
            json.dump({"apiVersion": "v1", "kind": "Config", "current-context": "test",
                       "clusters": [{"name": "test", "cluster": {"server": self.url}}],
                       "users": [{"name": "test", "user": {"token": "not-a-secret"}}],
                       "contexts": [{"name": "test", "context": {"cluster": "test", "user": "test"}}]}, f)
        return path


def wait_refused(port: int) -> None:
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", port)) != 0
