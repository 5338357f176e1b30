"""The metadata sources against fake servers: Docker's inspect, the pod watch (410 Gone, bad JSON,
an unreachable server), workloads from owner references, kubeconfig files."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from exporter.enrich import docker as docker_module
from exporter.enrich.docker import DockerSource, parse_inspect
from exporter.enrich.errors import SourceErrors
from exporter.enrich.http_client import SourceError
from exporter.enrich.kubernetes import PodWatcher
from exporter.enrich.kubernetes_api import ApiServer, from_kubeconfig, in_cluster
from exporter.enrich.kubernetes_pods import PodIndex, parse_pod, workload_of
from tests.kernel.fake_apis import FakeDocker, docker_inspect, pod

CID = "ef" * 32


def test_workloads_from_owner_names() -> None:
    assert workload_of("ReplicaSet", "web-7d4b9c8f6", {"pod-template-hash": "7d4b9c8f6"}) == \
        {"k8s.replicaset.name": "web-7d4b9c8f6", "k8s.deployment.name": "web"}
    assert workload_of("ReplicaSet", "bare", {}) == {"k8s.replicaset.name": "bare"}
    assert workload_of("Job", "backup-28934420", {}) == {"k8s.job.name": "backup-28934420",
                                                          "k8s.cronjob.name": "backup"}
    assert workload_of("Job", "migrate-v2", {}) == {"k8s.job.name": "migrate-v2"}
    assert workload_of("StatefulSet", "db", {}) == {"k8s.statefulset.name": "db"}
    assert workload_of("DaemonSet", "agent", {}) == {"k8s.daemonset.name": "agent"}
    assert workload_of("Node", "node-1", {}) == {}  # a static pod


def test_parse_pod_reads_ids_of_every_runtime_and_literal_env_only() -> None:
    p = parse_pod(pod("u-1", "web-1", "shop", "n1", {"app": "web"}, ("StatefulSet", "web"),
                      [("app", "nginx:1", f"containerd://{CID}", {"MODE": "prod"}),
                       ("side", "envoy:1", f"cri-o://{'12' * 32}", {})]))
    assert set(p.containers) == {CID, "12" * 32}
    assert p.containers[CID].env == {"MODE": "prod"}  # SECRET comes from a secretKeyRef: not read
    assert p.workload == {"k8s.statefulset.name": "web"}
    with pytest.raises(ValueError, match="without metadata"):
        parse_pod({"metadata": {"name": "x"}})


def test_deleted_pods_answer_for_a_while() -> None:
    index = PodIndex()
    p = parse_pod(pod("u-2", "gone-1", "shop", "n1", {}, None, [("c", "i", f"docker://{CID}", {})]))
    index.upsert(p)
    index.delete("u-2")
    assert index.by_uid("u-2") == p and index.by_container(CID) is not None and len(index) == 0


def test_docker_inspect_and_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    meta = parse_inspect(docker_inspect(CID, "shop-db", "postgres:16", {"team": "db"}, {"PGDATA": "/d"}))
    assert (meta.name, meta.image, meta.labels, meta.env) == ("shop-db", "postgres:16", {"team": "db"},
                                                             {"PGDATA": "/d"})
    with pytest.raises(ValueError):
        parse_inspect({"Id": CID})
    errors = SourceErrors()
    source = DockerSource(str(tmp_path / "docker.sock"), ttl=30, errors=errors)
    assert source.container(CID) is None  # no socket: counted, not raised
    assert errors.counts() == {"docker": 1}
    assert source.container(CID) is None and errors.counts() == {"docker": 1}  # quiet for RETRY seconds
    monkeypatch.setattr(docker_module, "RETRY", 0.0)
    server = FakeDocker(str(tmp_path / "docker.sock"), {CID: docker_inspect(CID, "a", "b", {}, {})})
    try:
        source._quiet_until = 0.0
        assert source.container(CID) == parse_inspect(docker_inspect(CID, "a", "b", {}, {}))
        assert source.container("00" * 32) is None  # 404: another runtime's container
        server.server.containers[CID] = {"not": "an inspect answer"}
        source._cache.clear()
        assert source.container(CID) is None and errors.counts() == {"docker": 2}
    finally:
        server.close()


class _ApiHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"
    script: list[tuple[int, Any]]  # what the next requests get: (status, body or list of watch lines)
    seen: list[str]

    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self.seen.append(self.path)
        status, body = self.script.pop(0) if self.script else (500, {"message": "script ended"})
        self.send_response(status)
        self.end_headers()
        if isinstance(body, list):
            for line in body:
                self.wfile.write((line if isinstance(line, str) else json.dumps(line)).encode() + b"\n")
        else:
            self.wfile.write(json.dumps(body).encode())


@pytest.fixture
def api() -> Iterator[tuple[ThreadingHTTPServer, type[_ApiHandler]]]:
    handler = type("Handler", (_ApiHandler,), {"script": [], "seen": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server, handler
    server.shutdown()
    server.server_close()


def _pod(name: str, uid: str, version: str) -> dict[str, Any]:
    p = pod(uid, name, "ns", "n1", {}, None, [("c", "i", f"containerd://{uid * 64}"[:77], {})])
    p["metadata"]["resourceVersion"] = version
    return p


def test_watch_follows_changes_and_lists_again_after_410(api: tuple[ThreadingHTTPServer, type[_ApiHandler]],
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    server, handler = api
    monkeypatch.setattr("exporter.enrich.kubernetes.BACKOFF_MIN", 0.01)
    handler.script += [
        (200, {"kind": "PodList", "metadata": {"resourceVersion": "10"}, "items": [_pod("a", "1", "9")]}),
        (200, [{"type": "ADDED", "object": _pod("b", "2", "11")}, "{not json",
               {"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "12"}}},
               {"type": "ERROR", "object": {"kind": "Status", "code": 410, "message": "too old"}}]),
        (200, {"kind": "PodList", "metadata": {"resourceVersion": "20"}, "items": [_pod("c", "3", "19")]}),
        (410, {"kind": "Status", "code": 410}),
        (200, {"kind": "PodList", "metadata": {"resourceVersion": "30"}, "items": [_pod("d", "4", "29")]}),
    ]
    index, errors = PodIndex(), SourceErrors()
    watcher = PodWatcher(ApiServer(f"http://127.0.0.1:{server.server_port}"), "n1", index, errors)
    watcher.start()
    deadline = time.monotonic() + 10
    while handler.script and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.2)
    watcher.stop()
    assert index.by_uid("4") is not None and index.by_uid("3") is not None  # "3" deleted: still answers
    lists = [p for p in handler.seen if "watch=1" not in p]
    watches = [p for p in handler.seen if "watch=1" in p]
    assert len(lists) >= 3 and "fieldSelector=spec.nodeName%3Dn1" in lists[0]
    assert "resourceVersion=10" in watches[0] and "allowWatchBookmarks=true" in watches[0]
    assert "resourceVersion=20" in watches[1]
    assert errors.counts().get("kubernetes", 0) >= 1  # the line that was not JSON (and the scripted 500s)


def test_unreachable_api_server_is_counted_and_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("exporter.enrich.kubernetes.BACKOFF_MIN", 0.01)
    monkeypatch.setattr("exporter.enrich.kubernetes.BACKOFF_MAX", 0.02)
    errors = SourceErrors()
    watcher = PodWatcher(ApiServer("http://127.0.0.1:1"), "n1", PodIndex(), errors)
    watcher.start()
    deadline = time.monotonic() + 5
    while errors.counts().get("kubernetes", 0) < 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    watcher.stop()
    assert errors.counts()["kubernetes"] >= 3


def test_kubeconfig_and_in_cluster(tmp_path: Path) -> None:
    path = tmp_path / "config"
    path.write_text("""
apiVersion: v1
kind: Config
current-context: dev
clusters:
- name: c1
  cluster: {server: "https://10.0.0.1:6443", insecure-skip-tls-verify: true}
users:
- name: u1
  user: {token: abc}
contexts:
- name: dev
  context: {cluster: c1, user: u1}
""")
    server = from_kubeconfig(str(path))
    assert server.url == "https://10.0.0.1:6443" and server.headers()["Authorization"] == "Bearer abc"
    assert server.context is not None
    path.write_text("current-context: nope\ncontexts: []\n")
    with pytest.raises(SourceError, match="no context named 'nope'"):
        from_kubeconfig(str(path))
    with pytest.raises(SourceError, match="kubeconfig"):
        from_kubeconfig(str(tmp_path / "missing"))
    assert in_cluster({}, tmp_path) is None
    (tmp_path / "token").write_text("t0k3n\n")
    with pytest.raises(SourceError, match=r"ca\.crt"):  # a token without its CA
        in_cluster({"KUBERNETES_SERVICE_HOST": "10.96.0.1"}, tmp_path)
