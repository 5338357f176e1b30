"""netflow against the real kernel: exact counts for traffic whose size we know."""

from __future__ import annotations

import os
import socket
import struct
import subprocess
import time
from collections.abc import Iterator

import pytest

from exporter.collectors.base import WITHOUT_ENV
from tests.kernel.harness import WITH_PID, Exporter, Peer, wait_until
from tests.kernel.netns import VethPair, veth_pair

pytestmark = pytest.mark.kernel

BYTES = "netflow_bytes_total"
PACKETS = "netflow_packets_total"


@pytest.fixture(scope="module")
def exporter(bpf_ready: None) -> Iterator[Exporter]:
    e = Exporter(WITH_PID, "Common.DropLocalConnections=false")
    yield e
    assert e.stop() == 0


@pytest.fixture(scope="module")
def veth(bpf_ready: None) -> Iterator[VethPair]:
    with veth_pair() as pair:
        yield pair


def tcp_transfer(host: str, up: int, down: int, netns: tuple[str | None, str | None] = (None, None),
                 count: int = 1) -> tuple[Peer, Peer]:
    server = Peer("tcp-server", f"--host={host}", f"--reply={down}", f"--count={count}", netns=netns[1])
    client = Peer("tcp-client", f"--host={host}", f"--port={server.ready['port']}", f"--send={up}",
                  f"--count={count}", netns=netns[0])
    assert client.finish()["received"] == down * count
    assert server.finish()["received"] == up * count
    return server, client


def assert_bytes(exporter: Exporter, pid: str, sent: int, received: int, **labels: str) -> None:
    assert exporter.wait_for(BYTES, sent, process_pid=pid, network_io_direction="transmit", **labels) == sent
    assert exporter.wait_for(BYTES, received, process_pid=pid, network_io_direction="receive", **labels) == received


@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
def test_tcp_bytes_are_exact_on_both_sides(exporter: Exporter, host: str) -> None:
    server, client = tcp_transfer(host, up=5_000_000, down=3_000_000)
    network_type = "ipv6" if ":" in host else "ipv4"
    assert_bytes(exporter, client.pid, 5_000_000, 3_000_000, netflow_direction="outgoing",
                 network_transport="tcp", network_type=network_type, destination_address=host)
    assert_bytes(exporter, server.pid, 3_000_000, 5_000_000, netflow_direction="incoming",
                 network_transport="tcp", network_type=network_type, source_address=host)


