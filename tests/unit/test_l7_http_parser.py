"""The kernel's HTTP/1.x head parser (bpf/l7_http.h), compiled for the host by way of tests/unit/l7_host.c
and driven through ctypes: byte literals with exact results, then properties over random input."""

from __future__ import annotations

import ctypes
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exporter.collectors.l7_maps import AUTHORITY_LEN, OP_LEN, TARGET_LEN
from tests.unit.bpf_host import build_host_library

HOST_SOURCE = Path(__file__).with_name("l7_host.c")

CAPTURE_MAX = 1024  # L7_CAPTURE_MAX, checked against the library below
FILLS = (0x00, 0x0A, 0xFF)  # what the window past n and the head hold before a parse: zeros, line feeds, 0xff

PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


class L7Head(ctypes.Structure):
    """struct l7_head of bpf/l7_http.h."""

    _fields_ = [
        ("content_length", ctypes.c_int64),
        ("header_len", ctypes.c_uint32),
        ("status", ctypes.c_uint32),
        ("version", ctypes.c_uint8),
        ("chunked", ctypes.c_uint8),
        ("request", ctypes.c_uint8),
        ("pad", ctypes.c_uint8),
        ("cl_line", ctypes.c_uint16),
        ("pad2", ctypes.c_uint16),
        ("op", ctypes.c_uint8 * OP_LEN),
        ("target", ctypes.c_uint8 * TARGET_LEN),
        ("authority", ctypes.c_uint8 * AUTHORITY_LEN),
    ]


LAYOUT_FIELDS = ("content_length", "header_len", "status", "version", "chunked", "request", "pad", "cl_line", "pad2",
                 "op", "target", "authority")


def _cstr(raw: bytes) -> bytes:
    return raw.split(b"\0", 1)[0]


@dataclass(frozen=True)
class Head:
    ok: bool
    raw: bytes  # the whole struct, to compare parses byte for byte
    content_length: int
    header_len: int
    status: int
    version: int
    chunked: int
    request: int
    op_raw: bytes
    target_raw: bytes
    authority_raw: bytes

    @property
    def op(self) -> bytes:
        return _cstr(self.op_raw)

    @property
    def target(self) -> bytes:
        return _cstr(self.target_raw)

    @property
    def authority(self) -> bytes:
        return _cstr(self.authority_raw)


class Parser:
    def __init__(self, lib: ctypes.CDLL) -> None:
        self.lib = lib
        window = [ctypes.c_char_p, ctypes.c_uint, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
        for name in ("parse_request_over", "parse_response_over"):
            fn = getattr(lib, name)
            fn.argtypes = [*window, ctypes.POINTER(L7Head)]
            fn.restype = ctypes.c_int
        lib.method_len_over.argtypes = [ctypes.c_char_p, ctypes.c_uint, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
        lib.method_len_over.restype = ctypes.c_uint
        lib.l7_head_size.restype = ctypes.c_ulong

    def _head(self, fn_name: str, data: bytes, fill: int, stale: bytes) -> Head:
        out = L7Head()
        ok = getattr(self.lib, fn_name)(data, len(data), fill, stale, len(stale), ctypes.byref(out))
        return Head(
            ok=bool(ok),
            raw=bytes(out),
            content_length=out.content_length,
            header_len=out.header_len,
            status=out.status,
            version=out.version,
            chunked=out.chunked,
            request=out.request,
            op_raw=bytes(out.op),
            target_raw=bytes(out.target),
            authority_raw=bytes(out.authority),
        )

    # fill: every byte of struct l7_parse before the parse; stale: what the window holds past the data (the
    # per-CPU buffer is reused, so typically a longer message parsed before)
    def request(self, data: bytes, fill: int = 0, stale: bytes = b"") -> Head:
        return self._head("parse_request_over", data, fill, stale)

    def response(self, data: bytes, fill: int = 0, stale: bytes = b"") -> Head:
        return self._head("parse_response_over", data, fill, stale)

    def method_len(self, data: bytes, fill: int = 0, stale: bytes = b"") -> int:
        return int(self.lib.method_len_over(data, len(data), fill, stale, len(stale)))

    def assert_cut_ignores_the_rest(self, data: bytes, n: int) -> None:
        """data[:n] parses the same whether the window past n is zeros, fill bytes or the rest of data."""
        cut = data[:n]
        for parse in (self.request, self.response):
            clean = parse(cut)
            for fill, stale in ((0, data), (0x0A, data), (0x0A, b""), (0xFF, b"")):
                other = parse(cut, fill, stale)
                assert other.ok == clean.ok, (n, fill, stale[:40])
                if clean.ok:
                    assert other.raw == clean.raw, (n, fill, stale[:40])
            assert self.method_len(cut, 0, data) == self.method_len(cut)


@pytest.fixture(scope="module")
def parser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Parser]:
    yield Parser(build_host_library(HOST_SOURCE, tmp_path_factory.mktemp("l7_host"), "bpf/l7_http.h"))


# ---------------------------------------------------------------- the library itself


def test_struct_mirror_matches_the_c_layout(parser: Parser) -> None:
    layout = (ctypes.c_ulong * (1 + len(LAYOUT_FIELDS))).in_dll(parser.lib, "l7_head_layout")
    assert parser.lib.l7_head_size() == ctypes.sizeof(L7Head) == layout[0] == 168
    assert [getattr(L7Head, name).offset for name in LAYOUT_FIELDS] == list(layout)[1:]
    assert ctypes.c_ulong.in_dll(parser.lib, "l7_capture_max").value == CAPTURE_MAX


def test_plain_entry_points(parser: Parser) -> None:
    # parse_request / parse_response / method_len: the same parse over a zeroed window
    request, response = b"GET /a/1 HTTP/1.1\r\nHost: a\r\n\r\n", b"HTTP/1.1 200 OK\r\n\r\n"
    for name, data, expected in (("parse_request", request, parser.request(request)),
                                 ("parse_response", response, parser.response(response))):
        out = L7Head()
        assert getattr(parser.lib, name)(data, len(data), ctypes.byref(out)) == 1
        assert expected.ok
        assert bytes(out) == expected.raw
    assert parser.lib.method_len(request, len(request)) == 3
    assert parser.lib.method_len(response, len(response)) == 0


# ---------------------------------------------------------------- requests


def req(target: str = "/", *headers: str, method: str = "GET", version: str = "1.1") -> bytes:
    return (f"{method} {target} HTTP/{version}\r\n" + "".join(h + "\r\n" for h in headers) + "\r\n").encode()


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "DELETE", "HEAD", "PATCH", "OPTIONS", "TRACE"])
def test_request_methods(parser: Parser, method: str) -> None:
    data = req("/things/7", "Host: example.com", method=method)
    assert parser.method_len(data) == len(method)
    h = parser.request(data)
    assert h.ok
    assert h.request == 1
    assert h.op_raw == method.encode().ljust(OP_LEN, b"\0")
    assert h.target == b"/things/{id}"
    assert h.authority == b"example.com"
    assert h.version == 11
    assert h.status == 0
    assert h.content_length == -1
    assert h.chunked == 0
    assert h.header_len == len(data)


