"""Redis against a real redis-server on loopback, driven by redis-benchmark and raw RESP.

redis-benchmark -n N sends exactly N commands of each test: N counted per command, on the client's
side and on redis-server's, with and without pipelining."""

from __future__ import annotations

import re
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.kernel.harness import Exporter
from tests.kernel.servers import redis_server

pytestmark = pytest.mark.usefixtures("bpf_ready")

DURATION = "db_client_operation_duration_seconds_count"
SERVER_DURATION = "db_server_operation_duration_seconds_count"


@pytest.fixture(scope="module")
def redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    with redis_server(tmp_path_factory.mktemp("redis")) as port:
        yield port


@pytest.fixture(scope="module")
def exporter(redis: int) -> Iterator[Exporter]:
    exp = Exporter("Common.DropLocalConnections=false", "Bash.Enabled=false", "Netflow.Enabled=false",
                   "Dns.Enabled=false")
    yield exp
    exp.stop()


def counts(exp: Exporter, name: str, comm: str, port: int, **labels: str) -> dict[str, float]:
    """Operations counted per db.operation.name for one process and server port."""
    out: dict[str, float] = {}
    for got, value in exp.samples(name, process_executable_name=comm, server_port=str(port), db_system_name="redis",
                                  **labels):
        out[got.get("db_operation_name", "")] = out.get(got.get("db_operation_name", ""), 0) + value
    return out


def wait_counts(exp: Exporter, name: str, comm: str, port: int, want: dict[str, int]) -> dict[str, float]:
    import time

    deadline = time.monotonic() + 10
    while True:
        got = counts(exp, name, comm, port)
        if all(got.get(op) == n for op, n in want.items()) or time.monotonic() > deadline:
            return got
        time.sleep(0.2)


