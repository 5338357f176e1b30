"""memcached (text protocol) against a real memcached on loopback, driven by a scripted client
that knows exactly what it sent, and by memcslap."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator

import pytest

from tests.kernel.db_series import Key, db_counts, wait_deltas
from tests.kernel.harness import Exporter
from tests.kernel.servers import memcached

pytestmark = pytest.mark.usefixtures("bpf_ready")

CLIENT = "db_client_operation_duration_seconds_count"
SERVER = "db_server_operation_duration_seconds_count"


@pytest.fixture(scope="module")
def mc() -> Iterator[int]:
    with memcached() as port:
        yield port


@pytest.fixture(scope="module")
def exporter(mc: int) -> Iterator[Exporter]:
    exp = Exporter("Common.DropLocalConnections=false", "Bash.Enabled=false", "Netflow.Enabled=false",
                   "Dns.Enabled=false", "Common.IncludeProtocols=HTTP,Memcached")
    yield exp
    exp.stop()


def counts(exp: Exporter, name: str, comm: str, port: int) -> dict[Key, float]:
    return db_counts(exp, name, "memcached", comm, port,
                     keys=("db_operation_name", "db_response_status_code", "error_type"))


def wait_delta(exp: Exporter, name: str, comm: str, port: int, before: dict[Key, float],
               want: dict[Key, int]) -> dict[Key, float]:
    return wait_deltas(lambda: counts(exp, name, comm, port), before, want)


def talk(port: int, payload: bytes, until: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(payload)
        s.settimeout(5)
        data = b""
        while not data.endswith(until):
            chunk = s.recv(65536)
            assert chunk, data
            data += chunk
        return data


def test_commands_hits_misses_and_errors(exporter: Exporter, mc: int) -> None:
    before_client = counts(exporter, CLIENT, "python", mc)
    before_server = counts(exporter, SERVER, "memcached", mc)
    value = b"x" * 3000  # a data block longer than the captured bytes
    payload = (b"set k1 0 0 3000\r\n" + value + b"\r\n"
               + b"set k2 0 0 2\r\nab\r\n"
               + b"set quiet 0 0 1 noreply\r\nq\r\n"
               + b"get k1\r\n" + b"get k1 k2\r\n" + b"get nope\r\n" + b"gets k2\r\n"
               + b"delete k2\r\n" + b"delete k2\r\n"
               + b"incr n 1\r\n" + b"set n 0 0 1\r\n5\r\n" + b"incr n 2\r\n"
               + b"incr k1 1\r\n"  # k1 is not a number
               + b"version\r\n")
    data = talk(mc, payload, b"VERSION " + b"1.6.18\r\n")
    assert data.count(b"STORED\r\n") == 3 and data.count(b"CLIENT_ERROR") == 1, data
    want = {
        ("set", "STORED", ""): 3,
        ("get", "HIT", ""): 2,
        ("get", "MISS", ""): 1,
        ("gets", "HIT", ""): 1,
        ("delete", "DELETED", ""): 1,
        ("delete", "NOT_FOUND", ""): 1,
        ("incr", "NOT_FOUND", ""): 1,
        ("incr", "", ""): 1,
        ("version", "VERSION", ""): 1,
        ("incr", "CLIENT_ERROR", "CLIENT_ERROR"): 1,
    }
    assert wait_delta(exporter, CLIENT, "python", mc, before_client, want) == want
    assert wait_delta(exporter, SERVER, "memcached", mc, before_server, want) == want
    assert exporter.value("netobs_events_lost_total", collector="l7", reason="unparsed") == 0


def op_total(exp: Exporter, comm: str, port: int, op: str) -> float:
    return sum(v for k, v in counts(exp, CLIENT, comm, port).items() if k[0] == op)


@pytest.mark.parametrize("test", ["set", "get"])
def test_memcslap_operations_are_all_counted(exporter: Exporter, mc: int, test: str) -> None:
    before = op_total(exporter, "memcslap", mc, test)
    out = subprocess.run(["memcslap", f"--servers=127.0.0.1:{mc}", "--concurrency=2", "--execute-number=200",
                          f"--test={test}", "--initial-load=50"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    deadline = time.monotonic() + 10
    while op_total(exporter, "memcslap", mc, test) - before < 400 and time.monotonic() < deadline:
        time.sleep(0.3)
    assert op_total(exporter, "memcslap", mc, test) - before == 2 * 200