def test_simple_get(parser: Parser) -> None:
    data = b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n"
    h = parser.request(data)
    assert h.ok
    assert (h.op, h.target, h.authority, h.version, h.header_len) == (b"GET", b"/", b"example.com", 11, 37)
    assert h.target_raw == b"/" + b"\0" * (TARGET_LEN - 1)
    assert h.authority_raw == b"example.com".ljust(AUTHORITY_LEN, b"\0")
    assert h.raw[19:24] == bytes(5)  # pad


def test_curl_request(parser: Parser) -> None:
    data = (b"GET /api/v1/users/42?verbose=1 HTTP/1.1\r\n"
            b"Host: API.Example.COM:8443\r\n"
            b"User-Agent: curl/8.5.0\r\n"
            b"Accept: */*\r\n"
            b"\r\n")
    h = parser.request(data)
    assert h.ok
    assert h.target == b"/api/v1/users/{id}"
    assert h.authority == b"api.example.com:8443"
    assert h.header_len == len(data)
    assert h.content_length == -1


@pytest.mark.parametrize(
    ("target", "route"),
    [
        ("/", b"/"),
        ("*", b"*"),
        ("/search?q=1&page=2", b"/search"),
        ("/search?q=a/b/123", b"/search"),
        ("/docs/intro#install", b"/docs/intro"),
        ("/docs/intro#frag?x=1", b"/docs/intro"),
        ("/?x=1", b"/"),
        ("/items/42?x=1#y", b"/items/{id}"),
        ("/users/123/orders/9f1c2e3d4a5b6c7d", b"/users/{id}/orders/{id}"),
        ("/v1/items/550e8400-e29b-41d4-a716-446655440000/tags", b"/v1/items/{id}/tags"),
        ("/v1/items/550E8400-E29B-41D4-A716-446655440000", b"/v1/items/{id}"),
        ("/users/me", b"/users/me"),
        ("/users/123/", b"/users/{id}/"),
        ("/users//7", b"/users//{id}"),
        ("/0", b"/{id}"),
        ("/blob/deadbeef", b"/blob/deadbeef"),  # hex, but no digit: a word
        ("/blob/cafe1234", b"/blob/{id}"),  # 8 hex digits with a digit
        ("/blob/abc123", b"/blob/abc123"),  # hex with a digit, but shorter than 8
        ("/blob/2024-01-31", b"/blob/{id}"),  # digits and dashes, 8+: like a hash
        ("/v2/api", b"/v2/api"),
        ("/s/AbCdEfGhIjKlMnOpQrS5tU", b"/s/{id}"),  # 22 characters with a digit: a token
        ("/s/AbCdEfGhIjKlMnOpQr5t", b"/s/{id}"),  # exactly 20
        ("/s/AbCdEfGhIjKlMnOpQ5t", b"/s/AbCdEfGhIjKlMnOpQ5t"),  # 19: kept
        ("/s/AbCdEfGhIjKlMnOpQrStUvWx", b"/s/AbCdEfGhIjKlMnOpQrStUvWx"),  # long, but no digit
        ("/s/eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0", b"/s/{id}"),  # a JWT-ish segment
        ("http://example.com/users/42", b"http://example.com/users/{id}"),  # absolute form
    ],
)
def test_request_routes(parser: Parser, target: str, route: bytes) -> None:
    h = parser.request(req(target, "Host: a"))
    assert h.ok
    assert h.target == route
    assert h.target_raw == route.ljust(TARGET_LEN, b"\0")


def test_folded_id_leaves_no_bytes_behind(parser: Parser) -> None:
    # the id is written out before it is known to be one, then replaced by the shorter {id}
    h = parser.request(req("/" + "x1" * 15 + "?q=1"))
    assert h.ok
    assert h.target_raw == b"/{id}".ljust(TARGET_LEN, b"\0")


def test_long_path_is_truncated_to_63_bytes(parser: Parser) -> None:
    path = "/" + "abcdefghij/" * 10
    h = parser.request(req(path, "Host: a"))
    assert h.ok
    assert h.target == path.encode()[:63]
    assert len(h.target) == 63
    assert h.target_raw[63] == 0
    assert h.authority == b"a"
    assert h.header_len == len(req(path, "Host: a"))


