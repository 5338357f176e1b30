"""Peers named by their pods and Services (Kubernetes.Peers): two network namespaces play two pods that a
fake Kubernetes API lists cluster-wide, real TCP flows between them, and an iptables DNAT rule plays a
Service's ClusterIP. The client's side names the pod (or the Service) it talks to, the server's side the
client's pod; every byte count is exact. HTTP between them: the client's series name the server's pod (or
the Service), the server's name the client's workload."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.kernel.fake_cluster import FakeCluster, node, pod, service
from tests.kernel.harness import Exporter, Peer, wait_until
from tests.kernel.netns import veth_pair

BYTES = "netflow_bytes_total"
CLUSTER_IP = "10.96.0.10"  # the Service's address: DNATed to the server inside the client's namespace
SEND = {"direct": 1234, "service": 2345}
LIGHT = ("Dns.Enabled=false", "Bash.Enabled=false", "Common.IncludeProtocols=[HTTP]",
         "Common.DropLocalConnections=false", "Kubernetes.Peers.Enabled=true")
HTTP_PORT = 8080  # an HTTP server in the server's namespace, also behind the ClusterIP
CHECKOUT = {"netobs_peer_kind": "pod", "netobs_peer_k8s_namespace_name": "shop",
            "netobs_peer_k8s_pod_name": "checkout-6d5f7-abcde", "netobs_peer_k8s_workload_name": "checkout"}
PAYMENTS = {"netobs_peer_kind": "pod", "netobs_peer_k8s_namespace_name": "pay",
            "netobs_peer_k8s_pod_name": "payments-7c9d8-fghij", "netobs_peer_k8s_workload_name": "payments"}
PAYMENTS_SERVICE = {"netobs_peer_kind": "service", "netobs_peer_k8s_namespace_name": "pay",
                    "netobs_peer_k8s_service_name": "payments"}

pytestmark = pytest.mark.usefixtures("bpf_ready")


@dataclass
class Cluster:
    api: FakeCluster
    exporter: Exporter
    clients: dict[str, Peer]
    client_v4: str
    server_v4: str
    client_netns: str
    server_netns: str


def _pods(client_v4: str, server_v4: str) -> list[dict]:
    return [
        pod("checkout-6d5f7-abcde", "shop", client_v4, owner=("ReplicaSet", "checkout-6d5f7"),
            labels={"pod-template-hash": "6d5f7"}, node="n1"),
        pod("payments-7c9d8-fghij", "pay", server_v4, owner=("ReplicaSet", "payments-7c9d8"),
            labels={"pod-template-hash": "7c9d8"}, node="n2"),
        service("payments", "pay", CLUSTER_IP),
        node("n1", "192.0.2.1"),
    ]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    tmp = tmp_path_factory.mktemp("peers")
    with veth_pair("pe") as veth:
        api = FakeCluster(_pods(veth.a_v4, veth.b_v4))
        server = Peer("tcp-server", f"--host={veth.b_v4}", "--count=1000", netns=veth.b)
        port = server.ready["port"]
        # the ClusterIP, as kube-proxy makes it: a route to it, and a DNAT of its port to the server's pod
        subprocess.run(["ip", "-n", veth.a, "route", "add", f"{CLUSTER_IP}/32", "dev", "veth-a"], check=True)
        subprocess.run(["ip", "netns", "exec", veth.a, "iptables", "-t", "nat", "-A", "OUTPUT", "-d", CLUSTER_IP,
                        "-p", "tcp", "--dport", "80", "-j", "DNAT", "--to-destination", f"{veth.b_v4}:{port}"],
                       check=True)
        clients = {"direct": Peer("tcp-client-on-demand", f"--host={veth.b_v4}", f"--port={port}",
                                  f"--send={SEND['direct']}", netns=veth.a),
                   "service": Peer("tcp-client-on-demand", f"--host={CLUSTER_IP}", "--port=80",
                                   f"--send={SEND['service']}", netns=veth.a)}
        exporter = Exporter(*LIGHT, f"Kubernetes.Kubeconfig={api.kubeconfig(str(tmp / 'kubeconfig'))}",
                            env={"NODE_NAME": "n1"})
        try:
            yield Cluster(api, exporter, clients, veth.a_v4, veth.b_v4, veth.a, veth.b)
        finally:
            exporter.stop()
            for peer in (server, *clients.values()):
                peer.proc.kill()
                peer.proc.wait()
            if api.server is not None:
                api.stop()


def talk(c: Cluster, key: str) -> None:
    c.clients[key].send_line()
    assert c.clients[key].line()["received"] == 0


def sent(c: Cluster, expected: float, **labels: str) -> float:
    """Bytes the client namespace's processes sent, on flows with these labels, once `expected`."""
    return wait_until(lambda: c.exporter.value(BYTES, network_io_direction="transmit", netflow_direction="outgoing",
                                               **labels), lambda v: v == expected, 15)


