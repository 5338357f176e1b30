"""TLS in clear: the plaintext of OpenSSL's calls, against real peers on loopback.

nginx with `ssl`, driven by curl, h2load --h1, Python's ssl module and a binary linking OpenSSL
statically; redis-server with --tls-port and redis-cli --tls; PostgreSQL with ssl=on and psql with
sslmode=require. Every count is exact, on the client's side and on the server's, and carries the
encrypted marker."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.kernel.db_series import db_counts, wait_deltas
from tests.kernel.harness import Exporter, free_port, wait_until
from tests.kernel.servers import mariadb, postgres, redis_server, wait_port
from tests.kernel.servers import nginx as nginx_server

pytestmark = pytest.mark.usefixtures("bpf_ready")

PORT = free_port()
BASE = f"https://127.0.0.1:{PORT}"
ENCRYPTED = {"tls_protocol_name": "tls"}
HTTPS = {"url_scheme": "https", **ENCRYPTED}
LIBSSL = "/usr/lib/x86_64-linux-gnu/libssl.so.3"


# A client linking OpenSSL statically: N requests over one TLS connection, once a line is read.
STATIC_CLIENT = r"""
#include <openssl/ssl.h>
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
int main(int argc, char **argv)
{
	int port = atoi(argv[1]), n = atoi(argv[2]), fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
	const char *req = "GET /echo HTTP/1.1\r\nHost: static.test\r\n\r\n";
	char buf[4096];
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	SSL *ssl = SSL_new(ctx);
	inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
	if (getchar() == EOF)
		return 3;
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) || !SSL_set_fd(ssl, fd) || SSL_connect(ssl) != 1)
		return 1;
	for (int i = 0; i < n; i++)
		if (SSL_write(ssl, req, strlen(req)) <= 0 || SSL_read(ssl, buf, sizeof(buf)) <= 0)
			return 2;
	return 0;
}
"""


@pytest.fixture(scope="module")
def nginx(tmp_path_factory: pytest.TempPathFactory, certificate: tuple[Path, Path]) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("nginx-tls")
    (root / "html").mkdir()
    (root / "html" / "index.html").write_text("hello\n")
    shutil.copy(certificate[0], root / "cert.pem")
    shutil.copy(certificate[1], root / "key.pem")
    tls = f" ssl;\n        ssl_certificate {root}/cert.pem;\n        ssl_certificate_key {root}/key.pem"
    with nginx_server(root, PORT, '        location /echo { return 200 "echo\\n"; }', listen=tls):
        yield root


@pytest.fixture(scope="module")
def exporter(nginx: Path) -> Iterator[Exporter]:
    exp = Exporter("Common.DropLocalConnections=false", "Bash.Enabled=false", "Netflow.Enabled=false",
                   "Dns.Enabled=false", "L7.Tls.RescanInterval=1")
    yield exp
    exp.stop()


def server_count(exp: Exporter, expected: float, **labels: str) -> float:
    return exp.wait_for("http_server_request_duration_seconds_count", expected, process_executable_name="nginx",
                        **HTTPS, **labels)


def client_count(exp: Exporter, expected: float, comm: str, **labels: str) -> float:
    return exp.wait_for("http_client_request_duration_seconds_count", expected, process_executable_name=comm,
                        **HTTPS, **labels)


def curl(*args: str) -> list[str]:
    """One curl process, one kept-alive TLS connection for all its URLs; the status codes."""
    argv = [a for arg in args for a in ((arg, "-o", "/dev/null") if arg.startswith("https") else (arg,))]
    out = subprocess.run(["curl", "-sk", "-w", "%{http_code}\n", *argv], capture_output=True, text=True,
                         timeout=60).stdout
    return out.split()


def test_the_host_libssl_is_traced(exporter: Exporter) -> None:
    assert exporter.value("netobs_program_attached", collector="l7", program=f"tls:{LIBSSL}") == 1
    assert exporter.value("netobs_tls_files") >= 1
    assert exporter.value("netobs_tls_attach_failures_total") == 0


def test_curl_counts_per_method_and_status_on_both_sides(exporter: Exporter) -> None:
    cases = [  # (curl arguments, method, route, status, requests)
        ([f"{BASE}/index.html"] * 5, "GET", "/index.html", "200", 5),
        ([f"{BASE}/missing.html"] * 3, "GET", "/missing.html", "404", 3),
        (["-X", "POST", "-d", "a=1&b=2", *[f"{BASE}/echo"] * 4], "POST", "/echo", "200", 4),
    ]
    for args, _method, _route, status, n in cases:
        assert curl(*args) == [status] * n
    for _, method, route, status, n in cases:
        labels = {"http_request_method": method, "http_route": route, "http_response_status_code": status}
        assert client_count(exporter, n, "curl", **labels) == n, labels
        assert server_count(exporter, n, **labels) == n, labels
    (labels, _), = exporter.samples("http_server_request_duration_seconds_count", process_executable_name="nginx",
                                    http_route="/missing.html")
    assert labels["server_address"] == "127.0.0.1" and labels["server_port"] == str(PORT)
    # the plaintext's bodies, not the records': 7 bytes each way for the POSTs
    post = {"http_request_method": "POST", "http_route": "/echo"}
    assert exporter.value("http_client_request_body_size_bytes_sum", process_executable_name="curl", **post) == 4 * 7
    assert exporter.value("http_server_response_body_size_bytes_sum", process_executable_name="nginx", **post) == 4 * 5
    # nothing of it was read as cleartext, nor left without its connection
    assert exporter.value("http_server_request_duration_seconds_count", process_executable_name="nginx",
                          url_scheme="http") == 0
    assert exporter.value("netobs_events_lost_total", collector="l7", reason="tls_socket_unknown") == 0


def test_h2load_requests_are_all_counted(exporter: Exporter) -> None:
    out = subprocess.run(["h2load", "--h1", "-n", "3000", "-c", "10", f"{BASE}/index.html?h2load"],
                         capture_output=True, text=True, timeout=120).stdout
    assert re.search(r"requests: 3000 total, 3000 started, 3000 done, 3000 succeeded", out), out
    before = exporter.value("http_server_request_duration_seconds_count", process_executable_name="nginx",
                            http_route="/index.html", **HTTPS)
    assert client_count(exporter, 3000, "h2load", http_route="/index.html", http_response_status_code="200") == 3000
    assert before <= server_count(exporter, 3000 + 5, http_route="/index.html") == 3000 + 5  # + curl's


PYTHON_CLIENT = """
import http.client, ssl, sys
conn = http.client.HTTPSConnection("127.0.0.1", int(sys.argv[1]), context=ssl._create_unverified_context())
for path in ["/index.html"] * 6 + ["/gone"] * 2:
    conn.request("GET", path, headers={"Host": "python.test"})
    conn.getresponse().read()
