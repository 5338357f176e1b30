"""HTTP/2 and gRPC against real peers on loopback.

nginx with `http2`, in clear (prior knowledge) and over TLS (ALPN h2), driven by h2load with 10 streams
in flight on each connection and by curl; a grpcio server and client (grpc_peer.py); a Go net/http
server and client over crypto/tls. Every count is exact, on the client's side and on the server's, and
carries network_protocol_version="2"."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.kernel.grpc_peer import STREAM_GAP, STREAM_MESSAGES
from tests.kernel.harness import WITH_PID, Exporter, free_port, wait_until
from tests.kernel.servers import nginx as nginx_server
from tests.kernel.servers import wait_port

pytestmark = pytest.mark.usefixtures("bpf_ready")

PORT, TLS_PORT = free_port(), free_port()  # nginx's: HTTP/2 in clear, and over TLS
H2 = {"network_protocol_version": "2"}
CLEAR = {"url_scheme": "http", "tls_protocol_name": ""}  # "": a series without the label
HTTPS = {"url_scheme": "https", "tls_protocol_name": "tls"}
BODY = "x" * 64  # curl's POST body, one DATA frame
# /echo answers with the request's body once it has read it all. nginx's `return` answers before the body
# comes (curl sends it after the headers' frame), and curl then does not send it.
ECHO_MODULE = "load_module /usr/lib/nginx/modules/ngx_http_echo_module.so;\n"  # Debian's, with nginx-light
ECHO = "        location /echo { echo_read_request_body; echo_request_body; }"
GRPC_PEER = Path(__file__).with_name("grpc_peer.py")


@pytest.fixture(scope="module")
def nginx(tmp_path_factory: pytest.TempPathFactory, certificate: tuple[Path, Path]) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("nginx-h2")
    (root / "html").mkdir()
    (root / "html" / "index.html").write_text("hello\n")
    cert, key = certificate
    # nginx 1.22 (Debian 12): http2 is a parameter of listen (1.25 made it a directive, `http2 on;`)
    tls = f"listen 127.0.0.1:{TLS_PORT} ssl http2;\n        ssl_certificate {cert};\n        ssl_certificate_key {key}"
    with nginx_server(root, PORT, ECHO, listen=f" http2;\n        {tls}", main=ECHO_MODULE):
        yield root


@pytest.fixture(scope="module")
def exporter(nginx: Path) -> Iterator[Exporter]:
    exp = Exporter("Common.DropLocalConnections=false", "Bash.Enabled=false", "Netflow.Enabled=false",
                   "Dns.Enabled=false", "L7.Tls.RescanInterval=1", WITH_PID)
    yield exp
    exp.stop()


def count(exp: Exporter, side: str, expected: float, comm: str, port: int, **labels: str) -> float:
    """HTTP/2 requests of one process (as client or server) with the server on `port`, once `expected`."""
    return exp.wait_for(f"http_{side}_request_duration_seconds_count", expected, timeout=15,
                        process_executable_name=comm, server_port=str(port), **H2, **labels)


def h2load(url: str, n: int) -> str:
    """h2load's report of `n` GETs of `url` on 2 connections, 10 streams in flight on each."""
    return subprocess.run(["h2load", "-n", str(n), "-c", "2", "-m", "10", url], capture_output=True, text=True,
                          timeout=120).stdout


def test_h2load_in_clear_with_prior_knowledge(exporter: Exporter) -> None:
    out = h2load(f"http://127.0.0.1:{PORT}/", 3000)
    assert re.search(r"^Application protocol: h2c$", out, re.M), out
    assert "requests: 3000 total, 3000 started, 3000 done, 3000 succeeded" in out, out
    out = h2load(f"http://127.0.0.1:{PORT}/missing", 200)  # h2load counts a 404 as failed
    assert "200 done, 0 succeeded, 200 failed" in out and "status codes: 0 2xx, 0 3xx, 200 4xx" in out, out
    for route, status, n in (("/", "200", 3000), ("/missing", "404", 200)):
        labels = {"http_request_method": "GET", "http_route": route, "http_response_status_code": status, **CLEAR}
        assert count(exporter, "client", n, "h2load", PORT, **labels) == n, labels
        assert count(exporter, "server", n, "nginx", PORT, **labels) == n, labels
    (labels, _), = exporter.samples("http_server_request_duration_seconds_count", process_executable_name="nginx",
                                    server_port=str(PORT), http_route="/missing")
    assert labels["server_address"] == "127.0.0.1"  # from :authority
    # the connection preface ("PRI * HTTP/2.0") is no HTTP/1.x request: every request on this port is HTTP/2
    for side in ("client", "server"):
        versions = {labels.get("network_protocol_version") for labels, _ in
                    exporter.samples(f"http_{side}_request_duration_seconds_count", server_port=str(PORT))}
        assert versions == {"2"}, side


