"""Which pod, Service or node has an address: the claims of every object watched, by address.

Thread-safe: the watch threads write (each through its own stream: one list replaces only what
that stream said before), the collection thread reads with `peer(address)`.

When two objects claim one address, the winner is, in order:
1. one not being deleted (a deleted pod keeps its address in its status until it is gone, while
   the address may already be another pod's);
2. the one created last (two live pods with one address: the older one's deletion was missed);
3. the one that claimed it last (the order in which the watches told, kept while the object's
   addresses do not change), so a pod deleted and created again with the same address is the
   new one as soon as it is seen.
An object that stops claiming an address (deleted, ended, or given another) hands it to the next
claimant, if any. Node and host-network pod claims on one address name the same node."""

from __future__ import annotations

import threading

from exporter.enrich.kubernetes_peers import Claim, Peer, canonical

_MAPPED = "::ffff:"


def _rank(claim: Claim) -> tuple[bool, int, int]:
    return not claim.terminating, claim.created, claim.seq


class PeerIndex:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._streams: dict[str, dict[str, Claim]] = {}  # stream -> uid -> claim
        self._claims: dict[str, tuple[Claim, ...]] = {}  # address -> its claims, the winner first
        self._seq = 0
        self._changes: set[str] | None = None  # addresses claimed or let go since take_changes(); None: never asked
        self.version = 0  # changes whenever a claim does: readers may cache answers until it moves

    def peer(self, address: str) -> Peer | None:
        """The Kubernetes identity behind an address ("10.0.0.1", "fd00::1", "::ffff:10.0.0.1"), or None."""
        if address.startswith(_MAPPED) and "." in address:
            address = address[len(_MAPPED):]
        with self._lock:
            claims = self._claims.get(address)
        if claims is None and ":" in address:  # an IPv6 address not in canonical form
            found = canonical(address)
            if found is not None and found != address:
                with self._lock:
                    claims = self._claims.get(found)
        return claims[0].peer if claims else None

    def take_changes(self) -> tuple[int, dict[str, Peer | None]]:
        """For the one reader that mirrors the index elsewhere (the kernel's numbers of a server's clients):
        the addresses whose Peer may have changed since its last call, every address at its first, each
        with its Peer now (None: no one has it any more), and the version that makes them."""
        with self._lock:
            addresses = self._claims.keys() if self._changes is None else self._changes
            changed = {a: claims[0].peer if (claims := self._claims.get(a)) else None for a in addresses}
            self._changes = set()
            return self.version, changed

    def stream(self, name: str) -> PeerStream:
        """The sink of one watch (pods cluster-wide, services in shop ...)."""
        with self._lock:
            self._streams.setdefault(name, {})
        return PeerStream(self, name)

    def __len__(self) -> int:
        """Addresses with a peer."""
        with self._lock:
            return len(self._claims)

    def replace(self, stream: str, claims: list[Claim]) -> None:
        with self._lock:
            old = self._streams.get(stream, {})
            for claim in old.values():
                self._unclaim(claim)
            new: dict[str, Claim] = {}
            for claim in claims:
                if claim.addresses and claim.uid not in new:
                    self._number(claim, old.get(claim.uid))
                    new[claim.uid] = claim
                    self._claim(claim)
            self._streams[stream] = new
            self.version += 1

    def upsert(self, stream: str, claim: Claim) -> None:
        with self._lock:
            objects = self._streams.setdefault(stream, {})
            old = objects.pop(claim.uid, None)
            if old is not None:
                self._unclaim(old)
            if claim.addresses:
                self._number(claim, old)
                objects[claim.uid] = claim
                self._claim(claim)
            self.version += 1

    def delete(self, stream: str, claim: Claim) -> None:
        with self._lock:
            old = self._streams.get(stream, {}).pop(claim.uid, None)
            if old is not None:
                self._unclaim(old)
                self.version += 1

    def _number(self, claim: Claim, old: Claim | None) -> None:
        if old is not None and old.addresses == claim.addresses:
            claim.seq = old.seq
        else:
            self._seq += 1
            claim.seq = self._seq

    def _claim(self, claim: Claim) -> None:
        if self._changes is not None:
            self._changes.update(claim.addresses)
        for address in claim.addresses:
            others = self._claims.get(address)
            self._claims[address] = tuple(sorted((*others, claim), key=_rank, reverse=True)) if others else (claim,)

    def _unclaim(self, claim: Claim) -> None:
        if self._changes is not None:
            self._changes.update(claim.addresses)
        for address in claim.addresses:
            rest = tuple(c for c in self._claims.get(address, ()) if c is not claim)
            if rest:
                self._claims[address] = rest
            else:
                self._claims.pop(address, None)


class PeerStream:
    """A PeerIndex as the sink of one watch (exporter/enrich/kubernetes_watch.py's Sink)."""

    def __init__(self, index: PeerIndex, name: str) -> None:
        self.index, self.name = index, name

    def replace(self, items: list[Claim]) -> None:
        self.index.replace(self.name, items)

    def upsert(self, item: Claim) -> None:
        self.index.upsert(self.name, item)

    def delete(self, item: Claim) -> None:
        self.index.delete(self.name, item)
