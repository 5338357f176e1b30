"""HTTP/1.x against real peers: nginx serving files on loopback, driven by curl, wrk and raw sockets.

Every count is exact where the client says how many requests it made: N requests, N counted, on
the client's side and on nginx's."""

from __future__ import annotations

import ctypes
import http.server
import json
import re
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.kernel.harness import Exporter, free_port, wait_until
from tests.kernel.servers import nginx as nginx_server

pytestmark = pytest.mark.usefixtures("bpf_ready")

NGINX_PORT = free_port()
SLOW_PORT = free_port()
SLOW_DELAY = 0.3  # seconds the slow server waits before answering
BIG = 5 * 1024 * 1024
BASE = f"http://127.0.0.1:{NGINX_PORT}"

LOCATIONS = """
        location /echo { return 200 "echo\\n"; }
        location /users/ { return 200 "user\\n"; }
        location /fail { return 503 "down\\n"; }"""


@pytest.fixture(scope="module")
def nginx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("nginx")
    (root / "html").mkdir()
    (root / "html" / "index.html").write_text("hello\n")
    (root / "html" / "wrk.html").write_text("wrk\n")
    (root / "html" / "big.bin").write_bytes(bytes(range(256)) * (BIG // 256))
    with nginx_server(root, NGINX_PORT, LOCATIONS):
        yield root


class SlowHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        time.sleep(SLOW_DELAY)
        body = b"slow\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture(scope="module")
def slow_server() -> Iterator[None]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", SLOW_PORT), SlowHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def exporter(nginx: Path, slow_server: None) -> Iterator[Exporter]:
    exp = Exporter("Common.DropLocalConnections=false", "Bash.Enabled=false", "Netflow.Enabled=false",
                   "Dns.Enabled=false")
    yield exp
    exp.stop()


def curl(*args: str) -> list[str]:
    """Runs one curl (one process, one kept-alive connection for all its URLs); the status codes."""
    argv = [a for arg in args for a in ((arg, "-o", "/dev/null") if arg.startswith("http") else (arg,))]
    out = subprocess.run(["curl", "-s", "-w", "%{http_code}\n", *argv],
                         capture_output=True, text=True, timeout=60).stdout
    return out.split()


def server_count(exp: Exporter, expected: float, **labels: str) -> float:
    return exp.wait_for("http_server_request_duration_seconds_count", expected, process_executable_name="nginx",
                        **labels)


def client_count(exp: Exporter, expected: float, comm: str, **labels: str) -> float:
    return exp.wait_for("http_client_request_duration_seconds_count", expected, process_executable_name=comm,
                        **labels)


def test_counts_per_method_and_status_on_both_sides(exporter: Exporter) -> None:
    cases = [  # (curl arguments, method, route, status, requests)
        ([f"{BASE}/index.html"] * 5, "GET", "/index.html", "200", 5),
        ([f"{BASE}/missing.html"] * 3, "GET", "/missing.html", "404", 3),
        (["-X", "POST", "-d", "a=1&b=2", *[f"{BASE}/echo"] * 4], "POST", "/echo", "200", 4),
        (["-I", *[f"{BASE}/index.html?head=1"] * 2], "HEAD", "/index.html", "200", 2),
        ([f"{BASE}/fail"] * 2, "GET", "/fail", "503", 2),
    ]
    for args, _method, _route, status, n in cases:
        assert curl(*args) == [status] * n
    for _, method, route, status, n in cases:
        labels = {"http_request_method": method, "http_route": route, "http_response_status_code": status}
        assert client_count(exporter, n, "curl", **labels) == n, labels
        assert server_count(exporter, n, **labels) == n, labels
    (labels, _), = exporter.samples("http_server_request_duration_seconds_count", process_executable_name="nginx",
                                    http_route="/fail")
    assert labels["error_type"] == "503"
    assert labels["server_address"] == "127.0.0.1"
    assert labels["server_port"] == str(NGINX_PORT)
    assert labels["network_protocol_version"] == "1.1"
    (labels, _), = exporter.samples("http_client_request_duration_seconds_count", process_executable_name="curl",
                                    http_route="/missing.html")
    assert labels["error_type"] == "404"  # a client error for the client, not for the server
    (labels, _), = exporter.samples("http_server_request_duration_seconds_count", process_executable_name="nginx",
                                    http_route="/missing.html")
    assert labels.get("error_type", "") == ""
    # the POST bodies: 7 bytes each, as sent and as received
    post = {"http_request_method": "POST", "http_route": "/echo"}
    assert exporter.value("http_client_request_body_size_bytes_sum", process_executable_name="curl", **post) == 4 * 7
    assert exporter.value("http_server_request_body_size_bytes_sum", process_executable_name="nginx", **post) == 4 * 7
    assert exporter.value("http_server_response_body_size_bytes_sum", process_executable_name="nginx", **post) == 4 * 5


def test_wrk_requests_are_all_counted(exporter: Exporter) -> None:
    out = subprocess.run(["wrk", "-t1", "-c4", "-d2s", f"{BASE}/wrk.html"], capture_output=True, text=True,
                         timeout=60).stdout
    n = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    assert n > 1000
    route = {"http_route": "/wrk.html"}
    # wrk counts the responses it read whole. When it stops, each of its 4 connections may have a
    # request in flight: never answered (no_response on both sides, or never seen by nginx),
    # answered but not read (no_response for wrk, 200 for nginx), or read only as far as its head
    # (200 on both sides: a response cut short at the close keeps its status, see docs/http.md).
    client = wait_until(lambda: exporter.value("http_client_request_duration_seconds_count",
                                               process_executable_name="wrk", http_response_status_code="200",
                                               **route), lambda v: v >= n)
    unanswered = exporter.value("http_client_request_duration_seconds_count", process_executable_name="wrk",
                                error_type="no_response", **route)
    assert n <= client <= n + 4
    assert client - n + unanswered <= 4
    server = wait_until(lambda: exporter.value("http_server_request_duration_seconds_count",
                                               process_executable_name="nginx", http_response_status_code="200",
                                               **route), lambda v: v >= client)
    assert client <= server <= n + 4


def test_pipelined_requests_are_paired_in_order(exporter: Exporter) -> None:
    paths = ["/index.html", "/missing.html", "/index.html", "/users/7", "/index.html", "/missing.html"]
    with socket.create_connection(("127.0.0.1", NGINX_PORT)) as s:
        s.sendall(b"".join(f"GET {p} HTTP/1.1\r\nHost: pipe.test\r\n\r\n".encode() for p in paths))
        data = b""
        s.settimeout(5)
        while data.count(b"HTTP/1.1 ") < len(paths):
            data += s.recv(65536)
    assert data.count(b"HTTP/1.1 200") == 4 and data.count(b"HTTP/1.1 404") == 2
    host = {"server_address": "pipe.test"}
    for route, status, n in (("/index.html", "200", 3), ("/missing.html", "404", 2), ("/users/{id}", "200", 1)):
        labels = {"http_route": route, "http_response_status_code": status, **host}
        assert client_count(exporter, n, "python", **labels) == n, labels
        assert server_count(exporter, n, **labels) == n, labels


def test_kept_alive_heads_of_the_same_length_are_told_apart(exporter: Exporter) -> None:
    """A head repeated byte for byte is not parsed again (http_request_like); one of the same
    length that differs in a byte must still get its own route."""
    paths = ["/same1.html", "/same1.html", "/same2.html", "/same2.html", "/same1.html"]
    with socket.create_connection(("127.0.0.1", NGINX_PORT)) as s:
        s.settimeout(5)
        for p in paths:  # one at a time: each request is the only data of its call
            s.sendall(f"GET {p} HTTP/1.1\r\nHost: alike.test\r\n\r\n".encode())
            data = b""
            while b"\r\n\r\n" not in data or not data.endswith(b"</html>\r\n"):
                data += s.recv(65536)
            assert data.startswith(b"HTTP/1.1 404")
    host = {"server_address": "alike.test", "http_response_status_code": "404"}
    for route, n in (("/same1.html", 3), ("/same2.html", 2)):
        assert client_count(exporter, n, "python", http_route=route, **host) == n, route
        assert server_count(exporter, n, http_route=route, **host) == n, route


def test_large_response_size_and_latency(exporter: Exporter) -> None:
    out = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code} %{size_download} %{time_total}",
                          f"{BASE}/big.bin"], capture_output=True, text=True, timeout=60).stdout
    status, size, total = out.split()
    assert (status, int(size)) == ("200", BIG)
    labels = {"http_route": "/big.bin"}
    assert client_count(exporter, 1, "curl", **labels) == 1
    assert server_count(exporter, 1, **labels) == 1
    for side, comm in (("client", "curl"), ("server", "nginx")):
        got = exporter.value(f"http_{side}_response_body_size_bytes_sum", process_executable_name=comm, **labels)
        assert got == BIG, side
        # 5 MiB falls in the (4 MiB, 16 MiB] bucket
        assert exporter.value(f"http_{side}_response_body_size_bytes_bucket", process_executable_name=comm,
                              le="4.194304e+06", **labels) == 0
    seconds = exporter.value("http_client_request_duration_seconds_sum", process_executable_name="curl", **labels)
    assert 0 < seconds <= float(total)
    assert float(total) - seconds < 0.005  # curl's total also counts connecting


