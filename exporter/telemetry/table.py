"""The series as they are exported: attributed rows in, one entry per exported series out.

The points of a kind of row are grouped into views: points that share an aggregation level (a
level keeps some of the key's attributes, netflow's `peer` keeps the destination but not the source)
and a selection of process attributes (Attributes.Process, Attributes.Instruments). In a view, rows
whose attributes come out the same add up into one series: counters, up-down counters and
histograms are summed, gauges take the largest value. A counter stays monotonic when one of the rows
it adds up goes away (its flow expired, its process exited): that row's last value is kept in the
sum for as long as the series lives.

A series keeps the attributes it was made with, its start time and its place in a block of series.
Every change of its values bumps a version, and so does every change of a block's membership, so the
renderers redo only what changed: the cost of a collection follows the number of rows, with a few
dictionary operations for a row that did not change, and the cost of rendering follows what changed.

Each instrument exports at most `max_series` series. Series exported before keep their place; new
ones beyond the limit wait, are counted as dropped at every collection they wait through, and are
admitted as places free up, oldest first. No series is ever folded into another."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

from exporter.series.instruments import SELF, Instrument
from exporter.series.rows import AttributedRow, Attributes, Figure, HistogramValue, Owner
from exporter.telemetry.naming import Kind, Point, kind_of

BLOCK_SIZE = 128  # series per block: what one page of rendered text holds
PartId = tuple[Any, Owner]  # a row's key and owner: one row of one collector

_versions = itertools.count(1)  # one counter for every version, so a version is never seen twice


@dataclass(frozen=True)
class Plan:
    """What the configuration says about the export of every point."""

    instruments: Mapping[str, Instrument]  # the instrument table, with configured bucket bounds
    level_of: Callable[[Kind, Point], str | None]  # a point's aggregation level; None: not exported
    selection_of: Callable[[str], frozenset[str]]  # the process attributes an instrument keeps
    tags: Attributes = ()  # Common.Tags, on every series; a tag replaces an attribute of its name
    max_series: int = 20000  # per instrument (Telemetry.MaxSeriesPerInstrument)
    unlimited: frozenset[str] = frozenset(SELF)  # instruments the limit does not apply to: the exporter's own


class Series:
    """One exported series of a view: the points of its view, with one set of attributes."""

    __slots__ = ("admitted", "attributes", "block", "cache", "carry", "changes", "identity", "parts", "start_ns",
                 "values", "version")

    def __init__(self, identity: Attributes, attributes: Attributes, start_ns: int, points: int) -> None:
        self.identity = identity  # the key's and the process's attributes: what the view adds up by
        self.attributes = attributes  # the identity with Common.Tags
        self.start_ns = start_ns
        self.parts: dict[PartId, Part] = {}
        self.carry: list[Figure] | None = None  # last values of departed parts (monotonic points)
        self.changes: list[tuple[tuple[Figure, ...], tuple[Figure, ...]]] | None = None  # see View._update
        self.values: tuple[Figure, ...] = (None,) * points
        self.admitted = 0  # bit j: point j counts against its instrument's limit and is exported
        self.version = next(_versions)
        self.block: Block | None = None
        self.cache: dict[Any, Any] = {}  # the renderers' own

    def exported(self, j: int) -> bool:
        return bool(self.admitted >> j & 1) and self.values[j] is not None


class Part:
    """One row in the series it adds to."""

    __slots__ = ("attributed", "generation", "series")

    def __init__(self, attributed: AttributedRow, series: Series, generation: int) -> None:
        self.attributed = attributed
        self.series = series
        self.generation = generation


class Block:
    """Up to BLOCK_SIZE series of one view, rendered together."""

    __slots__ = ("cache", "series", "versions")

    def __init__(self) -> None:
        self.series: list[Series] = []
        self.versions: dict[str, int] = {}  # instrument -> version of what the block holds for it
        self.cache: dict[Any, Any] = {}  # the renderers' own, checked against `versions`

    def changed(self, instrument: str) -> None:
        self.versions[instrument] = next(_versions)


def _sum(a: Figure, b: Figure) -> Figure:
    if a is None:
        return b
    if b is None:
        return a
    return a + b  # type: ignore[operator]


def _max(a: Figure, b: Figure) -> Figure:
    if a is None:
        return b
    if b is None:
        return a
    return max(a, b)  # type: ignore[type-var]


# How the values of the parts of a series add up, all at once: one pass over each column, since a
# series may add up thousands of rows (every flow of a workload) and a pairwise sum of histograms
# would build a tuple per row.
Merge = Callable[[list[Any]], Figure]


def _sum_all(values: list[Any]) -> Figure:
    return sum(values) if values else None


def _max_all(values: list[Any]) -> Figure:
    return max(values) if values else None


def _histograms_all(values: list[HistogramValue]) -> Figure:
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return HistogramValue(tuple(map(sum, zip(*(h.bucket_counts for h in values), strict=True))),
                          sum(h.sum for h in values), sum(h.count for h in values))


_MERGE_ALL: dict[str, Merge] = {"counter": _sum_all, "updowncounter": _sum_all, "gauge": _max_all,
                                "histogram": _histograms_all}


def _picker(indexes: tuple[int, ...]) -> Callable[[tuple[Figure, ...]], tuple[Figure, ...]]:
    """A function that takes the figures at `indexes` out of a row's figures, as a tuple."""
    if len(indexes) > 1:
        return itemgetter(*indexes)
    only = indexes[0]
    return lambda figures: (figures[only],)


