"""The building blocks of bpf/l7_db.h (numbers, lines, SQL keywords) and properties of every database and cache
parser over random input: no crash, nothing read past the window, no length past it. The protocols themselves are
tested in test_l7_redis_parser.py, test_l7_pg_parser.py, test_l7_mysql_parser.py and test_l7_memcached_parser.py."""

from __future__ import annotations

import ctypes
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.unit.l7_db_host import (
    CAPTURE_MAX,
    FILLS,
    MSG_FIELDS,
    OP_LEN,
    PARSERS,
    PROPERTY,
    Db,
    L7Msg,
    Msg,
    assert_window_only,
    build,
    run,
)


@pytest.fixture(scope="session")
def db(tmp_path_factory: pytest.TempPathFactory) -> Db:
    return build(tmp_path_factory)


def test_struct_mirror_matches_the_c_layout(db: Db) -> None:
    layout = (ctypes.c_ulong * (1 + len(MSG_FIELDS))).in_dll(db.lib, "l7_msg_layout")
    assert ctypes.sizeof(L7Msg) == layout[0] == 56
    assert [getattr(L7Msg, name).offset for name in MSG_FIELDS] == list(layout)[1:]
    assert ctypes.c_ulong.in_dll(db.lib, "l7_capture_max").value == CAPTURE_MAX


# ---------------------------------------------------------------- l7_number


@pytest.mark.parametrize(
    ("data", "pos", "expected"),
    [
        (b"123\r\n", 0, (True, 123, 3)),
        (b"$-1\r\n", 1, (True, -1, 3)),
        (b"*0\r\n", 1, (True, 0, 2)),
        (b"007", 0, (True, 7, 3)),  # the window ends in it: the digits so far
        (b"999999999999999999\r\n", 0, (True, 999_999_999_999_999_999, 18)),  # 18 digits: the most
        (b"-999999999999999999\r\n", 0, (True, -999_999_999_999_999_999, 19)),
        (b"1234567890123456789\r\n", 0, (True, 1234567890123456789, 19)),  # 19 digits: a 64-bit integer
        # found by tests/fuzz (signed overflow, undefined in C): 2^63 wraps, in unsigned arithmetic
        (b"9223372036854775808\r\n", 0, (True, -(2**63), 19)),
        (b"-1234567890123456789\r\n", 0, (True, -1234567890123456789, 20)),
        (b"12345678901234567890\r\n", 0, (False, None, None)),  # 20: too long
        (b"-12345678901234567890\r\n", 0, (False, None, None)),
        (b"-", 0, (False, None, None)),
        (b"--1", 0, (False, None, None)),
        (b"+1", 0, (False, None, None)),
        (b"x1", 0, (False, None, None)),
        (b"", 0, (False, None, None)),
        (b"12", 2, (False, None, None)),  # at the end of the window
        (b"12", 9, (False, None, None)),  # past it
    ],
)
def test_number(db: Db, data: bytes, pos: int, expected: tuple[bool, int | None, int | None]) -> None:
    ok, num, end = db.number(data, pos)
    assert ok == expected[0]
    if ok:
        assert (num, end) == expected[1:]


def model_number(window: bytes, pos: int) -> tuple[bool, int, int]:
    m = re.match(rb"(-?)([0-9]*)", window[pos:])
    assert m is not None
    sign, digits = m.groups()
    if not digits or len(digits) > 19:
        return False, 0, 0
    value = int(sign + digits)
    value = (value + 2**63) % 2**64 - 2**63  # 19 digits can pass 2^63: the kernel's arithmetic wraps
    return True, value, pos + len(sign) + len(digits)


@PROPERTY
@given(st.binary(max_size=40).map(lambda b: re.sub(rb"[^-0-9\r\n ]", b"5", b)), st.integers(0, 44))
def test_number_matches_model(db: Db, data: bytes, pos: int) -> None:
    expected = model_number(data, pos)
    for fill in FILLS:
        ok, num, end = db.number(data, pos, fill=fill, stale=b"9" * 64)
        assert ok == expected[0]
        if ok:
            assert (num, end) == expected[1:]


# ---------------------------------------------------------------- l7_line_len


@pytest.mark.parametrize(
    ("data", "pos", "expected"),
    [
        (b"+OK\r\n", 0, 5),
        (b"+OK\r\n+QUEUED\r\n", 5, 9),
        (b"STORED\n", 0, 7),  # a bare line feed ends a line too
        (b"\n", 0, 1),
        (b"+OK\r", 0, 0),  # the window ends before the line feed
        (b"+OK", 0, 0),
        (b"", 0, 0),
        (b"+OK\r\n", 5, 0),
        (b"+OK\r\n", 50, 0),
        (b"x" * 1000 + b"\r\n", 0, 1002),
        (b"x" * 1023 + b"\n", 0, 1024),  # the last byte of the window
        (b"x" * 1024 + b"\n", 0, 0),  # past the window (L7_CAPTURE_MAX): not seen
    ],
)
def test_line_len(db: Db, data: bytes, pos: int, expected: int) -> None:
    assert db.line_len(data, pos) == expected


