"""dns against real servers and clients: dnsmasq serving names the tests define, dig asking.

Everything runs on loopback or between two network namespaces joined by a veth pair. Every
count is exact: N queries made, N lookups counted, on the client and on the server side."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.kernel.dns_peers import answer_to, dnsmasq, query
from tests.kernel.harness import WITH_PID, Exporter, Peer, free_port, wait_until
from tests.kernel.netns import veth_pair

pytestmark = pytest.mark.usefixtures("bpf_ready")

DNSMASQ_PORT = free_port()
SLOW_PORT = free_port()
SILENT_PORT = free_port()
SLOW_DELAY = 0.15  # seconds the slow server waits before it answers
TIMEOUT = 2  # Dns.Timeout of the exporter under test
COARSE_CLOCK = 5  # CLOCK_REALTIME_COARSE, the clock dig's query times are read from


def answer_after(query: bytes, delay: float) -> bytes:
    time.sleep(delay)
    return answer_to(query)


def serve_slowly(sock: socket.socket) -> None:
    while True:
        try:
            query, peer = sock.recvfrom(2048)
        except OSError:
            return
        sock.sendto(answer_after(query, SLOW_DELAY), peer)


@pytest.fixture(scope="module")
def servers() -> Iterator[None]:
    server = dnsmasq(DNSMASQ_PORT, "127.0.0.1", "::1")
    slow = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    slow.bind(("127.0.0.1", SLOW_PORT))
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # never reads, never answers
    silent.bind(("127.0.0.1", SILENT_PORT))
    threading.Thread(target=serve_slowly, args=(slow,), daemon=True).start()
    yield
    server.terminate()
    server.wait()
    slow.close()
    silent.close()


@pytest.fixture(scope="module")
def exporter(servers: None) -> Iterator[Exporter]:
    exp = Exporter(WITH_PID, f"Dns.Ports=[53,{DNSMASQ_PORT},{SLOW_PORT},{SILENT_PORT}]", f"Dns.Timeout={TIMEOUT}",
                   "Common.DropLocalConnections=false", "Bash.Enabled=false", "Common.FlushOutL7Interval=5")
    yield exp
    exp.stop()


def dig(*args: str, server: str = "127.0.0.1", port: int = DNSMASQ_PORT, netns: str | None = None) -> str:
    argv = ["dig", f"@{server}", "-p", str(port), "+tries=1", "+timeout=1", *args]
    if netns:
        argv = ["ip", "netns", "exec", netns, *argv]
    return subprocess.run(argv, capture_output=True, text=True, timeout=30).stdout


def query_times_ms(output: str) -> list[int]:
    return [int(m) for m in re.findall(r";; Query time: (\d+) msec", output)]


def lookups(exp: Exporter, expected: float, **labels: str) -> float:
    return exp.wait_for("dns_lookups_total", expected, **labels)


def test_n_queries_give_n_noerror_lookups_on_both_sides(exporter: Exporter) -> None:
    n = 12
    out = dig(*["a1.wild.test", "A"] * n)
    assert out.count("status: NOERROR") == n
    name = {"dns_question_name": "a1.wild.test", "dns_question_type": "A", "dns_response_code": "NOERROR"}
    assert lookups(exporter, n, process_executable_name="dig", dnsflow_direction="outgoing", **name) == n
    assert lookups(exporter, n, process_executable_name="dnsmasq", dnsflow_direction="incoming", **name) == n
    (labels, _), = exporter.samples("dns_lookups_total", process_executable_name="dig", **name)
    assert labels["server_address"] == "127.0.0.1"
    assert labels["server_port"] == str(DNSMASQ_PORT)
    assert labels["network_transport"] == "udp"
    assert labels["network_type"] == "ipv4"
    assert labels.get("error_type", "") == ""
    assert exporter.value("dns_lookup_duration_seconds_count", process_executable_name="dig", **name) == n


def test_aaaa_over_ipv6(exporter: Exporter) -> None:
    n = 5
    out = dig(*["aaaa.wild.test", "AAAA"] * n, server="::1")
    assert out.count("2001:db8::1") == n
    name = {"dns_question_name": "aaaa.wild.test", "dns_question_type": "AAAA"}
    assert lookups(exporter, n, process_executable_name="dig", dns_response_code="NOERROR", **name) == n
    (labels, _), = exporter.samples("dns_lookups_total", process_executable_name="dig", **name)
    assert (labels["network_type"], labels["server_address"]) == ("ipv6", "::1")


@pytest.mark.parametrize(("name", "code"), [("missing.test", "NXDOMAIN"), ("elsewhere.example", "REFUSED")])
def test_error_response_codes(exporter: Exporter, name: str, code: str) -> None:
    n = 3
    out = dig(*[name, "A"] * n)
    assert out.count(f"status: {code}") == n
    for comm in ("dig", "dnsmasq"):
        got = lookups(exporter, n, process_executable_name=comm, dns_question_name=name,
                      dns_response_code=code, error_type=code)
        assert got == n, comm


def test_a_server_that_never_answers_gives_timeouts(exporter: Exporter) -> None:
    out = dig("silent.example", "A", port=SILENT_PORT)
    assert "timed out" in out
    labels = {"process_executable_name": "dig", "dns_question_name": "silent.example", "dns_response_code": "TIMEOUT",
              "error_type": "TIMEOUT"}
    assert exporter.wait_for("dns_lookups_total", 1, timeout=TIMEOUT + 5, **labels) == 1
    assert exporter.value("dns_lookup_duration_seconds_sum", **labels) == TIMEOUT


def test_dig_over_tcp_is_counted_as_tcp(exporter: Exporter) -> None:
    n = 4
    out = dig("+tcp", *["tcp.wild.test", "A"] * n)
    assert out.count("status: NOERROR") == n
    for comm in ("dig", "dnsmasq"):
        assert lookups(exporter, n, process_executable_name=comm, dns_question_name="tcp.wild.test",
                       network_transport="tcp") == n, comm
    assert exporter.value("dns_lookups_total", dns_question_name="tcp.wild.test", network_transport="udp") == 0


def test_latency_agrees_with_what_dig_measured(exporter: Exporter) -> None:
    """Each lookup lasts at least the server's delay, and all of them at most the wall time of dig's run.

    dig's own figures come from a coarse clock (BIND reads CLOCK_REALTIME_COARSE), which ticks once
    per jiffy: it printed 147 ms for a reply the server held back 150 ms. They are compared within
    that tick; the bounds that are known exactly are asserted exactly."""
    n = 4
    started = time.monotonic()
    out = dig(*["slow.example", "A"] * n, port=SLOW_PORT)
    wall_s = time.monotonic() - started
    measured = query_times_ms(out)
    assert len(measured) == n
    labels = {"process_executable_name": "dig", "dns_question_name": "slow.example"}
    assert lookups(exporter, n, **labels) == n
    total_s = exporter.value("dns_lookup_duration_seconds_sum", **labels)
    assert n * SLOW_DELAY <= total_s <= wall_s
    tick_ms = time.clock_getres(COARSE_CLOCK) * 1000
    assert abs(total_s * 1000 - sum(measured)) <= n * tick_ms, (total_s, measured)
    slowest = exporter.value("dns_lookup_duration_max_seconds", **labels)
    assert SLOW_DELAY <= slowest <= max(measured) / 1000 + tick_ms / 1000 * 2
    # 150 ms falls in the (0.1, 0.25] bucket: nothing below it, everything from it on
    assert exporter.value("dns_lookup_duration_seconds_bucket", le="0.1", **labels) == 0
    assert exporter.value("dns_lookup_duration_seconds_bucket", le="0.25", **labels) == n


def test_query_in_another_network_namespace_is_attributed_to_its_process(exporter: Exporter) -> None:
    with veth_pair("dn") as pair:
        server = dnsmasq(53, pair.a_v4, netns=pair.a)
        try:
            n = 6
            argv = ["ip", "netns", "exec", pair.b, "dig", f"@{pair.a_v4}", "+tries=1", *["ns.wild.test", "A"] * n]
            client = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
            out, _ = client.communicate(timeout=30)
            assert out.count("status: NOERROR") == n
            labels = {"dns_question_name": "ns.wild.test", "server_address": pair.a_v4, "server_port": "53"}
            assert lookups(exporter, n, process_pid=str(client.pid), dnsflow_direction="outgoing", **labels) == n
            assert lookups(exporter, n, process_pid=str(server.pid), dnsflow_direction="incoming", **labels) == n
        finally:
            server.terminate()
            server.wait()


def test_netflow_destination_carries_the_resolved_name(exporter: Exporter) -> None:
    """alias.example.test is a CNAME of app.example.test (127.0.0.77): the flow gets the name asked."""
    out = dig("alias.example.test", "A")
    assert "127.0.0.77" in out
    assert lookups(exporter, 1, process_executable_name="dig", dns_question_name="alias.example.test") == 1
    server = Peer("tcp-server", "--host=127.0.0.77", "--reply=1000")
    port = server.ready["port"]
    client = Peer("tcp-client", "--host=127.0.0.77", f"--port={port}", "--send=1000")
    assert client.finish()["received"] == 1000
    server.finish()
    labels = {"destination_address": "127.0.0.77", "destination_port": str(port), "process_pid": client.pid}
    got = wait_until(lambda: exporter.value("netflow_tcp_established_total", **labels), lambda v: v == 1)
    assert got == 1
    (sample_labels, _), = exporter.samples("netflow_tcp_established_total", **labels)
    assert sample_labels["destination_domain"] == "alias.example.test"


def test_an_answer_with_no_query_is_unmatched_and_a_lookup_counts_once(servers: None) -> None:
    """A server that answers each query twice (this process is both ends): on each side the first answer
    completes the lookup, the second waits a second for a query of its own (an answer may be read
    before its query is seen), then counts as unmatched; the lookup is never a TIMEOUT."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as server, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
        server.bind(("127.0.0.1", 0))
        port = server.getsockname()[1]
        exp = Exporter(WITH_PID, f"Dns.Ports=[53,{port}]", f"Dns.Timeout={TIMEOUT}",
                       "Common.DropLocalConnections=false", "Bash.Enabled=false")
        try:
            client.sendto(query("twice.example.test", 4242), ("127.0.0.1", port))
            asked, peer = server.recvfrom(512)
            server.sendto(answer_to(asked), peer)
            server.sendto(answer_to(asked), peer)
            assert client.recv(512) and client.recv(512)
            labels = {"process_pid": str(os.getpid()), "dns_question_name": "twice.example.test"}
            for side in ("outgoing", "incoming"):
                assert exp.wait_for("dns_lookup_duration_seconds_count", 1, **labels, dnsflow_direction=side,
                                    dns_response_code="NOERROR") == 1
            assert exp.wait_for("netobs_events_lost_total", 2, collector="dns", reason="unmatched") == 2
            time.sleep(TIMEOUT + 1)
            assert exp.value("dns_lookup_duration_seconds_count", **labels) == 2  # no TIMEOUT
        finally:
            exp.stop()


