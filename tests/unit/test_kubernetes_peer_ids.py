"""The kernel's numbers for a server's clients: one per workload (or pod without one, or node), never
reused; the kernel's map of addresses brought to what the index says, only when it changed."""

from __future__ import annotations

from exporter.enrich.kubernetes_peer_ids import ClientIds, address_key, client_identity
from exporter.enrich.kubernetes_peer_index import PeerIndex
from exporter.enrich.kubernetes_peers import Claim
from exporter.series.peers import NOWHERE, Peer
from exporter.series.requests import RequestKey
from exporter.telemetry.naming.requests import HTTP_SERVER

WEB_A = Peer("pod", "web-7d4b9c8f6-aaaaa", "shop", "Deployment", "web", "n1")
WEB_B = Peer("pod", "web-7d4b9c8f6-bbbbb", "shop", "Deployment", "web", "n2")
LONE = Peer("pod", "debug", "shop", node="n1")
NODE = Peer("node", "n1", node="n1")
SVC = Peer("service", "web", "shop")
WEB = Peer("pod", "", "shop", "Deployment", "web")


class Kernel:
    """The kernel's map, as ClientIds writes it."""

    def __init__(self) -> None:
        self.map: dict[bytes, int] = {}
        self.writes = 0

    def update(self, key: bytes, number: int) -> None:
        self.map[key] = number
        self.writes += 1

    def delete(self, key: bytes) -> None:
        del self.map[key]
        self.writes += 1


def claims(*pairs: tuple[str, Peer, str]) -> list[Claim]:
    return [Claim(uid, peer, (address,)) for uid, peer, address in pairs]


def test_identities_are_workloads_pods_without_one_and_nodes() -> None:
    assert client_identity(WEB_A) == client_identity(WEB_B) == WEB
    assert client_identity(LONE) == LONE
    assert client_identity(NODE) == NODE
    assert client_identity(SVC) is None  # a ClusterIP does not connect


def test_addresses_as_the_kernel_keeps_them() -> None:
    assert address_key("10.0.0.1") == bytes([10, 0, 0, 1]) + bytes(12)
    assert address_key("fd00::1") == bytes.fromhex("fd00" + "00" * 13 + "01")


def test_sync_numbers_the_pods_of_a_workload_alike_and_follows_the_index() -> None:
    index, kernel = PeerIndex(), Kernel()
    ids = ClientIds(index, capacity=100)
    index.replace("pods", claims(("a", WEB_A, "10.0.0.1"), ("b", WEB_B, "10.0.0.2"), ("c", LONE, "10.0.0.3")))
    index.replace("services", claims(("s", SVC, "10.96.0.1")))
    index.replace("nodes", claims(("n", NODE, "192.0.2.1")))
    ids.sync(kernel.update, kernel.delete)
    web, lone, node = (kernel.map[address_key(a)] for a in ("10.0.0.1", "10.0.0.3", "192.0.2.1"))
    assert kernel.map[address_key("10.0.0.2")] == web
    assert len({web, lone, node}) == 3 and 0 not in (web, lone, node)
    assert address_key("10.96.0.1") not in kernel.map
    assert (ids.peer(web), ids.peer(lone), ids.peer(node), ids.peer(0), ids.peer(999)) == (WEB, LONE, NODE, None, None)

    writes = kernel.writes
    ids.sync(kernel.update, kernel.delete)
    assert kernel.writes == writes  # the index did not change: nothing is read or written

    # the lone pod goes; its address passes to a pod of web; web's numbers stay what they were
    index.replace("pods", claims(("a", WEB_A, "10.0.0.1"), ("b", WEB_B, "10.0.0.2"),
                                 ("d", Peer("pod", "web-7d4b9c8f6-ddddd", "shop", "Deployment", "web"), "10.0.0.3")))
    ids.sync(kernel.update, kernel.delete)
    assert kernel.map[address_key("10.0.0.3")] == web
    assert kernel.writes == writes + 1
    assert ids.peer(lone) == LONE  # never reused: a series that has it keeps its name
    index.replace("pods", [])
    ids.sync(kernel.update, kernel.delete)
    assert list(kernel.map) == [address_key("192.0.2.1")]


def test_a_full_kernel_map_leaves_addresses_out_and_says_how_many() -> None:
    index, kernel = PeerIndex(), Kernel()
    ids = ClientIds(index, capacity=2)
    index.replace("pods", claims(*((str(i), WEB_A, f"10.0.0.{i}") for i in range(1, 6))))
    ids.sync(kernel.update, kernel.delete)
    assert len(kernel.map) == 2 and ids.left_out == 3


def test_a_server_series_names_its_clients_workload() -> None:
    key = RequestKey("http", False, "GET", "/", "", 200, "1.1", "ipv4", "10.0.0.9", 80, clients=WEB)
    attrs = dict(HTTP_SERVER.attributes(key, "pod", NOWHERE))
    assert attrs["netobs.peer.kind"] == "pod" and attrs["netobs.peer.k8s.workload.name"] == "web"
    assert "netobs.peer.k8s.pod.name" not in attrs
    assert "netobs.peer.kind" not in dict(HTTP_SERVER.attributes(key._replace(clients=None), "pod",
                                                                   NOWHERE))
