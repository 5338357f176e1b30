"""Redis in bpf/l7_db.h: resp_element (RESP2 and RESP3 headers) and resp_command, on byte literals, on streams
captured from redis-server (tests/unit/fixtures/redis_*.bin) and on generated RESP values."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.unit.l7_db_host import CAPTURE_MAX, FILLS, OP_LEN, PROPERTY, Db, Msg, assert_window_only, build, fixture


@pytest.fixture(scope="session")
def db(tmp_path_factory: pytest.TempPathFactory) -> Db:
    return build(tmp_path_factory)


# ---------------------------------------------------------------- elements


@pytest.mark.parametrize(
    ("data", "num", "length", "error", "code"),
    [
        (b"+OK\r\n", 0, 5, 0, None),
        (b"+QUEUED\r\n", 0, 9, 0, None),
        (b"-ERR unknown command 'x'\r\n", 0, 26, 1, b"ERR"),
        (b"-WRONGTYPE Operation against a key holding the wrong kind of value\r\n", 0, 68, 1, b"WRONGTYPE"),
        (b"-MOVED 3999 127.0.0.1:6381\r\n", 0, 28, 1, b"MOVED"),
        (b"-NOAUTH_AND_A_VERY_LONG_CODE x\r\n", 0, 32, 1, b"NOAUTH_AND_A_VE"),  # 15 bytes at most
        (b"-ERR\r\n", 0, 6, 1, b"ERR"),
        (b":123\r\n", 123, 6, 0, None),
        (b":-7\r\n", -7, 5, 0, None),
        (b":0\r\n", 0, 4, 0, None),
        (b"$3\r\nfoo\r\n", 3, 4, 0, None),  # the header only: the data follows
        (b"$0\r\n\r\n", 0, 4, 0, None),
        (b"$-1\r\n", -1, 5, 0, None),  # null bulk string
        (b"*2\r\n$1\r\na\r\n", 2, 4, 0, None),
        (b"*0\r\n", 0, 4, 0, None),
        (b"*-1\r\n", -1, 5, 0, None),  # null array
        (b"%2\r\n", 2, 4, 0, None),  # RESP3 map: pairs
        (b"~3\r\n", 3, 4, 0, None),  # set
        (b">3\r\n$9\r\nsubscribe\r\n", 3, 4, 0, None),  # push
        (b"_\r\n", 0, 3, 0, None),  # null
        (b",1.5\r\n", 0, 6, 0, None),  # double
        (b",-inf\r\n", 0, 7, 0, None),
        (b"#t\r\n", 0, 4, 0, None),  # boolean
        (b"(3492890328409238509324850943850943825024385\r\n", 0, 46, 0, None),  # big number
        (b"!21\r\nSYNTAX invalid syntax\r\n", 21, 5, 1, None),  # bulk error: its code is in the data
        (b"=15\r\ntxt:Some string\r\n", 15, 5, 0, None),  # verbatim string
        (b"|1\r\n+key-popularity\r\n", 1, 4, 0, None),  # attributes
        (b"+OK\n", 0, 4, 0, None),  # a line feed alone ends a simple line
    ],
)
def test_elements(db: Db, data: bytes, num: int, length: int, error: int, code: bytes | None) -> None:
    for fill in FILLS:
        m = db.resp_element(data, fill=fill)
        assert m.ok
        assert (chr(m.type), m.num, m.len, m.error) == (chr(data[0]), num, length, error)
        if code is not None:
            assert m.code_raw == code.ljust(OP_LEN, b"\0")


@pytest.mark.parametrize(
    "data",
    [
        b"", b"\0", b"GET / HTTP/1.1\r\n", b"OK\r\n", b"$", b"$x\r\n", b"$3x\r\n", b"$-\r\n", b"$--1\r\n", b"*\r\n",
        b"*+1\r\n", b"$ 3\r\n", b"$3\nfoo", b"$3\r\r", b":\r\n", b"$12345678901234567890\r\n",  # 20 digits
    ],
)
def test_not_an_element(db: Db, data: bytes) -> None:
    assert not db.resp_element(data).ok


def test_19_digit_integer_reply(db: Db) -> None:
    data = fixture("redis_incr_19_digits_reply.bin")
    assert data == b":9223372036854775807\r\n"
    m = db.resp_element(data)
    assert m.ok and m.len == len(data)


@pytest.mark.parametrize("data", [b"$12\r\nhello world!\r\n", b"*-1\r\n", b"%10\r\n", b"+OK\r\n",
                                  b"-ERR wrong number of arguments\r\n", b"_\r\n", b"!5\r\nERR x\r\n"])
def test_every_cut_of_an_element(db: Db, data: bytes) -> None:
    """The window ends inside the header: len 0 (or false while there is no digit of the length yet)."""
    whole = db.resp_element(data)
    for n in range(len(data) + 1):
        m = assert_window_only(db, "resp_element", data, n)
        if n == 0:
            assert not m.ok
        elif n < whole.len:
            digits = any(48 <= c <= 57 for c in data[1:n])
            assert m.ok == (data[0:1] in b"+-_," or digits), n  # "$", "*-": no number yet
            assert m.len == 0, n
        else:
            assert (m.ok, m.len, m.num, m.error) == (True, whole.len, whole.num, whole.error), n


def test_code_of_a_cut_error_is_what_the_window_holds(db: Db) -> None:
    m = db.resp_element(b"-WRONGTY")
    assert (m.ok, m.len, m.error, m.code) == (True, 0, 1, b"WRONGTY")


def test_element_at_a_position(db: Db) -> None:
    data = b"+OK\r\n$5\r\nhello\r\n:42\r\n"
    assert (db.resp_element(data, 5).num, db.resp_element(data, 5).len) == (5, 4)
    assert db.resp_element(data, 16).num == 42
    assert not db.resp_element(data, len(data)).ok


# ---------------------------------------------------------------- walking replies captured from redis-server

BULK = {ord("$"), ord("!"), ord("=")}


def walk(db: Db, data: bytes) -> list[tuple[str, int]]:
    """The elements of a stream, one header after the other; bulk data is skipped."""
    elements, pos = [], 0
    while pos < len(data):
        m = db.resp_element(data, pos)
        assert m.ok and m.len, (pos, data[pos:pos + 20])
        elements.append((chr(m.type), m.num))
        pos += m.len + (m.num + 2 if m.type in BULK and m.num >= 0 else 0)
    assert pos == len(data)
    return elements


def test_pipeline_reply(db: Db) -> None:
    assert walk(db, fixture("redis_pipeline_reply.bin")) == [
        ("+", 0), ("$", 5), (":", 1), (":", 2), ("*", 2), ("$", 1), ("$", 2), ("$", -1), (":", 2), (":", 1),
        (":", 1), ("*", 0)]


def test_resp3_types_reply(db: Db) -> None:
    # SMEMBERS, ZSCORE, GET of a missing key, DEBUG PROTOCOL bignum/true/verbatim/attrib, EXISTS
    assert walk(db, fixture("redis_resp3_types_reply.bin")) == [
        ("~", 1), ("$", 1), (",", 0), ("_", 0), ("(", 0), ("#", 0), ("=", 29), ("|", 1), ("$", 14), ("*", 2),
        ("$", 7), (":", 90), ("$", 39), (":", 1)]


def test_resp3_map_replies(db: Db) -> None:
    assert walk(db, fixture("redis_hgetall_resp3_reply.bin")) == [("%", 2), ("$", 1), ("$", 1), ("$", 1), ("$", 2)]
    hello = walk(db, fixture("redis_hello3_reply.bin"))
    assert hello[0] == ("%", 7)
    assert hello[-1] == ("*", 0)  # modules
    assert (":", 3) in hello  # proto


def test_push_and_null_array(db: Db) -> None:
    assert walk(db, fixture("redis_subscribe_resp3_reply.bin")) == [(">", 3), ("$", 9), ("$", 2), (":", 1)]
    assert walk(db, fixture("redis_blpop_timeout_reply.bin")) == [("*", -1)]


@pytest.mark.parametrize(("name", "code"), [("redis_error_reply.bin", b"ERR"),
                                            ("redis_wrongtype_reply.bin", b"WRONGTYPE")])
def test_error_replies(db: Db, name: str, code: bytes) -> None:
    data = fixture(name)
    m = db.resp_element(data)
    assert (m.ok, m.error, m.code, m.len) == (True, 1, code, len(data))


# ---------------------------------------------------------------- commands


def command(*args: bytes) -> bytes:
    return b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)


def test_set_command(db: Db) -> None:
    data = fixture("redis_set_request.bin")
    assert data == b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nhello\r\n"
    m = db.resp_command(data)
    assert m.ok
    assert (m.op_raw, m.num, m.len) == (b"SET".ljust(OP_LEN, b"\0"), 2, len(b"*3\r\n$3\r\nSET\r\n"))
    assert db.resp_element(data, m.len).num == 1  # the first argument follows


def test_pipeline_of_commands(db: Db) -> None:
    data = fixture("redis_pipeline_request.bin")
    commands, pos = [], 0
    while pos < len(data):
        m = db.resp_command(data, pos)
        assert m.ok and m.len
        commands.append((m.op.decode(), m.num))
        pos += m.len
        for _ in range(m.num):  # the arguments: bulk strings
            arg = db.resp_element(data, pos)
            assert arg.type == ord("$") and arg.len
            pos += arg.len + arg.num + 2
    assert pos == len(data)
    assert commands == [("SET", 2), ("GET", 1), ("INCR", 1), ("RPUSH", 3), ("LRANGE", 3), ("GET", 1), ("HSET", 5),
                        ("SADD", 2), ("ZADD", 3), ("LRANGE", 3)]


@pytest.mark.parametrize(("name", "op", "args"), [("redis_set_lowercase_request.bin", b"SET", 2),
                                                  ("redis_hello3_request.bin", b"HELLO", 1),
                                                  ("redis_subscribe_resp3_request.bin", b"SUBSCRIBE", 1),
                                                  ("redis_blpop_timeout_request.bin", b"BLPOP", 2),
                                                  ("redis_set_large_request.bin", b"SET", 2)])
def test_captured_commands(db: Db, name: str, op: bytes, args: int) -> None:
    data = fixture(name)  # redis_set_large_request.bin: 3031 bytes, its value goes on past the window
    m = db.resp_command(data)
    assert (m.ok, m.op, m.num, m.len) == (True, op, args, data.index(b"\r\n", data.upper().index(op, 4)) + 2)


@pytest.mark.parametrize(
    ("data", "op", "args"),
    [
        (command(b"get", b"k"), b"GET", 1),  # upper case
        (command(b"cLiEnT", b"setname", b"x"), b"CLIENT", 2),
        (command(b"PING"), b"PING", 0),
        (command(b"ABCDEFGHIJKLMNOPQRST"), b"ABCDEFGHIJKLMNO", 0),  # 15 bytes at most
        (command(b"X-Y"), b"X-Y", 0),  # past the first letter, any visible byte
        (command(b"SET", b"k", b"v" * 2000), b"SET", 2),
    ],
)
def test_commands(db: Db, data: bytes, op: bytes, args: int) -> None:
    m = db.resp_command(data)
    assert (m.ok, m.op_raw, m.num) == (True, op.ljust(OP_LEN, b"\0"), args)
    name = data.split(b"\r\n")[2]
    assert m.len == data.index(b"\r\n", data.index(name)) + 2


@pytest.mark.parametrize(
    "data",
    [
        b"*0\r\n",  # no name
        b"*-1\r\n",
        b"*1\r\n$4\r\n1SET\r\n",  # a name starts with a letter
        b"*1\r\n$4\r\n_SET\r\n",
        b"*1\r\n$0\r\n\r\n",
        b"*1\r\n$65\r\n" + b"A" * 65 + b"\r\n",  # too long to be a name
        b"*1\r\n$-1\r\n",
        b"*1\r\n:1\r\n",
        b"*1\r\n*1\r\n$3\r\nSET\r\n",
        b"$3\r\nSET\r\n",  # not an array
        b"PING\r\n",  # an inline command
        b"*3\r\n$3",  # the name's header is cut
        b"*3\r\n",
        b"*3",
        b"*2147483649\r\n$3\r\nGET\r\n",  # more than 2^31 arguments
    ],
)
def test_not_a_command(db: Db, data: bytes) -> None:
    assert not db.resp_command(data).ok


@pytest.mark.parametrize("data", [b"*1\r\n$4\r\nPI", b"*1\r\n$4\r\nPING", b"*1\r\n$4\r\nPING\r"])
def test_command_whose_name_the_window_cuts(db: Db, data: bytes) -> None:
    m = db.resp_command(data)
    assert not m.ok or m.len == 0
    assert m.len <= len(data)


def test_every_cut_of_a_command(db: Db) -> None:
    data = command(b"HSET", b"h", b"field", b"value")
    whole = db.resp_command(data)
    for n in range(len(data) + 1):
        m = assert_window_only(db, "resp_command", data, n)
        if n >= whole.len:
            assert (m.ok, m.op, m.num, m.len) == (True, b"HSET", 3, whole.len), n
        elif n <= len(b"*4\r\n$4\r\n"):
            assert not m.ok, n


# ---------------------------------------------------------------- generated RESP


_NAMES = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=1, max_size=1).flatmap(
    lambda first: st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.|:",
                          max_size=63).map(lambda rest: first + rest))


@PROPERTY
@given(_NAMES, st.lists(st.binary(max_size=40), max_size=6))
def test_generated_commands(db: Db, name: str, args: list[bytes]) -> None:
    data = command(name.encode(), *args)
    head = len(b"*%d\r\n$%d\r\n" % (1 + len(args), len(name))) + len(name) + 2
    for fill in FILLS:
        m = db.resp_command(data, fill=fill, stale=data[::-1])
        assert (m.ok, m.num, m.len) == (True, len(args), head)
        assert m.op_raw == name.upper().encode()[: OP_LEN - 1].ljust(OP_LEN, b"\0")


def _bulk(t: str) -> st.SearchStrategy[Any]:
    return st.binary(max_size=30).map(lambda b: (t, b))


_LEAVES = st.one_of(
    _bulk("$"), _bulk("!"), _bulk("="),
    st.just(("$", None)), st.just(("*", None)),
    st.integers(-(10**17), 10**17).map(lambda i: (":", i)),
    st.sampled_from([("+", b"OK"), ("-", b"ERR x"), ("_", b""), (",", b"3.14"), ("#", b"f"), ("(", b"12345")]),
)
_VALUES = st.recursive(
    _LEAVES,
    lambda kids: st.tuples(st.sampled_from(["*", "~", ">", "%", "|"]), st.lists(kids, max_size=4)),
    max_leaves=12,
)


def serialize(v: Any, out: list[tuple[str, int]]) -> bytes:
    """RESP bytes of a generated value; the (type, num) of each header it has, in order, into out."""
    t, x = v
    if x is None:
        out.append((t, -1))
        return t.encode() + b"-1\r\n"
    if t in "$!=":
        out.append((t, len(x)))
        return b"%s%d\r\n%s\r\n" % (t.encode(), len(x), x)
    if t == ":":
        out.append((t, x))
        return b":%d\r\n" % x
    if t in "+-_,#(":
        out.append((t, 0))
        return t.encode() + x + b"\r\n"
    count = len(x) // 2 if t in "%|" else len(x)  # maps and attributes: pairs
    out.append((t, count))
    kids = x[: 2 * count] if t in "%|" else x
    return b"%s%d\r\n" % (t.encode(), count) + b"".join(serialize(k, out) for k in kids)


@PROPERTY
@given(st.lists(_VALUES, min_size=1, max_size=4))
def test_generated_replies_walk_element_by_element(db: Db, values: list[Any]) -> None:
    expected: list[tuple[str, int]] = []
    data = b"".join(serialize(v, expected) for v in values)[:CAPTURE_MAX]
    if len(data) == CAPTURE_MAX:
        return
    assert walk(db, data) == expected


@PROPERTY
@given(_VALUES, st.integers(0, 200))
def test_generated_replies_cut_anywhere(db: Db, value: Any, cut: int) -> None:
    data = serialize(value, [])
    m: Msg = assert_window_only(db, "resp_element", data, min(cut, len(data)))
    if m.ok:
        assert m.len <= min(cut, len(data))


# ---------------------------------------------------------------- commands and replies remembered whole


def test_span_of_whole_commands(db: Db) -> None:
    for data in (command(b"SET", b"key:__rand_int__", b"xxx"), command(b"PING"), command(b"GET", b""),
                 command(b"MSET", *[b"k%d" % i for i in range(8)])):
        for fill in FILLS:
            assert db.command_span(data, fill=fill, stale=data) == len(data)
            assert db.command_span(data + command(b"GET", b"k"), fill=fill) == len(data)  # the next one follows
            assert db.command_span(b"xx" + data, 2, fill=fill) == len(data)


def test_no_span_for_a_cut_or_long_command(db: Db) -> None:
    data = command(b"SET", b"k", b"hello")
    for n in range(len(data)):
        assert db.command_span(data[:n], stale=data) == 0, n  # an element at a time instead
    assert db.command_span(command(b"MSET", *[b"k%d" % i for i in range(9)])) == 0  # more than RESP_SPAN_ARGS
    assert db.command_span(b"*2\r\n$3\r\nGET\r\n:1\r\n") == 0  # an argument that is not a bulk string


@PROPERTY
@given(_NAMES, st.lists(st.binary(max_size=40), max_size=8), st.binary(max_size=20))
def test_generated_command_spans(db: Db, name: str, args: list[bytes], after: bytes) -> None:
    data = command(name.encode(), *args)
    assert db.command_span(data + after, stale=data) == len(data)


def copies(data: bytes, pos: int, length: int) -> int:
    """What l7_repeats answers, the plain way."""
    unit, n = data[pos : pos + length], 0
    while length and data[pos + length * (n + 1) : pos + length * (n + 2)] == unit:
        n += 1
    return n


@pytest.mark.parametrize(("data", "pos", "length", "n"), [
    (b"+OK\r\n" * 16, 0, 5, 15),
    (b"+OK\r\n" * 3 + b"+OK\r", 0, 5, 2),  # a copy cut by the window's end is not one
    (b"+OK\r\n" * 3 + b"-ERR\r\n", 0, 5, 2),
    (b":10\r\n:10\r\n-E1\r\n:10\r\n", 0, 5, 1),  # alike in length, not in bytes
    (b"xx" + command(b"GET", b"k") * 4, 2, len(command(b"GET", b"k")), 3),
    (command(b"GET", b"k") * 2 + command(b"DEL", b"k"), 0, len(command(b"GET", b"k")), 1),
    (b"+OK\r\n", 0, 5, 0),
    (b"+OK\r\n", 0, 0, 0),
    (b"+OK\r\n", 3, 5, 0),  # the unit itself is cut
])
def test_repeats(db: Db, data: bytes, pos: int, length: int, n: int) -> None:
    for fill in FILLS:
        assert db.repeats(data, pos, length, fill=fill, stale=data * 3) == n


@PROPERTY
@given(st.binary(min_size=1, max_size=70), st.integers(1, 20), st.binary(max_size=12), st.integers(0, 3))
def test_generated_repeats(db: Db, unit: bytes, times: int, after: bytes, pos: int) -> None:
    data = (b"\r" * pos + unit * times + after)[:CAPTURE_MAX]
    assert db.repeats(data, pos, len(unit), stale=unit * 20) == copies(data, pos, len(unit))


@PROPERTY
@given(st.binary(max_size=300), st.integers(0, 300), st.integers(0, 300))
def test_hash_at_is_the_hash_of_those_bytes_alone(db: Db, data: bytes, start: int, length: int) -> None:
    start, length = min(start, len(data)), min(length, len(data) - min(start, len(data)))
    piece = data[start : start + length]
    assert db.hash_at(data, start, length, stale=data) == db.hash_at(piece, 0, length)


@PROPERTY
@given(st.binary(max_size=300), st.integers(0, 300), st.integers(0, 300))
def test_random_bytes_never_break_spans_and_repeats(db: Db, data: bytes, pos: int, length: int) -> None:
    span = db.command_span(data, pos % (len(data) + 1))
    assert span <= len(data)
    db.repeats(data, pos, length)