def test_malformed_messages_are_counted_and_skipped(exporter: Exporter) -> None:
    before = exporter.value("netobs_events_lost_total", collector="dns", reason="malformed")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for garbage in (b"\x00", b"not dns at all, really not", bytes(12)):
            s.sendto(garbage, ("127.0.0.1", SILENT_PORT))
    got = exporter.wait_for("netobs_events_lost_total", before + 3, collector="dns", reason="malformed")
    assert got == before + 3


def test_per_process_name_cap_folds_extra_names(servers: None) -> None:
    exp = Exporter(WITH_PID, f"Dns.Ports=[{DNSMASQ_PORT}]", "Dns.MaxNamesPerProcess=3", "Bash.Enabled=false",
                   "Netflow.Enabled=false")
    try:
        names = [f"n{i}.wild.test" for i in range(5)]
        out = dig(*[arg for name in names for arg in (name, "A")])
        assert out.count("status: NOERROR") == 5
        assert lookups(exp, 5, process_executable_name="dig") == 5
        seen = {labels["dns_question_name"]: v for labels, v in exp.samples("dns_lookups_total",
                                                                              process_executable_name="dig")}
        # the names read first keep their series; which they are depends on the order of reading
        assert seen.pop("~other") == 2
        assert len(seen) == 3 and set(seen) < set(names) and set(seen.values()) == {1}
        assert exp.wait_for("netobs_dns_names_folded_total", 4) == 4  # 2 for dig, 2 for dnsmasq
    finally:
        exp.stop()


