"""Numbers for the clients of a server's request series (Kubernetes.Peers): the kernel keeps a server's
series apart by its clients' workload, and needs a number for it.

The kernel's key of a server's series has no client address: with one, a server would have a series
per client pod or address, for every route and status. Instead, bpf/l7.c looks each new connection's
client address up in `l7_clients` (address -> number) and keeps the number in the series' key, so a
server has a series per client *workload* (checkout -> payments), however many pods it has.

A number stands for one identity for good: the workload (namespace, kind, name) of a pod that has
one; the pod itself when it has none; the node, for a node's own addresses and host-network pods.
Services are not clients (a ClusterIP does not connect). Addresses move between pods; `sync` brings
the kernel's map up to date with the PeerIndex whenever the index changed, so a connection is
numbered by whoever had its client address when it was accepted. Numbers are never reused: an
identity gone from the cluster keeps its number, and the series that have it keep their names."""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Callable

from exporter.enrich.kubernetes_peer_index import PeerIndex
from exporter.series.peers import Peer

log = logging.getLogger(__name__)


def client_identity(peer: Peer) -> Peer | None:
    """What a client at one of `peer`'s addresses is counted as; None for a Service."""
    if peer.kind == "service":
        return None
    if peer.kind == "pod" and peer.workload_name:
        return Peer("pod", "", peer.namespace, peer.workload_kind, peer.workload_name)
    return peer


def address_key(address: str) -> bytes:
    """The kernel's 16 bytes of an address (struct netobs_addr): IPv4 in the first four."""
    ip = ipaddress.ip_address(address)
    return ip.packed if ip.version == 6 else ip.packed + bytes(12)


class ClientIds:
    def __init__(self, index: PeerIndex, capacity: int) -> None:
        self.index = index
        self.capacity = capacity  # the kernel map's entries
        self._numbers: dict[Peer, int] = {}
        self._peers: list[Peer | None] = [None]  # number -> identity; 0: not known
        self._pushed: dict[bytes, int] = {}  # what the kernel's map holds
        self._waiting: dict[bytes, int] = {}  # what it has no room for yet
        self._version = -1
        self.left_out = 0  # addresses the kernel's map has no room for

    def peer(self, number: int) -> Peer | None:
        """The identity a kernel number stands for; None for 0 (not known) or a number not given."""
        return self._peers[number] if 0 <= number < len(self._peers) else None

    def number(self, identity: Peer) -> int:
        found = self._numbers.get(identity)
        if found is None:
            found = self._numbers[identity] = len(self._peers)
            self._peers.append(identity)
        return found

    def sync(self, update: Callable[[bytes, int], object], delete: Callable[[bytes], object]) -> None:
        """Brings the kernel's map (written through `update` and `delete`) to what the index says: only
        the addresses that changed since the last sync are looked at."""
        if self.index.version == self._version:
            return
        version, changed = self.index.take_changes()
        for address, peer in changed.items():
            key = address_key(address)
            identity = client_identity(peer) if peer is not None else None
            number = self.number(identity) if identity is not None else 0
            self._waiting.pop(key, None)
            if not number:
                if self._pushed.pop(key, None) is not None:
                    delete(key)
            elif self._pushed.get(key) != number:
                self._waiting[key] = number
        for key in list(self._waiting):
            if key not in self._pushed and len(self._pushed) >= self.capacity:
                continue
            self._pushed[key] = number = self._waiting.pop(key)
            update(key, number)
        if len(self._waiting) > self.left_out:
            log.warning("l7: %d cluster addresses beyond the %d the kernel keeps: their requests to servers "
                        "here are not told apart by client", len(self._waiting), self.capacity)
        self.left_out = len(self._waiting)
        self._version = version