def test_long_path_truncated_inside_a_folded_id(parser: Parser) -> None:
    # the id's segment starts at byte 60: {id} is cut to "{id" and the array still ends in NUL
    h = parser.request(req("/" + "a" * 58 + "/12345678/next"))
    assert h.ok
    assert h.target == b"/" + b"a" * 58 + b"/{id"
    assert h.target_raw[63] == 0
    # a long id that had filled the array folds back to a short route, and nothing of it is left
    h = parser.request(req("/a/" + "7" * 100 + "/b"))
    assert h.target_raw == b"/a/{id}/b".ljust(TARGET_LEN, b"\0")


def test_long_target_past_the_window(parser: Parser) -> None:
    # the target does not end in the window: method and a route prefix only, no head end
    data = b"GET /files/" + b"a" * 2000 + b" HTTP/1.1\r\n\r\n"
    h = parser.request(data)
    assert h.ok
    assert h.op == b"GET"
    assert h.target == b"/files/" + b"a" * 56
    assert h.header_len == 0
    assert h.version == 0


@pytest.mark.parametrize(
    ("host", "authority"),
    [
        ("Host: Example.COM", b"example.com"),
        ("host: example.com", b"example.com"),
        ("HOST:example.com", b"example.com"),
        ("Host: \t example.com  ", b"example.com"),
        ("Host: [::1]:8080", b"[::1]:8080"),
        ("Host: 10.0.0.1:80", b"10.0.0.1:80"),
        ("Host: API.Very-Long-Subdomain.Example.Internal:8443", b"api.very-long-subdomain.example.internal:8443"),
        ("Host: checkout-frontend.shop-production.svc.cluster.local:8080-and-then-some",
         b"checkout-frontend.shop-production.svc.cluster.local:8080-and-th"),  # 63 bytes
        ("Host:", b""),
        ("X-Host: other", b""),
        ("Hostname: other", b""),
    ],
)
def test_request_host(parser: Parser, host: str, authority: bytes) -> None:
    h = parser.request(req("/", "Accept: */*", host, "Connection: close"))
    assert h.ok
    assert h.authority == authority
    assert h.authority_raw == authority.ljust(AUTHORITY_LEN, b"\0")
    assert h.authority_raw[AUTHORITY_LEN - 1] == 0


def test_duplicate_host_is_not_blended(parser: Parser) -> None:
    h = parser.request(req("/", "Host: a.example.com", "Host: b"))
    assert h.ok
    assert h.authority == b"a.example.com"  # the first Host counts


@pytest.mark.parametrize(
    ("header", "length"),
    [
        ("Content-Length: 42", 42),
        ("content-length: 42", 42),
        ("CONTENT-LENGTH: 42", 42),
        ("Content-length:42", 42),
        ("Content-Length:    7   ", 7),
        ("Content-Length: \t9", 9),
        ("Content-Length: 0", 0),
        ("Content-Length: 999999999999999999", 999_999_999_999_999_999),  # 18 digits
        # a word at a time up to 7 digits after at most one space; the byte loop beyond
        ("Content-Length: 1234567", 1_234_567),
        ("Content-Length: 12345678", 12_345_678),
        ("Content-Length: 123456789", 123_456_789),
        ("Content-Length:  12", 12),
        ("Content-Length: 12abc", 12),
        ("Content-Length: ", -1),
        ("Content-Length: -5", -1),
        ("Content-Type: text/plain", -1),
        ("Content-Lengthy: 5", -1),
        ("X-Content-Length: 5", -1),
    ],
)
def test_request_content_length(parser: Parser, header: str, length: int) -> None:
    data = req("/upload", "Host: a", header, method="POST")
    h = parser.request(data)
    assert h.ok
    assert h.content_length == length
    assert h.chunked == 0
    assert h.header_len == len(data)


def test_nineteen_digit_content_length(parser: Parser) -> None:
    h = parser.request(req("/", "Content-Length: 1000000000000000000", method="POST"))
    assert h.ok
    assert h.content_length in (10**18, -1)


@pytest.mark.parametrize("header", ["Transfer-Encoding: chunked", "transfer-encoding: chunked",
                                    "TRANSFER-ENCODING:chunked", "Transfer-Encoding: gzip, chunked"])
def test_request_transfer_encoding(parser: Parser, header: str) -> None:
    data = req("/upload", "Host: a", header, method="POST")
    h = parser.request(data)
    assert h.ok
    assert h.chunked == 1
    assert h.content_length == -1
    assert h.header_len == len(data)


@pytest.mark.parametrize(
    "data",
    [
        b"GET / HTTP/1.1\r\n\r\n",
        b"GET / HTTP/1.1\n\n",
        b"GET / HTTP/1.1\r\nHost: a\n\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nAccept: */*\r\n\r\n",
        b"GET /a/b/c?d=e HTTP/1.0\r\nHost: a\r\nX-Long: " + b"v" * 700 + b"\r\n\r\n",
    ],
)
def test_header_len_is_the_offset_after_the_empty_line(parser: Parser, data: bytes) -> None:
    for body in (b"", b"body bytes", b"\r\n\r\n", b"GET / HTTP/1.1\r\n\r\n"):
        h = parser.request(data + body)
        assert h.ok
        assert h.header_len == len(data)


