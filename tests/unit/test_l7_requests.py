"""RequestTracker: kernel increments to series and rows, route caps; and how the rows are named:
attributes and records."""

from __future__ import annotations

import json

from exporter.collectors.l7_requests import OTHER_ROUTE, Increment, RequestTracker, SeriesKey
from exporter.series.instruments import ALL
from exporter.series.requests import DB_ERROR, DB_OK, RequestKey
from exporter.series.rows import Attributes, HistogramValue, Owner
from exporter.telemetry.collection import unattributed
from exporter.telemetry.naming import kind_of
from exporter.telemetry.naming.requests import db_attributes, db_error_type, error_type, host_of, http_attributes
from exporter.telemetry.records import RecordDeltas
from exporter.telemetry.table import Plan, SeriesTable


def key(**changes: object) -> SeriesKey:
    base = SeriesKey(protocol="http", client=True, pid=42, comm="curl", method="GET", route="/a", authority="svc:8080",
                     status=200, version="1.1", family="ipv4", server_address="10.0.0.1", server_port=8080)
    return base._replace(**changes)


def inc(count: int = 1, sum_ns: int = 1_000_000, bucket: int = 0, last_ns: int = 1) -> Increment:
    buckets = tuple(count if i == bucket else 0 for i in range(15))
    sizes = tuple(count if i == 0 else 0 for i in range(13))
    return Increment(count, sum_ns, buckets, 100 * count, 200 * count, 0, 50 * count, sizes, sizes, last_ns)


def tracker(max_routes: int = 100) -> RequestTracker:
    return RequestTracker(duration_bounds=14, size_bounds=12, max_routes_per_process=max_routes, expiry_ns=10**9)


def request_key(k: SeriesKey) -> RequestKey:
    return RequestKey(k.protocol, k.client, k.method, k.route, k.authority, k.status, k.version, k.family,
                      k.server_address, k.server_port, k.code)


def snapshot(t: RequestTracker) -> dict[str, dict[Attributes, object]]:
    """instrument -> attributes -> value, as the series table exports the tracker's rows."""
    table = SeriesTable(Plan(ALL, lambda kind, point: kind.levels[0], lambda _: frozenset({"process.pid"})))
    table.update("l7", unattributed("l7", t.rows()), 0)
    table.limits.settle()
    out: dict[str, dict[Attributes, object]] = {}
    for name in table.instruments():
        for view, js in table.contributions(name):
            for s in view.exported():
                for j in js:
                    if s.exported(j):
                        out.setdefault(name, {})[s.attributes] = s.values[j]
    return out


def attributes_of(k: SeriesKey) -> Attributes:
    return (*http_attributes(request_key(k)), ("process.pid", k.pid))


def test_increments_add_up_per_series() -> None:
    t = tracker()
    t.add(key(), inc(2, 3_000_000, bucket=0))
    t.add(key(), inc(1, 20_000_000, bucket=2))
    points = snapshot(t)["http.client.request.duration"]
    (value,) = points.values()
    assert value == HistogramValue((2, 0, 1) + (0,) * 12, 0.023, 3)
    response = snapshot(t)["http.client.response.body.size"][attributes_of(key())]
    assert isinstance(response, HistogramValue) and response.sum == 150


def test_series_that_differ_only_in_the_server_ip_add_up() -> None:
    t = tracker()
    t.add(key(server_address="10.0.0.1"), inc(3))
    t.add(key(server_address="10.0.0.2"), inc(4))
    (value,) = snapshot(t)["http.client.request.duration"].values()
    assert isinstance(value, HistogramValue) and value.count == 7


def test_routes_beyond_the_cap_fold_into_other_and_are_counted() -> None:
    t = tracker(max_routes=2)
    for route in ("/a", "/b", "/c", "/d", "/a"):
        t.add(key(route=route), inc())
    routes = {dict(attrs)["http.route"]: v.count for attrs, v in snapshot(t)["http.client.request.duration"].items()
              if isinstance(v, HistogramValue)}
    assert routes == {"/a": 2, "/b": 1, OTHER_ROUTE: 2}
    assert t.folded == 2


def test_idle_series_expire_and_free_their_route() -> None:
    t = tracker(max_routes=1)
    t.add(key(route="/old"), inc(last_ns=1))
    t.expire(now_ns=5 * 10**9)
    assert t.series == {}
    t.add(key(route="/new"), inc(last_ns=6 * 10**9))
    assert [k.route for k in t.series] == ["/new"]