def _shifted(values: tuple[Figure, ...], changes: list[tuple[tuple[Figure, ...], tuple[Figure, ...]]]
             ) -> tuple[Figure, ...]:
    """Totals with each change (a row's old and new values) applied: exact for integers; a float is
    rounded once per change (math.fsum), as adding the rows up again would round it."""
    totals = list(values)
    for old, new in changes:
        for j, (o, n) in enumerate(zip(old, new, strict=True)):
            if o != n:
                totals[j] = _shift(totals[j], o, n)
    return tuple(totals)


def _shift(total: Figure, old: Figure, new: Figure) -> Figure:
    if old is None:
        return _sum(total, new)
    if isinstance(total, HistogramValue):
        assert isinstance(old, HistogramValue) and isinstance(new, HistogramValue)
        return HistogramValue(tuple(t - o + n for t, o, n in zip(total.bucket_counts, old.bucket_counts,
                                                                     new.bucket_counts, strict=True)),
                              math.fsum((total.sum, -old.sum, new.sum)), total.count - old.count + new.count)
    assert isinstance(total, int | float) and isinstance(old, int | float)
    n = new if new is not None else 0
    if total.__class__ is int and old.__class__ is int and n.__class__ is int:
        return total - old + n  # type: ignore[operator]
    return math.fsum((total, -old, n))  # type: ignore[arg-type]


