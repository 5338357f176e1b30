"""Full tables never turn a collector off: each bounded kernel table filled past its limit with real
traffic, the collector running on and its loss reason counting exactly what was dropped.

(The DNS pending table: tests/kernel/test_dns_load.py; L7 connections: tests/kernel/test_http.py.)"""

from __future__ import annotations

import os
import re
import socket
import struct
import subprocess
import sys
from collections.abc import Iterator

import pytest

from tests.kernel.connections import OpenConnections
from tests.kernel.dns_peers import dnsmasq, query
from tests.kernel.harness import WITH_PID, Exporter, free_port, wait_until

pytestmark = pytest.mark.usefixtures("bpf_ready")

LIGHT = ("Common.DropLocalConnections=false", "Bash.Enabled=false")


def lost(exp: Exporter, collector: str, reason: str) -> float:
    return exp.value("netobs_events_lost_total", collector=collector, reason=reason)


def send_once(port: int, n: int) -> None:
    """One connection to 127.0.0.1:port (a listener of this process's), n bytes, closed."""
    with socket.create_server(("127.0.0.1", port)) as server, socket.create_connection(("127.0.0.1", port)) as c:
        conn, _ = server.accept()
        with conn:
            c.sendall(b"x" * n)
            c.shutdown(socket.SHUT_WR)
            got = 0
            while chunk := conn.recv(65536):
                got += len(chunk)
            assert got == n


def test_netflow_starts_with_more_connections_open_than_its_table_holds() -> None:
    """700 connections (1,400 flows) open before start-up, a table of 1,024: netflow runs, takes in what
    fits, counts the rest, and once the connections are gone and their flows expired, counts a new
    flow exactly."""
    connections = OpenConnections(700, keep_listening=True)  # 1,400 flows, none alike
    exp = None
    try:
        exp = Exporter(WITH_PID, *LIGHT, "Dns.Enabled=false", "Netflow.MaxFlows=1024", "Netflow.SeriesExpiry=2")
        assert "found no room in the flow table (Netflow.MaxFlows=1024)" in exp.log()
        assert "not started" not in exp.log()
        ours = {str(p) for p in connections.ports}
        pid = str(os.getpid())
        seeded = len(exp.samples("netflow_tcp_active", process_pid=pid))
        dropped = lost(exp, "netflow", "flow_table_full")
        # each of the 1,400 is in the table or counted; other processes' connections take places too
        assert 0 < seeded <= 1024 and seeded + dropped >= 1400
        logged = re.search(r"netflow: (\d+) connections open before start-up found no room in the flow table "
                           r"\(Netflow.MaxFlows=1024\)", exp.log())
        assert logged and 1400 - seeded <= int(logged[1]) <= dropped
        connections.close()
        port = free_port()
        wait_until(lambda: len(exp.samples("netflow_tcp_active", destination_port=str(ours.pop()))) if ours else 0,
                   lambda n: n == 0, timeout=20)  # the old flows expire: room frees
        wait_until(lambda: 0.0, lambda v: False, timeout=3)
        send_once(port, 4321)
        sent = wait_until(lambda: exp.value("netflow_bytes_total", destination_port=str(port),
                                            network_io_direction="transmit"), lambda v: v == 4321)
        assert sent == 4321
    finally:
        connections.close()
        if exp is not None:
            assert exp.stop() == 0


def test_netflow_at_run_time_counts_every_flow_it_had_no_room_for() -> None:
    """A table of 1,024 and 700 new connections (1,400 flows): the flows that found no room are counted,
    one for each attempt to add to them, and netflow goes on counting those that fit exactly."""
    exp = Exporter(WITH_PID, *LIGHT, "Dns.Enabled=false", "Netflow.MaxFlows=1024")
    connections = None
    try:
        connections = OpenConnections(700)
        ours = {str(p) for p in connections.ports}
        wait_until(lambda: lost(exp, "netflow", "flow_table_full"), lambda v: v > 0)
        assert lost(exp, "netflow", "flow_table_full") > 0
        fitted = [value for labels, value in exp.samples("netflow_bytes_total", network_io_direction="receive")
                  if labels.get("destination_port") in ours and labels.get("netflow_direction") == "outgoing"]
        assert fitted and all(v == 10 for v in fitted)  # each client flow that fits: the server's 10 bytes
        assert exp.proc.poll() is None
    finally:
        if connections is not None:
            connections.close()
        assert exp.stop() == 0


