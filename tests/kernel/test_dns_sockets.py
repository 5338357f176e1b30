"""dns for every way a DNS client or server uses its socket, with real sockets in this process.

Each client pattern asks dnsmasq N queries for a name of its own and must give exactly N NOERROR
lookups, on its side (`outgoing`) and on dnsmasq's (`incoming`): connected and unconnected sockets,
wildcard-bound ones, answers read with and without their address (recv, recvfrom(..., NULL, NULL),
recvmmsg without names: no hook sees their peer), batches, read/write, one thread sending while
another receives, non-blocking polling, IPv4, IPv6 and IPv4 through a dual-stack IPv6 socket. Each
server pattern answers N queries from this process the way a resolver may read and write them."""

from __future__ import annotations

import os
import select
import socket
import struct
import threading
from collections.abc import Callable, Iterator

import pytest

from tests.kernel.dns_peers import answer_to, dnsmasq, query, rcode
from tests.kernel.harness import WITH_PID, Exporter, free_port
from tests.kernel.mmsg import recvmmsg, sendmmsg, sockaddr

pytestmark = pytest.mark.usefixtures("bpf_ready")

DNSMASQ_PORT = free_port()
SERVER_PORT = free_port()  # the servers this process runs
N = 8
ADDRESSES = {"ipv4": "127.0.0.1", "ipv6": "::1"}
FAMILIES = {"ipv4": socket.AF_INET, "ipv6": socket.AF_INET6}
WILDCARD = {"ipv4": "0.0.0.0", "ipv6": "::"}


@pytest.fixture(scope="module")
def exporter() -> Iterator[Exporter]:
    server = dnsmasq(DNSMASQ_PORT, "127.0.0.1", "::1")
    exp = Exporter(WITH_PID, f"Dns.Ports=[53,{DNSMASQ_PORT},{SERVER_PORT}]", "Dns.Timeout=2",
                   "Common.DropLocalConnections=false", "Bash.Enabled=false")
    yield exp
    exp.stop()
    server.terminate()
    server.wait()


def counted(exp: Exporter, name: str, direction: str, n: int, **labels: str) -> dict[str, float]:
    """The lookups of `name` by response code, once `n` of them are counted in `direction`."""
    exp.wait_for("dns_lookups_total", n, dns_question_name=name, dnsflow_direction=direction, **labels)
    codes: dict[str, float] = {}
    for got, value in exp.samples("dns_lookups_total", dns_question_name=name, dnsflow_direction=direction,
                                  **labels):
        codes[got["dns_response_code"]] = codes.get(got["dns_response_code"], 0) + value
    return codes


# ------------------------------------------------------------------ clients

Client = Callable[[str, str], list[bytes]]  # (family, name) -> the N answers read


def udp(family: str) -> socket.socket:
    """A blocking socket (as C clients use them) whose reads give up after 5 s."""
    s = socket.socket(FAMILIES[family], socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack("ll", 5, 0))
    return s


def server(family: str) -> tuple[str, int]:
    return ADDRESSES[family], DNSMASQ_PORT


def connected_send_recv(family: str, name: str) -> list[bytes]:
    with udp(family) as s:
        s.connect(server(family))
        out = []
        for i in range(N):
            s.send(query(name, i))
            out.append(s.recv(2048))
        return out


def connected_write_read(family: str, name: str) -> list[bytes]:
    with udp(family) as s:
        s.connect(server(family))
        out = []
        for i in range(N):
            os.write(s.fileno(), query(name, i))
            out.append(os.read(s.fileno(), 2048))
        return out


def wildcard_sendto_recvfrom(family: str, name: str) -> list[bytes]:
    with udp(family) as s:
        s.bind((WILDCARD[family], 0))
        out = []
        for i in range(N):
            s.sendto(query(name, i), server(family))
            data, _ = s.recvfrom(2048)
            out.append(data)
        return out


def sendto_recv_without_address(family: str, name: str) -> list[bytes]:
    """dnsperf's way: sendto on an unconnected socket, answers read by recv(), i.e. recvfrom(NULL, NULL)."""
    with udp(family) as s:
        s.bind((WILDCARD[family], 0))
        out = []
        for i in range(N):
            s.sendto(query(name, i), server(family))
            out.append(s.recv(2048))
        return out