def test_slow_response_latency_agrees_with_curl(exporter: Exporter) -> None:
    n = 3
    url = f"http://127.0.0.1:{SLOW_PORT}/slow"
    out = subprocess.run(["curl", "-s", "-w", "%{time_total} %{time_pretransfer}\n",
                          *[a for _ in range(n) for a in (url, "-o", "/dev/null")]],
                         capture_output=True, text=True, timeout=60).stdout
    measured = [float(a) - float(b) for a, b in (line.split() for line in out.splitlines())]
    assert len(measured) == n
    labels = {"http_route": "/slow", "server_port": str(SLOW_PORT)}
    assert client_count(exporter, n, "curl", **labels) == n
    mean = exporter.value("http_client_request_duration_seconds_sum", process_executable_name="curl", **labels) / n
    assert abs(mean - sum(measured) / n) < 0.01, (mean, measured)
    assert exporter.value("http_client_request_duration_seconds_bucket", le="0.25", **labels) == 0
    assert exporter.value("http_client_request_duration_seconds_bucket", le="0.5", **labels) == n
    # the server (this test process) waited SLOW_DELAY between reading each request and answering
    assert exporter.wait_for("http_server_request_duration_seconds_count", n, **labels) == n
    server_mean = exporter.value("http_server_request_duration_seconds_sum", **labels) / n
    assert SLOW_DELAY <= server_mean < SLOW_DELAY + 0.01


