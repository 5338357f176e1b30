"""HTTP/2 and gRPC series: how the kernel's keys are read (version 20, protocol 6), and how gRPC rows
are named: rpc.* instruments, service and method, the status code and error.type, the records."""

from __future__ import annotations

import ctypes

import pytest

from exporter.collectors.l7 import L7Collector
from exporter.collectors.l7_maps import PROTOCOLS
from exporter.collectors.l7_maps import SeriesKey as KernelKey
from exporter.collectors.l7_requests import OTHER_ROUTE, SeriesKey
from exporter.series.rows import HistogramValue
from exporter.telemetry.naming import kind_of
from exporter.telemetry.naming.requests import (
    RPC_CLIENT,
    RPC_SERVER,
    grpc_status,
    http_attributes,
    rpc_attributes,
    rpc_error_type,
    rpc_service_method,
)
from tests.unit.test_l7_requests import inc, key, request_key, snapshot, tracker

PATH = "/helloworld.Greeter/SayHello"


def kernel_key(protocol: int, version: int, target: bytes, code: bytes = b"", status: int = 200) -> KernelKey:
    k = KernelKey(protocol=protocol, version=version, status=status, family=2, server_port=50051, client=1)
    k.op, k.target, k.authority = b"POST", target, b"greeter.shop:50051"
    ctypes.memmove(k.code, code, len(code))
    return k


def grpc_key(**changes: object) -> SeriesKey:
    base = key(protocol="grpc", method="POST", route=PATH, authority="greeter.shop:50051", status=200, version="2",
               server_port=50051, code="0")
    return base._replace(**changes)


def labels(**changes: object) -> dict[str, str | int]:
    return dict(rpc_attributes(request_key(grpc_key(**changes))))


# ------------------------------------------------------------------ the kernel's keys

@pytest.mark.parametrize(("raw", "text"), [(10, "1.0"), (11, "1.1"), (20, "2"), (0, "")])
def test_http_versions_read_as_opentelemetry_writes_them(raw: int, text: str) -> None:
    assert L7Collector._key(kernel_key(1, raw, b"/a"), b"curl", 0).version == text


def test_a_grpc_key_keeps_its_whole_path_and_its_status_text() -> None:
    got = L7Collector._key(kernel_key(6, 20, b"/pkg.Svc/Method_With_Long_Name", b"14"), b"api", 0)
    assert (got.protocol, got.method, got.route, got.code, got.version) == (
        "grpc", "POST", "/pkg.Svc/Method_With_Long_Name", "14", "2")
    assert L7Collector._key(kernel_key(6, 20, PATH.encode()), b"api", 0).code == ""  # no grpc-status seen


def test_http_enables_http2_and_grpc() -> None:
    assert {n for n, (name, _) in PROTOCOLS.items() if name == "HTTP"} >= {1, 6}
    assert PROTOCOLS[6][1] == "grpc"


# ------------------------------------------------------------------ instruments and attributes

def test_grpc_series_go_to_the_rpc_instruments_only() -> None:
    t = tracker()
    t.add(grpc_key(), inc(3))
    t.add(grpc_key(client=False, comm="greeter"), inc(2))
    snap = snapshot(t)
    assert set(snap) == {"rpc.client.call.duration", "rpc.server.call.duration"}
    (attrs, value), = snap["rpc.client.call.duration"].items()
    assert isinstance(value, HistogramValue) and value.count == 3
    assert dict(attrs) == {
        "rpc.system": "grpc", "rpc.service": "helloworld.Greeter", "rpc.method": "SayHello",
        "rpc.grpc.status_code": 0, "network.protocol.name": "http", "network.protocol.version": "2",
        "network.transport": "tcp", "network.type": "ipv4", "server.address": "greeter.shop", "server.port": 50051,
        "process.pid": 42}
    assert kind_of(request_key(grpc_key())) is RPC_CLIENT
    assert kind_of(request_key(grpc_key(client=False))) is RPC_SERVER


def test_http2_requests_stay_http_with_version_2() -> None:
    attrs = dict(http_attributes(request_key(key(version="2", authority="api.shop"))))
    assert attrs["network.protocol.version"] == "2" and attrs["server.address"] == "api.shop"
    t = tracker()
    t.add(key(version="2"), inc())
    assert "http.client.request.duration" in snapshot(t)


def test_an_http2_path_not_known_stays_empty_where_http_1_has_slash() -> None:
    """An HTTP/1.x absolute-form target without a path is "/"; an HTTP/2 :path the kernel could not know is
    empty, never "/"."""
    assert L7Collector._key(kernel_key(1, 11, b""), b"curl", 0).route == "/"
    assert L7Collector._key(kernel_key(1, 20, b""), b"curl", 0).route == ""


