"""The series table as OTLP: serialized ExportMetricsServiceRequest messages, written directly.

The OpenTelemetry SDK's encoder builds a protobuf object per data point, ~25 us each; here the wire
format is written by hand. A series' attributes are encoded once, when it is first pushed; a point
is its attributes, its own attributes (network.io.direction), its start time and value, then the
push's time (the last field, so the points of a metric are joined with it in one call). A push is
split into requests of at most `max_bytes`, made one at a time, so memory while pushing is one
request, not the whole push. Sums and histograms are cumulative.

Field numbers are those of opentelemetry-proto (opentelemetry/proto/metrics/v1/metrics.proto,
common/v1/common.proto, collector/metrics/v1/metrics_service.proto); the unit tests decode what is
written here with the official generated classes."""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

from exporter import __version__
from exporter.series.instruments import Instrument, scope_of
from exporter.series.rows import Attributes, Figure, HistogramValue
from exporter.telemetry.table import Series, SeriesTable, View

MAX_REQUEST_BYTES = 2 * 1024 * 1024  # well under the 4 MiB a gRPC server accepts by default
CUMULATIVE = 2  # AggregationTemporality


def varint(n: int) -> bytes:
    if n < 0x80:
        return bytes((n,))
    out = bytearray()
    while n >= 0x80:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def field(number: int, payload: bytes) -> bytes:
    """A length-delimited field (wire type 2)."""
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def any_value(value: str | int | float | bool) -> bytes:
    if isinstance(value, str):
        return field(1, value.encode())
    if isinstance(value, bool):
        return b"\x10" + (b"\x01" if value else b"\x00")
    if isinstance(value, int):
        return b"\x18" + varint(value & 0xFFFFFFFFFFFFFFFF)
    return b"\x21" + struct.pack("<d", value)


def key_values(attributes: Iterable[tuple[str, str | int]]) -> list[bytes]:
    """Each attribute as a length-prefixed KeyValue, ready for the tag of the field that holds it."""
    out = []
    for key, value in attributes:
        kv = field(1, key.encode()) + field(2, any_value(value))
        out.append(varint(len(kv)) + kv)
    return out


def repeated(tag: int, encoded: list[bytes]) -> bytes:
    prefix = bytes((tag,))
    return b"".join(prefix + kv for kv in encoded)


_NUMBER_ATTRIBUTES, _HISTOGRAM_ATTRIBUTES = 0x3A, 0x4A  # field 7 of NumberDataPoint, 9 of HistogramDataPoint


@dataclass
class Snapshot:
    """What one push sends, taken under the collection's lock and encoded outside it: the values are
    immutable tuples, so later collections do not change what a snapshot holds."""

    time_ns: int
    instruments: list[tuple[Instrument, list[tuple[View, tuple[int, ...]]]]]
    views: dict[int, tuple[list[Series], list[tuple[Figure, ...]]]]  # id(view) -> its series and their values


def snapshot(table: SeriesTable) -> Snapshot:
    """Two lists per view (no object per series: a snapshot must not feed the garbage collector)."""
    views = {}
    for view in table.views:
        series = list(view.exported())
        views[id(view)] = (series, [s.values for s in series])
    instruments = [(table.plan.instruments[name], table.contributions(name)) for name in table.instruments()]
    return Snapshot(table.time_ns, instruments, views)