@pytest.mark.parametrize(
    "data",
    [
        b"GET / HTTP/1.1\r\nHost: example.com\r\n",
        b"GET / HTTP/1.1\r\nHost: example.com\r\n\r",
        b"GET / HTTP/1.1\r\nHost: example.com\r\nAccept: te",
        b"GET / HTTP/1.1\r\n",
        b"GET / HTTP/1.1",
        b"GET / HTTP/1.1\r\nX-Big: " + b"x" * 1100 + b"\r\n\r\n",  # the empty line is past the window
    ],
)
def test_head_not_finished_in_the_window(parser: Parser, data: bytes) -> None:
    h = parser.request(data)
    assert h.ok
    assert h.header_len == 0
    assert h.target == b"/"
    assert h.version == 11
    assert h.authority == (b"example.com" if b"Host" in data else b"")


def test_every_cut_of_a_head(parser: Parser) -> None:
    head = b"POST /api/v1/items/77 HTTP/1.1\r\nHost: Shop.Example\r\nContent-Length: 5\r\n\r\n"
    data = head + b"hello"
    for n in range(len(data) + 1):
        parser.assert_cut_ignores_the_rest(data, n)
        h = parser.request(data[:n])
        if n >= len(head):
            assert h.ok
            assert (h.header_len, h.content_length, h.target, h.authority) == (
                len(head), 5, b"/api/v1/items/{id}", b"shop.example")
        else:
            assert not h.ok or h.header_len == 0, n


@pytest.mark.parametrize(("version", "value"), [("1.0", 10), ("1.1", 11)])
def test_request_version(parser: Parser, version: str, value: int) -> None:
    h = parser.request(req("/", "Host: a", version=version))
    assert h.ok
    assert h.version == value


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"G",
        b"GET",
        b"GET ",
        b"GETX / HTTP/1.1\r\n\r\n",
        b"get / HTTP/1.1\r\n\r\n",
        b"Get / HTTP/1.1\r\n\r\n",
        b"GET\t/ HTTP/1.1\r\n\r\n",
        b"GET  / HTTP/1.1\r\n\r\n",
        b"GET x HTTP/1.1\r\n\r\n",
        b"GET / \r\n\r\n",
        b"GET /\r\n",  # HTTP/0.9
        b"GET /\n",
        b"GET /index.html\r\n\r\n",
        b"GET / HTTP/2.0\r\n\r\n",
        b"GET / FTP/1.1\r\n\r\n",
        b"GET /  HTTP/1.1\r\n\r\n",
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",  # the HTTP/2 connection preface
        b"HTTP/1.1 200 OK\r\n\r\n",
        b"*1\r\n$4\r\nPING\r\n",  # Redis
        b"\x00\x00\x00\x08\x04\xd2\x16\x2f",  # PostgreSQL SSLRequest
        bytes(range(256)),
    ],
)
def test_not_a_request(parser: Parser, data: bytes) -> None:
    assert not parser.request(data).ok


def test_tls_client_hello_is_not_a_request(parser: Parser) -> None:
    hello = bytes.fromhex(
        "16030100f8"  # record: handshake, TLS 1.0 record version, length
        "010000f4"  # ClientHello, length
        "0303"  # TLS 1.2
        "a3c1f55e0b2f5a1d6b0c0e9d2f7a8b4c1d2e3f405162738495a6b7c8d9eaf00b"  # random
        "20" "e1d2c3b4a5968778695a4b3c2d1e0f00112233445566778899aabbccddeeff"  # session id
        "0008130213031301c02f00ff"  # cipher suites
        "0100"  # compression
        "00a3" "0000001300110000" "0e" "6578616d706c652e636f6d"  # extensions: server_name example.com
    )
    assert parser.method_len(hello) == 0
    assert not parser.request(hello).ok
    assert not parser.response(hello).ok


@pytest.mark.parametrize(
    ("data", "length"),
    [
        (b"GET ", 3),
        (b"GET /", 3),
        (b"POST /", 4),
        (b"PUT /", 3),
        (b"HEAD /", 4),
        (b"DELETE /", 6),
        (b"PATCH /", 5),
        (b"OPTIONS *", 7),
        (b"CONNECT a:443", 7),
        (b"TRACE /", 5),
        (b"GET", 0),
        (b"GETX /", 0),
        (b"get /", 0),
        (b"OPTIONS", 0),
        (b"OPTION /", 0),
        (b"POSTS /", 0),
        (b"", 0),
    ],
)
def test_method_len(parser: Parser, data: bytes, length: int) -> None:
    for fill in FILLS:
        assert parser.method_len(data, fill) == length