@PROPERTY
@given(st.binary(max_size=CAPTURE_MAX + 40), st.integers(0, CAPTURE_MAX + 40))
def test_line_len_matches_model(db: Db, data: bytes, pos: int) -> None:
    window = data[:CAPTURE_MAX]
    lf = window.find(b"\n", pos) if pos < len(window) else -1
    expected = lf + 1 - pos if lf >= 0 else 0
    for fill in FILLS:
        assert db.line_len(data, pos, fill=fill, stale=b"\n" * CAPTURE_MAX) == expected


# ---------------------------------------------------------------- sql_operation


@pytest.mark.parametrize(
    ("sql", "op"),
    [
        (b"select 1", b"SELECT"),
        (b"SELECT * FROM t", b"SELECT"),
        (b"/* x */ select 1", b"SELECT"),
        (b"/* a */ /* b */select", b"SELECT"),
        (b"-- c\nUPDATE t SET a = 1", b"UPDATE"),
        (b"-- c\r\n-- d\n\tdelete from t", b"DELETE"),
        (b"(SELECT 1) UNION (SELECT 2)", b"SELECT"),
        (b"   insert into t values (1)", b"INSERT"),
        (b";BEGIN", b"BEGIN"),
        (b"\n\r\t  ;; ((  with x as (select 1) select * from x", b"WITH"),
        (b"select*from t", b"SELECT"),
        (b"Create_Table", b"CREATE_TABLE"),  # letters and '_'
        (b"TRUNCATE2", b"TRUNCATE"),  # a digit ends the keyword
        (b"abcdefghijklmnopqrstuvwxyz", b"ABCDEFGHIJKLMNO"),  # 15 letters at most
        (b"set search_path = x", b"SET"),
    ],
)
def test_sql_operation(db: Db, sql: bytes, op: bytes) -> None:
    m = db.sql_operation(sql)
    assert m.ok
    assert m.op_raw == op.ljust(OP_LEN, b"\0")


@pytest.mark.parametrize(
    "sql",
    [
        b"",
        b"   ",
        b"/* not closed select",
        b"-- only a comment",
        b"1 + 1",
        b"'select'",
        b"/ * select",
        b"- - select",
        b"\0select",
        b" " * 130 + b"select",  # the skipping loop gives up after 128 bytes
    ],
)
def test_sql_without_operation(db: Db, sql: bytes) -> None:
    assert not db.sql_operation(sql).ok


def test_sql_operation_at_a_position(db: Db) -> None:
    data = b"Q\x00\x00\x00\x0d/**/ping\x00"
    assert db.sql_operation(data, 5).op == b"PING"
    assert db.sql_operation(data, 9).op == b"PING"
    assert not db.sql_operation(data, len(data)).ok


_SKIPPED = st.sampled_from([b" ", b"\t", b"\r\n", b"\n", b"(", b";", b"/* x */", b"/**/", b"/* - * / */",
                            b"-- c\n", b"--\n", b"/* -- */"])
_KEYWORDS = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_", min_size=1, max_size=20)


@PROPERTY
@given(st.lists(_SKIPPED, max_size=10).map(b"".join), _KEYWORDS.filter(lambda k: k[0] != "_"),
       st.sampled_from([b"", b" ", b" 1", b"(", b"*", b"1", b";", b"\0"]))
def test_sql_operation_matches_model(db: Db, prefix: bytes, keyword: str, tail: bytes) -> None:
    data = prefix + keyword.encode() + tail
    for fill in FILLS:
        m = db.sql_operation(data, fill=fill, stale=data + b"xyz")
        assert m.ok
        assert m.op_raw == keyword.upper().encode()[: OP_LEN - 1].ljust(OP_LEN, b"\0")


# ---------------------------------------------------------------- every parser, over random bytes