def test_an_open_connection_with_few_calls_is_exact_before_it_closes(exporter: Exporter) -> None:
    """A TCP call costs netflow nothing; a read brings every socket up to date first (the collect_tcp
    walk), so three small sends on a connection that stays open count."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        with socket.create_connection(("127.0.0.1", port)) as client:
            server, _ = listener.accept()
            with server:
                for _ in range(3):
                    client.sendall(b"x" * 100)
                    assert server.recv(100, socket.MSG_WAITALL) == b"x" * 100
                server.sendall(b"y" * 7)
                assert client.recv(100) == b"y" * 7
                assert_bytes(exporter, str(os.getpid()), 300, 7, netflow_direction="outgoing",
                             destination_port=str(port), network_transport="tcp")
                assert_bytes(exporter, str(os.getpid()), 7, 300, netflow_direction="incoming",
                             source_port=str(port), network_transport="tcp")
                # and again, with more data on the same open connection
                client.sendall(b"z" * 50)
                assert server.recv(50, socket.MSG_WAITALL) == b"z" * 50
                assert_bytes(exporter, str(os.getpid()), 350, 7, netflow_direction="outgoing",
                             destination_port=str(port), network_transport="tcp")


def test_a_connection_opened_and_closed_between_two_collections_is_exact(exporter: Exporter) -> None:
    """No read in between: its state changes alone (the close included) carry the figures."""
    me = str(os.getpid())
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        with socket.create_connection(("127.0.0.1", port)) as client:
            server, _ = listener.accept()
            with server:
                client.sendall(b"q" * 12_345)
                assert server.recv(12_345, socket.MSG_WAITALL) == b"q" * 12_345
                server.sendall(b"a" * 678)
                server.shutdown(socket.SHUT_WR)
                got = b""
                while chunk := client.recv(4096):  # the reply, then the end of file
                    got += chunk
                assert got == b"a" * 678
    outgoing = {"netflow_direction": "outgoing", "destination_port": str(port)}
    incoming = {"netflow_direction": "incoming", "source_port": str(port)}
    assert_bytes(exporter, me, 12_345, 678, **outgoing)
    assert_bytes(exporter, me, 678, 12_345, **incoming)
    for flow in (outgoing, incoming):
        flow["process_pid"] = me
        assert exporter.value("netflow_tcp_established_total", **flow) == 1
        assert exporter.value("netflow_tcp_closed_total", **flow) == 1
        assert exporter.value("netflow_tcp_active", **flow) == 0


def test_an_idle_connection_inside_a_pod_namespace_is_exact_at_the_next_collection(
        exporter: Exporter, veth: VethPair) -> None:
    """Both ends inside a network namespace (a pod's), in which no process of the exporter runs; the
    connection stays open and idle: the walk of every process's sockets finds it."""
    receiver = Peer("tcp-receiver-ack", "--host=127.0.0.1", "--expect=5000", netns=veth.b)
    sender = Peer("tcp-sender-hold", "--host=127.0.0.1", f"--port={receiver.ready['port']}", "--send=5000",
                  "--more=11", netns=veth.b)
    sender.line()
    port = str(receiver.ready["port"])
    assert_bytes(exporter, sender.pid, 5000, 1, netflow_direction="outgoing", destination_port=port)
    assert_bytes(exporter, receiver.pid, 1, 5000, netflow_direction="incoming", source_port=port)
    assert exporter.value("netflow_tcp_active", process_pid=sender.pid) == 1
    assert exporter.value("netflow_tcp_active", process_pid=receiver.pid) == 1
    sender.send_line()
    sender.finish()
    receiver.finish()
    assert_bytes(exporter, sender.pid, 5011, 1, netflow_direction="outgoing", destination_port=port)
    assert_bytes(exporter, receiver.pid, 1, 5011, netflow_direction="incoming", source_port=port)


def test_tcp_bytes_between_network_namespaces(exporter: Exporter, veth: VethPair) -> None:
    server, client = tcp_transfer(veth.b_v4, up=4_000_000, down=1_000_000, netns=(veth.a, veth.b))
    assert_bytes(exporter, client.pid, 4_000_000, 1_000_000, source_address=veth.a_v4,
                 destination_address=veth.b_v4, netflow_destination_address_type="other")  # TEST-NET-2
    assert_bytes(exporter, server.pid, 1_000_000, 4_000_000, source_address=veth.b_v4,
                 destination_address=veth.a_v4)


@pytest.mark.parametrize("host,connected", [("127.0.0.1", False), ("::1", False), ("127.0.0.1", True)])
def test_udp_bytes_and_datagrams_are_exact(exporter: Exporter, host: str, connected: bool) -> None:
    server = Peer("udp-server", f"--host={host}", "--count=100")
    client = Peer("udp-client", f"--host={host}", f"--port={server.ready['port']}", "--send=1200", "--count=100",
                  *(["--connected"] if connected else []))
    assert client.finish()["received"] == 120_000
    server.finish()
    port = str(server.ready["port"])
    assert_bytes(exporter, client.pid, 120_000, 120_000, network_transport="udp", netflow_direction="outgoing",
                 destination_address=host, destination_port=port, source_port="*")
    assert_bytes(exporter, server.pid, 120_000, 120_000, network_transport="udp", netflow_direction="incoming",
                 source_port=port, destination_port="*")
    for pid in (client.pid, server.pid):
        for direction in ("transmit", "receive"):
            assert exporter.wait_for(PACKETS, 100, process_pid=pid, network_io_direction=direction) == 100


def test_connection_counts_directions_and_ephemeral_ports(exporter: Exporter) -> None:
    n = 25
    server, client = tcp_transfer("127.0.0.1", up=100, down=10, count=n)
    port = str(server.ready["port"])
    client_side = {"process_pid": client.pid, "netflow_direction": "outgoing",
                   "source_port": "*", "destination_port": port}
    server_side = {"process_pid": server.pid, "netflow_direction": "incoming",
                   "source_port": port, "destination_port": "*"}
    for side in (client_side, server_side):
        assert exporter.wait_for("netflow_tcp_established_total", n, **side) == n
        assert exporter.wait_for("netflow_tcp_closed_total", n, **side) == n
        assert exporter.wait_for("netflow_tcp_active", 0, **side) == 0
        # one series per side, however many connections: the ephemeral port is folded to '*'
        assert len(exporter.samples("netflow_tcp_established_total", process_pid=side["process_pid"])) == 1


def test_refused_connections_are_counted_with_errno(exporter: Exporter) -> None:
    with socket.socket() as s:  # a port that nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = Peer("tcp-refused", f"--port={port}", "--count=7")
    assert client.finish()["refused"] == 7
    assert exporter.wait_for("netflow_tcp_failed_total", 7, process_pid=client.pid,
                             error_type="ECONNREFUSED", destination_port=str(port)) == 7
    assert exporter.value("netflow_tcp_established_total", process_pid=client.pid) == 0


def test_retransmits_and_rtt_agree_with_the_kernel(exporter: Exporter, veth: VethPair) -> None:
    # every 20th packet, not 5 % at random: with segmentation offload 3 MB is only ~50 packets, and
    # a random 5 % dropped none of them in ~8 % of runs
    drop = ["ip", "netns", "exec", veth.b, "iptables", "-I", "INPUT", "-p", "tcp", "-m", "statistic",
            "--mode", "nth", "--every", "20", "--packet", "0", "-j", "DROP"]
    subprocess.run(drop, check=True)
    try:
        size = 3_000_000
        receiver = Peer("tcp-receiver-ack", f"--host={veth.b_v4}", f"--expect={size}", netns=veth.b)
        sender = Peer("tcp-sender-hold", f"--host={veth.b_v4}", f"--port={receiver.ready['port']}",
                      f"--send={size}", netns=veth.a)
        info = sender.line()
        flow = {"process_pid": sender.pid, "netflow_direction": "outgoing"}
        assert info["total_retrans"] > 0
        assert exporter.wait_for("netflow_tcp_retransmits_total", info["total_retrans"], **flow) \
            == info["total_retrans"]
        srtt = exporter.value("netflow_tcp_srtt_seconds", **flow) * 1e6
        assert abs(srtt - info["rtt_us"]) <= max(50, 0.25 * info["rtt_us"]), (srtt, info)
        rttvar = exporter.value("netflow_tcp_rttvar_seconds", **flow) * 1e6
        assert abs(rttvar - info["rttvar_us"]) <= max(50, 0.5 * info["rttvar_us"]), (rttvar, info)
        assert exporter.value("netflow_tcp_rtt_seconds_count", **flow) >= 1
    finally:
        subprocess.run([*drop[:5], "-D", *drop[6:]], check=False)
        sender.send_line()
        sender.finish()
        receiver.finish()


def test_drop_switches(bpf_ready: None) -> None:
    e = Exporter(WITH_PID, "Common.DropLocalConnections=true", "Common.DropUnixSocket=false")
    try:
        server, client = tcp_transfer("127.0.0.1", up=1000, down=1000)
        a, b = socket.socketpair()
        a.sendall(b"x" * 4321)
        assert len(b.recv(10000)) == 4321
        me = str(__import__("os").getpid())
        assert e.wait_for(BYTES, 4321, process_pid=me, network_transport="unix",
                          network_io_direction="transmit") == 4321
        time.sleep(1.5)
        assert e.samples(BYTES, process_pid=client.pid) == []  # loopback peer: dropped
        assert e.samples(BYTES, process_pid=server.pid) == []
    finally:
        assert e.stop() == 0


def test_unix_sockets_dropped_by_default(exporter: Exporter) -> None:
    a, b = socket.socketpair()
    a.sendall(b"x" * 100)
    b.recv(100)
    time.sleep(1.5)
    assert exporter.samples(BYTES, network_transport="unix") == []


def test_connection_open_before_start_is_attributed(bpf_ready: None) -> None:
    """Adopted by the first walk, owned by the process holding it, incoming where its port listens; its
    bytes count from start-up: the 1,000 sent before are not counted, the 777 after are."""
    receiver = Peer("tcp-receiver-ack", "--expect=1000")
    sender = Peer("tcp-sender-hold", f"--port={receiver.ready['port']}", "--send=1000", "--more=777")
    sender.line()
    e = Exporter(WITH_PID, "Common.DropLocalConnections=false")
    try:
        flow = {"process_pid": sender.pid, "netflow_direction": "outgoing",
                "destination_port": str(receiver.ready["port"]), "source_port": "*"}
        assert e.wait_for("netflow_tcp_active", 1, **flow) == 1
        assert e.value("netflow_tcp_active", process_pid=receiver.pid, netflow_direction="incoming") == 1
        sender.send_line()
        sender.finish()
        receiver.finish()
        assert e.wait_for(BYTES, 777, network_io_direction="transmit", **flow) == 777
        assert e.wait_for("netflow_tcp_closed_total", 1, **flow) == 1
        assert wait_until(lambda: e.value("netflow_tcp_active", **flow), lambda v: v == 0) == 0
    finally:
        assert e.stop() == 0


def test_unknown_sockets_counted_only_when_asked(bpf_ready: None) -> None:
    request = struct.pack("=LHHLLBxxx", 20, 18, 0x301, 1, 0, socket.AF_UNSPEC)  # RTM_GETLINK dump, 20 bytes
    me = str(os.getpid())
    e = Exporter(WITH_PID, "Common.DropUnknownSocket=false")
    try:
        with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE) as nl:
            nl.sendto(request, (0, 0))
            nl.recv(65536)
        assert e.wait_for(BYTES, 20, process_pid=me, network_transport="other", network_io_direction="transmit") == 20
    finally:
        assert e.stop() == 0