def received(c: Cluster, expected: float, **labels: str) -> float:
    return wait_until(lambda: c.exporter.value(BYTES, network_io_direction="receive", netflow_direction="incoming",
                                               **labels), lambda v: v == expected, 15)


def test_each_side_names_the_pod_on_the_other(cluster: Cluster) -> None:
    talk(cluster, "direct")
    assert sent(cluster, SEND["direct"], destination_address=cluster.server_v4, **PAYMENTS) == SEND["direct"]
    assert received(cluster, SEND["direct"], destination_address=cluster.client_v4, **CHECKOUT) == SEND["direct"]


def test_a_cluster_ip_names_the_service_to_the_client_and_the_client_to_the_server(cluster: Cluster) -> None:
    talk(cluster, "service")
    assert sent(cluster, SEND["service"], destination_address=CLUSTER_IP, **PAYMENTS_SERVICE) == SEND["service"]
    both = SEND["direct"] + SEND["service"]  # the server sees the client's own address on both connections
    assert received(cluster, both, destination_address=cluster.client_v4, **CHECKOUT) == both


def test_an_address_outside_the_cluster_stays_an_address(cluster: Cluster) -> None:
    for labels, _ in cluster.exporter.samples(BYTES):
        if labels.get("destination_address") not in (cluster.client_v4, cluster.server_v4, CLUSTER_IP):
            assert "netobs_peer_kind" not in labels, labels


def test_a_pod_recreated_with_the_same_address_is_named_anew(cluster: Cluster) -> None:
    old = pod("payments-7c9d8-fghij", "pay", cluster.server_v4, owner=("ReplicaSet", "payments-7c9d8"),
              labels={"pod-template-hash": "7c9d8"}, node="n2")
    new = pod("payments-7c9d8-zzzzz", "pay", cluster.server_v4, owner=("ReplicaSet", "payments-7c9d8"),
              labels={"pod-template-hash": "7c9d8"}, node="n2", created="2024-05-02T10:00:00Z")
    cluster.api.change("DELETED", old)
    cluster.api.change("ADDED", new)
    renamed = {**PAYMENTS, "netobs_peer_k8s_pod_name": "payments-7c9d8-zzzzz"}

    def named_anew() -> float:
        talk(cluster, "direct")
        return cluster.exporter.value(BYTES, network_io_direction="transmit", netflow_direction="outgoing",
                                      destination_address=cluster.server_v4, **renamed)
    assert wait_until(named_anew, lambda v: v > 0, 15) > 0