def test_records_have_ilogtail_dns_fields(servers: None, tmp_path: Path) -> None:
    import json

    path = tmp_path / "records.jsonl"
    exp = Exporter(WITH_PID, f"Dns.Ports=[{DNSMASQ_PORT}]", "Bash.Enabled=false", "Netflow.Enabled=false",
                   f"Telemetry.Records={path}", "Common.FlushOutL7Interval=1")
    try:
        out = dig(*["rec.wild.test", "A"] * 3)
        assert out.count("status: NOERROR") == 3

        def dig_records() -> list[dict[str, str]]:
            lines = path.read_text().splitlines() if path.exists() else []
            return [r for r in map(json.loads, lines) if r.get("protocol") == "dns" and r["role"] == "client"]

        wait_until(lambda: sum(int(r["total_count"]) for r in dig_records()), lambda v: v == 3)
        records = dig_records()
        assert sum(int(r["total_count"]) for r in records) == 3
        r = records[0]
        assert (r["type"], r["query_record"], r["query_type"], r["success"]) == ("protocols", "rec.wild.test", "A", "1")
        assert json.loads(r["remote_info"])["remote_port"] == str(DNSMASQ_PORT)
        assert int(r["total_latency_ns"]) > 0 and int(r["total_req_bytes"]) > 0 and int(r["total_resp_bytes"]) > 0
    finally:
        exp.stop()
