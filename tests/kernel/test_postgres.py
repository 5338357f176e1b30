"""PostgreSQL against a real server on loopback, driven by pgbench (simple, extended and prepared
protocols) and psql. pgbench -t T -c C runs every statement of its script exactly T x C times:
that many counted per operation, by pgbench and by the postgres backends."""

from __future__ import annotations

import re
import socket
import struct
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.kernel.db_series import Key, db_counts, wait_deltas
from tests.kernel.harness import Exporter, wait_until
from tests.kernel.servers import postgres

pytestmark = pytest.mark.usefixtures("bpf_ready")

CLIENT = "db_client_operation_duration_seconds_count"
SERVER = "db_server_operation_duration_seconds_count"
SCRIPT = """\\set aid random(1, 1000)
SELECT v FROM t WHERE id = :aid;
UPDATE t SET v = v + 1 WHERE id = :aid;
BEGIN;
INSERT INTO h (id, v) VALUES (:aid, 1);
DELETE FROM h WHERE id = :aid;
END;
"""
PER_RUN = {"SELECT": 1, "UPDATE": 1, "BEGIN": 1, "INSERT": 1, "DELETE": 1, "END": 1}


@pytest.fixture(scope="module")
def pg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    with postgres(tmp_path_factory.mktemp("pg")) as port:
        psql(port, "CREATE TABLE t (id int PRIMARY KEY, v int); CREATE TABLE h (id int, v int);"
                   "INSERT INTO t SELECT g, 0 FROM generate_series(1, 1000) g;")
        yield port


@pytest.fixture(scope="module")
def exporter(pg: int) -> Iterator[Exporter]:
    exp = Exporter("Common.DropLocalConnections=false", "Bash.Enabled=false", "Netflow.Enabled=false",
                   "Dns.Enabled=false")
    yield exp
    exp.stop()


def psql(port: int, sql: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["psql", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "-X", "-q", "-c", sql],
                          capture_output=True, text=True, timeout=60)


def counts(exp: Exporter, name: str, comm: str, port: int) -> dict[Key, float]:
    return db_counts(exp, name, "postgresql", comm, port)


def wait_delta(exp: Exporter, name: str, comm: str, port: int, before: dict[Key, float],
               want: dict[str, int]) -> dict[str, float]:
    got = wait_deltas(lambda: counts(exp, name, comm, port), before, {(op, ""): n for op, n in want.items()})
    return {op: got[(op, "")] for op in want}