def sendmsg_recvmsg(family: str, name: str) -> list[bytes]:
    with udp(family) as s:
        out = []
        for i in range(N):
            s.sendmsg([query(name, i)[:12], query(name, i)[12:]], [], 0, server(family))  # two iovec entries
            data, _, _, _ = s.recvmsg(2048)
            out.append(data)
        return out


def batches(with_addresses: bool) -> Client:
    def run(family: str, name: str) -> list[bytes]:
        with udp(family) as s:
            s.bind((WILDCARD[family], 0))
            assert sendmmsg(s, [query(name, i) for i in range(N)], to=sockaddr(*server(family))) == N
            out: list[bytes] = []
            while len(out) < N:
                select.select([s], [], [], 5)
                out += [data for data, _ in recvmmsg(s, N, with_addresses=with_addresses)]
            return out
    return run


def threads_send_and_receive(family: str, name: str) -> list[bytes]:
    """One thread sends every query while another reads the answers, without their address."""
    with udp(family) as s:
        s.bind((WILDCARD[family], 0))
        out: list[bytes] = []
        reader = threading.Thread(target=lambda: out.extend(s.recv(2048) for _ in range(N)))
        reader.start()
        for i in range(N):
            s.sendto(query(name, i), server(family))
        reader.join(10)
        return out


def non_blocking_polling(family: str, name: str) -> list[bytes]:
    """Queries sent at once, answers drained by a poll loop that sees EAGAIN between them."""
    with udp(family) as s:
        s.setblocking(False)
        poller = select.poll()
        poller.register(s, select.POLLIN)
        out: list[bytes] = []
        for i in range(N):
            s.sendto(query(name, i), server(family))
        while len(out) < N:
            try:
                out.append(s.recv(2048))
            except BlockingIOError:
                assert poller.poll(5000), "no answer within 5 s"
        return out


def dual_stack(family: str, name: str) -> list[bytes]:
    """An IPv6 socket asking an IPv4 server through its IPv4-mapped address."""
    assert family == "ipv4"
    with udp("ipv6") as s:
        out = []
        for i in range(N):
            s.sendto(query(name, i), ("::ffff:127.0.0.1", DNSMASQ_PORT))
            out.append(s.recv(2048))
        return out


def tcp_write_read(family: str, name: str) -> list[bytes]:
    """DNS over TCP on one connection: each message with its 2-byte length, by write() and read()."""
    with socket.create_connection(server(family), timeout=5) as s:
        out = []
        for i in range(N):
            message = query(name, i)
            os.write(s.fileno(), struct.pack(">H", len(message)) + message)
            size = struct.unpack(">H", s.recv(2, socket.MSG_WAITALL))[0]
            out.append(s.recv(size, socket.MSG_WAITALL))
        return out


CLIENTS: dict[str, Client] = {
    "connected-send-recv": connected_send_recv,
    "connected-write-read": connected_write_read,
    "wildcard-sendto-recvfrom": wildcard_sendto_recvfrom,
    "sendto-recv-without-address": sendto_recv_without_address,
    "sendmsg-recvmsg": sendmsg_recvmsg,
    "sendmmsg-recvmmsg": batches(with_addresses=True),
    "sendmmsg-recvmmsg-without-addresses": batches(with_addresses=False),
    "threads": threads_send_and_receive,
    "non-blocking-poll": non_blocking_polling,
    "tcp-write-read": tcp_write_read,
}


@pytest.mark.parametrize("family", ["ipv4", "ipv6"])
@pytest.mark.parametrize("pattern", list(CLIENTS))
def test_client_pattern_is_counted_exactly_on_both_sides(exporter: Exporter, pattern: str, family: str) -> None:
    name = f"{pattern}.{family}.wild.test"
    answers = CLIENTS[pattern](family, name)
    assert [rcode(a) for a in answers] == [0] * N
    pid = str(os.getpid())
    assert counted(exporter, name, "outgoing", N, process_pid=pid) == {"NOERROR": N}
    assert counted(exporter, name, "incoming", N, process_executable_name="dnsmasq") == {"NOERROR": N}
    (labels, _), = exporter.samples("dns_lookups_total", dns_question_name=name, process_pid=pid)
    assert (labels["server_address"], labels["server_port"]) == (ADDRESSES[family], str(DNSMASQ_PORT))
    assert labels["network_type"] == family
    assert labels["network_transport"] == ("tcp" if pattern.startswith("tcp") else "udp")


