"""The other side's Kubernetes identity on series: attribution looks it up by the key's peer address
(again when the index of peers changes), and each kind names it: netflow at every level (by workload
at `workload`), a client's HTTP, gRPC and database series, an asking process's DNS series."""

from __future__ import annotations

from pathlib import Path

from exporter.config import load_config
from exporter.enrich.kubernetes_peer_index import PeerIndex
from exporter.enrich.kubernetes_peers import Claim
from exporter.enrich.stage import Enrichment
from exporter.series.lookups import LookupFigures, LookupKey
from exporter.series.peers import NOWHERE, Peer, Remote
from exporter.series.requests import RequestFigures, RequestKey
from exporter.series.rows import AttributedRow, HistogramValue, Owner, Row
from exporter.telemetry.naming import kind_of
from exporter.telemetry.naming.flows import FLOW, LEVELS, PEER, PEER_ADDRESS, WORKLOAD, flow_attributes
from exporter.telemetry.table import SeriesTable
from tests.unit.test_attribution import fake_proc, flow_row
from tests.unit.test_table import CURL, collect, flow, plan, sent

CHECKOUT = Peer("pod", "checkout-6b7f-q2w3e", "shop", "Deployment", "checkout", "node-2")
CHECKOUT_2 = Peer("pod", "checkout-6b7f-r4t5y", "shop", "Deployment", "checkout", "node-3")
PAYMENTS = Peer("service", "payments", "shop")
NODE = Peer("node", "node-4", node="node-4")
BARE = Peer("pod", "debug", "default", node="node-2")

POD_ATTRIBUTES = {"netobs.peer.kind": "pod", "netobs.peer.k8s.namespace.name": "shop",
                  "netobs.peer.k8s.pod.name": "checkout-6b7f-q2w3e", "netobs.peer.k8s.node.name": "node-2",
                  "netobs.peer.k8s.workload.kind": "Deployment", "netobs.peer.k8s.workload.name": "checkout"}
SERVICE_ATTRIBUTES = {"netobs.peer.kind": "service", "netobs.peer.k8s.namespace.name": "shop",
                      "netobs.peer.k8s.service.name": "payments"}
NODE_ATTRIBUTES = {"netobs.peer.kind": "node", "netobs.peer.k8s.node.name": "node-4"}


def peer_part(attributes: tuple[tuple[str, str | int], ...]) -> dict[str, str | int]:
    return {k: v for k, v in attributes if k.startswith("netobs.peer.")}


def test_a_flow_to_a_pod_names_the_pod_where_the_address_is_kept_and_its_workload_where_it_is_not() -> None:
    key = flow().key
    for level in (FLOW, PEER, PEER_ADDRESS):
        attributes = dict(flow_attributes(key, level, Remote("checkout.shop", CHECKOUT)))
        assert peer_part(tuple(attributes.items())) == POD_ATTRIBUTES
        assert attributes["destination.address"] == "10.0.0.9"
        assert attributes["destination.domain"] == "checkout.shop"
    attributes = dict(flow_attributes(key, WORKLOAD, Remote("checkout.shop", CHECKOUT)))
    assert peer_part(tuple(attributes.items())) == {
        "netobs.peer.kind": "pod", "netobs.peer.k8s.namespace.name": "shop",
        "netobs.peer.k8s.workload.kind": "Deployment", "netobs.peer.k8s.workload.name": "checkout"}
    assert "destination.address" not in attributes and "destination.domain" not in attributes


def test_services_nodes_and_pods_without_a_workload_name_themselves_at_every_level() -> None:
    key = flow().key
    for level in LEVELS:
        assert peer_part(flow_attributes(key, level, Remote(None, PAYMENTS))) == SERVICE_ATTRIBUTES
        assert peer_part(flow_attributes(key, level, Remote(None, NODE))) == NODE_ATTRIBUTES
        assert peer_part(flow_attributes(key, level, Remote(None, BARE))) == {
            "netobs.peer.kind": "pod", "netobs.peer.k8s.namespace.name": "default", "netobs.peer.k8s.pod.name": "debug",
            "netobs.peer.k8s.node.name": "node-2"}


def test_an_address_outside_the_cluster_stays_an_address() -> None:
    for level in LEVELS:
        assert peer_part(flow_attributes(flow().key, level, Remote("example.com"))) == {}
        assert flow_attributes(flow().key, level, NOWHERE) == flow_attributes(flow().key, level)


def test_at_the_workload_level_a_series_is_per_peer_workload() -> None:
    table = SeriesTable(plan("workload", None))
    collect(table,
            AttributedRow(flow(remote=9, sent=10), CURL, Remote(None, CHECKOUT)),
            AttributedRow(flow(remote=10, sent=5), CURL, Remote(None, CHECKOUT_2)),  # another pod, same workload
            AttributedRow(flow(remote=11, sent=7), CURL, Remote(None, PAYMENTS)),
            AttributedRow(flow(remote=12, sent=1), CURL),  # outside the cluster
            AttributedRow(flow(remote=13, sent=2), CURL))
    assert sorted(sent(table)) == [3, 7, 15]


