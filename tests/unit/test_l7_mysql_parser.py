"""MySQL/MariaDB in bpf/l7_db.h: mysql_header, mysql_greeting and mysql_command, on byte literals, on streams
captured from mariadbd (tests/unit/fixtures/mysql_*.bin) and on generated packets."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.unit.l7_db_host import FILLS, OP_LEN, PROPERTY, Db, assert_window_only, build, fixture

COM_QUIT, COM_INIT_DB, COM_QUERY, COM_FIELD_LIST, COM_PING = 0x01, 0x02, 0x03, 0x04, 0x0E
COM_STMT_PREPARE, COM_STMT_EXECUTE, COM_STMT_SEND_LONG_DATA = 0x16, 0x17, 0x18
COM_STMT_CLOSE, COM_STMT_RESET = 0x19, 0x1A


@pytest.fixture(scope="session")
def db(tmp_path_factory: pytest.TempPathFactory) -> Db:
    return build(tmp_path_factory)


def packet(seq: int, payload: bytes) -> bytes:
    return struct.pack("<I", len(payload))[:3] + bytes([seq]) + payload


def packets(db: Db, data: bytes) -> list[tuple[int, int]]:
    """(sequence id, first payload byte) of each packet of a stream, found by the length of the one before."""
    out, pos = [], 0
    while pos < len(data):
        m = db.mysql_header(data, pos)
        assert m.ok, (pos, data[pos:pos + 8])
        out.append((m.seq, data[pos + 4]))
        pos += 4 + m.num
    assert pos == len(data)
    return out


# ---------------------------------------------------------------- greeting


def test_mariadb_greeting(db: Db) -> None:
    data = fixture("mysql_greeting.bin")
    assert data[4:5] == b"\x0a" and data[5:].startswith(b"5.5.5-10.11.")  # MariaDB's version prefix
    for fill in FILLS:
        m = db.mysql_greeting(data, fill=fill)
        assert (m.ok, m.num, m.seq) == (True, len(data) - 4, 0)


@pytest.mark.parametrize(
    ("data", "ok"),
    [
        (packet(0, b"\x0a8.0.36\0" + bytes(60)), True),  # MySQL 8
        (packet(0, b"\x0a5.7.44-log\0" + bytes(60)), True),
        (packet(1, b"\x0a8.0.36\0" + bytes(60)), False),  # a greeting is the first packet
        (packet(0, b"\x098.0.36\0" + bytes(60)), False),  # protocol 9
        (packet(0, b"\x0av8.0\0" + bytes(60)), False),  # a version starts with a digit
        (packet(0, b"\x0a0.1\0" + bytes(60)), False),
        (packet(0, b"\x0a8.0\0" + bytes(20)), False),  # too short
        (packet(0, b"\x0a8.0\0" + bytes(2000)), False),  # too long
        (packet(0, b"\xff\x15\x04Host is not allowed" + bytes(20)), False),  # an error instead
        (b"\x50\0\0", False),
        (b"", False),
    ],
)
def test_greetings(db: Db, data: bytes, ok: bool) -> None:
    assert db.mysql_greeting(data).ok == ok


def test_every_cut_of_the_greeting(db: Db) -> None:
    data = fixture("mysql_greeting.bin")
    for n in range(len(data) + 1):
        assert assert_window_only(db, "mysql_greeting", data, n).ok == (n >= 6), n


# ---------------------------------------------------------------- packet headers


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("mysql_handshake_request.bin", [(1, 0x05)]),
        ("mysql_handshake_reply.bin", [(2, 0x00)]),  # OK
        ("mysql_query_reply.bin", [(1, 1), (2, 3), (3, 0xFE), (4, 1), (5, 0xFE)]),  # 1 column, its def, EOF, a row, EOF
        ("mysql_err_1146_reply.bin", [(1, 0xFF)]),
        ("mysql_stmt_prepare_reply.bin", [(1, 0), (2, 3), (3, 0xFE), (4, 3), (5, 0xFE)]),
        ("mysql_stmt_execute_reply.bin", [(1, 1), (2, 3), (3, 0xFE), (4, 0), (5, 0xFE)]),  # a binary row
        ("mysql_ping_reply.bin", [(1, 0x00)]),
        ("mysql_init_db_reply.bin", [(1, 0x00)]),
    ],
)
def test_captured_streams_walk_packet_by_packet(db: Db, name: str, expected: list[tuple[int, int]]) -> None:
    assert packets(db, fixture(name)) == expected


def test_error_1146(db: Db) -> None:
    data = fixture("mysql_err_1146_reply.bin")
    m = db.mysql_header(data)
    assert (m.ok, m.num, m.seq) == (True, len(data) - 4, 1)
    assert data[4] == 0xFF and struct.unpack("<H", data[5:7])[0] == 1146 and data[7:13] == b"#42S02"


def test_header_alone(db: Db) -> None:
    # MariaDB reads a header alone, then its payload: a window of 4 bytes is a header
    m = db.mysql_header(b"\x21\x00\x00\x00")
    assert (m.ok, m.num, m.seq) == (True, 0x21, 0)
    m = db.mysql_header(b"\xff\xff\xff\x07")
    assert (m.ok, m.num, m.seq) == (True, 0xFFFFFF, 7)  # 16 MiB - 1: the payload continues in another packet


@pytest.mark.parametrize("data", [b"", b"\x01\x00\x00", b"\x00\x00\x00\x00", b"\x00\x00\x00\x05\x03"])
def test_not_a_header(db: Db, data: bytes) -> None:
    assert not db.mysql_header(data).ok  # cut, or an empty payload


# ---------------------------------------------------------------- commands


@pytest.mark.parametrize(
    ("name", "command", "op"),
    [
        ("mysql_query_request.bin", COM_QUERY, b"SELECT"),
        ("mysql_err_1146_request.bin", COM_QUERY, b"SELECT"),  # after a comment
        ("mysql_stmt_prepare_request.bin", COM_STMT_PREPARE, b"SELECT"),
        ("mysql_stmt_execute_request.bin", COM_STMT_EXECUTE, b""),  # the operation is the prepared statement's
        ("mysql_stmt_close_request.bin", COM_STMT_CLOSE, b""),
        ("mysql_ping_request.bin", COM_PING, b"PING"),
        ("mysql_init_db_request.bin", COM_INIT_DB, b"INIT_DB"),
        ("mysql_quit_request.bin", COM_QUIT, b""),
    ],
)
def test_captured_commands(db: Db, name: str, command: int, op: bytes) -> None:
    data = fixture(name)
    header = db.mysql_header(data)
    assert (header.ok, header.seq, header.num) == (True, 0, len(data) - 4)
    for fill in FILLS:
        m = db.mysql_command(data, 4, header.seq, fill=fill)
        assert (m.ok, m.type, m.op_raw) == (True, command, op.ljust(OP_LEN, b"\0"))


def test_prepared_statement_id(db: Db) -> None:
    prepare_ok = fixture("mysql_stmt_prepare_reply.bin")
    stmt_id = struct.unpack("<I", prepare_ok[5:9])[0]  # COM_STMT_PREPARE_OK: 0x00, the statement id
    assert prepare_ok[4] == 0 and stmt_id == 1
    assert db.mysql_command(fixture("mysql_stmt_execute_request.bin"), 4).stmt == stmt_id
    assert db.mysql_command(fixture("mysql_stmt_close_request.bin"), 4).stmt == stmt_id


def test_handshake_response_is_no_command(db: Db) -> None:
    data = fixture("mysql_handshake_request.bin")
    assert not db.mysql_command(data, 4, db.mysql_header(data).seq).ok
    assert not db.mysql_command(data, 4, 0).ok  # its first byte (capabilities) is no command we follow


@pytest.mark.parametrize(
    ("payload", "seq", "command", "op"),
    [
        (b"\x03select * from t", 0, COM_QUERY, b"SELECT"),
        (b"\x03  /* x */ (select 1)", 0, COM_QUERY, b"SELECT"),
        (b"\x03SET NAMES utf8mb4", 0, COM_QUERY, b"SET"),
        (b"\x16-- c\nUPDATE t SET a = ?", 0, COM_STMT_PREPARE, b"UPDATE"),
        (b"\x1a\x05\x00\x00\x00", 0, COM_STMT_RESET, b"RESET"),
        (b"\x18\x05\x00\x00\x00\x00\x00xyz", 0, COM_STMT_SEND_LONG_DATA, b""),
        (b"\x0e", 0, COM_PING, b"PING"),
        (b"\x01", 0, COM_QUIT, b""),
    ],
)
def test_commands(db: Db, payload: bytes, seq: int, command: int, op: bytes) -> None:
    m = db.mysql_command(packet(seq, payload), 4, seq)
    assert (m.ok, m.type, m.op) == (True, command, op)


@pytest.mark.parametrize(
    ("payload", "seq"),
    [
        (b"\x03SELECT 1", 1),  # a sequence id other than 0: not a command
        (b"\x0e", 2),
        (b"\x03 1 + 1", 0),  # no keyword
        (b"\x03", 0),
        (bytes([COM_FIELD_LIST]) + b"t\0", 0),  # not followed
        (b"\x00", 0),
        (b"\xff", 0),
    ],
)
def test_not_a_command(db: Db, payload: bytes, seq: int) -> None:
    assert not db.mysql_command(packet(seq, payload), 4, seq).ok
    assert not db.mysql_command(packet(seq, payload)[:4], 4, seq).ok  # the window ends before the payload


def test_query_with_query_attributes(db: Db) -> None:
    m = db.mysql_command(packet(0, b"\x03\x00\x01SELECT 1"), 4, 0)
    assert (m.ok, m.op) == (True, b"SELECT")


def test_every_cut_of_a_query(db: Db) -> None:
    data = fixture("mysql_query_request.bin")
    for n in range(len(data) + 1):
        m = assert_window_only(db, "mysql_command", data, n, 4)
        assert m.ok == (n >= 6), n  # the command byte and the first letter
        if m.ok:
            assert m.op == b"SELECT"[: n - 5]
        assert assert_window_only(db, "mysql_header", data, n).ok == (n >= 4)


@PROPERTY
@given(st.integers(0, 255), st.integers(1, 0xFFFFFF), st.integers(0, 255))
def test_generated_headers(db: Db, first: int, length: int, seq: int) -> None:
    data = struct.pack("<I", length)[:3] + bytes([seq, first])
    for fill in FILLS:
        m = db.mysql_header(data, fill=fill, stale=b"\xff" * 16)
        assert (m.ok, m.num, m.seq) == (True, length, seq)


@PROPERTY
@given(st.integers(0, 0xFFFFFFFF), st.sampled_from([COM_STMT_EXECUTE, COM_STMT_CLOSE]), st.binary(max_size=20))
def test_generated_statement_ids(db: Db, stmt: int, command: int, rest: bytes) -> None:
    data = packet(0, bytes([command]) + struct.pack("<I", stmt) + rest)
    for fill in FILLS:
        m = db.mysql_command(data, 4, 0, fill=fill, stale=b"\xff" * 64)
        assert (m.ok, m.type, m.stmt) == (True, command, stmt)