def pgbench(port: int, tmp: Path, mode: str, clients: int, transactions: int) -> str:
    script = tmp / "script.sql"
    script.write_text(SCRIPT)
    out = subprocess.run(["pgbench", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "-n", "-M", mode,
                          "-c", str(clients), "-t", str(transactions), "-f", str(script), "postgres"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return out.stdout


@pytest.mark.parametrize("mode", ["simple", "extended", "prepared"])
def test_pgbench_statements_are_all_counted(exporter: Exporter, pg: int, tmp_path: Path, mode: str) -> None:
    clients, transactions = 2, 150
    before_client = counts(exporter, CLIENT, "pgbench", pg)
    before_server = counts(exporter, SERVER, "postgres", pg)
    out = pgbench(pg, tmp_path, mode, clients, transactions)
    assert f"number of transactions actually processed: {clients * transactions}/" in out, out
    want = {op: n * clients * transactions for op, n in PER_RUN.items()}
    assert wait_delta(exporter, CLIENT, "pgbench", pg, before_client, want) == want
    assert wait_delta(exporter, SERVER, "postgres", pg, before_server, want) == want


def test_failing_statement_gives_its_sqlstate(exporter: Exporter, pg: int) -> None:
    out = psql(pg, "SELECT 1/0")
    assert "division by zero" in out.stderr
    out = psql(pg, "SELECT * FROM no_such_table")
    assert "does not exist" in out.stderr
    labels = {"process_executable_name": "psql", "server_port": str(pg), "db_operation_name": "SELECT"}
    assert exporter.wait_for(CLIENT, 1, error_type="22012", **labels) == 1
    assert exporter.wait_for(CLIENT, 1, error_type="42P01", **labels) == 1
    (got, _), = exporter.samples(CLIENT, error_type="22012", **labels)
    assert got["db_response_status_code"] == "22012"
    assert exporter.wait_for(SERVER, 1, error_type="22012", process_executable_name="postgres",
                             server_port=str(pg), db_operation_name="SELECT") == 1


def test_prepared_statement_error_in_extended_protocol(exporter: Exporter, pg: int, tmp_path: Path) -> None:
    script = tmp_path / "fail.sql"
    script.write_text("SELECT 1/(v - v) FROM t WHERE id = 1;\n")
    before = counts(exporter, CLIENT, "pgbench", pg)
    out = subprocess.run(["pgbench", "-h", "127.0.0.1", "-p", str(pg), "-U", "postgres", "-n", "-M", "prepared",
                          "-c", "1", "-t", "3", "-f", str(script), "postgres"], capture_output=True, text=True,
                         timeout=60)
    assert "division by zero" in out.stderr
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        now = counts(exporter, CLIENT, "pgbench", pg)
        if now.get(("SELECT", "22012"), 0) - before.get(("SELECT", "22012"), 0) >= 1:
            break
        time.sleep(0.3)
    # pgbench stops its client at the first error
    assert now.get(("SELECT", "22012"), 0) - before.get(("SELECT", "22012"), 0) == 1


def test_latency_agrees_with_pgbench(exporter: Exporter, pg: int, tmp_path: Path) -> None:
    sums = {k: exporter.value(f"db_client_operation_duration_seconds_{k}", process_executable_name="pgbench",
                              server_port=str(pg)) for k in ("sum", "count")}
    out = pgbench(pg, tmp_path, "prepared", 1, 300)
    avg_ms = float(re.search(r"latency average = ([\d.]+) ms", out).group(1))  # type: ignore[union-attr]
    exporter.wait_for("db_client_operation_duration_seconds_count", sums["count"] + 300 * 6,
                      process_executable_name="pgbench", server_port=str(pg))
    total = exporter.value("db_client_operation_duration_seconds_sum", process_executable_name="pgbench",
                           server_port=str(pg)) - sums["sum"]
    ours_ms = total / 300 * 1000  # the six statements of one transaction
    assert avg_ms * 0.5 <= ours_ms <= avg_ms * 1.05, (ours_ms, avg_ms)


class PgWire:
    """The PostgreSQL protocol by hand, for what psql and pgbench do not do: running a statement whose
    preparation was never seen."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        body = struct.pack(">I", 196608) + b"user\0postgres\0database\0postgres\0\0"
        self.sock.sendall(struct.pack(">I", len(body) + 4) + body)
        self.until_ready()

    @staticmethod
    def message(kind: bytes, body: bytes) -> bytes:
        return kind + struct.pack(">I", len(body) + 4) + body

    def until_ready(self) -> list[bytes]:
        """The kinds of the messages the server sent, up to ReadyForQuery."""
        data, kinds = b"", []
        while True:
            data += self.sock.recv(65536)
            at = 0
            while at + 5 <= len(data):
                kind, length = data[at:at + 1], struct.unpack(">I", data[at + 1:at + 5])[0]
                if at + 1 + length > len(data):
                    break
                kinds.append(kind)
                if kind == b"Z":
                    return kinds
                at += 1 + length
            data = data[at:]

    def run(self, name: str) -> list[bytes]:
        self.sock.sendall(self.message(b"B", f"\0{name}\0".encode() + struct.pack(">HHH", 0, 0, 0))
                          + self.message(b"E", b"\0" + struct.pack(">I", 0)) + self.message(b"S", b""))
        return self.until_ready()

    def close(self) -> None:
        self.sock.sendall(self.message(b"X", b""))
        self.sock.close()


def test_a_statement_run_whose_preparation_is_unknown_is_counted(exporter: Exporter, pg: int) -> None:
    """Its operation cannot be known: each run is counted in netobs_events_lost_total{reason=
    "statement_unknown"}, on both sides (the client's Bind and the backend's)."""
    before = exporter.value("netobs_events_lost_total", collector="l7", reason="statement_unknown")
    wire = PgWire(pg)
    try:
        n = 5
        for _ in range(n):
            assert b"E" in wire.run("never_prepared")  # the server says so too
        unknown = wait_until(lambda: exporter.value("netobs_events_lost_total", collector="l7",
                                                    reason="statement_unknown") - before, lambda v: v == 2 * n)
        assert unknown == 2 * n
    finally:
        wire.close()