def test_connect_request(parser: Parser) -> None:
    h = parser.request(b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n")
    assert h.ok
    assert h.op == b"CONNECT"
    assert h.target == b"example.com:443"


def test_pipelined_requests(parser: Parser) -> None:
    first = b"GET /a/1 HTTP/1.1\r\nAccept: */*\r\n\r\n"  # no Host: the second one's must not leak in
    second_head = b"POST /b/2 HTTP/1.1\r\nHost: two.example\r\nContent-Length: 5\r\n\r\n"
    second = second_head + b"hello"
    third = b"DELETE /c/3 HTTP/1.0\r\nHost: three.example\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    data = first + second + third

    h1 = parser.request(data)
    assert h1.ok
    assert (h1.op, h1.target, h1.authority, h1.header_len) == (b"GET", b"/a/{id}", b"", len(first))
    assert h1.content_length == -1
    assert h1.chunked == 0

    offset = h1.header_len
    h2 = parser.request(data[offset:])
    assert h2.ok
    assert (h2.op, h2.target, h2.authority, h2.header_len, h2.content_length) == (
        b"POST", b"/b/{id}", b"two.example", len(second_head), 5)

    offset += h2.header_len + h2.content_length
    assert offset == len(first) + len(second)
    h3 = parser.request(data[offset:])
    assert h3.ok
    assert (h3.op, h3.target, h3.authority, h3.version, h3.chunked) == (
        b"DELETE", b"/c/{id}", b"three.example", 10, 1)
    assert h3.header_len == len(third) - len(b"0\r\n\r\n")


def test_host_only_counts_in_the_head(parser: Parser) -> None:
    data = req("/", "Accept: */*", method="POST") + b"Host: body.example\r\nContent-Length: 9\r\n\r\n"
    h = parser.request(data)
    assert h.ok
    assert h.authority == b""
    assert h.content_length == -1


def test_stale_bytes_past_n_are_ignored(parser: Parser) -> None:
    # A head cut right after a line feed: past n the window holds line feeds, or an earlier message
    data = b"GET /x HTTP/1.1\r\nHost: a\r\n"
    for fill in FILLS:
        h = parser.request(data, fill)
        assert h.ok
        assert h.header_len == 0
        assert h.authority == b"a"
        assert h.raw == parser.request(data).raw
    # cut in the middle of the Host value and of a Content-Length value
    for cut in (b"GET / HTTP/1.1\r\nHost: ab", b"POST / HTTP/1.1\r\nContent-Length: 12"):
        results = {parser.request(cut, fill).raw for fill in FILLS}
        assert len(results) == 1
    assert parser.request(b"GET / HTTP/1.1\r\nHost: ab", 0x41).authority == b"ab"
    assert parser.request(b"POST / HTTP/1.1\r\nContent-Length: 12", 0x35).content_length == 12


@pytest.mark.parametrize(
    "data",
    [
        b"GET /users/123/orders/9f1c2e3d4a5b6c7d?x=1 HTTP/1.1\r\nHost: Example.com\r\n\r\n",
        b"OPTIONS * HTTP/1.0\nContent-Length: 12\nTransfer-Encoding: chunked\n\nbody",
        b"DELETE /a/b HTTP/1.1\r\nHost: [::1]:8080\r\nContent-Length: 0\r\n\r\nGET / HTTP/1.1\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 615\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"HTTP/1.0 404 Not Found\ncontent-length:3\n\nabc",
    ],
)
def test_every_cut_ignores_the_rest_of_the_message(parser: Parser, data: bytes) -> None:
    # In the kernel the window is a per-CPU buffer: a short message is read over what a longer one left
    for n in range(len(data) + 1):
        parser.assert_cut_ignores_the_rest(data, n)


# ---------------------------------------------------------------- responses


def resp(status_line: str, *headers: str) -> bytes:
    return (status_line + "\r\n" + "".join(h + "\r\n" for h in headers) + "\r\n").encode()


def test_response_200_with_content_length(parser: Parser) -> None:
    head = resp("HTTP/1.1 200 OK", "Content-Type: text/plain", "Content-Length: 13")
    h = parser.response(head + b"Hello, world!")
    assert h.ok
    assert (h.status, h.version, h.content_length, h.header_len, h.chunked, h.request) == (
        200, 11, 13, len(head), 0, 0)
    assert h.op_raw == bytes(OP_LEN)
    assert h.target_raw == bytes(TARGET_LEN)
    assert h.authority_raw == bytes(AUTHORITY_LEN)


@pytest.mark.parametrize(
    ("head", "status", "version", "length", "chunked"),
    [
        (resp("HTTP/1.1 404 Not Found", "Content-Length: 9"), 404, 11, 9, 0),
        (resp("HTTP/1.1 204 No Content"), 204, 11, -1, 0),
        (resp("HTTP/1.1 304 Not Modified", 'ETag: "abc"'), 304, 11, -1, 0),
        (resp("HTTP/1.0 500 Internal Server Error", "Content-Length: 0"), 500, 10, 0, 0),
        (resp("HTTP/1.1 200 OK", "Transfer-Encoding: chunked"), 200, 11, -1, 1),
        (resp("HTTP/1.1 200 OK", "Content-Type: text/html"), 200, 11, -1, 0),
        (resp("HTTP/1.1 101 Switching Protocols", "Upgrade: websocket", "Connection: Upgrade"), 101, 11, -1, 0),
        (resp("HTTP/1.1 100 Continue"), 100, 11, -1, 0),
        (resp("HTTP/1.1 599 Whatever"), 599, 11, -1, 0),
        (resp("HTTP/1.1 200"), 200, 11, -1, 0),  # no reason phrase
        (b"HTTP/1.1 302 Found\nLocation: /\ncontent-length:  3\n\n", 302, 11, 3, 0),
    ],
)
def test_responses(parser: Parser, head: bytes, status: int, version: int, length: int, chunked: int) -> None:
    h = parser.response(head + b"0\r\n\r\n")
    assert h.ok
    assert (h.status, h.version, h.content_length, h.chunked, h.header_len) == (
        status, version, length, chunked, len(head))
    assert h.request == 0


def test_response_ignores_host(parser: Parser) -> None:
    h = parser.response(resp("HTTP/1.1 200 OK", "Host: example.com"))
    assert h.ok
    assert h.authority_raw == bytes(AUTHORITY_LEN)


def test_nginx_response(parser: Parser) -> None:
    head = (b"HTTP/1.1 200 OK\r\n"
            b"Server: nginx/1.24.0\r\n"
            b"Date: Tue, 14 May 2024 09:12:33 GMT\r\n"
            b"Content-Type: text/html\r\n"
            b"Content-Length: 615\r\n"
            b"Last-Modified: Tue, 11 Apr 2023 01:45:34 GMT\r\n"
            b"Connection: keep-alive\r\n"
            b'ETag: "6434bbbe-267"\r\n'
            b"Accept-Ranges: bytes\r\n"
            b"\r\n")
    body = b"<!DOCTYPE html>\n<html>\n<head>\n<title>Welcome to nginx!</title>\n" + b"x" * 550
    h = parser.response(head + body)
    assert h.ok
    assert (h.status, h.version, h.content_length, h.chunked, h.header_len) == (200, 11, 615, 0, len(head))


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"HTTP/1.1",
        b"HTTP/1.1 ",
        b"HTTP/1.1 20",
        b"HTTP/1.1 2x0 OK\r\n\r\n",
        b"HTTP/1.1 20x OK\r\n\r\n",
        b"HTTP/1.1 x00 OK\r\n\r\n",
        b"HTTP/1.1 600 Nope\r\n\r\n",
        b"HTTP/1.1 099 Nope\r\n\r\n",
        b"HTTP/1.1 000 Nope\r\n\r\n",
        b"HTTP/1.1  200 OK\r\n\r\n",
        b"HTTP/2 200\r\n\r\n",
        b"HTTP/2.0 200 OK\r\n\r\n",
        b"http/1.1 200 OK\r\n\r\n",
        b"HTTP/1.1\t200 OK\r\n\r\n",
        b"ICY 200 OK\r\n\r\n",
        b"GET / HTTP/1.1\r\n\r\n",
        b"+PONG\r\n",
        b"\x16\x03\x03\x00\x5a\x02\x00\x00\x56\x03\x03",  # TLS ServerHello
    ],
)
def test_not_a_response(parser: Parser, data: bytes) -> None:
    assert not parser.response(data).ok