def test_curl_posts_with_prior_knowledge(exporter: Exporter) -> None:
    n = 5
    for _ in range(n):  # a process and a connection each
        out = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code} %{http_version}",
                              "--http2-prior-knowledge", "-d", BODY, f"http://127.0.0.1:{PORT}/echo"],
                             capture_output=True, text=True, timeout=60).stdout
        assert out == "200 2"
    post = {"http_request_method": "POST", "http_route": "/echo", **CLEAR}
    assert count(exporter, "client", n, "curl", PORT, http_response_status_code="200", **post) == n
    assert count(exporter, "server", n, "nginx", PORT, http_response_status_code="200", **post) == n
    # the DATA frames' payloads, not the frames: the body up, and back down
    for side, comm in (("client", "curl"), ("server", "nginx")):
        sizes = {what: exporter.value(f"http_{side}_{what}_body_size_bytes_sum", process_executable_name=comm,
                                      server_port=str(PORT), **H2, **post) for what in ("request", "response")}
        assert sizes == {"request": n * len(BODY), "response": n * len(BODY)}, side


def test_h2load_over_tls_negotiates_h2(exporter: Exporter) -> None:
    out = h2load(f"https://127.0.0.1:{TLS_PORT}/", 3000)
    assert re.search(r"^Application protocol: h2$", out, re.M), out  # by ALPN
    assert "requests: 3000 total, 3000 started, 3000 done, 3000 succeeded" in out, out
    labels = {"http_request_method": "GET", "http_route": "/", "http_response_status_code": "200", **HTTPS}
    assert count(exporter, "client", 3000, "h2load", TLS_PORT, **labels) == 3000
    assert count(exporter, "server", 3000, "nginx", TLS_PORT, **labels) == 3000
    # nothing of it was read as cleartext, nor left without its connection
    assert exporter.value("http_server_request_duration_seconds_count", server_port=str(TLS_PORT),
                          url_scheme="http") == 0
    assert exporter.value("netobs_events_lost_total", collector="l7", reason="tls_socket_unknown") == 0


GRPC_CALLS = {("Unary", "0"): 40, ("Unary", "5"): 7, ("Unary", "14"): 5, ("ServerStream", "0"): 3}


def test_grpc_calls_per_method_and_status_on_both_sides(exporter: Exporter) -> None:
    """Two processes, one connection: 52 unary calls in flight at once (OK, NOT_FOUND and UNAVAILABLE,
    the failures as Trailers-Only responses), then 3 server-streaming calls."""
    port = free_port()
    server = subprocess.Popen([sys.executable, str(GRPC_PEER), "serve", str(port)], stderr=subprocess.PIPE)
    try:
        wait_port(port, server, "the gRPC server")
        client = subprocess.Popen([sys.executable, str(GRPC_PEER), "call", str(port), "ok=40", "not_found=7",
                                   "unavailable=5", "stream=3"], stdout=subprocess.PIPE, text=True)
        out, _ = client.communicate(timeout=60)
        assert client.returncode == 0
        assert json.loads(out) == {**{f"{m} {s}": n for (m, s), n in GRPC_CALLS.items()},
                                   "messages": 3 * STREAM_MESSAGES}
        grpc = {"rpc_system": "grpc", "rpc_service": "netobs.test.Echo", "server_port": str(port), **H2}
        for side, pid in (("server", server.pid), ("client", client.pid)):
            for (method, status), n in GRPC_CALLS.items():
                got = exporter.wait_for(f"rpc_{side}_call_duration_seconds_count", n, timeout=15,
                                        process_pid=str(pid), rpc_method=method, rpc_grpc_status_code=status, **grpc)
                assert got == n, (side, method, status)
            # a streaming call is one call, to its last message
            seconds = exporter.value(f"rpc_{side}_call_duration_seconds_sum", process_pid=str(pid),
                                     rpc_method="ServerStream", **grpc)
            assert seconds >= 3 * (STREAM_MESSAGES - 1) * STREAM_GAP, side
        # gRPC calls are the rpc instruments' alone
        assert exporter.samples("http_server_request_duration_seconds_count", server_port=str(port)) == []
        assert exporter.samples("http_client_request_duration_seconds_count", server_port=str(port)) == []
    finally:
        server.terminate()
        server.wait()