"""


def test_python_ssl_client(exporter: Exporter) -> None:
    """Python's ssl module links the system's libssl.so.3."""
    subprocess.run([sys.executable, "-c", PYTHON_CLIENT, str(PORT)], check=True, timeout=60)
    host = {"server_address": "python.test"}
    for route, status, n in (("/index.html", "200", 6), ("/gone", "404", 2)):
        labels = {"http_route": route, "http_response_status_code": status, **host}
        assert client_count(exporter, n, "python", **labels) == n, labels
        assert server_count(exporter, n, **labels) == n, labels


def test_a_binary_linking_openssl_statically(exporter: Exporter, tmp_path: Path) -> None:
    source, binary = tmp_path / "client.c", tmp_path / "static-tls"
    source.write_text(STATIC_CLIENT)
    subprocess.run(["clang", "-O1", "-static", str(source), "-o", str(binary), "-lssl", "-lcrypto"], check=True,
                   capture_output=True)
    program = f"tls:{binary}"
    # started after the exporter; it waits for a line until a rescan has traced it
    proc = subprocess.Popen([str(binary), str(PORT), "7"], stdin=subprocess.PIPE)
    try:
        assert wait_until(lambda: exporter.value("netobs_program_attached", collector="l7", program=program),
                          lambda v: v == 1, timeout=15) == 1
    finally:
        proc.communicate(b"go\n", timeout=30)
    assert proc.returncode == 0
    labels = {"http_route": "/echo", "server_address": "static.test"}
    assert client_count(exporter, 7, "static-tls", **labels) == 7
    assert server_count(exporter, 7, **labels) == 7


LATE_CLIENT = """
import http.client, ssl, sys
context = ssl._create_unverified_context()  # libssl is mapped from here on
print("ready", flush=True)
sys.stdin.readline()
conn = http.client.HTTPSConnection("127.0.0.1", int(sys.argv[1]), context=context)
for _ in range(4):
    conn.request("GET", "/index.html", headers={"Host": "late.test"})
    conn.getresponse().read()
