"""Which name resolved to an address: learnt from the DNS answers the exporter sees.

The dns collector writes (its ring-buffer thread), netflow reads (at scrape): each call is a
few dict operations under one lock. Entries live for the record's TTL, clamped to
[ttl_min, ttl_max], and the table never holds more than `capacity` addresses (the oldest
learnt go first)."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable

from exporter.collectors.dns_wire import Answer

A, AAAA, CNAME = 1, 28, 5


def resolved_addresses(question: str, answers: Iterable[Answer]) -> list[tuple[str, int]]:
    """(address, ttl) of the A/AAAA records that answer `question`, following CNAME chains
    from it; records for unrelated owners (a server may add them) are ignored."""
    names = {question}
    addresses = []
    pending = list(answers)
    grew = True
    while grew:  # CNAMEs may come in any order: follow until the chain stops growing
        grew = False
        for answer in pending:
            if answer.rtype == CNAME and answer.name in names and answer.data not in names:
                names.add(answer.data)
                grew = True
    for answer in pending:
        if answer.rtype in (A, AAAA) and answer.name in names:
            addresses.append((answer.data, answer.ttl))
    return addresses


class DomainCache:
    def __init__(self, capacity: int, ttl_min: float, ttl_max: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.capacity = capacity
        self.ttl_min = ttl_min
        self.ttl_max = max(ttl_max, ttl_min)
        self._clock = clock
        self._lock = threading.Lock()
        self._names: OrderedDict[str, tuple[str, float]] = OrderedDict()  # address -> (name, expires)

    def learn(self, question: str, answers: Iterable[Answer]) -> None:
        now = self._clock()
        found = resolved_addresses(question, answers)
        with self._lock:
            for address, ttl in found:
                expires = now + min(max(float(ttl), self.ttl_min), self.ttl_max)
                self._names.pop(address, None)
                self._names[address] = (question, expires)
            while len(self._names) > self.capacity:
                self._names.popitem(last=False)

    def name(self, address: str) -> str | None:
        with self._lock:
            entry = self._names.get(address)
            if entry is None:
                return None
            if entry[1] <= self._clock():
                del self._names[address]
                return None
            return entry[0]

    def __len__(self) -> int:
        return len(self._names)