def benchmark(port: int, n: int, *args: str) -> str:
    out = subprocess.run(["redis-benchmark", "-h", "127.0.0.1", "-p", str(port), "-n", str(n), "-c", "4",
                          "-t", "set,get,lpush", "--csv", *args], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout


def resp(*words: str) -> bytes:
    return f"*{len(words)}\r\n".encode() + b"".join(f"${len(w)}\r\n{w}\r\n".encode() for w in words)


def exchange(port: int, payload: bytes, replies: int) -> bytes:
    """Sends payload on a fresh connection and reads until `replies` CRLF-ended top-level replies
    have plausibly arrived (the tests use simple replies)."""
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(payload)
        s.settimeout(5)
        data = b""
        while data.count(b"\r\n") < replies:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        return data


@pytest.mark.parametrize("pipeline", [1, 16])
def test_benchmark_commands_are_all_counted(exporter: Exporter, redis: int, pipeline: int) -> None:
    n = 2000
    before_client = counts(exporter, DURATION, "redis-benchmark", redis)
    before_server = counts(exporter, SERVER_DURATION, "redis-server", redis)
    csv = benchmark(redis, n, "-P", str(pipeline))
    assert set(re.findall(r'^"(\w+)', csv, re.M)) >= {"SET", "GET", "LPUSH"}, csv
    want_client = {op: int(before_client.get(op, 0)) + n for op in ("SET", "GET", "LPUSH")}
    want_server = {op: int(before_server.get(op, 0)) + n for op in ("SET", "GET", "LPUSH")}
    got = wait_counts(exporter, DURATION, "redis-benchmark", redis, want_client)
    assert {op: got.get(op) for op in want_client} == want_client
    got = wait_counts(exporter, SERVER_DURATION, "redis-server", redis, want_server)
    assert {op: got.get(op) for op in want_server} == want_server
    lost = exporter.samples("netobs_events_lost_total", collector="l7")
    assert all(v == 0 for labels, v in lost if labels["reason"] != "unmatched"), lost


def test_error_replies_carry_their_code(exporter: Exporter, redis: int) -> None:
    payload = resp("SET", "str", "x") + resp("LPUSH", "str", "y") + resp("NOSUCHCMD") + resp("GET", "str")
    data = exchange(redis, payload, 4)
    assert data.startswith(b"+OK\r\n-WRONGTYPE") and b"-ERR unknown command" in data, data
    labels = {"process_executable_name": "python", "server_port": str(redis)}
    assert exporter.wait_for(DURATION, 1, db_operation_name="LPUSH", error_type="WRONGTYPE", **labels) == 1
    assert exporter.wait_for(DURATION, 1, db_operation_name="NOSUCHCMD", error_type="ERR", **labels) == 1
    assert exporter.wait_for(DURATION, 1, db_operation_name="GET", error_type="", **labels) >= 1
    (got, _), = exporter.samples(DURATION, db_operation_name="LPUSH", **labels)
    assert got["db_response_status_code"] == "WRONGTYPE"
    assert exporter.wait_for(SERVER_DURATION, 1, db_operation_name="LPUSH", error_type="WRONGTYPE",
                             process_executable_name="redis-server", server_port=str(redis)) == 1


def test_alike_lengths_are_told_apart_by_their_bytes(exporter: Exporter) -> None:
    """A command or reply that repeats the last whole one byte for byte is counted without a parse, it and its
    copies in one step (bpf/l7_redis.c); one of the same length with other bytes is parsed: a DEL among GETs,
    an error among integer replies. Scripted server: redis-server answers no GET with an integer."""
    commands = [resp("GET", "aa")] * 3 + [resp("DEL", "aa")] + [resp("GET", "aa")] * 2
    replies = b":100\r\n" * 2 + b"-ERR\r\n" + b":100\r\n" * 3
    payload = b"".join(commands)
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        with socket.create_connection(("127.0.0.1", port)) as client, listener.accept()[0] as server:
            client.sendall(payload)
            got = b""
            while len(got) < len(payload):
                got += server.recv(65536)
            server.sendall(replies)
            data = b""
            while len(data) < len(replies):
                data += client.recv(65536)
    labels = {"process_executable_name": "python", "server_port": str(port)}
    for name in (DURATION, SERVER_DURATION):
        assert exporter.wait_for(name, 4, db_operation_name="GET", error_type="", **labels) == 4, name
        assert exporter.wait_for(name, 1, db_operation_name="GET", error_type="ERR", **labels) == 1, name
        assert exporter.wait_for(name, 1, db_operation_name="DEL", error_type="", **labels) == 1, name


def test_multi_exec_and_every_reply_type(exporter: Exporter, redis: int) -> None:
    payload = (resp("DEL", "h", "l", "m") + resp("HSET", "h", "a", "1", "b", "2") + resp("RPUSH", "l", "x", "y", "z")
               + resp("MULTI") + resp("INCR", "m") + resp("LRANGE", "l", "0", "-1") + resp("EXEC")
               + resp("HGETALL", "h") + resp("GET", "nothing") + resp("LRANGE", "l", "0", "-1"))
    with socket.create_connection(("127.0.0.1", redis)) as s:
        s.sendall(resp("HELLO", "3"))  # RESP3 from here on: HGETALL answers with a map
        s.settimeout(5)
        hello = s.recv(65536)
        assert hello.startswith(b"%"), hello
        s.sendall(payload)
        data = b""
        while not data.endswith(b"$1\r\nz\r\n") or data.count(b"*3\r\n") < 2:
            chunk = s.recv(65536)
            assert chunk, data
            data += chunk
    labels = {"process_executable_name": "python", "server_port": str(redis)}
    for op, n in (("HELLO", 1), ("MULTI", 1), ("INCR", 1), ("EXEC", 1), ("HGETALL", 1), ("GET", 1),
                  ("LRANGE", 2), ("HSET", 1), ("RPUSH", 1), ("DEL", 1)):
        assert exporter.wait_for(DURATION, n, db_operation_name=op, error_type="", **labels) >= n, op
        assert exporter.wait_for(SERVER_DURATION, n, db_operation_name=op, error_type="",
                                 process_executable_name="redis-server", server_port=str(redis)) >= n, op
    assert exporter.value(DURATION, db_operation_name="LRANGE", **labels) == 2


def test_latency_agrees_with_redis_benchmark(exporter: Exporter, redis: int, tmp_path: Path) -> None:
    before = {k: exporter.value(f"db_client_operation_duration_seconds_{k}", process_executable_name="redis-benchmark",
                                db_operation_name="GET") for k in ("sum", "count")}
    csv = subprocess.run(["redis-benchmark", "-h", "127.0.0.1", "-p", str(redis), "-n", "5000", "-c", "1",
                          "-t", "get", "--csv"], capture_output=True, text=True, timeout=120).stdout
    row = next(line for line in csv.splitlines() if line.startswith('"GET"'))
    avg_ms = float(row.split(",")[2].strip('"'))
    exporter.wait_for(DURATION, before["count"] + 5000, process_executable_name="redis-benchmark",
                      db_operation_name="GET")
    total = exporter.value("db_client_operation_duration_seconds_sum", process_executable_name="redis-benchmark",
                           db_operation_name="GET") - before["sum"]
    ours_ms = total / 5000 * 1000
    # redis-benchmark times from before its write to after its read and parse; we from the write's
    # end to the read's end: ours is a little shorter, never longer.
    assert avg_ms * 0.4 <= ours_ms <= avg_ms + 0.05, (ours_ms, avg_ms)