def test_requests_name_the_server_on_the_client_side_only() -> None:
    client = RequestKey("http", True, "GET", "/", "payments.shop", 200, "1.1", "ipv4", "10.96.0.7", 80)
    server = client._replace(client=False, server_address="10.0.0.1")
    assert client.peer == "10.96.0.7" and server.peer is None
    for protocol in ("http", "grpc", "postgresql"):
        key = client._replace(protocol=protocol)
        assert peer_part(kind_of(key).attributes(key, "series", Remote(None, PAYMENTS))) == SERVICE_ATTRIBUTES


def test_lookups_name_the_dns_server_of_an_asking_process() -> None:
    asked = LookupKey(True, "udp", "ipv4", "10.96.0.10", 53, "example.com", "A", "NOERROR")
    assert asked.peer == "10.96.0.10" and asked._replace(client=False).peer is None
    kube_dns = Peer("service", "kube-dns", "kube-system")
    assert peer_part(kind_of(asked).attributes(asked, "series", Remote(None, kube_dns))) == {
        "netobs.peer.kind": "service", "netobs.peer.k8s.namespace.name": "kube-system",
        "netobs.peer.k8s.service.name": "kube-dns"}


# ---------------------------------------------------------------- attribution


class CountingIndex(PeerIndex):
    def __init__(self) -> None:
        super().__init__()
        self.looks = 0

    def peer(self, address: str) -> Peer | None:
        self.looks += 1
        return super().peer(address)


def claim(uid: str, peer: Peer, address: str, created: int = 0) -> Claim:
    return Claim(uid, peer, (address,), created)


def watched(tmp_path: Path, index: PeerIndex) -> Enrichment:
    fake_proc(tmp_path, 10, "curl")
    stage = Enrichment(load_config(None, {}, []), proc=str(tmp_path))
    stage.peers = index
    return stage


def request_row(client: bool, server: str) -> Row:
    h = HistogramValue((1, 0), 0.001, 1)
    return Row(RequestKey("http", client, "GET", "/", "", 200, "1.1", "ipv4", server, 80), Owner(10, "curl"),
               RequestFigures(h, h, h, 10, 20))


def lookup_row(server: str) -> Row:
    return Row(LookupKey(True, "udp", "ipv4", server, 53, "example.com", "A", "NOERROR"), Owner(10, "curl"),
               LookupFigures(HistogramValue((1, 0), 0.001, 1), 1, 0.001, 30, 46))


def test_attribution_gives_each_row_the_identity_behind_its_peer_address(tmp_path: Path) -> None:
    index = PeerIndex()
    stage = watched(tmp_path, index)
    pods = index.stream("pods")
    pods.upsert(claim("a", CHECKOUT, "10.0.0.9"))
    pods.upsert(claim("s", PAYMENTS, "10.96.0.7"))
    pods.upsert(claim("n", NODE, "10.0.0.10"))
    rows = [flow_row(10, "curl", 443, remote=bytes(address)) for address in
            ([10, 0, 0, 9], [10, 96, 0, 7], [10, 0, 0, 10], [1, 1, 1, 1])]
    rows += [request_row(True, "10.96.0.7"), request_row(False, "10.0.0.9"), lookup_row("10.0.0.10")]
    got = [a.remote.peer for a in stage.attribute("netflow", rows)]
    assert got == [CHECKOUT, PAYMENTS, NODE, None, PAYMENTS, None, NODE]
    assert stage.attribute("netflow", rows)[3].remote is NOWHERE


def test_a_peer_is_looked_up_again_only_when_the_index_changed(tmp_path: Path) -> None:
    index = CountingIndex()
    stage = watched(tmp_path, index)
    pods = index.stream("pods")
    pods.upsert(claim("a", CHECKOUT, "10.0.0.9", created=1))
    row, twin = flow_row(10, "curl", 443), flow_row(10, "curl", 444)
    first = stage.attribute("netflow", [row, twin])
    assert [a.remote.peer for a in first] == [CHECKOUT, CHECKOUT] and index.looks == 1  # one look per address
    again = stage.attribute("netflow", [row, twin])
    assert again[0] is first[0] and index.looks == 1  # the index did not change: no look
    pods.upsert(claim("u", PAYMENTS, "10.0.0.250"))  # a change elsewhere: looked at, the same answer
    assert stage.attribute("netflow", [row])[0] is first[0] and index.looks == 2
    pods.upsert(claim("b", CHECKOUT_2, "10.0.0.9", created=2))  # the address went to a newer pod
    (moved,) = stage.attribute("netflow", [row])
    assert moved.remote.peer == CHECKOUT_2 and moved is not first[0]
    pods.delete(claim("b", CHECKOUT_2, "10.0.0.9"))
    pods.delete(claim("a", CHECKOUT, "10.0.0.9"))
    assert stage.attribute("netflow", [row])[0].remote is NOWHERE


def test_without_peers_a_row_keeps_only_its_domain(tmp_path: Path) -> None:
    fake_proc(tmp_path, 10, "curl")
    stage = Enrichment(load_config(None, {}, []), proc=str(tmp_path))
    assert stage.peers is None
    assert stage.attribute("netflow", [flow_row(10, "curl", 443)])[0].remote is NOWHERE
