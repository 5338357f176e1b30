"""The series table as OTLP: serialized ExportMetricsServiceRequest messages, written directly.

The OpenTelemetry SDK's encoder builds a protobuf object per data point, ~25 us each; here the wire
format is written by hand. What a series' points share (their tag and length, attributes, own
attributes such as network.io.direction, and start time) is encoded once, when the series is first
pushed, and kept with it; a number point is then that prefix, its value and the push's time. A push
is split into requests of at most `max_bytes`, each joined from its pieces once and made one at a
time, so memory while pushing is one request, not the whole push. Sums and histograms are
cumulative.

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


Pieces = tuple[list[bytes], int]  # parts of an encoded message, and their total length


def framed(number: int, payload: Pieces) -> Pieces:
    """A length-delimited field around pieces, without joining them."""
    head = varint(number << 3 | 2) + varint(payload[1])
    return [head, *payload[0]], len(head) + payload[1]


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
        """The push, as requests of at most max_bytes (a lone point larger than that still goes). A
        request is kept as pieces (the series' cached prefixes, values, framing) until it is joined,
        once: its 80 % that is attributes is copied once, not at every level of nesting."""
        time_field = b"\x19" + struct.pack("<Q", snap.time_ns)
        pending: list[tuple[str, Pieces]] = []
        size = 0
        for instrument, contributions in snap.instruments:
            for points in self._chunks(instrument, contributions, snap, time_field):
                metric = self._metric(instrument, points)
                if pending and size + metric[1] > self.max_bytes:
                    yield self._request(pending)
                    pending, size = [], 0
                pending.append((scope_of(instrument.name), metric))
                size += metric[1]
        if pending:
            yield self._request(pending)

    def _chunks(self, instrument: Instrument, contributions: list[tuple[View, tuple[int, ...]]], snap: Snapshot,
                time_field: bytes) -> Iterator[Pieces]:
        """The instrument's points, framed as data_points fields, in runs of at most max_bytes. This is
        the loop of a push that runs once per point: what a series' points share is encoded once."""
        histogram = instrument.kind == "histogram"
        tag = _HISTOGRAM_ATTRIBUTES if histogram else _NUMBER_ATTRIBUTES
        bounds = self._bounds(instrument) if histogram else b""
        pieces: list[bytes] = []
        size, limit = 0, self.max_bytes
        for view, js in contributions:
            all_series, all_values = snap.views[id(view)]
            slots = _prefix_slots(view)
            slot_count = max(slots) + 1
            points = [(j, view.points[j].extra, slots[j]) for j in js]
            for series, values in zip(all_series, all_values, strict=True):
                admitted = series.admitted
                prefixes: list[bytes | None] | None = series.cache.get("otlp")
                if prefixes is None and not histogram:
                    prefixes = series.cache["otlp"] = [None] * slot_count
                for j, extra, slot in points:
                    value = values[j]
                    if value is None or not admitted >> j & 1:
                        continue
                    if histogram:
                        attributes = _series_attributes(series, tag) + self._extra_attributes(extra, tag)
                        head = histogram_head(attributes, series.start_ns, value, bounds)  # type: ignore[arg-type]
                        tail = b""
                    else:
                        assert prefixes is not None
                        head = prefixes[slot]  # type: ignore[assignment]
                        if head is None:  # the prefix holds the attributes: they are not kept apart
                            head = prefixes[slot] = number_prefix(
                                repeated(tag, key_values(series.attributes)) + self._extra_attributes(extra, tag),
                                series.start_ns)
                        tail = number_value(value)  # type: ignore[arg-type]
                    length = len(head) + len(tail) + 9
                    if pieces and size + length > limit:
                        yield pieces, size
                        pieces, size = [], 0
                    pieces += (head, tail, time_field)
                    size += length
        if pieces:
            yield pieces, size

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
    def _metric(instrument: Instrument, points: Pieces) -> Pieces:
        header = (field(1, instrument.name.encode()) + field(2, instrument.description.encode())
                  + field(3, instrument.unit.encode()))
        if instrument.kind == "gauge":
            number, trailer = 5, b""
        elif instrument.kind == "histogram":
            number, trailer = 9, bytes((0x10, CUMULATIVE))
        else:
            monotonic = b"\x18\x01" if instrument.kind == "counter" else b"\x18\x00"
            number, trailer = 7, bytes((0x10, CUMULATIVE)) + monotonic
        data = framed(number, (points[0] + [trailer], points[1] + len(trailer)))
        return [header, *data[0]], len(header) + data[1]

    def _request(self, metrics: list[tuple[str, Pieces]]) -> bytes:
        scopes: dict[str, list[Pieces]] = {}
        for scope, metric in metrics:
            scopes.setdefault(scope, []).append(metric)
        body: list[bytes] = [self._resource]
        size = len(self._resource)
        for scope, ms in scopes.items():
            inner: list[bytes] = [self._scopes[scope]]
            inner_size = len(self._scopes[scope])
            for metric in ms:
                pieces, n = framed(2, metric)
                inner += pieces
                inner_size += n
            pieces, n = framed(2, (inner, inner_size))
            body += pieces
            size += n
        return b"".join(framed(1, (body, size))[0])


def _series_attributes(series: Series, tag: int) -> bytes:
    """A series' attributes as the repeated field `tag` of a data point, encoded once per series."""
    key = ("otlp", tag)
    encoded: bytes | None = series.cache.get(key)
    if encoded is None:
        encoded = series.cache[key] = repeated(tag, key_values(series.attributes))
    return encoded


_INT = struct.Struct("<Bq").pack
_DOUBLE = struct.Struct("<Bd").pack
_NUMBER_TAIL = 9 + 9 + 9  # start time, value, time: fixed64 fields of a tag byte and 8 bytes each


def number_prefix(attributes: bytes, start_ns: int) -> bytes:
    """What the points of a series that share their attributes share: the data_points tag, the
    point's length (its value and time are fixed-size), its attributes and its start time."""
    return b"\x0a" + varint(len(attributes) + _NUMBER_TAIL) + attributes + b"\x11" + struct.pack("<Q", start_ns)


def number_value(value: int | float) -> bytes:
    """A NumberDataPoint's value: as_int for integers that fit in 64 bits, as_double otherwise."""
    if value.__class__ is int:
        try:
            return _INT(0x31, value)
        except struct.error:
            pass
    return _DOUBLE(0x21, float(value))


def _prefix_slots(view: View) -> list[int]:
    """For each point of a view, which of its series' number prefixes it uses: one per distinct set of
    the point's own attributes (none, transmit, receive)."""
    distinct: dict[Attributes, int] = {}
    return [distinct.setdefault(point.extra, len(distinct)) for point in view.points]


def histogram_head(attributes: bytes, start_ns: int, value: HistogramValue, bounds: bytes) -> bytes:
    """A HistogramDataPoint up to its time: count, sum, bucket counts and bounds; min and max are not
    tracked and left unset."""
    n = len(value.bucket_counts)
    body = (attributes + struct.pack("<BQBQBd", 0x11, start_ns, 0x21, value.count, 0x29, value.sum)
            + b"\x32" + varint(8 * n) + struct.pack(f"<{n}Q", *value.bucket_counts) + bounds)
    return b"\x0a" + varint(len(body) + 9) + body
