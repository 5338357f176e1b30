"""The HTTP endpoint over a real socket, with the fixture's rows: content negotiation, gzip, health
paths, and concurrent scrapes that collect and render once."""

from __future__ import annotations

import gzip
import socket
import struct
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from exporter.config import load_config
from exporter.telemetry import pipeline, web
from tests.unit.series_fixture import FixtureSource, collection

PROMETHEUS_ACCEPT = ("application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;"
                     "q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1")


class CountingSource(FixtureSource):
    def __init__(self) -> None:
        super().__init__()
        self.refreshes = 0

    def refresh(self) -> None:
        self.refreshes += 1


@pytest.fixture
def served() -> Iterator[tuple[str, CountingSource]]:
    source = CountingSource()
    fixture = collection()  # the fixture's attribution, for the source's rows
    server = web.bind("127.0.0.1:0")
    telemetry = pipeline.start(load_config(None, {}, []), [source], server, attribute=fixture.attribute, environ={})
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", source
    finally:
        telemetry.shutdown()


def get(url: str, **headers: str) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def test_prometheus_gets_openmetrics_gzipped(served: tuple[str, CountingSource]) -> None:
    base, _ = served
    status, headers, body = get(f"{base}/metrics", Accept=PROMETHEUS_ACCEPT, **{"Accept-Encoding": "gzip"})
    assert status == 200
    assert headers["Content-Type"] == "application/openmetrics-text; version=1.0.0; charset=utf-8"
    assert headers["Content-Encoding"] == "gzip" and int(headers["Content-Length"]) == len(body)
    text = gzip.decompress(body).decode()
    assert text.endswith("# EOF\n") and "netflow_bytes_total{" in text and "# TYPE netflow_bytes counter" in text


def test_the_gzipped_body_is_the_same_text(served: tuple[str, CountingSource]) -> None:
    base, _ = served
    plain = get(f"{base}/metrics")[2]
    _, headers, packed = get(f"{base}/metrics", **{"Accept-Encoding": "gzip, deflate"})
    assert headers["Content-Encoding"] == "gzip" and len(packed) < len(plain)
    assert gzip.decompress(packed) == plain


def test_a_plain_client_gets_plain_text(served: tuple[str, CountingSource]) -> None:
    base, _ = served
    status, headers, body = get(f"{base}/metrics")
    assert status == 200 and "Content-Encoding" not in headers
    assert headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert b"# TYPE netflow_bytes_total counter" in body and not body.endswith(b"# EOF\n")


def test_concurrent_scrapes_collect_once(served: tuple[str, CountingSource]) -> None:
    base, source = served
    bodies: list[bytes] = []

    def scrape() -> None:
        bodies.append(get(f"{base}/metrics", **{"Accept-Encoding": "gzip"})[2])

    threads = [threading.Thread(target=scrape) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(bodies) == 4 and len(set(bodies)) == 1
    assert source.refreshes == 1  # one collection for all four, younger than a second


def test_health_landing_and_unknown_paths(served: tuple[str, CountingSource]) -> None:
    base, _ = served
    assert get(f"{base}/-/healthy")[0] == 200 and get(f"{base}/-/ready")[0] == 200
    status, _, landing = get(f"{base}/")
    assert status == 200 and b'href="/metrics"' in landing
    assert get(f"{base}/nothing")[0] == 404


def test_a_client_that_leaves_mid_reply_is_no_error(served: tuple[str, CountingSource],
                                                      capfd: pytest.CaptureFixture[str]) -> None:
    """A scraper that times out closes its connection while the body is being written: the server
    writes no traceback and goes on answering."""
    base, _ = served
    port = int(base.rsplit(":", 1)[1])
    for _ in range(20):
        with socket.create_connection(("127.0.0.1", port)) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
            s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # reset, not FIN
    assert get(f"{base}/metrics")[0] == 200
    assert "Traceback" not in capfd.readouterr().err
