"""PostgreSQL in bpf/l7_db.h: pg_startup, pg_message, pg_parse_message, pg_bind_message and pg_error_code, on
byte literals, on streams captured from postgres 15 (tests/unit/fixtures/pg_*.bin) and on generated messages."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.unit.l7_db_host import FILLS, OP_LEN, PROPERTY, Db, assert_window_only, build, fixture

SSL_REQUEST = struct.pack("!II", 8, 80877103)
GSSENC_REQUEST = struct.pack("!II", 8, 80877104)


@pytest.fixture(scope="session")
def db(tmp_path_factory: pytest.TempPathFactory) -> Db:
    return build(tmp_path_factory)


def msg(kind: bytes, body: bytes) -> bytes:
    return kind + struct.pack("!I", len(body) + 4) + body


def name_hash(name: bytes) -> int:
    """msg.stmt: h = h * 31 + byte over the name, kept to 32 bits."""
    h = 0
    for c in name:
        h = (h * 31 + c) & 0xFFFFFFFF
    return h


def walk(db: Db, data: bytes) -> list[str]:
    """The types of the messages of a stream, each found by the length of the one before."""
    types, pos = [], 0
    while pos < len(data):
        m = db.pg_message(data, pos)
        assert m.ok, (pos, data[pos:pos + 20])
        types.append(chr(m.type))
        pos += m.num
    assert pos == len(data)
    return types


# ---------------------------------------------------------------- start-up


def test_startup_message(db: Db) -> None:
    data = fixture("pg_startup_request.bin")
    assert data[4:8] == struct.pack("!I", 196608)
    for fill in FILLS:
        m = db.pg_startup(data, fill=fill)
        assert (m.ret, m.type) == (len(data), 0)


@pytest.mark.parametrize("name", ["pg_ssl_request.bin", "pg_gssenc_request.bin"])
def test_ssl_and_gssenc_requests(db: Db, name: str) -> None:
    data = fixture(name)
    assert data in (SSL_REQUEST, GSSENC_REQUEST)
    m = db.pg_startup(data)
    assert (m.ret, chr(m.type)) == (8, "S")
    assert db.pg_startup(b"xx" + data, 2).ret == 8


def test_answers_to_ssl_and_gssenc(db: Db) -> None:
    # one byte: 'N' (go on in clear: ssl=off), 'G' (GSSAPI encryption follows: postgres is built with it)
    assert fixture("pg_ssl_reply.bin") == b"N"
    assert fixture("pg_gssenc_reply.bin") == b"G"


@pytest.mark.parametrize(
    "data",
    [
        b"",
        SSL_REQUEST[:7],  # cut
        struct.pack("!II", 8, 196608),  # protocol 3 with no parameters: too short
        struct.pack("!II", 10000, 196608) + bytes(8),  # too long to be a startup message
        struct.pack("!II", 40, 131072) + bytes(32),  # protocol 2
        struct.pack("!III", 16, 80877102, 1) + bytes(4),  # CancelRequest: not followed
        struct.pack("!II", 9, 80877103) + b"x",  # an SSLRequest is 8 bytes
        msg(b"Q", b"SELECT 1\0"),
    ],
)
def test_not_a_startup(db: Db, data: bytes) -> None:
    assert db.pg_startup(data).ret == 0


def test_startup_reply_walks_by_lengths(db: Db) -> None:
    types = walk(db, fixture("pg_startup_reply.bin"))
    assert types[0] == "R"  # AuthenticationOk (trust)
    assert set(types[1:-2]) == {"S"}  # ParameterStatus
    assert types[-2:] == ["K", "Z"]  # BackendKeyData, ReadyForQuery


# ---------------------------------------------------------------- messages


@pytest.mark.parametrize(
    ("name", "types"),
    [
        ("pg_query_select_request.bin", "Q"),
        ("pg_query_select_reply.bin", "TDCZ"),
        ("pg_query_comment_reply.bin", "TDDCZ"),
        ("pg_query_create_reply.bin", "CZ"),
        ("pg_error_22012_reply.bin", "EZ"),
        ("pg_parse_bind_execute_request.bin", "PBDES"),
        ("pg_parse_bind_execute_reply.bin", "12TDCZ"),
        ("pg_parse_bind_execute_unnamed_request.bin", "PBES"),
        ("pg_parse_bind_execute_unnamed_reply.bin", "12CZ"),
        ("pg_extended_error_request.bin", "PBES"),
        ("pg_extended_error_reply.bin", "1EZ"),
        ("pg_terminate_request.bin", "X"),
    ],
)
def test_captured_streams_walk_message_by_message(db: Db, name: str, types: str) -> None:
    assert "".join(walk(db, fixture(name))) == types


@pytest.mark.parametrize(
    "data",
    [
        b"", b"Q\0\0\0", b"Q\0\0\0\x03x",  # cut; a length below 4
        b"\0\0\0\0\x08", b"!\0\0\0\x04", b"4\0\0\0\x04", b"\xff\0\0\0\x04",  # not a type
        b"Q\x40\0\0\x01",  # more than 1 GiB
    ],
)
def test_not_a_message(db: Db, data: bytes) -> None:
    assert not db.pg_message(data).ok


def test_message_lengths(db: Db) -> None:
    assert db.pg_message(b"Z\0\0\0\x05I").num == 6
    assert db.pg_message(b"Q\x40\0\0\0").num == (1 << 30) + 1  # 1 GiB: the most
    assert db.pg_message(b"Q\0\0\x10\0").num == 4097  # longer than the window: fine
    assert db.pg_message(b"3\0\0\0\x04").ok  # CloseComplete


# ---------------------------------------------------------------- Query, Parse, Bind


@pytest.mark.parametrize(
    ("sql", "op"),
    [
        (b"SELECT 1 AS one", b"SELECT"),
        (b"/* x */ select 1", b"SELECT"),
        (b"-- c\nUPDATE t SET a = 1", b"UPDATE"),
        (b"(SELECT 1) UNION (SELECT 2)", b"SELECT"),
        (b"    insert into t values (1)", b"INSERT"),
        (b";BEGIN", b"BEGIN"),
        (b"commit", b"COMMIT"),
    ],
)
def test_query(db: Db, sql: bytes, op: bytes) -> None:
    data = msg(b"Q", sql + b"\0")
    assert chr(db.pg_message(data).type) == "Q"
    assert db.sql_operation(data, 5).op_raw == op.ljust(OP_LEN, b"\0")


@pytest.mark.parametrize(("name", "op"), [("pg_query_select_request.bin", b"SELECT"),
                                          ("pg_query_comment_request.bin", b"SELECT"),
                                          ("pg_query_create_request.bin", b"CREATE"),
                                          ("pg_error_22012_request.bin", b"SELECT")])
def test_captured_queries(db: Db, name: str, op: bytes) -> None:
    assert db.sql_operation(fixture(name), 5).op == op


def test_parse_and_bind_of_a_named_statement(db: Db) -> None:
    data = fixture("pg_parse_bind_execute_request.bin")  # Parse s1, Bind "" s1, Describe, Execute, Sync
    parse = db.pg_parse_message(data)
    assert (parse.ok, parse.op, parse.stmt) == (True, b"SELECT", name_hash(b"s1"))
    bind = db.pg_bind_message(data, db.pg_message(data).num)
    assert (bind.ok, bind.stmt) == (True, parse.stmt)


def test_parse_and_bind_of_the_unnamed_statement(db: Db) -> None:
    data = fixture("pg_parse_bind_execute_unnamed_request.bin")  # Parse "" "  insert ...", Bind "" ""
    parse = db.pg_parse_message(data)
    assert (parse.ok, parse.op, parse.stmt) == (True, b"INSERT", 0)
    bind = db.pg_bind_message(data, db.pg_message(data).num)
    assert (bind.ok, bind.stmt) == (True, 0)


def test_bind_hashes_the_statement_not_the_portal(db: Db) -> None:
    data = msg(b"B", b"portal_7\0stmt_42\0\0\0\0\0\0\0")
    m = db.pg_bind_message(data)
    assert (m.ok, m.stmt) == (True, name_hash(b"stmt_42"))
    assert m.stmt == db.pg_parse_message(msg(b"P", b"stmt_42\0DELETE FROM t\0\0\0")).stmt


@pytest.mark.parametrize(
    ("method", "data"),
    [
        ("pg_parse_message", msg(b"P", b"s1")),  # the name does not end in the window
        ("pg_parse_message", msg(b"P", b"s1\0")),  # no SQL
        ("pg_parse_message", msg(b"P", b"s1\0 1 + 1\0\0\0")),  # no keyword
        ("pg_parse_message", msg(b"P", b"x" * 200 + b"\0SELECT 1\0\0\0")),  # names are short (128 bytes)
        ("pg_bind_message", msg(b"B", b"\0s1")),
        ("pg_bind_message", msg(b"B", b"p")),
    ],
)
def test_parse_and_bind_that_do_not_end_in_the_window(db: Db, method: str, data: bytes) -> None:
    assert not getattr(db, method)(data).ok


# ---------------------------------------------------------------- ErrorResponse


def test_error_22012_captured(db: Db) -> None:
    data = fixture("pg_error_22012_reply.bin")
    assert data.startswith(b"E") and b"SERROR\0VERROR\0C22012\0Mdivision by zero\0" in data
    for fill in FILLS:
        m = db.pg_error_code(data, fill=fill)
        assert m.code_raw == b"22012".ljust(OP_LEN, b"\0")


def test_error_after_parse_complete(db: Db) -> None:
    data = fixture("pg_extended_error_reply.bin")  # ParseComplete, then the error of the Execute
    pos = db.pg_message(data).num
    assert chr(db.pg_message(data, pos).type) == "E"
    assert db.pg_error_code(data, pos).code == b"22012"


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        (b"SERROR\0VERROR\0C22012\0Mdivision by zero\0\0", b"22012"),
        (b"SERROR\0Mrelation \"nope\" does not exist\0C42P01\0\0", b"42P01"),  # C not first
        (b"SFATAL\0MCould not, Code 1\0C28P01\0\0", b"28P01"),  # C inside a value is no field
        (b"S\0V\0C23505\0\0", b"23505"),  # empty values
        (b"SERROR\0Mno code\0\0C99999\0", b""),  # the fields end before
        (b"SERROR\0C22", b"22"),  # the window ends inside the code
        (b"", b""),
    ],
)
def test_error_codes(db: Db, fields: bytes, code: bytes) -> None:
    data = msg(b"E", fields)
    for fill in FILLS:
        assert db.pg_error_code(data, fill=fill).code_raw == code.ljust(OP_LEN, b"\0")
        assert db.pg_error_code(b"Z\0\0\0\x05I" + data, 6, fill=fill).code == code


def test_every_cut_of_an_error(db: Db) -> None:
    data = fixture("pg_error_22012_reply.bin")
    for n in range(len(data) + 1):
        m = assert_window_only(db, "pg_error_code", data, n)
        assert m.code == b"22012"[: max(0, n - 20)], n


def test_every_cut_of_parse_and_bind(db: Db) -> None:
    data = fixture("pg_parse_bind_execute_request.bin")
    bind_at = db.pg_message(data).num
    for n in range(len(data) + 1):
        parse = assert_window_only(db, "pg_parse_message", data, n)
        assert parse.ok == (n >= 9), n  # "P" + length + "s1\0" and the S of SELECT
        bind = assert_window_only(db, "pg_bind_message", data, n, bind_at)
        assert bind.ok == (n >= bind_at + 9), n  # "B" + length + "\0s1\0"
        assert assert_window_only(db, "pg_message", data, n).ok == (n >= 5)


# ---------------------------------------------------------------- generated messages

_TYPES = st.sampled_from(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz123")
_NAMES = st.binary(max_size=60).map(lambda b: b.replace(b"\0", b"."))


@PROPERTY
@given(st.lists(st.tuples(_TYPES, st.binary(max_size=80)), min_size=1, max_size=10))
def test_generated_streams_walk_message_by_message(db: Db, messages: list[tuple[int, bytes]]) -> None:
    data = b"".join(msg(bytes([t]), body) for t, body in messages)
    if len(data) <= 1024:
        assert walk(db, data) == [chr(t) for t, _ in messages]


@PROPERTY
@given(_NAMES, _NAMES, st.sampled_from([b"SELECT 1", b"update t set a = $1", b"/* c */ INSERT INTO t VALUES ($1)"]))
def test_generated_parse_then_bind(db: Db, portal: bytes, name: bytes, sql: bytes) -> None:
    parse_msg = msg(b"P", name + b"\0" + sql + b"\0\0\0")
    bind_msg = msg(b"B", portal + b"\0" + name + b"\0\0\0\0\0\0\0")
    data = parse_msg + bind_msg
    for fill in FILLS:
        parse = db.pg_parse_message(data, fill=fill, stale=data * 4)
        bind = db.pg_bind_message(data, len(parse_msg), fill=fill, stale=data * 4)
        assert (parse.ok, bind.ok) == (True, True)
        assert parse.stmt == bind.stmt == name_hash(name)
        assert parse.op == sql.split(b"*/")[-1].split()[0].upper()


@PROPERTY
@given(st.lists(st.tuples(st.sampled_from(b"SVMDHPpqWstcdnFLR"), st.binary(max_size=40)), max_size=6),
       st.text(alphabet="0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=5, max_size=5))
def test_generated_error_fields(db: Db, before: list[tuple[int, bytes]], code: str) -> None:
    fields = b"".join(bytes([t]) + v.replace(b"\0", b" ") + b"\0" for t, v in before)
    data = msg(b"E", fields + b"C" + code.encode() + b"\0Mx\0\0")
    if len(fields) < 200:  # the loop looks at 256 bytes of fields
        assert db.pg_error_code(data).code == code.encode()