def test_every_cut_of_a_response(parser: Parser) -> None:
    head = resp("HTTP/1.1 201 Created", "Location: /items/9", "Content-Length: 2")
    data = head + b"{}"
    for n in range(len(data) + 1):
        parser.assert_cut_ignores_the_rest(data, n)
        h = parser.response(data[:n])
        if n < 12:
            assert not h.ok, n
        elif n < len(head):
            assert h.ok
            assert (h.status, h.header_len) == (201, 0), n
        else:
            assert (h.ok, h.status, h.header_len, h.content_length) == (True, 201, len(head), 2), n


# ---------------------------------------------------------------- properties


def _check_request(data: bytes, h: Head) -> None:
    n = min(len(data), CAPTURE_MAX)
    assert h.request == 1
    assert h.status == 0
    assert h.header_len <= n
    if h.header_len:
        assert data[h.header_len - 1:h.header_len] == b"\n"
        assert h.version in (10, 11)
    assert h.version in (0, 10, 11)
    assert h.content_length == -1 or h.content_length >= 0
    assert h.chunked in (0, 1)
    assert h.op_raw[OP_LEN - 1] == 0
    assert data.startswith(h.op + b" ")
    assert h.target_raw[TARGET_LEN - 1] == 0
    assert h.authority_raw[AUTHORITY_LEN - 1] == 0
    assert not re.search(rb"[ \r\n?#]", h.target)
    assert not re.search(rb"[A-Z \r\n]", h.authority)
    assert _cstr(h.authority_raw) + bytes(AUTHORITY_LEN - len(h.authority)) == h.authority_raw


def _check_response(data: bytes, h: Head) -> None:
    n = min(len(data), CAPTURE_MAX)
    assert 100 <= h.status <= 599
    assert h.status == int(data[9:12])
    assert data.startswith(b"HTTP/1.")
    assert h.version == (10 if data[7:8] == b"0" else 11)
    assert h.request == 0
    assert h.header_len <= n
    if h.header_len:
        assert data[h.header_len - 1:h.header_len] == b"\n"
    assert h.content_length == -1 or h.content_length >= 0
    assert h.chunked in (0, 1)
    assert h.op_raw == bytes(OP_LEN)
    assert h.target_raw == bytes(TARGET_LEN)
    assert h.authority_raw == bytes(AUTHORITY_LEN)


def _check_everything(parser: Parser, data: bytes) -> None:
    """Whatever the bytes: no crash, the invariants, and the same answer whatever lies past n."""
    requests = [parser.request(data, fill) for fill in FILLS]
    responses = [parser.response(data, fill) for fill in FILLS]
    methods = {parser.method_len(data, fill) for fill in FILLS}
    assert len(methods) == 1
    assert methods <= {0, 3, 4, 5, 6, 7}
    assert {h.ok for h in requests} <= ({False} if methods == {0} else {False, True})
    assert len({h.ok for h in requests}) == 1
    assert len({h.ok for h in responses}) == 1
    if requests[0].ok:
        _check_request(data, requests[0])
        assert len({h.raw for h in requests}) == 1
        assert len(requests[0].op) == methods.pop()
    if responses[0].ok:
        _check_response(data, responses[0])
        assert len({h.raw for h in responses}) == 1
    assert not (requests[0].ok and responses[0].ok)


@PROPERTY
@given(st.binary(max_size=CAPTURE_MAX + 80), st.integers(0, CAPTURE_MAX + 80))
def test_random_bytes(parser: Parser, data: bytes, cut: int) -> None:
    _check_everything(parser, data)
    parser.assert_cut_ignores_the_rest(data, min(cut, len(data)))


# random bytes, biased towards the characters the parser looks at
_INTERESTING = st.lists(
    st.one_of(
        st.binary(min_size=1, max_size=8),
        st.sampled_from([b"\r\n", b"\n", b"\r\n\r\n", b" ", b"/", b"?", b"#", b"1234", b"abcdef", b"\0",
                         b"Host: ", b"HOST:", b"Content-Length: ", b"content-length:", b"Transfer-Encoding: ",
                         b" HTTP/1.1\r\n", b" HTTP/1.0\r\n", b"GET /", b"HTTP/1.1 200 ", b"\t", b"-"]),
    ),
    max_size=80,
).map(b"".join)