def test_a_duration_runs_between_the_calls_not_the_data_arriving(exporter: Exporter) -> None:
    """A call's time is the socket's TCP clock as the call set it: a request left waiting in the
    server's socket is timed from the server's read, and a response left waiting in the client's
    socket ends at the client's read."""
    wait_request, serve, wait_response = 0.3, 0.2, 0.25
    with socket.create_server(("127.0.0.1", 0)) as listener, \
            socket.create_connection(listener.getsockname(), timeout=5) as client:
        server, _ = listener.accept()
        with server:
            request = b"GET /waited HTTP/1.1\r\nHost: clock.test\r\n\r\n"
            client.sendall(request)
            time.sleep(wait_request)  # the request waits in the server's socket
            assert server.recv(1024) == request
            time.sleep(serve)
            response = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
            server.sendall(response)
            time.sleep(wait_response)  # the response waits in the client's socket
            assert client.recv(1024) == response
    labels = {"server_address": "clock.test", "http_route": "/waited"}
    assert client_count(exporter, 1, "python", **labels) == 1
    assert exporter.wait_for("http_server_request_duration_seconds_count", 1, process_executable_name="python",
                             **labels) == 1
    server = exporter.value("http_server_request_duration_seconds_sum", process_executable_name="python", **labels)
    assert serve <= server < serve + 0.02, server
    whole = wait_request + serve + wait_response
    client = exporter.value("http_client_request_duration_seconds_sum", process_executable_name="python", **labels)
    assert whole <= client < whole + 0.02, client


