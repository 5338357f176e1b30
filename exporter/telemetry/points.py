"""What collectors hand to the telemetry pipeline: already-aggregated points per instrument."""

from __future__ import annotations

from dataclasses import dataclass

# Attribute sets are tuples of (name, value) pairs so they can key dicts. Values are strings,
# or ints where the semantic convention says int (process.pid).
Attributes = tuple[tuple[str, str | int], ...]


@dataclass(frozen=True, slots=True)
class HistogramValue:
    bucket_counts: tuple[int, ...]  # len(bounds) + 1, not cumulative
    sum: float
    count: int


Points = dict[Attributes, float | HistogramValue]
# instrument name -> its points
Snapshot = dict[str, Points]