"""


def test_a_library_file_of_a_process_started_later(exporter: Exporter, tmp_path: Path) -> None:
    """A libssl the exporter has not seen (another file, as in a container) is traced once a process
    maps it; deleting the file afterwards breaks nothing."""
    lib = tmp_path / "lib"
    lib.mkdir()
    shutil.copy(LIBSSL, lib / "libssl.so.3")
    proc = subprocess.Popen([sys.executable, "-c", LATE_CLIENT, str(PORT)], env={**os.environ,
                            "LD_LIBRARY_PATH": str(lib)}, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdin is not None
    assert proc.stdout.readline() == "ready\n"
    program = f"tls:{lib / 'libssl.so.3'}"
    try:
        assert wait_until(lambda: exporter.value("netobs_program_attached", collector="l7", program=program),
                          lambda v: v == 1, timeout=20) == 1
        proc.stdin.write("go\n")
        proc.stdin.flush()
        assert proc.wait(timeout=30) == 0
    finally:
        proc.kill()
    assert client_count(exporter, 4, "python", server_address="late.test") == 4
    assert server_count(exporter, 4, server_address="late.test") == 4
    (lib / "libssl.so.3").unlink()
    time.sleep(2.5)  # two rescans
    assert exporter.value("netobs_collector_success", collector="l7") == 1
    assert exporter.value("netobs_tls_attach_failures_total") == 0


def test_redis_over_tls(exporter: Exporter, tmp_path: Path, certificate: tuple[Path, Path]) -> None:
    cert, key = certificate
    tls_port = free_port()
    with redis_server(tmp_path, "--tls-port", str(tls_port), "--tls-cert-file", str(cert), "--tls-key-file",
                      str(key), "--tls-auth-clients", "no"):
        def read(comm: str) -> dict[tuple[str, ...], float]:
            return db_counts(exporter, f"db_{comm}_operation_duration_seconds_count", "redis",
                             "redis-cli" if comm == "client" else "redis-server", tls_port)
        before = {side: read(side) for side in ("client", "server")}
        cli = ["redis-cli", "-p", str(tls_port), "--tls", "--insecure"]
        for i in range(6):
            subprocess.run([*cli, "SET", f"k{i}", "v"], check=True, capture_output=True, timeout=30)
        for i in range(3):
            subprocess.run([*cli, "GET", f"k{i}"], check=True, capture_output=True, timeout=30)
        want = {("SET", ""): 6, ("GET", ""): 3}
        for side in ("client", "server"):
            assert wait_deltas(lambda side=side: read(side), before[side], want) == want, side  # type: ignore[misc]
        for labels, _ in exporter.samples("db_server_operation_duration_seconds_count", db_system_name="redis",
                                          server_port=str(tls_port)):
            assert labels["tls_protocol_name"] == "tls"


def test_postgresql_with_sslmode_require(exporter: Exporter, tmp_path: Path, certificate: tuple[Path, Path]) -> None:
    """The SSLRequest is cleartext, then the connection goes TLS: its queries come from the library."""
    with postgres(tmp_path, certificate) as port:
        def read(comm: str) -> dict[tuple[str, ...], float]:
            return db_counts(exporter, f"db_{comm}_operation_duration_seconds_count", "postgresql",
                             "psql" if comm == "client" else "postgres", port)
        before = {side: read(side) for side in ("client", "server")}
        dsn = f"host=127.0.0.1 port={port} user=postgres sslmode=require"
        for _ in range(3):
            out = subprocess.run(["psql", dsn, "-X", "-q", "-t", "-c", "SELECT ssl FROM pg_stat_ssl WHERE pid = "
                                  "pg_backend_pid()"], capture_output=True, text=True, timeout=60, check=True)
            assert out.stdout.strip() == "t"
        subprocess.run(["psql", dsn, "-X", "-q", "-c", "CREATE TABLE tls_t (v int)"], check=True, timeout=60)
        want = {("SELECT", ""): 3, ("CREATE", ""): 1}
        for side in ("client", "server"):
            assert wait_deltas(lambda side=side: read(side), before[side], want) == want, side  # type: ignore[misc]
    assert exporter.value("netobs_events_lost_total", collector="l7", reason="unparsed") == 0


def test_mariadb_with_ssl(exporter: Exporter, tmp_path: Path, certificate: tuple[Path, Path]) -> None:
    """The greeting is cleartext, then the client's SSLRequest turns the connection to TLS: its
    operations come from the library, on both sides (mariadbd reads a packet's header and its payload
    in two library calls: the connection keeps the protocol and roles it had in clear)."""
    with mariadb(tmp_path, certificate) as port:
        def read(comm: str) -> dict[tuple[str, ...], float]:
            return db_counts(exporter, f"db_{comm}_operation_duration_seconds_count", "mysql",
                             "mariadb" if comm == "client" else "mariadbd", port)
        before = {side: read(side) for side in ("client", "server")}
        for _ in range(3):
            out = subprocess.run(["mariadb", "-h", "127.0.0.1", "-P", str(port), "-u", "root", "--ssl",
                                  "--ssl-verify-server-cert=0", "-N", "-e", "SHOW STATUS LIKE 'Ssl_cipher'"],
                                 capture_output=True, text=True, timeout=60, check=True)
            assert out.stdout.split()[1:], out.stdout  # a cipher: the session was encrypted
        want = {("SHOW", ""): 3}
        for side in ("client", "server"):
            got = wait_deltas(lambda side=side: read(side), before[side], want)  # type: ignore[misc]
            assert got == want, side
    assert exporter.value("netobs_events_lost_total", collector="l7", reason="unparsed") == 0


def test_nothing_is_left_in_the_kernel_once_connections_close(exporter: Exporter) -> None:
    """A TLS connection's state goes at its close (the earlier tests' clients have all exited; nginx
    closes its side). A call's is in task storage, which goes with its thread."""
    assert wait_until(lambda: len(exporter.kernel_map("tls_conns")), lambda n: n == 0, timeout=20) == 0