def test_ended_flows_expire(bpf_ready: None) -> None:
    e = Exporter(WITH_PID, "Common.DropLocalConnections=false", "Netflow.SeriesExpiry=3")
    try:
        receiver = Peer("tcp-receiver-ack", "--expect=1000")
        sender = Peer("tcp-sender-hold", f"--port={receiver.ready['port']}", "--send=1000")
        sender.line()
        time.sleep(5)  # longer than the expiry: an open connection keeps its flow
        assert e.value(BYTES, process_pid=sender.pid, network_io_direction="transmit") == 1000
        sender.send_line()
        sender.finish()
        receiver.finish()
        gone = wait_until(lambda: len(e.samples(BYTES, process_pid=sender.pid)), lambda n: n == 0, timeout=15)
        assert gone == 0
        assert e.samples("netflow_tcp_closed_total", process_pid=receiver.pid) == []
    finally:
        assert e.stop() == 0


def test_connection_open_before_start_obeys_drop_switches(bpf_ready: None) -> None:
    receiver = Peer("tcp-receiver-ack", "--expect=10")
    sender = Peer("tcp-sender-hold", f"--port={receiver.ready['port']}", "--send=10", "--more=5")
    sender.line()
    e = Exporter(WITH_PID)  # DropLocalConnections defaults to true: a loopback peer is dropped
    try:
        sender.send_line()
        sender.finish()
        receiver.finish()
        time.sleep(1.5)
        assert e.samples("netflow_tcp_active", process_pid=sender.pid) == []
        assert e.samples(BYTES, process_pid=sender.pid) == []
    finally:
        assert e.stop() == 0