@pytest.fixture(scope="module")
def dns_server() -> Iterator[int]:
    port = free_port()
    server = dnsmasq(port, "127.0.0.1")
    yield port
    server.terminate()
    server.wait()


def test_dns_series_table_full_counts_each_lookup_it_could_not_count(dns_server: int) -> None:
    """Dns.MaxSeries=8 and 20 names asked once each: 8 series, and the other 12 lookups counted lost."""
    exp = Exporter(WITH_PID, *LIGHT, f"Dns.Ports=[53,{dns_server}]", "Dns.MaxSeries=8", "Netflow.Enabled=false")
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("127.0.0.1", dns_server))
            s.settimeout(5)
            for i in range(20):
                s.send(query(f"n{i}.series.wild.test", i))
                assert s.recv(2048)[3] & 0x0F == 0
        # both sides count: the client's 20 and dnsmasq's 20 lookups go to 40 series, 8 of which fit
        counted = wait_until(lambda: exp.value("dns_lookups_total") + lost(exp, "dns", "series_full"),
                             lambda v: v == 40)
        assert counted == 40
        assert lost(exp, "dns", "series_full") == 32
        assert exp.value("dns_lookups_total") == 8
    finally:
        assert exp.stop() == 0


HTTP_PAIR = """# l7-series-full (the filter matches this: the first 512 bytes of a command line)
import socket, time
with socket.create_server(("127.0.0.1", 0)) as server:
    with socket.create_connection(server.getsockname()) as client:
        conn, _ = server.accept()
        with conn:
            for i in range(10):
                client.sendall(f"GET /r{i} HTTP/1.1\\r\\nHost: t\\r\\n\\r\\n".encode())
                assert conn.recv(4096).startswith(b"GET")
                conn.sendall(b"HTTP/1.1 200 OK\\r\\nContent-Length: 0\\r\\n\\r\\n")
                assert client.recv(4096).startswith(b"HTTP/1.1 200")
time.sleep(3)  # long enough for the filter's scan to read its command line
"""


def test_l7_series_table_full_counts_each_request_it_could_not_count() -> None:
    """L7.MaxSeries=4 and requests for 10 routes from a client to a server in one process, the only one
    the filter lets in (the scrapes are HTTP too): 20 exchanges seen, 4 series, 16 counted lost."""
    exp = Exporter(WITH_PID, *LIGHT, "Dns.Enabled=false", "Netflow.Enabled=false", "L7.MaxSeries=4",
                   "Common.IncludeCmdRegex=l7-series-ful[l]")  # not the exporter's own command line
    try:
        subprocess.run([sys.executable, "-c", HTTP_PAIR], check=True, timeout=30)
        counted = wait_until(lambda: exp.value("http_client_request_duration_seconds_count")
                             + exp.value("http_server_request_duration_seconds_count")
                             + lost(exp, "l7", "series_full"), lambda v: v == 20)
        assert counted == 20
        assert lost(exp, "l7", "series_full") == 16
    finally:
        assert exp.stop() == 0


def test_dns_ring_buffer_full_counts_what_it_lost_and_dns_goes_on() -> None:
    """Messages the kernel sends up whole (answers with two questions) faster than user space reads
    them: each one either reaches user space (an answer nobody asked for: unmatched) or is counted
    as lost to the full ring buffer."""
    port, n = free_port(), 100_000
    header = struct.pack(">6H", 7, 0x8180, 2, 0, 0, 0)
    question = b"\x01a\x04ring\x04test\x00\x00\x01\x00\x01"
    message = header + question + question + b"\0" * 900  # a long one: few fit in the ring
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sink:
        sink.bind(("127.0.0.1", port))
        sink.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 16)  # never read: most are dropped there
        exp = Exporter(WITH_PID, *LIGHT, f"Dns.Ports=[53,{port}]", "Netflow.Enabled=false")
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                for _ in range(n):
                    s.sendto(message, ("127.0.0.1", port))

            def accounted() -> float:
                return sum(lost(exp, "dns", reason) for reason in ("unmatched", "malformed", "ring_full"))

            assert wait_until(accounted, lambda v: v == n, timeout=30) == n
            assert lost(exp, "dns", "ring_full") > 0
            assert exp.proc.poll() is None
        finally:
            assert exp.stop() == 0
