"""Peers: pods, Services and nodes parsed into claims, the index that decides who has an address, and
the cluster-wide watch against a fake API server (re-attribution, 410 Gone, an API server that goes
away, namespaces, pages, resync)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from exporter.config import load_config
from exporter.enrich import kubernetes_watch
from exporter.enrich.errors import SourceErrors
from exporter.enrich.kubernetes_api import ApiServer
from exporter.enrich.kubernetes_peer_index import PeerIndex
from exporter.enrich.kubernetes_peer_watch import SOURCE, PeerWatcher
from exporter.enrich.kubernetes_peers import Claim, parse_node_claim, parse_pod_claim, parse_service_claim
from exporter.enrich.kubernetes_watch import Timing
from exporter.enrich.stage import Enrichment
from exporter.series.peers import Peer
from tests.kernel.fake_cluster import FakeCluster, node, pod, service

FAST = Timing(watch_seconds=30, backoff_min=0.01, backoff_max=0.05, timeout=2)
WEB = Peer("pod", "web-7d4b9c8f6-x2x9z", "shop", "Deployment", "web", "n1")


def wait_until(condition: Callable[[], object], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def web_pod(ip: str | list[str] = "10.244.1.7", **kwargs: Any) -> dict[str, Any]:
    return pod("web-7d4b9c8f6-x2x9z", "shop", ip, owner=("ReplicaSet", "web-7d4b9c8f6"),
               labels={"pod-template-hash": "7d4b9c8f6", "app": "web"}, **kwargs)


def test_a_pod_names_its_workload_and_node_and_claims_both_families() -> None:
    claim = parse_pod_claim(web_pod(["10.244.1.7", "FD00:10:244::7"]))
    assert claim.peer == WEB and claim.addresses == ("10.244.1.7", "fd00:10:244::7")
    assert claim.created == 1714557600 and not claim.terminating
    job = parse_pod_claim(pod("backup-28934420-abcde", "ops", "10.244.2.2", owner=("Job", "backup-28934420")))
    assert (job.peer.workload_kind, job.peer.workload_name) == ("CronJob", "backup")
    bare = parse_pod_claim(pod("debug", "ops", "10.244.2.3"))
    assert (bare.peer.workload_kind, bare.peer.workload_name) == ("", "")


def test_host_network_ended_and_pending_pods() -> None:
    host = parse_pod_claim(pod("kube-proxy-abcde", "kube-system", "192.168.0.1", host_network=True,
                               owner=("DaemonSet", "kube-proxy")))
    assert host.peer == Peer("node", "n1", "", "", "", "n1") and host.addresses == ("192.168.0.1",)
    assert parse_pod_claim(pod("job-1", "ops", "10.244.1.9", phase="Succeeded")).addresses == ()
    assert parse_pod_claim(pod("job-2", "ops", "10.244.1.9", phase="Failed")).addresses == ()
    assert parse_pod_claim(pod("starting", "ops", None, phase="Pending")).addresses == ()
    with pytest.raises(ValueError, match="pod without metadata"):
        parse_pod_claim({"metadata": {"name": "x", "uid": "u"}})


def test_services_and_nodes() -> None:
    svc = parse_service_claim(service("payments", "shop", ["10.96.0.10", "fd00:96::a"]))
    assert svc.peer == Peer("service", "payments", "shop") and svc.addresses == ("10.96.0.10", "fd00:96::a")
    assert parse_service_claim(service("db", "shop", "None")).addresses == ()  # headless: its pods answer
    external = service("ext", "shop", "x")
    external["spec"] = {"type": "ExternalName", "externalName": "db.example.com"}
    assert parse_service_claim(external).addresses == ()
    n = parse_node_claim(node("n2", "192.168.0.2", "203.0.113.2"))
    assert n.peer == Peer("node", "n2", "", "", "", "n2") and n.addresses == ("192.168.0.2", "203.0.113.2")
    with pytest.raises(ValueError, match=r"node without metadata\.uid, name$"):
        parse_node_claim({"metadata": {"uid": "u"}})


def test_strings_shared_between_objects_are_kept_once() -> None:
    a = parse_pod_claim(pod("a", "".join(["sh", "op"]), "10.0.0.1", node="".join(["n", "7"])))
    b = parse_pod_claim(pod("b", "".join(["sh", "op"]), "10.0.0.2", node="".join(["n", "7"])))
    assert a.peer.namespace is b.peer.namespace and a.peer.node is b.peer.node


def claim(uid: str, ip: str, *, created: int = 100, terminating: bool = False, name: str = "") -> Claim:
    return Claim(uid, Peer("pod", name or uid, "shop"), (ip,), created, terminating)


def test_one_address_two_pods() -> None:
    index = PeerIndex()
    index.upsert("pods", claim("old", "10.0.0.1", created=100))
    index.upsert("pods", claim("new", "10.0.0.1", created=200))
    assert index.peer("10.0.0.1").name == "new"  # type: ignore[union-attr]
    index.upsert("pods", claim("old", "10.0.0.1", created=100))  # the old pod's status changes: it keeps losing
    assert index.peer("10.0.0.1").name == "new"  # type: ignore[union-attr]
    index.delete("pods", claim("new", "10.0.0.1"))
    assert index.peer("10.0.0.1").name == "old"  # type: ignore[union-attr]
    # Being deleted loses to a live pod, whatever their age; equal ages: the later claim wins.
    index.upsert("pods", claim("old", "10.0.0.1", created=100, terminating=True))
    index.upsert("pods", claim("older", "10.0.0.1", created=50))
    assert index.peer("10.0.0.1").name == "older"  # type: ignore[union-attr]
    index.upsert("pods", claim("twin", "10.0.0.1", created=50))
    assert index.peer("10.0.0.1").name == "twin"  # type: ignore[union-attr]
    index.upsert("pods", claim("older", "10.0.0.1", created=50))  # a change, not a new claim
    assert index.peer("10.0.0.1").name == "twin"  # type: ignore[union-attr]


def test_lookups_normalize_the_address_and_streams_replace_their_own() -> None:
    index = PeerIndex()
    index.stream("pods").replace([claim("a", "10.0.0.1"), claim("b", "fd00::1")])
    index.stream("services").replace([Claim("s", Peer("service", "api", "shop"), ("10.96.0.1",))])
    version = index.version
    assert index.peer("::ffff:10.0.0.1") == index.peer("10.0.0.1") == Peer("pod", "a", "shop")
    assert index.peer("FD00:0:0::1") == Peer("pod", "b", "shop")
    assert index.peer("10.0.0.9") is None and index.peer("not an address") is None
    index.stream("pods").replace([claim("c", "10.0.0.3")])
    assert index.peer("10.0.0.1") is None and index.peer("10.96.0.1") is not None and len(index) == 2
    assert index.version > version


@pytest.fixture
def cluster() -> Iterator[FakeCluster]:
    fake = FakeCluster([
        web_pod(), service("payments", "shop", "10.96.0.10"), service("db", "shop", "None"),
        pod("db-0", "shop", "10.244.1.8", owner=("StatefulSet", "db")),
        pod("kube-proxy-abcde", "kube-system", "192.168.0.1", host_network=True),
        pod("coredns-1", "kube-system", ["10.244.0.2", "fd00:10:244::2"], node="n2"),
        node("n1", "192.168.0.1"), node("n2", "192.168.0.2", "203.0.113.2"),
    ])
    yield fake
    if fake.server is not None:
        fake.stop()


Watching = tuple[PeerWatcher, PeerIndex, SourceErrors]


def watch(cluster: FakeCluster, namespaces: tuple[str, ...] = (), timing: Timing = FAST) -> Watching:
    index, errors = PeerIndex(), SourceErrors()
    watcher = PeerWatcher(ApiServer(cluster.url), index, errors, namespaces, timing)
    watcher.start()
    assert watcher.wait_synced(5)
    wait_until(lambda: cluster.watching == len(watcher.watches))
    return watcher, index, errors


@pytest.fixture
def watching(cluster: FakeCluster) -> Iterator[Watching]:
    found = watch(cluster)
    yield found
    found[0].stop()


def test_the_first_lists_attribute_pods_services_and_nodes(cluster: FakeCluster, watching: Watching) -> None:
    _, index, errors = watching
    assert index.peer("10.244.1.7") == WEB
    assert index.peer("10.96.0.10") == Peer("service", "payments", "shop")
    assert index.peer("10.244.1.8") == Peer("pod", "db-0", "shop", "StatefulSet", "db", "n1")
    assert index.peer("192.168.0.1") == Peer("node", "n1", node="n1")  # kube-proxy, on the host network
    coredns = Peer("pod", "coredns-1", "kube-system", node="n2")
    assert index.peer("fd00:10:244::2") == index.peer("::ffff:10.244.0.2") == coredns
    assert index.peer("203.0.113.2") == Peer("node", "n2", node="n2")
    assert index.peer("10.244.1.99") is None and index.peer("8.8.8.8") is None
    pods = [p for p in cluster.requests if p.startswith("/api/v1/pods?")]
    assert "fieldSelector=status.phase%21%3DSucceeded%2Cstatus.phase%21%3DFailed" in pods[0]
    assert "limit=100" in pods[0] and "allowWatchBookmarks=true" in pods[1]
    assert errors.counts() == {}


def test_a_pod_deleted_and_created_again_with_its_address(cluster: FakeCluster, watching: Watching) -> None:
    _, index, _ = watching
    cluster.change("DELETED", web_pod())
    wait_until(lambda: index.peer("10.244.1.7") is None)
    again = pod("web-7d4b9c8f6-k8k2p", "shop", "10.244.1.7", owner=("ReplicaSet", "web-7d4b9c8f6"),
                labels={"pod-template-hash": "7d4b9c8f6"}, created="2024-05-01T11:00:00Z")
    cluster.change("ADDED", again)
    wait_until(lambda: index.peer("10.244.1.7") == Peer("pod", "web-7d4b9c8f6-k8k2p", "shop", "Deployment", "web",
                                                        "n1"))
    # The terminating window: the next pod has the address before the old one's deletion is told.
    terminating = again | {"metadata": again["metadata"] | {"deletionTimestamp": "2024-05-01T12:00:00Z"}}
    cluster.change("MODIFIED", terminating)
    api = Peer("pod", "api-1", "shop", node="n1")
    cluster.change("ADDED", pod("api-1", "shop", "10.244.1.7", created="2024-05-01T12:00:01Z"))
    wait_until(lambda: index.peer("10.244.1.7") == api)
    cluster.change("MODIFIED", terminating)
    cluster.change("DELETED", terminating)
    cluster.change("ADDED", pod("marker", "shop", "10.244.9.9"))  # told after those, on the same watch
    wait_until(lambda: index.peer("10.244.9.9") is not None)
    assert index.peer("10.244.1.7") == api
    # A pod that ends is dropped at once, as its address may be given to the next pod.
    cluster.change("MODIFIED", pod("db-0", "shop", "10.244.1.8", phase="Failed"))
    wait_until(lambda: index.peer("10.244.1.8") is None)


def test_410_gone_lists_again(cluster: FakeCluster, watching: Watching) -> None:
    _, index, errors = watching
    assert cluster.lists("pods") == 1
    cluster.expire()
    wait_until(lambda: cluster.lists("pods") == 2 and cluster.lists("services") == 2 and cluster.lists("nodes") == 2)
    cluster.change("ADDED", service("search", "shop", "10.96.0.11"))
    wait_until(lambda: index.peer("10.96.0.11") is not None)
    assert errors.counts() == {}  # a version too old is routine, not an error


def test_an_api_server_away_and_back(cluster: FakeCluster, watching: Watching) -> None:
    _, index, errors = watching
    cluster.stop()
    wait_until(lambda: errors.counts().get(SOURCE, 0) >= 3)  # connections refused, counted, retried
    cluster.change("DELETED", web_pod())  # while away: only the next list can tell
    cluster.change("ADDED", pod("api-1", "shop", "10.244.1.9"))
    assert index.peer("10.244.1.7") == WEB  # the last known peers stay meanwhile
    cluster.start()
    wait_until(lambda: index.peer("10.244.1.9") is not None and index.peer("10.244.1.7") is None)
    cluster.change("ADDED", pod("api-2", "shop", "10.244.1.10"))  # and the watch goes on
    wait_until(lambda: index.peer("10.244.1.10") is not None)


def test_only_some_namespaces(cluster: FakeCluster) -> None:
    watcher, index, _ = watch(cluster, ("kube-system",))
    try:
        assert index.peer("10.244.1.7") is None and index.peer("10.96.0.10") is None
        assert index.peer("10.244.0.2") == Peer("pod", "coredns-1", "kube-system", node="n2")
        assert index.peer("192.168.0.2") == Peer("node", "n2", node="n2")  # nodes have no namespace
        paths = {p.partition("?")[0] for p in cluster.requests}
        assert paths == {"/api/v1/namespaces/kube-system/pods", "/api/v1/namespaces/kube-system/services",
                         "/api/v1/nodes"}
        cluster.change("ADDED", pod("web-2", "shop", "10.244.1.20"))
        cluster.change("ADDED", pod("dns-2", "kube-system", "10.244.0.3"))
        wait_until(lambda: index.peer("10.244.0.3") is not None)
        assert index.peer("10.244.1.20") is None
    finally:
        watcher.stop()


def test_lists_in_pages_and_resyncs(cluster: FakeCluster, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kubernetes_watch, "PAGE_SIZE", 2)
    for i in range(5):
        cluster.change("ADDED", service(f"s{i}", "shop", f"10.96.1.{i}"))
    watcher, index, errors = watch(cluster, timing=Timing(watch_seconds=30, resync=0.2, timeout=2))
    try:
        assert all(index.peer(f"10.96.1.{i}") is not None for i in range(5))
        assert any("continue=6" in p for p in cluster.requests)  # 7 Services, 2 a page
        wait_until(lambda: cluster.lists("services") >= 2 and cluster.lists("pods") >= 2)
        assert errors.counts() == {} and index.peer("10.96.1.4") is not None
    finally:
        watcher.stop()


def test_the_enrichment_stage_starts_the_watch_when_enabled(cluster: FakeCluster, tmp_path: Path) -> None:
    kubeconfig = cluster.kubeconfig(str(tmp_path / "kubeconfig"))
    assert Enrichment(load_config(None, {}, [f"Kubernetes.Kubeconfig={kubeconfig}"]), str(tmp_path)).peers is None
    config = load_config(None, {}, [f"Kubernetes.Kubeconfig={kubeconfig}", "Kubernetes.Peers.Enabled=true",
                                    "Kubernetes.Peers.Namespaces=shop"])
    stage = Enrichment(config, proc=str(tmp_path))
    assert stage.peers is not None and stage.peer_watcher is not None
    stage.start()
    try:
        assert stage.peer_watcher.wait_synced(5)
        assert stage.peers.peer("10.244.1.7") == WEB and stage.peers.peer("10.244.0.2") is None
    finally:
        stage.stop()