def test_without_the_walk_each_call_keeps_tcp_exact(veth: VethPair) -> None:
    """On a kernel that refuses the walk of sockets (iter/task_file), each TCP call brings its flow up
    to date: as exact, open or closed, in any network namespace."""
    e = Exporter(WITH_PID, "Common.DropLocalConnections=false", env={WITHOUT_ENV: "collect_tcp"})
    try:
        assert "loaded without collect_tcp" in e.log()
        server, client = tcp_transfer("127.0.0.1", up=2_000_000, down=1_000_000)
        assert_bytes(e, client.pid, 2_000_000, 1_000_000, netflow_direction="outgoing")
        assert_bytes(e, server.pid, 1_000_000, 2_000_000, netflow_direction="incoming")
        receiver = Peer("tcp-receiver-ack", "--host=127.0.0.1", "--expect=700", netns=veth.b)
        sender = Peer("tcp-sender-hold", "--host=127.0.0.1", f"--port={receiver.ready['port']}", "--send=700",
                      "--more=3", netns=veth.b)
        sender.line()
        assert_bytes(e, sender.pid, 700, 1, netflow_direction="outgoing")
        assert_bytes(e, receiver.pid, 1, 700, netflow_direction="incoming")
        sender.send_line()
        sender.finish()
        receiver.finish()
        assert_bytes(e, sender.pid, 703, 1, netflow_direction="outgoing")
        assert e.wait_for("netflow_tcp_closed_total", 1, process_pid=receiver.pid) == 1
    finally:
        assert e.stop() == 0