GO_H2 = """package main

import (
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"os"
	"strconv"
	"sync"
	"time"
)

// serve ADDR CERT KEY | get URL N WORKERS: HTTP/2 over crypto/tls, chosen by ALPN on both sides.
// get makes one request, then the other N-1 from WORKERS goroutines at once, and prints how many
// responses came of each protocol and status, and on how many connections. The server answers after
// 10 ms, so that the workers' streams overlap on the connection.
func main() {
	if os.Args[1] == "serve" {
		http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
			time.Sleep(10 * time.Millisecond)
			if r.URL.Path == "/missing" {
				w.WriteHeader(http.StatusNotFound)
			}
			io.WriteString(w, r.Proto+"\\n")
		})
		fmt.Println(http.ListenAndServeTLS(os.Args[2], os.Args[3], os.Args[4], nil))
		os.Exit(1)
	}
	client := &http.Client{Transport: &http.Transport{ForceAttemptHTTP2: true,
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	n, _ := strconv.Atoi(os.Args[3])
	workers, _ := strconv.Atoi(os.Args[4])
	var mu sync.Mutex
	seen, conns := map[string]int{}, map[string]bool{}
	trace := &httptrace.ClientTrace{GotConn: func(info httptrace.GotConnInfo) {
		mu.Lock()
		conns[info.Conn.LocalAddr().String()] = true
		mu.Unlock()
	}}
	get := func() {
		request, _ := http.NewRequest("GET", os.Args[2], nil)
		response, err := client.Do(request.WithContext(httptrace.WithClientTrace(request.Context(), trace)))
		if err != nil {
			fmt.Println(err)
			os.Exit(1)
		}
		io.Copy(io.Discard, response.Body)
		response.Body.Close()
		mu.Lock()
		seen[response.Proto+" "+strconv.Itoa(response.StatusCode)]++
		mu.Unlock()
	}
	get()
	jobs, done := make(chan bool, n), sync.WaitGroup{}
	for i := 1; i < n; i++ {
		jobs <- true
	}
	close(jobs)
	for w := 0; w < workers; w++ {
		done.Add(1)
		go func() {
			defer done.Done()
			for range jobs {
				get()
			}
		}()
	}
	done.Wait()
	seen["connections"] = len(conns)
	out, _ := json.Marshal(seen)
	fmt.Println(string(out))
}
"""


@pytest.fixture(scope="module")
def go_h2(build_go: Callable[[str, str], Path]) -> Path:
    return build_go(GO_H2, "goh2")


def go_get(program: Path, url: str, n: int, workers: int) -> dict[str, int]:
    out = subprocess.run([str(program), "get", url, str(n), str(workers)], capture_output=True, text=True,
                         timeout=60, check=True).stdout
    return dict(json.loads(out))