class Encoder:
    def __init__(self, resource: Mapping[str, str | int], max_bytes: int = MAX_REQUEST_BYTES) -> None:
        self.max_bytes = max_bytes
        self._resource = field(1, repeated(0x0A, key_values(resource.items())))
        self._scopes = {name: field(1, field(1, name.encode()) + field(2, __version__.encode()))
                        for name in ("netobs.kernel", "netobs.exporter")}
        self._extra: dict[tuple[Attributes, int], bytes] = {}

    def requests(self, snap: Snapshot) -> Iterator[bytes]:
        """The push, as requests of at most max_bytes (a lone point larger than that still goes)."""
        time_field = b"\x19" + struct.pack("<Q", snap.time_ns)
        pending: list[tuple[str, bytes]] = []
        size = 0
        for instrument, contributions in snap.instruments:
            for points in self._chunks(instrument, contributions, snap, time_field):
                metric = self._metric(instrument, points)
                if pending and size + len(metric) > self.max_bytes:
                    yield self._request(pending)
                    pending, size = [], 0
                pending.append((scope_of(instrument.name), metric))
                size += len(metric)
        if pending:
            yield self._request(pending)

    def _chunks(self, instrument: Instrument, contributions: list[tuple[View, tuple[int, ...]]], snap: Snapshot,
                time_field: bytes) -> Iterator[bytes]:
        """The instrument's points, framed as data_points fields, in runs of at most max_bytes."""
        histogram = instrument.kind == "histogram"
        tag = _HISTOGRAM_ATTRIBUTES if histogram else _NUMBER_ATTRIBUTES
        bounds = self._bounds(instrument) if histogram else b""
        heads: list[bytes] = []
        size = 0
        for view, js in contributions:
            all_series, all_values = snap.views[id(view)]
            for series, values in zip(all_series, all_values, strict=True):
                series_heads, series_size = self._heads(view, js, series, values, tag, bounds)
                if heads and size + series_size > self.max_bytes:
                    yield time_field.join(heads) + time_field
                    heads, size = [], 0
                heads += series_heads
                size += series_size
        if heads:
            yield time_field.join(heads) + time_field

    def _heads(self, view: View, js: tuple[int, ...], series: Series, values: tuple[Figure, ...], tag: int,
               bounds: bytes) -> tuple[list[bytes], int]:
        """The series' points of one instrument up to their time, and their size with it. Only the
        series' attributes are kept between pushes: the points would cost as much memory as a push."""
        attributes = _series_attributes(series, tag)
        heads = []
        size = 0
        for j in js:
            value = values[j]
            if value is None or not series.admitted >> j & 1:
                continue
            extra = attributes + self._extra_attributes(view.points[j].extra, tag)
            head = (histogram_head(extra, series.start_ns, value, bounds) if isinstance(value, HistogramValue)
                    else number_head(extra, series.start_ns, value))
            heads.append(head)
            size += len(head) + 9
        return heads, size

    def _extra_attributes(self, extra: Attributes, tag: int) -> bytes:
        if not extra:
            return b""
        encoded = self._extra.get((extra, tag))
        if encoded is None:
            encoded = self._extra[extra, tag] = repeated(tag, key_values(extra))
        return encoded

    @staticmethod
    def _bounds(instrument: Instrument) -> bytes:
        return field(7, struct.pack(f"<{len(instrument.bounds)}d", *instrument.bounds))

    @staticmethod
    def _metric(instrument: Instrument, points: bytes) -> bytes:
        header = (field(1, instrument.name.encode()) + field(2, instrument.description.encode())
                  + field(3, instrument.unit.encode()))
        if instrument.kind == "gauge":
            return header + field(5, points)
        if instrument.kind == "histogram":
            return header + field(9, points + bytes((0x10, CUMULATIVE)))
        monotonic = b"\x18\x01" if instrument.kind == "counter" else b"\x18\x00"
        return header + field(7, points + bytes((0x10, CUMULATIVE)) + monotonic)

    def _request(self, metrics: list[tuple[str, bytes]]) -> bytes:
        scopes: dict[str, list[bytes]] = {}
        for scope, metric in metrics:
            scopes.setdefault(scope, []).append(metric)
        scope_metrics = b"".join(field(2, self._scopes[scope] + b"".join(field(2, m) for m in ms))
                                 for scope, ms in scopes.items())
        return field(1, self._resource + scope_metrics)


def _series_attributes(series: Series, tag: int) -> bytes:
    """A series' attributes as the repeated field `tag` of a data point, encoded once per series."""
    key = ("otlp", tag)
    encoded: bytes | None = series.cache.get(key)
    if encoded is None:
        encoded = series.cache[key] = repeated(tag, key_values(series.attributes))
    return encoded


def number_head(attributes: bytes, start_ns: int, value: int | float) -> bytes:
    """A NumberDataPoint up to its time: the data_points tag, its length (time included), attributes,
    start time and value (as_int for integers, as_double otherwise)."""
    if isinstance(value, int) and -(2**63) <= value < 2**63:
        tail = struct.pack("<BQBq", 0x11, start_ns, 0x31, value)
    else:
        tail = struct.pack("<BQBd", 0x11, start_ns, 0x21, float(value))
    return b"\x0a" + varint(len(attributes) + len(tail) + 9) + attributes + tail


def histogram_head(attributes: bytes, start_ns: int, value: HistogramValue, bounds: bytes) -> bytes:
    """A HistogramDataPoint up to its time: count, sum, bucket counts and bounds; min and max are not
    tracked and left unset."""
    n = len(value.bucket_counts)
    body = (attributes + struct.pack("<BQBQBd", 0x11, start_ns, 0x21, value.count, 0x29, value.sum)
            + b"\x32" + varint(8 * n) + struct.pack(f"<{n}Q", *value.bucket_counts) + bounds)
    return b"\x0a" + varint(len(body) + 9) + body
