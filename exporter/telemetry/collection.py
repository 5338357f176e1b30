"""One collection: every source read once, its rows attributed, the series table brought up to date.

A scrape, an OTLP push and the records output all start from the latest collection; one younger
than `min_interval` is reused, so a scrape and a push at the same moment read the kernel once, and
two scrapes at once render once. Callers hold `lock` around fresh() and what they read after it.
A source that fails is reported (netobs_collector_success 0, an error in the log) and its series
are left out of that collection, as node_exporter does; the others go on."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from exporter.series.health import HealthFigures, HealthKey
from exporter.series.rows import AttributedRow, Owner, Process, Row, process_of
from exporter.telemetry.heap import Heap
from exporter.telemetry.table import SeriesTable

log = logging.getLogger(__name__)

HEALTH_SOURCE = "netobs"
_HEALTH_OWNER = Owner(0, "")
_HEALTH_PROCESS = Process({})


class AttachResultLike(Protocol):
    program: str

    @property
    def attached(self) -> bool: ...


class Source(Protocol):
    """What the collection needs of a collector (exporter/collectors/base.py)."""

    name: str
    lock: threading.Lock
    attach_results: list

    def refresh(self) -> None:
        """Brings what rows() returns up to date with the kernel."""

    def rows(self) -> Sequence[Row]: ...

    def lost(self) -> Mapping[str, int]: ...

    def counters(self) -> Mapping[str, int]:
        """Self-metrics of its own: instrument name -> value."""
        ...


Attribute = Callable[[str, Sequence[Row]], list[AttributedRow]]
HealthExtra = Callable[[], list[tuple[str, tuple[tuple[str, str | int], ...], int | float]]]


def unattributed(_source: str, rows: Sequence[Row]) -> list[AttributedRow]:
    """Rows with only what the kernel said of their process (no attribution stage)."""
    processes: dict[Owner, Process] = {}
    out = []
    for row in rows:
        process = processes.get(row.owner)
        if process is None:
            process = processes[row.owner] = process_of(row.owner)
        out.append(AttributedRow(row, process))
    return out


@dataclass
class SourceHealth:
    duration: float = 0.0  # seconds the last read of its kernel tables took
    success: bool = False


@dataclass
class Collection:
    sources: Sequence[Source]
    table: SeriesTable
    attribute: Attribute = unattributed
    health_extra: HealthExtra | None = None  # more self-metric values, read at each collection
    min_interval: float = 1.0
    clock_ns: Callable[[], int] = time.time_ns  # the time of a collection's points
    timer: Callable[[], float] = time.perf_counter  # measures each source's read
    lock: threading.Lock = field(default_factory=threading.Lock)
    health: dict[str, SourceHealth] = field(default_factory=dict)
    heap: Heap = field(default_factory=Heap)
    _attributed: dict[str, list[AttributedRow]] = field(default_factory=dict)
    _at: float = -1e18

    def fresh(self) -> None:
        """Collects unless the last collection is younger than min_interval. Call with `lock` held."""
        if time.monotonic() - self._at >= self.min_interval:
            self._collect()
            self._at = time.monotonic()

    def attributed(self, source: str) -> list[AttributedRow]:
        """The rows of a source in the last collection, attributed and filtered (for its records)."""
        return self._attributed.get(source, [])

    def _collect(self) -> None:
        now_ns = self.clock_ns()
        for source in self.sources:
            health = self.health.setdefault(source.name, SourceHealth())
            began = self.timer()
            try:
                with source.lock:
                    source.refresh()
                    rows = source.rows()
                health.duration = self.timer() - began
                attributed = self.attribute(source.name, rows)
                health.success = True
            except Exception as e:  # a broken collector must not take the others down
                log.error("collector %s failed: %s", source.name, e, exc_info=log.isEnabledFor(logging.DEBUG))
                attributed, health.success = [], False
            self._attributed[source.name] = attributed
            self.table.update(source.name, attributed, now_ns)
        self.table.limits.settle()
        self.table.update(HEALTH_SOURCE, self._health_rows(), now_ns)
        self.table.commit(now_ns)
        self.heap.settle()

    def _health_rows(self) -> list[AttributedRow]:
        rows = []

        def add(instrument: str, attributes: tuple[tuple[str, str | int], ...], value: int | float) -> None:
            row = Row(HealthKey(instrument, attributes), _HEALTH_OWNER, HealthFigures(value))
            rows.append(AttributedRow(row, _HEALTH_PROCESS))

        for source in self.sources:
            name = source.name
            for result in source.attach_results:
                add("netobs.program.attached", (("collector", name), ("program", result.program)), int(result.attached))
            health = self.health.get(name, SourceHealth())
            add("netobs.collector.duration", (("collector", name),), health.duration)
            add("netobs.collector.success", (("collector", name),), int(health.success))
            for reason, n in source.lost().items():
                add("netobs.events.lost", (("collector", name), ("reason", reason)), n)
            for instrument, n in source.counters().items():
                add(instrument, (), n)
        limits = self.table.limits
        for instrument in self.table.kernel_instruments():
            add("netobs.series", (("instrument", instrument),), limits.counts.get(instrument, 0))
            add("netobs.series.dropped", (("instrument", instrument),), limits.dropped.get(instrument, 0))
        add("netobs.series.limit", (), limits.max_series)
        for instrument, attributes, value in self.health_extra() if self.health_extra is not None else ():
            add(instrument, attributes, value)
        return rows