@PROPERTY
@given(st.sampled_from([b"GET /", b"POST /", b"OPTIONS *", b"GET h", b"HTTP/1.1 200 ", b"HTTP/1.0 404 "]),
       st.one_of(st.binary(max_size=CAPTURE_MAX + 80), _INTERESTING), st.integers(0, CAPTURE_MAX + 80))
def test_random_bytes_after_a_start_line_prefix(parser: Parser, prefix: bytes, tail: bytes, cut: int) -> None:
    data = prefix + tail
    _check_everything(parser, data)
    parser.assert_cut_ignores_the_rest(data, min(cut, len(data)))
    if prefix.startswith(b"HTTP/"):
        h = parser.response(data)
        assert h.ok
        assert h.status == int(prefix[9:12])
    else:
        h = parser.request(data)
        method = prefix.split(b" ")[0]
        assert h.op == method
        if h.ok and h.header_len == 0 and h.version == 0:  # the target did not end in the window
            assert not re.search(rb"[ \r\n]", data[len(method) + 1:CAPTURE_MAX])


# ---------------------------------------------------------------- properties against a model of the route and head

_SEGMENT_CHARS = "0123456789abcdefABCDEF-ghxyzGZ_.~%:@!$&'()*+,;="
_segments = st.lists(st.text(alphabet=_SEGMENT_CHARS, max_size=26), min_size=1, max_size=8)
_suffix = st.one_of(st.just(""), st.text(alphabet=_SEGMENT_CHARS + "/?#", max_size=20).map(lambda s: "?" + s),
                    st.text(alphabet=_SEGMENT_CHARS + "/?", max_size=20).map(lambda s: "#" + s))


def _is_id(segment: bytes) -> bool:
    has_digit = any(48 <= c <= 57 for c in segment)
    return bool(segment) and (
        segment.isdigit()
        or (len(segment) >= 8 and has_digit and all(c in b"0123456789abcdefABCDEF-" for c in segment))
        or (len(segment) >= 20 and has_digit)
    )


def model_route(target: bytes) -> bytes:
    path = re.split(rb"[?#]", target, maxsplit=1)[0]
    return b"/".join(b"{id}" if _is_id(s) else s for s in path.split(b"/"))[: TARGET_LEN - 1]


@PROPERTY
@given(_segments, _suffix, st.sampled_from(["1.0", "1.1"]))
def test_route_matches_model(parser: Parser, segments: list[str], suffix: str, version: str) -> None:
    target = ("/" + "/".join(segments) + suffix).encode()
    data = b"GET " + target + b" HTTP/" + version.encode() + b"\r\nHost: a\r\n\r\n"
    for fill in FILLS:
        h = parser.request(data, fill)
        assert h.ok
        route = model_route(target)
        assert h.target_raw == route.ljust(TARGET_LEN, b"\0")
        assert h.version == (10 if version == "1.0" else 11)
        assert h.header_len == len(data)


_names = st.sampled_from(["Host", "Content-Length", "Transfer-Encoding", "Accept", "User-Agent", "Content-Type",
                          "X-Request-Id", "Cookie", "Hostile", "Content-Lengths"])
_case: st.SearchStrategy[Callable[[str], str]] = st.sampled_from([str.title, str.lower, str.upper])
_value = st.text(alphabet="abcdefXYZ0123456789.-:[]/ ;=", max_size=40)


@st.composite
def _header_lists(draw: st.DrawFn) -> list[tuple[str, str]]:
    headers: list[tuple[str, str]] = []
    has_host = False
    for _ in range(draw(st.integers(0, 8))):
        name = draw(_case)(draw(_names))
        if name.lower() == "content-length":
            value = " " * draw(st.integers(0, 3)) + str(draw(st.integers(0, 10**18 - 1)))
        elif name.lower() == "host":
            if has_host:  # two Host headers blend: see test_duplicate_host_is_not_blended
                continue
            has_host = True
            value = " " * draw(st.integers(0, 2)) + draw(_value)
        else:
            value = " " + draw(_value)
        headers.append((name, value))
    return headers


@PROPERTY
@given(_header_lists(), st.sampled_from(["\r\n", "\n"]), st.booleans(), st.binary(max_size=64))
def test_head_matches_model(parser: Parser, headers: list[tuple[str, str]], eol: str, request: bool,
                            body: bytes) -> None:
    start = "PUT /x/1 HTTP/1.1" if request else "HTTP/1.1 503 Service Unavailable"
    head = (start + eol + "".join(f"{name}:{value}{eol}" for name, value in headers) + eol).encode()
    length, chunked, authority = -1, 0, b""
    for name, value in headers:
        if name.lower() == "content-length":
            length = int(value)
        elif name.lower() == "transfer-encoding":
            chunked = 1
        elif name.lower() == "host" and request:
            authority = value.lstrip(" ").encode().split(b" ")[0].lower()[: AUTHORITY_LEN - 1]
    data = head + body
    for fill in FILLS:
        h = parser.request(data, fill) if request else parser.response(data, fill)
        assert h.ok
        assert (h.header_len, h.content_length, h.chunked, h.authority) == (len(head), length, chunked, authority)
        assert h.status == (0 if request else 503)