def test_go_net_http_client_and_server_over_tls(exporter: Exporter, go_h2: Path,
                                                certificate: tuple[Path, Path]) -> None:
    """One Go binary, two processes: the server traced once a rescan finds it, the client from its start."""
    port = free_port()
    server = subprocess.Popen([str(go_h2), "serve", f"127.0.0.1:{port}", *map(str, certificate)],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        wait_port(port, server, "the Go server")
        assert wait_until(lambda: exporter.value("netobs_program_attached", collector="l7", program=f"tls:{go_h2}"),
                          lambda v: v == 1, timeout=20) == 1
        base = f"https://127.0.0.1:{port}"
        assert go_get(go_h2, f"{base}/index", 60, 10) == {"HTTP/2.0 200": 60, "connections": 1}
        assert go_get(go_h2, f"{base}/missing", 6, 3) == {"HTTP/2.0 404": 6, "connections": 1}
        for route, status, n in (("/index", "200", 60), ("/missing", "404", 6)):
            labels = {"http_request_method": "GET", "http_route": route, "http_response_status_code": status,
                      **HTTPS}
            for side in ("client", "server"):
                assert count(exporter, side, n, "goh2", port, **labels) == n, (side, labels)
                # each stream timed alone: the server's 10 ms, not the connection's time
                seconds = exporter.value(f"http_{side}_request_duration_seconds_sum", process_executable_name="goh2",
                                         server_port=str(port), http_route=route, **H2)
                assert 0.01 <= seconds / n < 0.1, (side, route, seconds / n)
    finally:
        server.terminate()
        server.wait()


def test_connection_open_before_the_exporter_counts_what_is_certain(nginx: Path) -> None:
    """h2load's one connection is open, its preface and first header blocks gone by, when the exporter starts.
    Its frames are found by a HEADERS frame that starts with a static pseudo-header; :method GET, :path / and
    :status 200 are static-table indexes, so certain; :authority refers to an entry inserted before the
    exporter, so it is left out (server_address is the server's IP) rather than guessed."""
    load = subprocess.Popen(["h2load", "-c", "1", "-m", "1", "--rps", "25", "-D", "8", f"http://127.0.0.1:{PORT}/"],
                            stdout=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: subprocess.run(["ss", "-Htn", "state", "established", f"dport = :{PORT}"],
                                          capture_output=True, text=True).stdout.strip(), bool, 5)
        exp = Exporter("Common.DropLocalConnections=false", "Bash.Enabled=false", "Netflow.Enabled=false",
                       "Dns.Enabled=false", "L7.Tls.Enabled=false")
        try:
            out, _ = load.communicate(timeout=30)
            assert "0 failed" in out, out
            labels = {"http_request_method": "GET", "http_route": "/", "http_response_status_code": "200", **CLEAR}
            time.sleep(3)  # the series' last increments read
            got = {side: exp.value(f"http_{side}_request_duration_seconds_count", process_executable_name=comm,
                                   server_port=str(PORT), **H2, **labels)
                   for side, comm in (("client", "h2load"), ("server", "nginx"))}
            assert got["client"] >= 50 and got["server"] >= 50, got  # 25/s over the ~5 s left once attached
            assert abs(got["client"] - got["server"]) <= 2, got  # the request in flight at the start, on one side
            for side in ("client", "server"):
                addresses = {lab["server_address"] for lab, _ in
                             exp.samples(f"http_{side}_request_duration_seconds_count", server_port=str(PORT))}
                assert addresses == {"127.0.0.1"}, (side, addresses)
        finally:
            exp.stop()
    finally:
        load.kill()
        load.wait()


def test_h2c_upgrade_from_http_1_1(exporter: Exporter) -> None:
    """curl --http2 asks a cleartext server to upgrade (Upgrade: h2c): the upgrading request's response comes
    as stream 1 after the 101, the next requests as streams of their own on the same connection. All are
    HTTP/2 requests on both sides; the 101 is no request of its own."""
    port = free_port()
    server = subprocess.Popen([sys.executable, str(Path(__file__).with_name("h2c_peer.py")), str(port)])
    try:
        wait_port(port, server, "the h2c server")
        urls = [f"http://127.0.0.1:{port}{path}" for path in ("/items/42", "/b", "/b")]
        out = subprocess.run(["curl", "-sS", "--http2", *[a for u in urls for a in ("-o", "/dev/null", u)],
                              "-w", "%{http_version} "], capture_output=True, text=True, timeout=30, check=True).stdout
        assert out.split() == ["2", "2", "2"], out
        for route, n in (("/items/{id}", 1), ("/b", 2)):
            labels = {"http_request_method": "GET", "http_route": route, "http_response_status_code": "200", **CLEAR}
            assert count(exporter, "client", n, "curl", port, **labels) == n, route
            server_side = exporter.wait_for("http_server_request_duration_seconds_count", n, timeout=15,
                                            process_pid=str(server.pid), server_port=str(port), **H2, **labels)
            assert server_side == n, route
        for side in ("client", "server"):
            versions = {labels.get("network_protocol_version") for labels, _ in
                        exporter.samples(f"http_{side}_request_duration_seconds_count", server_port=str(port))}
            assert versions == {"2"}, side
    finally:
        server.kill()
        server.wait()


def test_other_upgrades_count_their_101_once(exporter: Exporter) -> None:
    """A 101 to another protocol (WebSocket here): the upgrading request is counted once, with status 101,
    and the frames that follow are not read as HTTP."""
    port = free_port()
    listener = socket.create_server(("127.0.0.1", port))

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.recv(4096)
            conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
            while data := conn.recv(4096):
                conn.sendall(data)  # an echo of the "frames"

    thread = threading.Thread(target=serve)
    thread.start()
    with socket.create_connection(("127.0.0.1", port)) as client:
        client.sendall(b"GET /chat HTTP/1.1\r\nHost: ws.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
        assert client.recv(4096).startswith(b"HTTP/1.1 101")
        for _ in range(5):  # frames that would read as HTTP heads if parsed as such
            client.sendall(b"GET /not-a-request HTTP/1.1\r\n\r\n")
            client.recv(4096)
    thread.join()
    listener.close()
    labels = {"http_request_method": "GET", "http_route": "/chat", "http_response_status_code": "101",
              "network_protocol_version": "1.1"}
    for side in ("client", "server"):
        name = f"http_{side}_request_duration_seconds_count"
        assert exporter.wait_for(name, 1, timeout=15, server_port=str(port), **labels) == 1, side
        assert exporter.value(name, server_port=str(port)) == 1, side  # nothing after the 101


PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
FRAMES = st.lists(st.tuples(st.integers(0, 12), st.integers(0, 255), st.sampled_from([0, 1, 2, 3, 5, 2**31 - 1]),
                            st.binary(max_size=80), st.one_of(st.none(), st.integers(0, 2**24 - 1))), max_size=12)


def _frames(frames: list[tuple[int, int, int, bytes, int | None]]) -> bytes:
    """Frames whose length is their payload's, or a lie."""
    return b"".join((len(payload) if length is None else length).to_bytes(3, "big") + bytes([kind, flags])
                    + stream.to_bytes(4, "big") + payload for kind, flags, stream, payload, length in frames)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(requests=FRAMES, responses=FRAMES)
def test_random_frames_leave_no_state_and_do_not_disturb_other_connections(
        exporter: Exporter, requests: list[tuple[int, int, int, bytes, int | None]],
        responses: list[tuple[int, int, int, bytes, int | None]]) -> None:
    """Random frames (lying lengths, unknown types, random header blocks) both ways on a connection that began
    with the preface: whatever the kernel makes of them, its state goes with the connection."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.create_connection(listener.getsockname())
        server, _ = listener.accept()
        with client, server:
            client.sendall(PREFACE + _frames(requests))
            server.settimeout(5)
            server.recv(65536)
            server.sendall(_frames(responses))
            client.settimeout(5)
            if responses:
                client.recv(65536)


def test_after_random_frames_nothing_is_left_and_counts_stay_exact(exporter: Exporter) -> None:
    assert wait_until(lambda: len(exporter.kernel_map("h2_conns")), lambda n: n == 0, timeout=20) == 0
    labels = {"http_request_method": "GET", "http_route": "/", "http_response_status_code": "200", **CLEAR}
    before = exporter.value("http_server_request_duration_seconds_count", process_executable_name="nginx",
                            server_port=str(PORT), **H2, **labels)
    assert "100 succeeded" in h2load(f"http://127.0.0.1:{PORT}/", 100)
    assert count(exporter, "server", before + 100, "nginx", PORT, **labels) == before + 100


def test_grpc_connection_open_before_the_exporter_reports_no_guess(nginx: Path) -> None:
    """A grpcio connection whose header tables were filled before the exporter started: its requests refer to
    entries the kernel never saw (:path, content-type), so they cannot be told from plain HTTP/2 and are
    counted as POSTs without a route, with the :status sent as a static index; nothing is reported as a gRPC
    call without a status, nor as a call that got no response."""
    port = free_port()
    server = subprocess.Popen([sys.executable, str(GRPC_PEER), "serve", str(port)], stderr=subprocess.PIPE)
    client = None
    exp = None
    try:
        wait_port(port, server, "the gRPC server")
        client = subprocess.Popen([sys.executable, str(GRPC_PEER), "call", str(port), "wait=1", "seq=20"],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert client.stdout is not None and client.stdin is not None
        assert json.loads(client.stdout.readline()) == {"ready": True}
        exp = Exporter("Common.DropLocalConnections=false", "Bash.Enabled=false", "Netflow.Enabled=false",
                       "Dns.Enabled=false", "L7.Tls.Enabled=false")
        client.stdin.write("go\n")
        client.stdin.flush()
        assert json.loads(client.stdout.readline()) == {"Unary 0": 20}
        time.sleep(3)  # the series' last increments read
        for side in ("client", "server"):
            posts = exp.value(f"http_{side}_request_duration_seconds_count", server_port=str(port), **H2,
                              http_request_method="POST", http_response_status_code="200", http_route="")
            assert 15 <= posts <= 20, (side, posts)  # the first responses find no request: unmatched
            assert exp.samples(f"rpc_{side}_call_duration_seconds_count", server_port=str(port)) == [], side
            assert exp.samples(f"http_{side}_request_duration_seconds_count", server_port=str(port),
                               error_type="no_response") == [], side
    finally:
        if exp is not None:
            exp.stop()
        for proc in (client, server):
            if proc is not None:
                proc.kill()
                proc.wait()
