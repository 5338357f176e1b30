"""The OTLP encoder, decoded with opentelemetry-proto's generated classes: every point of the series
table, with its attributes, values, start and time, kinds and temporality; requests split by size."""

from __future__ import annotations

from typing import Any

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.metrics.v1.metrics_pb2 import AggregationTemporality, NumberDataPoint

from exporter.series.instruments import ALL
from exporter.series.rows import HistogramValue
from exporter.telemetry.otlp_encode import Encoder, number_prefix, number_value, snapshot, varint
from tests.unit.series_fixture import RESOURCE, TIME_NS, collection


def attributes(pairs: Any) -> frozenset[tuple[str, Any]]:
    return frozenset((kv.key, getattr(kv.value, kv.value.WhichOneof("value"))) for kv in pairs)


def table_points(table: Any) -> dict[tuple[str, frozenset[tuple[str, Any]]], Any]:
    out = {}
    for name in table.instruments():
        for view, js in table.contributions(name):
            for s in view.exported():
                for j in js:
                    if s.exported(j):
                        out[name, frozenset(s.attributes + view.points[j].extra)] = s.values[j]
    return out


def decoded(requests: list[bytes]) -> tuple[dict[tuple[str, frozenset[tuple[str, Any]]], Any], list[Any]]:
    points, metrics = {}, []
    for raw in requests:
        request = ExportMetricsServiceRequest.FromString(raw)
        (resource_metrics,) = request.resource_metrics
        assert dict(attributes(resource_metrics.resource.attributes)) == RESOURCE
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                metrics.append((scope_metrics.scope.name, metric))
                kind = metric.WhichOneof("data")
                for p in getattr(metric, kind).data_points:
                    key = (metric.name, attributes(p.attributes))
                    assert key not in points, f"{key} pushed twice"
                    assert p.time_unix_nano == TIME_NS and p.start_time_unix_nano == TIME_NS
                    if kind == "histogram":
                        assert not p.HasField("min") and not p.HasField("max")
                        points[key] = HistogramValue(tuple(p.bucket_counts), p.sum, p.count)
                        assert list(p.explicit_bounds) == list(ALL[metric.name].bounds or p.explicit_bounds)
                    else:
                        points[key] = p.as_int if p.WhichOneof("value") == "as_int" else p.as_double
    return points, metrics


def pushed(max_bytes: int = 2 * 1024 * 1024) -> tuple[list[bytes], Any]:
    c = collection()
    with c.lock:
        c.fresh()
        snap = snapshot(c.table)
    return list(Encoder(RESOURCE, max_bytes).requests(snap)), c.table


def test_every_point_goes_with_its_attributes_and_value() -> None:
    requests, table = pushed()
    assert len(requests) == 1
    points, _ = decoded(requests)
    assert points == table_points(table)
    assert any(isinstance(v, HistogramValue) for v in points.values())


def test_kinds_temporality_units_and_scopes() -> None:
    requests, _ = pushed()
    _, metrics = decoded(requests)
    for scope, metric in metrics:
        instrument = ALL[metric.name]
        assert (metric.unit, metric.description) == (instrument.unit, instrument.description)
        assert scope == ("netobs.exporter" if metric.name.startswith("netobs.") else "netobs.kernel")
        kind = metric.WhichOneof("data")
        expected = {"counter": "sum", "updowncounter": "sum", "gauge": "gauge", "histogram": "histogram"}
        assert kind == expected[instrument.kind], metric.name
        if kind == "sum":
            assert metric.sum.is_monotonic == (instrument.kind == "counter")
        if kind in ("sum", "histogram"):
            temporality = getattr(metric, kind).aggregation_temporality
            assert temporality == AggregationTemporality.AGGREGATION_TEMPORALITY_CUMULATIVE


def test_a_push_splits_into_requests_of_at_most_max_bytes() -> None:
    whole, _ = pushed()
    requests, table = pushed(max_bytes=1500)
    assert len(requests) > 5
    assert all(len(r) <= 1500 + 1000 for r in requests)  # a point larger than the limit still goes, alone
    points, _ = decoded(requests)
    assert points == table_points(table) == decoded(whole)[0]


def test_a_second_push_of_unchanged_series_sends_the_same_bytes() -> None:
    c = collection()
    encoder = Encoder(RESOURCE)
    with c.lock:
        c.fresh()
        first = list(encoder.requests(snapshot(c.table)))
        c.min_interval = 0.0
        c.fresh()
        second = list(encoder.requests(snapshot(c.table)))
    assert first == second


def test_varint() -> None:
    assert [varint(n) for n in (0, 1, 127, 128, 300, 2**63)] == [
        b"\x00", b"\x01", b"\x7f", b"\x80\x01", b"\xac\x02", b"\x80\x80\x80\x80\x80\x80\x80\x80\x80\x01"]


def test_a_number_is_as_int_while_it_fits_in_64_bits_and_as_double_beyond() -> None:
    def point(value: int | float) -> NumberDataPoint:
        head = number_prefix(b"", 5) + number_value(value) + b"\x19" + (7).to_bytes(8, "little")
        return NumberDataPoint.FromString(head[2:])  # after the data_points tag and length

    assert [(p.start_time_unix_nano, p.time_unix_nano) for p in [point(1)]] == [(5, 7)]
    assert [point(v).WhichOneof("value") for v in (0, 2**63 - 1, -(2**63), 2**63, 2**64 + 1, 1.5)] == [
        "as_int", "as_int", "as_int", "as_double", "as_double", "as_double"]
    assert point(2**63 - 1).as_int == 2**63 - 1 and point(2**63).as_double == float(2**63)