def test_stop_leaves_no_uprobe(nginx: Path) -> None:
    """Other exporters may run (this module's): this one's programs are the ones it adds."""
    before = _loaded("ssl_return")
    exp = Exporter("Common.DropLocalConnections=false", "Bash.Enabled=false", "Netflow.Enabled=false",
                   "Dns.Enabled=false")
    try:
        assert exp.value("netobs_program_attached", collector="l7", program=f"tls:{LIBSSL}") == 1
        assert _loaded("ssl_return") == before + 1
    finally:
        assert exp.stop() == 0
    assert wait_until(lambda: _loaded("ssl_return"), lambda v: v == before) == before
    assert curl(f"{BASE}/index.html") == ["200"]  # nginx is not affected


def _loaded(program: str) -> float:
    """BPF programs of that name loaded in the kernel (a program stays loaded while a uprobe holds it)."""
    out = subprocess.run(["bpftool", "prog", "show"], capture_output=True, text=True, check=True).stdout
    return float(len(re.findall(rf"\bname {program}\b", out)))


GO_PROGRAM = """package main

import (
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
)

// serve ADDR CERT KEY | get URL N: HTTP/1.1 over crypto/tls (HTTP/2 left out on both sides)
func main() {
	if os.Args[1] == "serve" {
		http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/missing" {
				w.WriteHeader(http.StatusNotFound)
			}
			io.WriteString(w, "go\\n")
		})
		server := &http.Server{Addr: os.Args[2], TLSNextProto: map[string]func(*http.Server, *tls.Conn, http.Handler){}}
		fmt.Println(server.ListenAndServeTLS(os.Args[3], os.Args[4]))
		os.Exit(1)
	}
	transport := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true},
		TLSNextProto: map[string]func(string, *tls.Conn) http.RoundTripper{}}
	client := &http.Client{Transport: transport}
	n, _ := strconv.Atoi(os.Args[3])
	for i := 0; i < n; i++ {
		response, err := client.Get(os.Args[2])
		if err != nil {
			fmt.Println(err)
			os.Exit(1)
		}
		io.Copy(io.Discard, response.Body)
		response.Body.Close()
	}
}
"""


@pytest.fixture(scope="module")
def go_program(build_go: Callable[[str, str], Path]) -> Path:
    """A Go client and server of crypto/tls and net/http only."""
    return build_go(GO_PROGRAM, "gotls")


def test_go_crypto_tls_client_and_server(exporter: Exporter, go_program: Path,
                                         certificate: tuple[Path, Path]) -> None:
    """Both ends are one Go binary: traced once its first process is found, the other from its start."""
    port = free_port()
    server = subprocess.Popen([str(go_program), "serve", f"127.0.0.1:{port}", *map(str, certificate)],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        wait_port(port, server, "the Go server")  # type: ignore[arg-type]
        assert wait_until(lambda: exporter.value("netobs_program_attached", collector="l7",
                                                 program=f"tls:{go_program}"), lambda v: v == 1, timeout=20) == 1
        base = f"https://127.0.0.1:{port}"
        subprocess.run([str(go_program), "get", f"{base}/index", "5"], check=True, timeout=60)
        subprocess.run([str(go_program), "get", f"{base}/missing", "2"], check=True, timeout=60)
        for route, status, n in (("/index", "200", 5), ("/missing", "404", 2)):
            labels = {"http_route": route, "http_response_status_code": status, "server_port": str(port), **HTTPS}
            assert exporter.wait_for("http_client_request_duration_seconds_count", n,
                                     process_executable_name="gotls", **labels) == n, labels
            assert exporter.wait_for("http_server_request_duration_seconds_count", n,
                                     process_executable_name="gotls", **labels) == n, labels
    finally:
        server.terminate()
        server.wait()