class View:
    """The points of one kind that share a level and a selection, and their series."""

    def __init__(self, kind: Kind, level: str, selection: frozenset[str], points: Sequence[Point],
                 plan: Plan, limits: Limits) -> None:
        self.kind = kind
        self.level = level
        self.selection = selection
        self.points = tuple(points)
        self.instruments = tuple(plan.instruments[p.instrument] for p in self.points)
        self._figures = tuple(p.figure for p in self.points)
        self._names = tuple(i.name for i in self.instruments)
        self._pick = _picker(self._figures)
        self._merge = tuple(_MERGE_ALL[i.kind] for i in self.instruments)
        self._carried = tuple(i.kind in ("counter", "histogram") for i in self.instruments)
        self._additive = all(i.kind != "gauge" for i in self.instruments)  # a change can be added to the total
        self._tags = plan.tags
        self._limits = limits
        self.series: dict[Attributes, Series] = {}
        self.parts: dict[PartId, Part] = {}
        self.blocks: list[Block] = []
        self._dirty: set[Series] = set()

    # ------------------------------------------------------------------ rows in

    def feed(self, attributed: AttributedRow, generation: int, now_ns: int) -> None:
        row = attributed.row
        part_id = (row.key, row.owner)
        part = self.parts.get(part_id)
        if part is not None:
            if part.attributed is attributed:
                part.generation = generation
                return
            before = part.attributed
            if before.process is attributed.process and before.remote == attributed.remote:
                self._update(part, attributed, generation)
                return
        key_attributes = self.kind.attributes(row.key, self.level, attributed.remote)
        identity = key_attributes + attributed.process.selected(self.selection)
        if part is not None:
            if identity == part.series.identity:  # new metadata, the same attributes: the same series
                self._update(part, attributed, generation)
                return
            self._leave(part_id, part)
        series = self.series.get(identity)
        if series is None:
            series = self._create(identity, now_ns)
        part = self.parts[part_id] = Part(attributed, series, generation)
        series.parts[part_id] = part
        self._recompute_later(series)

    def _update(self, part: Part, attributed: AttributedRow, generation: int) -> None:
        """A row of the part changed. A series that adds up many rows (every flow of a workload) is
        not added up again when few of them changed: their changes are added to its total."""
        before = part.attributed
        part.attributed, part.generation = attributed, generation
        series = part.series
        if len(series.parts) == 1:  # its values are compared with the row's when it is recomputed
            self._dirty.add(series)
            return
        old, new = self._pick(before.row.figures), self._pick(attributed.row.figures)
        if old == new:  # what changed is not among this view's points
            return
        if series not in self._dirty:
            self._dirty.add(series)
            series.changes = [] if self._additive and len(series.parts) > 1 else None
        changes = series.changes
        if changes is not None:
            if (len(changes) + 1) * 4 < len(series.parts):
                changes.append((old, new))
            else:  # too many: adding up again is cheaper
                series.changes = None

    def _recompute_later(self, series: Series) -> None:
        self._dirty.add(series)
        series.changes = None

    def finish(self, generation: int) -> None:
        """After the rows of a collection: parts not seen left; changed series get their values."""
        for part_id in [i for i, p in self.parts.items() if p.generation != generation]:
            self._leave(part_id, self.parts[part_id])
        for series in self._dirty:
            changes, series.changes = series.changes, None
            if not series.parts:
                self._remove(series)
            elif changes is not None:
                self._set_values(series, _shifted(series.values, changes))
            else:
                self._recompute(series)
        self._dirty.clear()

    def _leave(self, part_id: PartId, part: Part) -> None:
        series = part.series
        del series.parts[part_id]
        del self.parts[part_id]
        self._recompute_later(series)
        if series.parts and any(self._carried):
            figures = part.attributed.row.figures
            carry = series.carry or [None] * len(self.points)
            for j, carried in enumerate(self._carried):
                if carried:
                    carry[j] = _sum(carry[j], figures[self._figures[j]])
            series.carry = carry

    # ------------------------------------------------------------------ series

    def _create(self, identity: Attributes, now_ns: int) -> Series:
        attributes = identity
        if self._tags:
            names = {k for k, _ in self._tags}
            attributes = tuple(a for a in identity if a[0] not in names) + self._tags
        series = self.series[identity] = Series(identity, attributes, now_ns, len(self.points))
        block = self.blocks[-1] if self.blocks and len(self.blocks[-1].series) < BLOCK_SIZE else None
        if block is None:
            block = Block()
            self.blocks.append(block)
        block.series.append(series)
        series.block = block
        return series

    def _remove(self, series: Series) -> None:
        del self.series[series.identity]
        self._limits.release(self, series)
        block = series.block
        assert block is not None
        block.series.remove(series)
        for instrument in self.instruments:
            block.changed(instrument.name)
        if not block.series:
            self.blocks.remove(block)

    def _recompute(self, series: Series) -> None:
        parts = series.parts
        if len(parts) == 1 and series.carry is None:
            (part,) = parts.values()
            values = self._pick(part.attributed.row.figures)
        else:
            rows = [part.attributed.row.figures for part in parts.values()]
            carry = series.carry or (None,) * len(self.points)
            values = tuple(
                merge([v for f in rows if (v := f[i]) is not None] + ([] if carried is None else [carried]))
                for merge, i, carried in zip(self._merge, self._figures, carry, strict=True))
        self._set_values(series, values)

    def _set_values(self, series: Series, values: tuple[Figure, ...]) -> None:
        before = series.values
        if values == before:
            return
        series.values = values
        version = series.version = next(_versions)
        block = series.block
        assert block is not None
        versions, admitted = block.versions, series.admitted
        for j, (name, old, new) in enumerate(zip(self._names, before, values, strict=True)):
            if old != new:
                versions[name] = version
                if new is not None and not admitted >> j & 1:
                    self._limits.ask(self, series, j)

    def exported(self) -> Iterator[Series]:
        for block in self.blocks:
            yield from block.series