def test_http2_fields_not_known_are_not_guessed() -> None:
    """A :path and :method that referred to header table entries the kernel did not know arrive empty."""
    attrs = dict(http_attributes(request_key(key(version="2", method="", route=""))))
    assert attrs["http.request.method"] == "_OTHER" and "http.route" not in attrs


@pytest.mark.parametrize(("path", "service", "method"), [
    (PATH, "helloworld.Greeter", "SayHello"),
    ("/Echo/Echo", "Echo", "Echo"),
    ("/pkg.Svc/", "pkg.Svc", "_OTHER"),
    ("/pkg.Svc", "pkg.Svc", "_OTHER"),
    ("//Method", "_OTHER", "Method"),
    ("/", "_OTHER", "_OTHER"),
    (OTHER_ROUTE, OTHER_ROUTE, OTHER_ROUTE),
])
def test_the_path_splits_into_service_and_method(path: str, service: str, method: str) -> None:
    assert rpc_service_method(path) == (service, method)


def test_routes_and_paths_share_the_cap_and_fold_into_other() -> None:
    t = tracker(max_routes=1)
    t.add(grpc_key(route="/a.S/One"), inc())
    t.add(grpc_key(route="/a.S/Two"), inc(2))
    methods = {dict(a)["rpc.method"]: v.count for a, v in snapshot(t)["rpc.client.call.duration"].items()
               if isinstance(v, HistogramValue)}
    assert methods == {"One": 1, OTHER_ROUTE: 2} and t.folded == 2


# ------------------------------------------------------------------ status and error.type

def test_the_status_comes_from_grpc_status_first() -> None:
    assert grpc_status(request_key(grpc_key(code="5"))) == 5
    assert grpc_status(request_key(grpc_key(code="14", status=503))) == 14  # grpc-status wins over :status
    assert grpc_status(request_key(grpc_key(code="x"))) == 2  # not a number: UNKNOWN
    assert grpc_status(request_key(grpc_key(code="\xb2"))) == 2  # latin-1 superscript two is no decimal digit
    assert labels(code="5")["rpc.grpc.status_code"] == 5


@pytest.mark.parametrize(("http_status", "code"), [
    (400, 13), (401, 16), (403, 7), (404, 12), (429, 14), (431, 13), (502, 14), (503, 14), (504, 14),
    (500, 2), (302, 2),
])
def test_without_grpc_status_the_http_status_maps_as_grpc_says(http_status: int, code: int) -> None:
    assert labels(code="", status=http_status)["rpc.grpc.status_code"] == code


@pytest.mark.parametrize("http_status", [0, 200])
def test_no_status_at_all_is_no_response(http_status: int) -> None:
    attrs = labels(code="", status=http_status)
    assert "rpc.grpc.status_code" not in attrs and attrs["error.type"] == "no_response"


@pytest.mark.parametrize(("code", "server", "client"), [
    ("0", None, None),
    ("1", None, "1"),  # CANCELLED: the client's error, not the server's
    ("3", None, "3"),  # INVALID_ARGUMENT
    ("5", None, "5"),  # NOT_FOUND
    ("2", "2", "2"),  # UNKNOWN
    ("4", "4", "4"),  # DEADLINE_EXCEEDED
    ("12", "12", "12"),  # UNIMPLEMENTED
    ("13", "13", "13"),  # INTERNAL
    ("14", "14", "14"),  # UNAVAILABLE
    ("15", "15", "15"),  # DATA_LOSS
    ("16", None, "16"),  # UNAUTHENTICATED
])
def test_error_type_follows_the_role(code: str, server: str | None, client: str | None) -> None:
    assert rpc_error_type(request_key(grpc_key(code=code, client=False))) == server
    assert rpc_error_type(request_key(grpc_key(code=code))) == client
    assert labels(code=code).get("error.type") == client


# ------------------------------------------------------------------ records

def test_grpc_records_keep_the_path_and_the_status() -> None:
    record_format = kind_of(request_key(grpc_key())).record
    assert record_format is not None
    _, record = record_format.record(request_key(grpc_key(code="14")), (2, 5_000, 100, 40))
    assert (record["protocol"], record["version"], record["method"], record["url"], record["resp_code"]) == (
        "grpc", "2", "POST", PATH, "14")
    assert record["host"] == "greeter.shop:50051" and record["role"] == "client"
    _, mapped = record_format.record(request_key(grpc_key(code="", status=503)), (1, 1, 1, 1))
    _, lost = record_format.record(request_key(grpc_key(code="")), (1, 1, 1, 1))
    assert (mapped["resp_code"], lost["resp_code"]) == ("14", "no_response")
