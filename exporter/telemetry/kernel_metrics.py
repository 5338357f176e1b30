"""Kernel aggregates as OpenTelemetry metric data.

The OpenTelemetry Python SDK has no way to observe a pre-aggregated histogram, and a
record() per event would cost Python time per packet. So collectors' snapshots are turned
straight into Sum/Gauge/Histogram points and merged into whatever each metric reader
collects (Prometheus scrape, OTLP push): one path, the same numbers everywhere."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    Gauge,
    Histogram,
    HistogramDataPoint,
    Metric,
    MetricsData,
    NumberDataPoint,
    ScopeMetrics,
    Sum,
)
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

from exporter import __version__
from exporter.collectors.base import Collector
from exporter.telemetry.instruments import ALL, Instrument
from exporter.telemetry.points import Attributes, HistogramValue, Points, Snapshot

log = logging.getLogger(__name__)
SCOPE = InstrumentationScope("netobs.kernel", __version__)
CUMULATIVE = AggregationTemporality.CUMULATIVE


@dataclass
class CollectorHealth:
    duration: float = 0.0
    success: bool = False
    series: dict[str, int] = field(default_factory=dict)
    dropped: dict[str, int] = field(default_factory=dict)


class KernelMetrics:
    def __init__(self, collectors: Sequence[Collector], tags: Mapping[str, str], max_series: int,
                 min_interval: float = 1.0, decorate: Callable[[str, Snapshot], Snapshot] | None = None) -> None:
        self.collectors = collectors
        self.decorate = decorate  # the attribution stage (exporter/enrich/series.py)
        self.tags: Attributes = tuple(sorted(tags.items()))
        self.max_series = max_series
        self.min_interval = min_interval
        self.health: dict[str, CollectorHealth] = {c.name: CollectorHealth() for c in collectors}
        self._lock = threading.Lock()
        self._cached: list[Metric] = []
        self._cached_at = -1e18
        self._start_ns: dict[str, dict[Attributes, int]] = {}
        self._exported: dict[str, set[Attributes]] = {}

    # ------------------------------------------------------------------ collection

    def metrics(self) -> list[Metric]:
        """The current metrics; snapshots younger than min_interval are reused, so a scrape and
        an OTLP push at the same moment read the kernel maps once."""
        with self._lock:
            if time.monotonic() - self._cached_at >= self.min_interval:
                self._cached = self._collect()
                self._cached_at = time.monotonic()
            return self._cached

    def _collect(self) -> list[Metric]:
        now = time.time_ns()
        out: list[Metric] = []
        for collector in self.collectors:
            health = self.health[collector.name]
            began = time.perf_counter()
            try:
                with collector.lock:
                    snapshot = collector.snapshot()
                if self.decorate is not None:
                    snapshot = self.decorate(collector.name, snapshot)
                health.success = True
            except Exception as e:  # a broken collector must not take the others down
                log.error("collector %s failed: %s", collector.name, e, exc_info=log.isEnabledFor(10))
                snapshot, health.success = {}, False
            health.duration = time.perf_counter() - began
            out += self._to_metrics(snapshot, health, now)
        return out

    def _to_metrics(self, snapshot: Snapshot, health: CollectorHealth, now: int) -> list[Metric]:
        metrics = []
        for name, points in snapshot.items():
            instrument = ALL[name]
            points = self._limit(name, points, health)
            health.series[name] = len(points)
            metrics.append(Metric(name=name, description=instrument.description, unit=instrument.unit,
                                  data=self._data(instrument, points, now)))
        return metrics

    def _limit(self, name: str, points: Points, health: CollectorHealth) -> Points:
        """At most max_series series per instrument; series exported before keep their place,
        new ones beyond the limit are dropped and counted, never folded into others."""
        exported = self._exported.setdefault(name, set())
        exported &= points.keys()
        if len(points) <= self.max_series:
            exported |= points.keys()
            return points
        kept = {a: v for a, v in points.items() if a in exported}
        for attrs, value in points.items():
            if len(kept) >= self.max_series:
                break
            kept.setdefault(attrs, value)
        exported.clear()
        exported |= kept.keys()
        health.dropped[name] = health.dropped.get(name, 0) + len(points) - len(kept)
        return kept

    def _data(self, instrument: Instrument, points: Points, now: int) -> Sum | Gauge | Histogram:
        # A series that expired and comes back starts afresh.
        before = self._start_ns.get(instrument.name, {})
        start = self._start_ns[instrument.name] = {a: before.get(a, now) for a in points}
        if instrument.kind == "histogram":
            hist = []
            for attrs, value in points.items():
                assert isinstance(value, HistogramValue)
                hist.append(HistogramDataPoint(
                    attributes=dict(attrs + self.tags), start_time_unix_nano=start[attrs],
                    time_unix_nano=now, count=value.count, sum=value.sum,
                    bucket_counts=list(value.bucket_counts), explicit_bounds=list(instrument.bounds),
                    # not tracked: None leaves OTLP's optional min/max unset (NaN would be sent as is)
                    min=None, max=None))  # type: ignore[arg-type]
            return Histogram(data_points=hist, aggregation_temporality=CUMULATIVE)
        numbers = [NumberDataPoint(attributes=dict(attrs + self.tags),
                                   start_time_unix_nano=start[attrs],
                                   time_unix_nano=now, value=value)
                   for attrs, value in points.items() if not isinstance(value, HistogramValue)]
        if instrument.kind == "gauge":
            return Gauge(data_points=numbers)
        return Sum(data_points=numbers, aggregation_temporality=CUMULATIVE,
                   is_monotonic=instrument.kind == "counter")

    # ------------------------------------------------------------------ merging

    def merge(self, data: MetricsData) -> MetricsData:
        """Adds the kernel metrics, and Common.Tags on every series, to what a reader collected."""
        if not data.resource_metrics:
            return data
        first, *rest = data.resource_metrics
        scopes = [self._tagged(sm) for sm in first.scope_metrics] if self.tags else list(first.scope_metrics)
        scopes.append(ScopeMetrics(scope=SCOPE, metrics=self.metrics(), schema_url=""))
        return MetricsData(resource_metrics=[replace(first, scope_metrics=scopes), *rest])

    def _tagged(self, sm: ScopeMetrics) -> ScopeMetrics:
        metrics = []
        for m in sm.metrics:
            data: Any = m.data  # every kind of data has data_points of its own point type
            points = [replace(p, attributes={**(p.attributes or {}), **dict(self.tags)}) for p in data.data_points]
            metrics.append(replace(m, data=replace(data, data_points=points)))
        return replace(sm, metrics=metrics)