class Limits:
    """At most `max_series` series per instrument; the others wait, in the order they asked."""

    def __init__(self, max_series: int, unlimited: frozenset[str] = frozenset()) -> None:
        self.max_series = max_series
        self.unlimited = unlimited
        self.counts: dict[str, int] = {}  # instrument -> series admitted
        self.dropped: dict[str, int] = {}  # instrument -> series left out, summed over collections
        self._waiting: dict[str, dict[tuple[int, int], tuple[View, Series, int]]] = {}

    def ask(self, view: View, series: Series, j: int) -> None:
        """A series' point has a value: exported now if there is room, else it waits."""
        name = view.instruments[j].name
        count = self.counts.get(name, 0)
        if count < self.max_series or name in self.unlimited:
            self.counts[name] = count + 1
            series.admitted |= 1 << j  # its block's version for the instrument changed with the value
        else:
            self._waiting.setdefault(name, {})[id(series), j] = (view, series, j)

    def _admit(self, view: View, series: Series, j: int) -> None:
        name = view.instruments[j].name
        self.counts[name] = self.counts.get(name, 0) + 1
        series.admitted |= 1 << j
        assert series.block is not None
        series.block.changed(name)

    def release(self, view: View, series: Series) -> None:
        for j, instrument in enumerate(view.instruments):
            if series.admitted >> j & 1:
                self.counts[instrument.name] -= 1
            self._waiting.get(instrument.name, {}).pop((id(series), j), None)
        series.admitted = 0

    def settle(self) -> None:
        """Once the sources of a collection are in: waiting series take the places freed, the rest count
        as dropped."""
        for name, waiting in self._waiting.items():
            while waiting and self.counts.get(name, 0) < self.max_series:
                view, series, j = waiting.pop(next(iter(waiting)))
                self._admit(view, series, j)
            self.dropped[name] = self.dropped.get(name, 0) + len(waiting)


class SeriesTable:
    """Every view of every kind, fed one collector at a time."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.limits = Limits(plan.max_series, plan.unlimited)
        self.views: list[View] = []  # in the order they appeared
        self._views_of: dict[Kind, list[View]] = {}
        self._views_by_source: dict[str, list[View]] = {}
        self._generation = 0
        self.time_ns = 0  # wall time of the last collection
        self.version = 0  # bumped at every commit

    def update(self, source: str, rows: Sequence[AttributedRow], now_ns: int) -> None:
        """All the rows a source has now: rows it no longer has leave their series."""
        self._generation += 1
        generation = self._generation
        for attributed in rows:
            kind = kind_of(attributed.row.key)
            views = self._views_of.get(kind)
            if views is None:
                views = self._add_views(source, kind)
            for view in views:
                view.feed(attributed, generation, now_ns)
        for view in self._views_by_source.get(source, ()):
            view.finish(generation)

    def commit(self, now_ns: int) -> None:
        """The collection is complete: renderers see it as new."""
        self.time_ns = now_ns
        self.version += 1

    def _add_views(self, source: str, kind: Kind) -> list[View]:
        groups: dict[tuple[str, frozenset[str]], list[Point]] = {}
        for point in kind.points:
            level = self.plan.level_of(kind, point)
            if level is not None:
                groups.setdefault((level, self.plan.selection_of(point.instrument)), []).append(point)
        views = [View(kind, level, selection, points, self.plan, self.limits)
                 for (level, selection), points in groups.items()]
        self._views_of[kind] = views
        self._views_by_source.setdefault(source, []).extend(views)
        self.views.extend(views)
        return views

    def series_count(self, instrument: str) -> int:
        return self.limits.counts.get(instrument, 0)

    def instruments(self) -> list[str]:
        """The instruments that have views, in the order of the instrument table."""
        present = {i.name for v in self.views for i in v.instruments}
        return [name for name in self.plan.instruments if name in present]

    def kernel_instruments(self) -> list[str]:
        """The instruments with views that the series limit applies to."""
        return [name for name in self.instruments() if name not in self.plan.unlimited]

    def contributions(self, instrument: str) -> list[tuple[View, tuple[int, ...]]]:
        """The views that feed an instrument, with the indexes of their points for it."""
        out = []
        for view in self.views:
            js = tuple(j for j, i in enumerate(view.instruments) if i.name == instrument)
            if js:
                out.append((view, js))
        return out
