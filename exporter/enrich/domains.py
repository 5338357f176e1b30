"""Which name resolved to an address: learnt from the DNS answers the exporter sees.

The dns collector teaches it (from its ring-buffer thread), the attribution stage asks it (at each
collection): each call is a few dict operations under one lock. Entries live for the record's TTL,
clamped to [ttl_min, ttl_max], and the table never holds more than `capacity` addresses (the oldest
learnt go first). `version` changes whenever something is learnt, so a series whose peer had no
name need not ask again until then."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable


class DomainCache:
    def __init__(self, capacity: int, ttl_min: float, ttl_max: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.capacity = capacity
        self.ttl_min = ttl_min
        self.ttl_max = max(ttl_max, ttl_min)
        self.version = 0
        self._clock = clock
        self._lock = threading.Lock()
        self._names: OrderedDict[str, tuple[str, float]] = OrderedDict()  # address -> (name, expires)

    def learn(self, question: str, addresses: Iterable[tuple[str, int]]) -> None:
        """`question` resolved to these (address, TTL in seconds)."""
        now = self._clock()
        with self._lock:
            for address, ttl in addresses:
                expires = now + min(max(float(ttl), self.ttl_min), self.ttl_max)
                self._names.pop(address, None)
                self._names[address] = (question, expires)
            while len(self._names) > self.capacity:
                self._names.popitem(last=False)
            self.version += 1

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