def like(parser: Parser, data: bytes, header_len: int, cl_line: int) -> tuple[bool, L7Head]:
    fn = parser.lib.parse_response_like
    fn.argtypes = [ctypes.c_char_p, ctypes.c_uint, ctypes.c_uint, ctypes.c_uint, ctypes.POINTER(L7Head)]
    out = L7Head()
    return bool(fn(data, len(data), header_len, cl_line, ctypes.byref(out))), out


def nginx_head(status: bytes, date: bytes, length: bytes) -> bytes:
    return (b"HTTP/1.1 " + status + b"\r\nServer: nginx/1.22.1\r\nDate: " + date + b"\r\nContent-Type: text/html\r\n"
            b"Content-Length: " + length + b"\r\nConnection: keep-alive\r\n\r\n")


def test_a_head_laid_out_like_the_last_one_reads_status_and_length_only(parser: Parser) -> None:
    first = nginx_head(b"200 OK", b"Sun, 22 Nov 2026 01:13:54 GMT", b"615")
    full = parser.response(first + b"x" * 615)
    assert full.ok and full.content_length == 615 and full.header_len == len(first)
    cl_line = first.index(b"Content-Length")
    assert L7Head.from_buffer_copy(full.raw).cl_line == cl_line
    # the next response: another date, status and length, all of the same width
    second = nginx_head(b"201 OK", b"Sun, 22 Nov 2026 01:13:55 GMT", b"153")
    ok, head = like(parser, second + b"y" * 153, full.header_len, cl_line)
    assert ok and (head.status, head.content_length, head.header_len) == (201, 153, len(second))
    assert not like(parser, nginx_head(b"404 Not Found", b"Sun, 22 Nov 2026 01:13:55 GMT", b"153"),
                    full.header_len, cl_line)[0]
    assert parser.response(second).content_length == 153


@pytest.mark.parametrize("length", [b"0", b"17", b"1234567", b"12345678"])
def test_a_length_that_is_the_last_header_of_a_head_cut_at_its_end(parser: Parser, length: bytes) -> None:
    # the window holds the head only (the connection's last head had this length), so fewer than
    # 8 bytes follow the value: it is still read a word at a time, and the bytes past the window
    # (whatever a fill leaves there) are not taken for digits
    head = b"HTTP/1.1 200 OK\r\nContent-Length: " + length + b"\r\n\r\n"
    for fill in FILLS:
        h = parser.response(head, fill)
        assert h.ok and (h.content_length, h.header_len) == (int(length), len(head))
    ok, h = like(parser, head, len(head), head.index(b"Content-Length"))
    assert ok and h.content_length == int(length)


@pytest.mark.parametrize("other", [
    nginx_head(b"200 OK", b"Sun, 22 Nov 2026 01:13:55 GMT", b"6150"),  # a longer length shifts the end
    nginx_head(b"200 OK", b"Sun, 22 Nov 2026 01:13:55 GMT", b"61") + b"ab",  # the end moved
    b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Sun, 22 Nov 2026 01:13:55 GMT\r\n"
    b"Transfer-Encoding: chunked\r\nConnection: keep-alive\r\n\r\n",
    b"garbage",
])
def test_a_head_laid_out_otherwise_needs_the_full_parse(parser: Parser, other: bytes) -> None:
    first = nginx_head(b"200 OK", b"Sun, 22 Nov 2026 01:13:54 GMT", b"615")
    ok, _ = like(parser, other, len(first), first.index(b"Content-Length"))
    assert not ok


# ---------------------------------------------------------------- a request head seen before


def head_hash(parser: Parser, data: bytes, length: int) -> int:
    fn = parser.lib.head_hash
    fn.argtypes, fn.restype = [ctypes.c_char_p, ctypes.c_uint, ctypes.c_uint], ctypes.c_ulonglong
    return int(fn(data, len(data), length))


def request_like(parser: Parser, data: bytes, length: int, digest: int) -> bool:
    fn = parser.lib.request_like
    fn.argtypes, fn.restype = [ctypes.c_char_p, ctypes.c_uint, ctypes.c_uint, ctypes.c_ulonglong], ctypes.c_int
    return bool(fn(data, len(data), length, digest))


WRK_HEAD = b"GET /bench.html HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n"


def test_the_same_head_again_is_like_the_last_one(parser: Parser) -> None:
    digest = head_hash(parser, WRK_HEAD, len(WRK_HEAD))
    assert request_like(parser, WRK_HEAD, len(WRK_HEAD), digest)
    assert request_like(parser, WRK_HEAD + b"GET /next", len(WRK_HEAD), digest)  # pipelined: the next follows


@pytest.mark.parametrize("other", [
    WRK_HEAD.replace(b"bench", b"bunch"),  # one byte differs
    WRK_HEAD.replace(b"8080", b"8081"),  # in the last word
    WRK_HEAD[:-1],  # cut short
    WRK_HEAD.replace(b"\r\n\r\n", b"\r\nX:\r\n")[: len(WRK_HEAD)],  # the head does not end there
])
def test_another_head_is_not_like_it(parser: Parser, other: bytes) -> None:
    digest = head_hash(parser, WRK_HEAD, len(WRK_HEAD))
    assert not request_like(parser, other, len(WRK_HEAD), digest)


def test_nothing_is_like_no_head(parser: Parser) -> None:
    assert not request_like(parser, WRK_HEAD, 0, head_hash(parser, WRK_HEAD, 0))


@given(st.binary(min_size=4, max_size=600), st.binary(min_size=4, max_size=600))
def test_different_heads_have_different_hashes(parser: Parser, a: bytes, b: bytes) -> None:
    n = min(len(a), len(b), 512)
    if a[:n] != b[:n]:
        assert head_hash(parser, a, n) != head_hash(parser, b, n)
