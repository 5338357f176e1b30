"""Keeps Python's cyclic garbage collector off the long-lived series.

The series table holds several objects per series (hundreds of thousands at 20,000 flows), all
long-lived. Left alone, the collector rescans them whenever enough new objects survive, which a
collection that changes many rows does: on 20,000 flows that multiplied the cost of building a push
by ten. So after each collection whatever survived is frozen (gc.freeze(): the collector ignores it
from then on; refcounting still frees it) and, every FULL_INTERVAL, everything is thawed and
collected once, for the rare garbage that only the cyclic collector can free."""

from __future__ import annotations

import gc
import time
from collections.abc import Callable

FULL_INTERVAL = 300.0  # seconds between two full collections of the whole heap


class Heap:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._last_full = clock()

    def settle(self) -> None:
        """After a collection: freeze what survived; collect everything now and then."""
        if self._clock() - self._last_full >= FULL_INTERVAL:
            gc.unfreeze()
            gc.collect()
            self._last_full = self._clock()
        gc.freeze()
