"""The attribution stage of the series: collectors' snapshots in, attributed and filtered snapshots out.

Collectors name the process of a series with `process.pid` and `process.executable.name`. Here those
two are replaced by the process's attributes (attribution.py) that the instrument's selection keeps
(Attributes.Process, Attributes.Instruments); series of processes the filters do not watch are
dropped. Series that end up with the same attributes (several processes of one pod when `process.pid`
is not kept) are added up: counters, up-down counters and histograms are summed, gauges take the
largest value. A counter stays monotonic when one of the series it adds up goes away (its process's
flow expired): its last value is kept in the sum for as long as the merged series lives.

A series is bound to the process it was first seen with: if its pid is later reused by another
process, the series keeps the first one's attributes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from exporter.enrich.attribution import Attribution, Workload
from exporter.telemetry.attributes import COMM, PID, selected
from exporter.telemetry.instruments import ALL
from exporter.telemetry.points import Attributes, HistogramValue, Points, Snapshot

Value = float | HistogramValue


def _add(a: Value, b: Value) -> Value:
    if isinstance(a, HistogramValue) and isinstance(b, HistogramValue):
        return HistogramValue(tuple(x + y for x, y in zip(a.bucket_counts, b.bucket_counts, strict=True)),
                              a.sum + b.sum, a.count + b.count)
    assert not isinstance(a, HistogramValue) and not isinstance(b, HistogramValue)
    return a + b


@dataclass
class _Merged:
    """One output series of a monotonic instrument: what it adds up, and what went away."""

    parts: dict[Attributes, Value] = field(default_factory=dict)
    carry: Value | None = None


@dataclass
class _CollectorState:
    bindings: dict[Attributes, Workload] = field(default_factory=dict)  # raw series -> its process
    finals: dict[tuple[Attributes, frozenset[str]], tuple[Workload, Attributes]] = field(default_factory=dict)
    merged: dict[str, dict[Attributes, _Merged]] = field(default_factory=dict)  # instrument -> output series


class SeriesAttribution:
    def __init__(self, attribution: Attribution, default: frozenset[str],
                 per_instrument: Mapping[str, frozenset[str]]) -> None:
        self.attribution = attribution
        self.default = default
        self.per_instrument = dict(per_instrument)
        self._selection: dict[str, frozenset[str]] = {}
        self._state: dict[str, _CollectorState] = {}

    def selection(self, instrument: str) -> frozenset[str]:
        """Attributes.Instruments' longest matching name or prefix, else Attributes.Process."""
        found = self._selection.get(instrument)
        if found is None:
            keys = [k for k in self.per_instrument if instrument == k or instrument.startswith(k + ".")]
            found = self.per_instrument[max(keys, key=len)] if keys else self.default
            self._selection[instrument] = found
        return found

    def decorate(self, collector: str, snapshot: Snapshot) -> Snapshot:
        state = self._state.setdefault(collector, _CollectorState())
        processes: dict[int, Workload] = {}  # one /proc look per pid and collection
        seen: set[Attributes] = set()
        out: Snapshot = {}
        for name, points in snapshot.items():
            sel = self.selection(name)
            monotonic = ALL[name].kind in ("counter", "histogram") if name in ALL else False
            merged: Points = {}
            parts: dict[Attributes, dict[Attributes, Value]] = {}
            for raw, value in points.items():
                final = self._final(state, raw, sel, processes)
                if final is None:
                    continue
                seen.add(raw)
                had = merged.get(final)
                if had is None:
                    merged[final] = value
                elif monotonic or ALL[name].kind == "updowncounter":
                    merged[final] = _add(had, value)
                else:
                    merged[final] = max(had, value)  # type: ignore[type-var]
                if monotonic:
                    parts.setdefault(final, {})[raw] = value
            if monotonic:
                self._carry(state.merged.setdefault(name, {}), parts, merged)
            out[name] = merged
        state.bindings = {raw: w for raw, w in state.bindings.items() if raw in seen}
        state.finals = {k: v for k, v in state.finals.items() if k[0] in seen}
        return out

    def _final(self, state: _CollectorState, raw: Attributes, sel: frozenset[str],
               processes: dict[int, Workload]) -> Attributes | None:
        """The attributes of a series once attributed; None when its process is not watched."""
        pid = comm = None
        for key, value in raw:
            if key == PID:
                pid = value
            elif key == COMM:
                comm = value
        if not isinstance(pid, int):
            return raw
        current = processes.get(pid)
        if current is None:
            current = processes[pid] = self.attribution.process(pid, str(comm or ""))
        bound = state.bindings.get(raw)
        workload = bound if bound is not None and bound.start and current.start != bound.start else current
        state.bindings[raw] = workload
        if not workload.watched:
            return None
        cached = state.finals.get((raw, sel))
        if cached is not None and cached[0] is workload:
            return cached[1]
        final = tuple((k, v) for k, v in raw if k not in (PID, COMM))
        final += tuple(sorted((k, v) for k, v in workload.attributes.items() if selected(k, sel) and v != ""))
        state.finals[(raw, sel)] = (workload, final)
        return final

    @staticmethod
    def _carry(state: dict[Attributes, _Merged], parts: dict[Attributes, dict[Attributes, Value]],
               merged: Points) -> None:
        """Keeps the last value of parts that went away inside the sums that still have other parts."""
        for final in [f for f in state if f not in merged]:
            del state[final]
        for final, now in parts.items():
            entry = state.setdefault(final, _Merged())
            for raw, value in entry.parts.items():
                if raw not in now:
                    entry.carry = value if entry.carry is None else _add(entry.carry, value)
            entry.parts = now
            if entry.carry is not None:
                merged[final] = _add(merged[final], entry.carry)