def test_at_the_workload_level_a_series_is_a_workload_pair(cluster: Cluster, tmp_path_factory:
                                                            pytest.TempPathFactory) -> None:
    """Netflow.Aggregation=workload: the peer's workload replaces its addresses and pod names, so the flows
    to the pods of one workload add up into one series per pair, exact on both sides."""
    kubeconfig = cluster.api.kubeconfig(str(tmp_path_factory.mktemp("peers-workload") / "kubeconfig"))
    exp = Exporter(*LIGHT, f"Kubernetes.Kubeconfig={kubeconfig}", "Netflow.Aggregation=workload",
                   env={"NODE_NAME": "n1"})
    try:
        talk(cluster, "direct")
        talk(cluster, "direct")
        pair = {"netobs_peer_kind": "pod", "netobs_peer_k8s_namespace_name": "pay",
                "netobs_peer_k8s_workload_kind": "Deployment", "netobs_peer_k8s_workload_name": "payments"}
        expected = 2 * SEND["direct"]
        got = wait_until(lambda: exp.value(BYTES, network_io_direction="transmit", netflow_direction="outgoing",
                                           **pair), lambda v: v == expected, 15)
        assert got == expected
        series = exp.samples(BYTES, network_io_direction="transmit", netflow_direction="outgoing", **pair)
        assert len(series) == 1, series  # one series for the pair: no address, no pod name
        assert "destination_address" not in series[0][0] and "netobs_peer_k8s_pod_name" not in series[0][0]
        client = {**pair, "netobs_peer_k8s_namespace_name": "shop", "netobs_peer_k8s_workload_name": "checkout"}
        got = wait_until(lambda: exp.value(BYTES, network_io_direction="receive", netflow_direction="incoming",
                                           **client), lambda v: v == expected, 15)
        assert got == expected
    finally:
        exp.stop()


def test_a_server_names_its_clients_workload_and_a_client_its_server(cluster: Cluster) -> None:
    """HTTP: the server's series name the client's workload, the kernel's number of it, however the client
    came (to the pod, or to the Service's ClusterIP); the client's series name the pod or the Service."""
    ns = ["ip", "netns", "exec"]
    server = subprocess.Popen([*ns, cluster.server_netns, sys.executable, "-m", "http.server", "--bind",
                               cluster.server_v4, str(HTTP_PORT)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        subprocess.run([*ns, cluster.client_netns, "iptables", "-t", "nat", "-A", "OUTPUT", "-d", CLUSTER_IP, "-p",
                        "tcp", "--dport", str(HTTP_PORT), "-j", "DNAT", "--to-destination",
                        f"{cluster.server_v4}:{HTTP_PORT}"], check=True)
        deadline = time.monotonic() + 15
        while f":{HTTP_PORT} " not in subprocess.run([*ns, cluster.server_netns, "ss", "-ltnH"], capture_output=True,
                                                     text=True, check=True).stdout:
            assert time.monotonic() < deadline, "http.server did not listen"
            time.sleep(0.1)
        # the kernel numbers both pods' addresses before the first connection
        assert wait_until(lambda: len(cluster.exporter.kernel_map("l7_clients")), lambda n: n >= 2, 15) >= 2
        for host, times in ((cluster.server_v4, 3), (CLUSTER_IP, 2)):
            for _ in range(times):
                subprocess.run([*ns, cluster.client_netns, "curl", "-sf", "-o", "/dev/null",
                                f"http://{host}:{HTTP_PORT}/"], check=True)
    finally:
        server.kill()
        server.wait()
    checkout = {"netobs_peer_kind": "pod", "netobs_peer_k8s_namespace_name": "shop",
                "netobs_peer_k8s_workload_kind": "Deployment", "netobs_peer_k8s_workload_name": "checkout"}
    exp = cluster.exporter
    assert exp.wait_for("http_server_request_duration_seconds_count", 5, 15, **checkout) == 5
    series = exp.samples("http_server_request_duration_seconds_count", **checkout)
    assert sorted(v for _, v in series) == [2, 3], series  # a series per Host the client sent
    for labels, _ in series:  # by workload: the pods of one workload make one series
        assert "netobs_peer_k8s_pod_name" not in labels and "netobs_peer_k8s_node_name" not in labels, labels
    assert exp.value("http_server_request_duration_seconds_count", server_port=str(HTTP_PORT)) == 5  # no others
    payments = {"netobs_peer_kind": "pod", "netobs_peer_k8s_namespace_name": "pay",
                "netobs_peer_k8s_workload_name": "payments"}
    assert exp.wait_for("http_client_request_duration_seconds_count", 3, 15, **payments) == 3
    assert exp.wait_for("http_client_request_duration_seconds_count", 2, 15, **PAYMENTS_SERVICE) == 2