def test_ids_in_paths_fold_into_one_route(exporter: Exporter) -> None:
    urls = [f"{BASE}/users/123/orders/9f1c2e3d4a5b6c7d?page=2",
            f"{BASE}/users/456/orders/550e8400-e29b-41d4-a716-446655440000",
            f"{BASE}/users/789/orders/0123456789abcdef0123"]
    assert curl(*urls) == ["200"] * 3
    labels = {"http_route": "/users/{id}/orders/{id}"}
    assert client_count(exporter, 3, "curl", **labels) == 3
    assert server_count(exporter, 3, **labels) == 3


def test_records_have_ilogtail_http_fields(nginx: Path, tmp_path: Path) -> None:
    path = tmp_path / "records.jsonl"
    exp = Exporter("Common.DropLocalConnections=false", "Bash.Enabled=false", "Netflow.Enabled=false",
                   "Dns.Enabled=false", f"Telemetry.Records={path}", "Common.FlushOutL7Interval=1")
    try:
        assert curl(*[f"{BASE}/index.html?rec=1"] * 3) == ["200"] * 3

        def curl_records() -> list[dict[str, str]]:
            lines = path.read_text().splitlines() if path.exists() else []
            return [r for r in map(json.loads, lines)
                    if r.get("protocol") == "http" and r["role"] == "client" and r["url"] == "/index.html"]

        wait_until(lambda: sum(int(r["total_count"]) for r in curl_records()), lambda v: v == 3)
        records = curl_records()
        assert sum(int(r["total_count"]) for r in records) == 3
        r = records[0]
        assert (r["type"], r["method"], r["url"], r["resp_code"], r["version"]) == \
            ("protocols", "GET", "/index.html", "200", "1.1")
        assert r["host"] == f"127.0.0.1:{NGINX_PORT}"
        assert json.loads(r["remote_info"]) == {"remote_ip": "127.0.0.1", "remote_port": str(NGINX_PORT),
                                                "remote_type": "server"}
        assert int(r["total_latency_ns"]) > 0 and int(r["total_req_bytes"]) > 0 and int(r["total_resp_bytes"]) > 0
    finally:
        exp.stop()


def test_max_connections_counts_what_it_cannot_follow_and_gives_places_back(nginx: Path) -> None:
    """L7.MaxConnections=2: one loopback connection fills it (its client and its server socket);
    requests on two more are counted as lost, and once all close the places are free again."""
    exp = Exporter("Common.DropLocalConnections=false", "Bash.Enabled=false", "Netflow.Enabled=false",
                   "Dns.Enabled=false", "L7.MaxConnections=2")

    def exchange(s: socket.socket) -> None:
        s.sendall(b"GET /capped.html HTTP/1.1\r\nHost: capped.test\r\n\r\n")
        data = b""
        while not data.endswith(b"</html>\r\n"):
            data += s.recv(65536)

    try:
        time.sleep(1)  # the harness's readiness scrapes (HTTP on loopback) have closed: their places are free
        held = [socket.create_connection(("127.0.0.1", NGINX_PORT), timeout=5) for _ in range(3)]
        for s in held:
            exchange(s)
        labels = {"server_address": "capped.test", "http_route": "/capped.html"}
        assert client_count(exp, 1, "python", **labels) == 1
        assert server_count(exp, 1, **labels) == 1
        # the other two connections' requests, one per side; the harness's own scrapes (HTTP on
        # loopback too) also find it full while the first connection is held
        lost = {"collector": "l7", "reason": "conns_full"}
        assert wait_until(lambda: exp.value("netobs_events_lost_total", **lost), lambda v: v >= 4) >= 4
        for s in held:
            s.close()
        time.sleep(0.5)
        with socket.create_connection(("127.0.0.1", NGINX_PORT), timeout=5) as s:
            exchange(s)
        assert client_count(exp, 2, "python", **labels) == 2  # followed: the first connection's places are free
        assert server_count(exp, 2, **labels) == 2
    finally:
        exp.stop()


