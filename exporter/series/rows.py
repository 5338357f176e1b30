"""What flows from the collectors to the telemetry: typed rows of kernel aggregates.

A collector says what it counted as rows: a typed key (what the series is about: a flow, a DNS
question, an HTTP route), the owner the kernel saw (pid and comm), and typed figures (cumulative
counts, histograms, gauges). It never names attributes: the telemetry turns keys into attributes,
Prometheus labels, OTLP key-values and iLogtail fields, once per series. Attribution adds the
process, container and pod as a `Process`, so a row stays typed until it is rendered.

A collector hands back the same Row object while a series does not change, so the stages after it
can tell what changed by identity, and their cost follows what changed."""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

from exporter.series.attributes import selected
from exporter.series.peers import NOWHERE, Remote

# Attribute sets are tuples of (name, value) pairs so they can key dicts. Values are strings,
# or ints where the semantic convention says int (process.pid, server.port).
Attributes = tuple[tuple[str, str | int], ...]


class Key(Hashable, Protocol):
    """What every row key has besides its own fields."""

    @property
    def peer(self) -> str | None:
        """The address of the other side, when the key has it: what its DNS name and Kubernetes
        identity are looked up by (exporter/series/peers.py Remote). None: the key has no remote address."""
        ...


class Owner(NamedTuple):
    """The process the kernel charged a row to, as it was when the kernel first saw the row's socket,
    query or series: enough to attribute it after the process is gone (exporter/enrich/attribution.py)."""

    pid: int
    comm: str  # the kernel's name of the process (its main thread), at most 15 characters
    start: int = 0  # its start, clock ticks after boot (field 22 of /proc/<pid>/stat); 0: not known
    cgroup_id: int = 0  # its cgroup v2 id; 0: not known


@dataclass(frozen=True, slots=True)
class HistogramValue:
    bucket_counts: tuple[int, ...]  # len(bounds) + 1, not cumulative
    sum: float
    count: int

    def __add__(self, other: HistogramValue) -> HistogramValue:
        return HistogramValue(tuple(a + b for a, b in zip(self.bucket_counts, other.bucket_counts, strict=True)),
                              self.sum + other.sum, self.count + other.count)


Figure = int | float | HistogramValue | None  # None: the series has no such point (yet)


@dataclass(slots=True, eq=False)
class Row:
    """Never changed once made (a changed series is a new Row). Not a frozen dataclass only because
    one of those takes ~3 times as long to build, and a busy node builds one per flow per collection."""

    key: Key
    owner: Owner
    figures: tuple[Figure, ...]  # a NamedTuple of the key's figures type


@dataclass(eq=False)
class Process:
    """The process a row belongs to, as attribution found it. Shared by every row of the process
    until its metadata changes, so stages compare it by identity."""

    attributes: Mapping[str, str | int]  # every attribute known; instruments select theirs
    records: Mapping[str, str] = field(default_factory=dict)  # iLogtail record fields of the container and pod
    cmdline: str = ""
    _selected: dict[frozenset[str], Attributes] = field(default_factory=dict, repr=False)

    def selected(self, selection: frozenset[str]) -> Attributes:
        """The attributes a selection keeps, sorted, empty values left out."""
        found = self._selected.get(selection)
        if found is None:
            found = self._selected[selection] = tuple(sorted(
                (k, v) for k, v in self.attributes.items() if v != "" and selected(k, selection)))
        return found


def process_of(owner: Owner) -> Process:
    """What is known of a process without attribution: its pid and kernel name."""
    return Process({"process.pid": owner.pid, "process.executable.name": owner.comm}, cmdline=owner.comm)


class AttributedRow(NamedTuple):
    row: Row
    process: Process
    remote: Remote = NOWHERE  # what is known of the row's peer: its DNS name, its Kubernetes identity