def test_error_type_follows_the_role() -> None:
    assert error_type(request_key(key(status=404))) == "404"
    assert error_type(request_key(key(status=404, client=False))) is None
    assert error_type(request_key(key(status=503, client=False))) == "503"
    assert error_type(request_key(key(status=0))) == "no_response"
    assert "http.response.status_code" not in dict(http_attributes(request_key(key(status=0))))


def test_server_address_is_the_host_header_host() -> None:
    assert host_of("example.com:8080") == "example.com"
    assert host_of("[::1]:80") == "::1"
    assert host_of("::1") == "::1"
    assert dict(http_attributes(request_key(key())))["server.address"] == "svc"
    assert dict(http_attributes(request_key(key(authority=""))))["server.address"] == "10.0.0.1"


def records(t: RequestTracker, deltas: RecordDeltas) -> list[dict[str, str]]:
    return deltas.records(unattributed("l7", t.rows()), now="1700000000")


def test_records_are_per_interval_with_ilogtail_fields() -> None:
    t = tracker()
    deltas = RecordDeltas()
    t.add(key(), inc(3))
    (record,) = records(t, deltas)
    assert (record["protocol"], record["method"], record["url"], record["resp_code"], record["total_count"]) == \
        ("http", "GET", "/a", "200", "3")
    assert json.loads(record["remote_info"]) == {"remote_ip": "10.0.0.1", "remote_port": "8080",
                                                 "remote_type": "server"}
    assert (record["_process_pid_"], record["_process_cmd_"]) == ("42", "curl")
    assert records(t, deltas) == []
    t.add(key(), inc(1))
    assert [r["total_count"] for r in records(t, deltas)] == ["1"]


def db_key(**changes: object) -> SeriesKey:
    base = key(protocol="redis", method="GET", route="", authority="", status=DB_OK, version="", server_port=6379)
    return base._replace(**changes)


def test_database_series_go_to_the_db_instruments_only() -> None:
    t = tracker()
    t.add(db_key(), inc(3))
    t.add(db_key(client=False, comm="redis-server"), inc(2))
    snap = snapshot(t)
    assert set(snap) == {"db.client.operation.duration", "db.server.operation.duration"}
    (attrs, value), = snap["db.client.operation.duration"].items()
    assert isinstance(value, HistogramValue) and value.count == 3
    labels = dict(attrs)
    assert labels["db.system.name"] == "redis" and labels["db.operation.name"] == "GET"
    assert "error.type" not in labels and "db.response.status_code" not in labels
    assert labels["server.port"] == 6379 and "http.route" not in labels


def test_database_errors_and_status_codes() -> None:
    labels = dict(db_attributes(request_key(db_key(status=DB_ERROR, code="WRONGTYPE"))))
    assert labels["error.type"] == "WRONGTYPE" and labels["db.response.status_code"] == "WRONGTYPE"
    assert db_error_type(request_key(db_key(status=0))) == "no_response"
    assert db_error_type(request_key(db_key(status=DB_ERROR, code=""))) == "_OTHER"
    hit = dict(db_attributes(request_key(db_key(protocol="memcached", method="get", code="HIT"))))
    assert hit["db.response.status_code"] == "HIT" and "error.type" not in hit
    assert "db.operation.name" not in dict(db_attributes(request_key(db_key(protocol="postgresql", method=""))))


def test_database_records_use_ilogtail_protocol_names() -> None:
    record_format = kind_of(request_key(db_key())).record
    assert record_format is not None
    kind, record = record_format.record(request_key(db_key(protocol="postgresql", method="SELECT", status=DB_ERROR,
                                                           code="22012")), (4, 8_000, 120, 300))
    assert kind == "protocols" and record["protocol"] == "pgsql" and record["method"] == "SELECT"
    assert record["resp_code"] == "22012" and record["url"] == "" and record["role"] == "client"
    assert record["total_count"] == "4" and record["total_req_bytes"] == "120"
    _, ok = record_format.record(request_key(db_key()), (1, 1, 1, 1))
    assert ok["protocol"] == "redis" and ok["resp_code"] == "OK"


def test_rows_keep_their_object_until_their_series_changes() -> None:
    t = tracker()
    t.add(key(), inc(1))
    (first,) = t.rows()
    assert t.rows()[0] is first and first.owner == Owner(42, "curl")
    t.add(key(), inc(1))
    assert t.rows()[0] is not first