def test_sampling_zero_tracks_nothing(nginx: Path) -> None:
    exp = Exporter("Common.DropLocalConnections=false", "Bash.Enabled=false", "Netflow.Enabled=false",
                   "Dns.Enabled=false", "Common.Sampling=0")
    try:
        assert curl(*[f"{BASE}/index.html?sampled=0"] * 3) == ["200"] * 3
        time.sleep(1.5)
        assert exp.samples("http_client_request_duration_seconds_count") == []
    finally:
        exp.stop()


def test_local_connections_are_dropped_by_default(nginx: Path) -> None:
    exp = Exporter("Bash.Enabled=false", "Netflow.Enabled=false", "Dns.Enabled=false")
    try:
        assert curl(f"{BASE}/index.html?local=1") == ["200"]
        time.sleep(1.5)
        assert exp.samples("http_client_request_duration_seconds_count") == []
    finally:
        exp.stop()


def one_exchange(client: socket.socket, server: socket.socket, route: str, host: str) -> None:
    """One HTTP request from `client`, read whole by `server`, and its response, read whole back."""
    request = f"GET {route} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
    client.sendall(request)
    assert server.recv(1024) == request
    response = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    server.sendall(response)
    assert client.recv(1024) == response


OPAQUE = b"\xffopaque\xff"  # no protocol's first bytes, nor a TLS record's (test_tls.py)


def lock_step_connection(opaque_messages: int, route: str) -> None:
    """One loopback connection, both ends in this process: `opaque_messages` messages of no protocol
    from the client, each read by the server before the next is sent (one call each), then one HTTP
    request and its response."""
    with socket.create_server(("127.0.0.1", 0)) as listener, \
            socket.create_connection(listener.getsockname(), timeout=5) as client:
        server, _ = listener.accept()
        with server:
            for _ in range(opaque_messages):
                client.sendall(OPAQUE)
                assert server.recv(64) == OPAQUE
            one_exchange(client, server, route, "sniff.test")


def test_a_connection_is_looked_at_for_eight_calls_then_never_again(exporter: Exporter) -> None:
    """Each end of a connection is looked at for a request head (or a MySQL greeting) on its first 8
    calls with data: a request after 7 calls of something else is followed on both sides, one after 8
    is not. What was decided about each socket goes with it: the kernel keeps nothing once they close."""
    lock_step_connection(7, "/sniffed/after-7")
    lock_step_connection(8, "/sniffed/after-8")
    labels = {"server_address": "sniff.test", "http_route": "/sniffed/after-7"}
    assert client_count(exporter, 1, "python", **labels) == 1
    assert exporter.wait_for("http_server_request_duration_seconds_count", 1, process_executable_name="python",
                             **labels) == 1
    time.sleep(1.5)  # a read after the second connection's end
    assert exporter.samples("http_client_request_duration_seconds_count", http_route="/sniffed/after-8") == []
    assert exporter.samples("http_server_request_duration_seconds_count", http_route="/sniffed/after-8") == []
    # the harness's scrapes are HTTP on loopback, followed and closed: no socket of this test is left
    assert wait_until(lambda: len(exporter.kernel_map("sniffed")), lambda n: n == 0) == 0


def test_a_socket_connected_again_after_a_disconnect_is_a_new_connection(exporter: Exporter) -> None:
    """connect(AF_UNSPEC) ends a TCP connection and leaves the socket reusable: the state of its
    first connection (closed, kept until the socket is released) must not hide the second."""
    libc = ctypes.CDLL(None, use_errno=True)
    unspec = (ctypes.c_ubyte * 16)()  # a struct sockaddr whose family is AF_UNSPEC (0)
    route = "/reconnected"
    with socket.create_server(("127.0.0.1", 0)) as listener, socket.socket() as client:
        client.settimeout(5)
        for _ in range(2):
            client.connect(listener.getsockname())
            server, _ = listener.accept()
            with server:
                one_exchange(client, server, route, "again.test")
            assert libc.connect(client.fileno(), unspec, ctypes.sizeof(unspec)) == 0, ctypes.get_errno()
    labels = {"server_address": "again.test", "http_route": route}
    assert client_count(exporter, 2, "python", **labels) == 2
    assert exporter.wait_for("http_server_request_duration_seconds_count", 2, process_executable_name="python",
                             **labels) == 2