def check_invariants(name: str, data: bytes, pos: int, m: Msg) -> None:
    """What holds whatever the bytes, for the parse of data (its window) at pos."""
    n = min(len(data), CAPTURE_MAX)
    room = max(n - pos, 0)
    window = data[:n]
    if name in ("resp_element", "resp_command", "mc_request", "mc_reply") and m.ok:
        assert m.len <= room, (name, m)
    if name in ("resp_element", "mc_request", "mc_reply") and m.ok and m.len:
        assert window[pos + m.len - 1:pos + m.len] == b"\n"
    if name == "l7_line_len":
        assert m.ret <= room
    if name == "pg_startup":
        assert m.ret == 0 or m.ret == 8 or 8 < m.ret < 10000
        assert m.ret == 0 or pos + 8 <= n
    if name == "pg_message" and m.ok:
        assert 5 <= m.num <= (1 << 30) + 1 and pos + 5 <= n
    if name in ("mysql_header", "mysql_greeting") and m.ok:  # the greeting is at 0
        assert 0 < m.num < 1 << 24 and (0 if name == "mysql_greeting" else pos) + 4 <= n
    if name in ("resp_command", "sql_operation", "pg_parse_message", "mysql_command", "mc_request") and m.ok:
        assert m.op_raw[OP_LEN - 1] == 0
    if name == "mc_reply" and m.len:
        assert m.op_raw[OP_LEN - 1] == 0
    if name == "pg_error_code" or (name == "resp_element" and m.type == ord("-")):
        assert m.code_raw[OP_LEN - 1] == 0
    if name == "sql_operation" and m.ok:
        assert re.fullmatch(rb"[A-Z_]{1,15}", m.op), m.op
    if name == "mc_request" and m.ok:
        assert m.type in (1, 2, 3, 4) and m.flags in (0, 1)
        assert m.num >= 0 if m.type == 2 else m.num == -1


def check_everything(db: Db, data: bytes, pos: int, cut: int) -> None:
    for name in PARSERS:
        check_invariants(name, data, pos, run(db, name, data, pos))
        for fill in FILLS:
            check_invariants(name, data, pos, run(db, name, data, pos, fill=fill, stale=data[::-1]))
        assert_window_only(db, name, data, min(cut, len(data)), pos)


_POSITIONS = st.one_of(st.just(0), st.integers(0, 16), st.integers(0, CAPTURE_MAX + 16))


@PROPERTY
@given(st.binary(max_size=CAPTURE_MAX + 64), _POSITIONS, st.integers(0, CAPTURE_MAX + 64))
def test_random_bytes(db: Db, data: bytes, pos: int, cut: int) -> None:
    check_everything(db, data, pos, cut)


# random bytes, biased towards what the parsers look at
_INTERESTING = st.lists(
    st.one_of(
        st.binary(min_size=1, max_size=6),
        st.sampled_from([b"\r\n", b"\n", b"\r", b" ", b"\0", b"-", b"-1", b"0", b"5", b"12", b"999999999999999999",
                         b"$", b"*", b"+", b":", b"%", b"_", b"!", b"=", b"|", b"SET", b"get", b"gets", b"set",
                         b"cas", b"VALUE", b"END", b"ERROR", b" noreply", b"/*", b"*/", b"--", b"select", b"(",
                         b"C", b"S", b"\x00\x00\x00", b"\x03", b"\x17", b"\x0a", b"\xff"]),
    ),
    max_size=60,
).map(b"".join)

# a valid start of a message of each protocol
_PREFIXES = st.sampled_from([
    b"*3\r\n$3\r\nSET\r\n", b"*1\r\n$4\r\n", b"$5\r\n", b"-ERR ", b"+OK", b"%1\r\n", b":", b"*",
    b"\x00\x00\x00\x08\x04\xd2\x16\x2f", b"\x00\x00\x00\x29\x00\x03\x00\x00user\x00", b"Q\x00\x00\x00\x10",
    b"Q\x00\x00\x00\x10/* ", b"P\x00\x00\x00\x20s1\x00", b"B\x00\x00\x00\x10\x00s1\x00", b"E\x00\x00\x00\x30SERROR\x00",
    b"E\x00\x00\x00\x30SERROR\x00C", b"\x5a\x00\x00\x00\x0a5.5.5-10", b"\x21\x00\x00\x00\x03select",
    b"\x03select", b"\x17\x01\x00\x00\x00", b"get ", b"set k 0 0 ", b"cas k 0 0 5 ", b"VALUE k 0 ", b"-- ",
    b"flush_all", b"verbosity 1", b"CLIENT_ERROR ",
])


@PROPERTY
@given(_PREFIXES, st.one_of(st.binary(max_size=CAPTURE_MAX + 64), _INTERESTING),
       st.one_of(st.just(0), st.integers(0, 24)), st.integers(0, CAPTURE_MAX + 64))
def test_random_bytes_after_a_valid_prefix(db: Db, prefix: bytes, tail: bytes, pos: int, cut: int) -> None:
    check_everything(db, prefix + tail, pos, cut)


@PROPERTY
@given(st.lists(st.tuples(_PREFIXES, _INTERESTING), min_size=1, max_size=6), st.integers(0, 400))
def test_random_messages_in_a_row(db: Db, parts: list[tuple[bytes, bytes]], cut: int) -> None:
    data = b"".join(prefix + tail for prefix, tail in parts)
    pos = 0
    for prefix, tail in parts:  # every parser at the start of every message
        check_everything(db, data, pos, cut)
        pos += len(prefix) + len(tail)