def test_dual_stack_socket_to_an_ipv4_server_is_ipv4(exporter: Exporter) -> None:
    name = "dual-stack.wild.test"
    assert [rcode(a) for a in dual_stack("ipv4", name)] == [0] * N
    assert counted(exporter, name, "outgoing", N, process_pid=str(os.getpid()), server_address="127.0.0.1",
                   network_type="ipv4") == {"NOERROR": N}


def test_nxdomain_read_without_address_is_nxdomain_not_timeout(exporter: Exporter) -> None:
    """What dnsperf showed: answers nobody saw the peer of all ended as TIMEOUT."""
    name = "missing-without-address.test"
    answers = sendto_recv_without_address("ipv4", name)
    assert [rcode(a) for a in answers] == [3] * N
    assert counted(exporter, name, "outgoing", N, process_pid=str(os.getpid())) == {"NXDOMAIN": N}


def test_same_id_to_two_servers_on_one_socket(exporter: Exporter) -> None:
    """One socket asks the same question with the same id of dnsmasq over 127.0.0.1 and ::1 (a dual-stack
    socket); each answer, read with its address, completes the query sent to its server."""
    name = "two-servers.wild.test"
    with udp("ipv6") as s:
        for i in range(N):
            s.sendto(query(name, i), ("::ffff:127.0.0.1", DNSMASQ_PORT))
            s.sendto(query(name, i), ("::1", DNSMASQ_PORT))
            answers = [s.recvfrom(2048)[0] for _ in range(2)]
            assert [rcode(a) for a in answers] == [0, 0]
    pid = str(os.getpid())
    for address in ("127.0.0.1", "::1"):
        assert counted(exporter, name, "outgoing", N, process_pid=pid, server_address=address) == {"NOERROR": N}
    assert exporter.value("dns_lookups_total", dns_question_name=name, dnsflow_direction="incoming") == 2 * N


# ------------------------------------------------------------------ servers

Server = Callable[[socket.socket], None]  # answers N queries on a bound socket


def serve_recvfrom_sendto(s: socket.socket) -> None:
    for _ in range(N):
        data, peer = s.recvfrom(2048)
        s.sendto(answer_to(data), peer)


def serve_recvmsg_sendmsg(s: socket.socket) -> None:
    for _ in range(N):
        data, _, _, peer = s.recvmsg(2048)
        reply = answer_to(data)
        s.sendmsg([reply[:12], reply[12:]], [], 0, peer)


def serve_batches(s: socket.socket) -> None:
    served = 0
    while served < N:
        select.select([s], [], [], 5)
        got = recvmmsg(s, N, with_addresses=True)
        peer = got[0][1]
        assert peer is not None and all(p == peer for _, p in got)  # one client
        assert sendmmsg(s, [answer_to(data) for data, _ in got], to=peer) == len(got)
        served += len(got)


SERVERS: dict[str, Server] = {
    "recvfrom-sendto": serve_recvfrom_sendto,
    "recvmsg-sendmsg": serve_recvmsg_sendmsg,
    "recvmmsg-sendmmsg": serve_batches,
}


@pytest.mark.parametrize("family", ["ipv4", "ipv6"])
@pytest.mark.parametrize("pattern", list(SERVERS))
def test_server_pattern_is_counted_exactly_on_both_sides(exporter: Exporter, pattern: str, family: str) -> None:
    name = f"{pattern}.{family}.served.test"
    with udp(family) as listener:
        listener.bind((ADDRESSES[family], SERVER_PORT))
        serving = threading.Thread(target=SERVERS[pattern], args=(listener,))
        serving.start()
        with udp(family) as client:
            client.connect((ADDRESSES[family], SERVER_PORT))
            if pattern == "recvmmsg-sendmmsg":  # queries in flight together, for batches to form
                for i in range(N):
                    client.send(query(name, i))
                answers = [client.recv(2048) for _ in range(N)]
            else:
                answers = []
                for i in range(N):
                    client.send(query(name, i))
                    answers.append(client.recv(2048))
        serving.join(10)
    assert [rcode(a) for a in answers] == [0] * N
    pid = str(os.getpid())
    for direction in ("outgoing", "incoming"):
        assert counted(exporter, name, direction, N, process_pid=pid) == {"NOERROR": N}, direction
    (labels, _), = exporter.samples("dns_lookups_total", dns_question_name=name, dnsflow_direction="incoming")
    assert (labels["server_address"], labels["server_port"]) == (ADDRESSES[family], str(SERVER_PORT))
