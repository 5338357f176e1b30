"""MySQL (MariaDB) against a real mariadbd on loopback, driven by mysqlslap, the mysql client and a
raw protocol client for prepared statements."""

from __future__ import annotations

import socket
import struct
import subprocess
import time
from collections.abc import Iterator

import pytest

from tests.kernel.db_series import Key, db_counts, wait_deltas
from tests.kernel.harness import Exporter
from tests.kernel.servers import mariadb

pytestmark = pytest.mark.usefixtures("bpf_ready")

CLIENT = "db_client_operation_duration_seconds_count"
SERVER = "db_server_operation_duration_seconds_count"


@pytest.fixture(scope="module")
def my(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    with mariadb(tmp_path_factory.mktemp("mariadb")) as port:
        mysql(port, "CREATE DATABASE IF NOT EXISTS app; CREATE TABLE app.t (id INT PRIMARY KEY, v INT);"
                    "INSERT INTO app.t VALUES (1, 10), (2, 20);")
        yield port


@pytest.fixture(scope="module")
def exporter(my: int) -> Iterator[Exporter]:
    exp = Exporter("Common.DropLocalConnections=false", "Bash.Enabled=false", "Netflow.Enabled=false",
                   "Dns.Enabled=false")
    yield exp
    exp.stop()


def mysql(port: int, sql: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["mysql", "-h", "127.0.0.1", "-P", str(port), "-u", "root", "-e", sql],
                          capture_output=True, text=True, timeout=60)


def counts(exp: Exporter, name: str, comm: str, port: int) -> dict[Key, float]:
    return db_counts(exp, name, "mysql", comm, port)


def wait_delta(exp: Exporter, name: str, comm: str, port: int, before: dict[Key, float],
               want: dict[Key, int]) -> dict[Key, float]:
    return wait_deltas(lambda: counts(exp, name, comm, port), before, want)


class RawClient:
    """Just enough of the client/server protocol to prepare and execute statements (the mysql
    client and mysqlslap only send text queries). The server runs with --skip-grant-tables."""

    def __init__(self, port: int) -> None:
        self.s = socket.create_connection(("127.0.0.1", port))
        self.s.settimeout(5)
        self.r = self.s.makefile("rb")  # buffered, as client libraries read
        self.read_packet()  # greeting
        caps = 0x00000200 | 0x00008000 | 0x00080000 | 0x00000008  # PROTOCOL_41, SECURE_CONNECTION, PLUGIN_AUTH, DB
        body = struct.pack("<IIB23x", caps, 1 << 24, 33) + b"root\0" + b"\0" + b"app\0" + b"mysql_native_password\0"
        self.write_packet(body, seq=1)
        assert self.read_packet()[0] == 0x00  # OK

    def write_packet(self, payload: bytes, seq: int = 0) -> None:
        self.s.sendall(struct.pack("<I", len(payload))[:3] + bytes([seq]) + payload)

    def read_packet(self) -> bytes:
        head = self._read(4)
        return self._read(int.from_bytes(head[:3], "little"))

    def _read(self, n: int) -> bytes:
        data = self.r.read(n)
        assert len(data) == n
        return data

    def read_until_eof(self) -> None:
        while True:
            p = self.read_packet()
            if (p[0] == 0xFE and len(p) < 9) or p[0] == 0xFF:
                return

    def prepare(self, sql: str) -> int:
        self.write_packet(b"\x16" + sql.encode())
        ok = self.read_packet()
        assert ok[0] == 0x00, ok
        stmt, columns, params = struct.unpack("<IHH", ok[1:9])
        if params:
            self.read_until_eof()
        if columns:
            self.read_until_eof()
        return int(stmt)

    def execute(self, stmt: int) -> int:
        """Executes a statement without parameters; the first byte of its response."""
        self.write_packet(b"\x17" + struct.pack("<IBI", stmt, 0, 1))
        first = self.read_packet()
        if first[0] not in (0x00, 0xFF):  # a result set: columns, EOF, rows, EOF
            self.read_until_eof()
            self.read_until_eof()
        return first[0]

    def close(self) -> None:
        self.write_packet(b"\x01")  # COM_QUIT
        self.r.close()
        self.s.close()


def test_mysqlslap_queries_are_all_counted(exporter: Exporter, my: int) -> None:
    queries = 300
    before_client = counts(exporter, CLIENT, "mysqlslap", my)
    before_server = counts(exporter, SERVER, "mariadbd", my)
    out = subprocess.run(["mysqlslap", "-h", "127.0.0.1", "-P", str(my), "-u", "root", "--concurrency=3",
                          "--iterations=1", f"--number-of-queries={queries}", "--create-schema=app",
                          "--query=SELECT v FROM t WHERE id = 1"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    want = {("SELECT", ""): queries}
    assert wait_delta(exporter, CLIENT, "mysqlslap", my, before_client, want) == want
    assert wait_delta(exporter, SERVER, "mariadbd", my, before_server, want) == want


def test_query_on_missing_table_gives_error_code(exporter: Exporter, my: int) -> None:
    before = counts(exporter, CLIENT, "mysql", my)
    out = mysql(my, "SELECT * FROM app.missing")
    assert "1146" in out.stderr
    want = {("SELECT", "1146"): 1}
    assert wait_delta(exporter, CLIENT, "mysql", my, before, want) == want
    (got, _), = exporter.samples(CLIENT, process_executable_name="mysql", error_type="1146")
    assert got["db_response_status_code"] == "1146"


def test_prepared_statements_count_as_their_operation(exporter: Exporter, my: int) -> None:
    before = counts(exporter, CLIENT, "python", my)
    before_server = counts(exporter, SERVER, "mariadbd", my)
    client = RawClient(my)
    select = client.prepare("SELECT v FROM t WHERE id = 2")
    update = client.prepare("UPDATE t SET v = v + 1 WHERE id = 1")
    results = [client.execute(select) for _ in range(5)] + [client.execute(update) for _ in range(3)]
    client.close()
    assert results[5:] == [0x00] * 3 and 0xFF not in results
    want = {("PREPARE", ""): 2, ("SELECT", ""): 5, ("UPDATE", ""): 3}
    assert wait_delta(exporter, CLIENT, "python", my, before, want) == want
    assert wait_delta(exporter, SERVER, "mariadbd", my, before_server, want) == want


def test_statements_sharing_a_cache_slot_keep_their_own_operations(exporter: Exporter, my: int) -> None:
    # a connection caches its statements' operations by id modulo 8 (bpf/l7_db_flow.c): MariaDB numbers
    # a connection's statements one after another, so the 1st and the 9th share a slot
    before = counts(exporter, CLIENT, "python", my)
    client = RawClient(my)
    selects = [client.prepare(f"SELECT v FROM t WHERE id = {i + 1}") for i in range(8)]
    update = client.prepare("UPDATE t SET v = v + 1 WHERE id = 1")
    twin = next(s for s in selects if s % 8 == update % 8)
    for _ in range(3):
        assert client.execute(twin) != 0xFF and client.execute(update) == 0x00
    client.close()
    want = {("PREPARE", ""): 9, ("SELECT", ""): 3, ("UPDATE", ""): 3}
    assert wait_delta(exporter, CLIENT, "python", my, before, want) == want


def test_latency_of_a_slow_query(exporter: Exporter, my: int) -> None:
    before = {k: exporter.value(f"db_client_operation_duration_seconds_{k}", process_executable_name="mysql",
                                db_operation_name="SELECT", server_port=str(my)) for k in ("sum", "count")}
    started = time.monotonic()
    assert mysql(my, "SELECT SLEEP(0.3)").returncode == 0
    elapsed = time.monotonic() - started
    exporter.wait_for(CLIENT, before["count"] + 1, process_executable_name="mysql", db_operation_name="SELECT",
                      server_port=str(my))
    took = exporter.value("db_client_operation_duration_seconds_sum", process_executable_name="mysql",
                          db_operation_name="SELECT", server_port=str(my)) - before["sum"]
    assert 0.3 <= took <= min(elapsed, 0.33), (took, elapsed)
