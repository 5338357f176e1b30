"""memcached (text protocol) in bpf/l7_db.h: mc_request and mc_reply, on byte literals, on streams captured from
memcached (tests/unit/fixtures/memcached_*.bin) and on generated command lines."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.unit.l7_db_host import FILLS, OP_LEN, PROPERTY, Db, assert_window_only, build, fixture

MC_RETRIEVAL, MC_STORAGE, MC_SINGLE, MC_STATS = 1, 2, 3, 4


@pytest.fixture(scope="session")
def db(tmp_path_factory: pytest.TempPathFactory) -> Db:
    return build(tmp_path_factory)


# ---------------------------------------------------------------- requests


@pytest.mark.parametrize(
    ("line", "kind", "num", "flags"),
    [
        (b"get k\r\n", MC_RETRIEVAL, -1, 0),
        (b"gets a b\r\n", MC_RETRIEVAL, -1, 0),
        (b"gat 60 k\r\n", MC_RETRIEVAL, -1, 0),
        (b"gats 60 a b\r\n", MC_RETRIEVAL, -1, 0),
        (b"set k 0 0 5\r\n", MC_STORAGE, 5, 0),
        (b"cas k 0 0 5 99\r\n", MC_STORAGE, 5, 0),
        (b"set k 0 0 1 noreply\r\n", MC_STORAGE, 1, 1),
        (b"add k 1 60 0\r\n", MC_STORAGE, 0, 0),
        (b"replace k 0 0 123456\r\n", MC_STORAGE, 123456, 0),
        (b"append k 0 0 3\r\n", MC_STORAGE, 3, 0),
        (b"prepend k 0 0 3 noreply\r\n", MC_STORAGE, 3, 1),
        (b"set  k  0  0  7\r\n", MC_STORAGE, 7, 0),  # runs of spaces are one separator
        (b"delete k\r\n", MC_SINGLE, -1, 0),
        (b"delete k noreply\r\n", MC_SINGLE, -1, 1),
        (b"incr n 5\r\n", MC_SINGLE, -1, 0),
        (b"decr n 1 noreply\r\n", MC_SINGLE, -1, 1),
        (b"touch k 60\r\n", MC_SINGLE, -1, 0),
        (b"version\r\n", MC_SINGLE, -1, 0),
        (b"verbosity 1\r\n", MC_SINGLE, -1, 0),
        (b"flush_all\r\n", MC_SINGLE, -1, 0),
        (b"flush_all 10\r\n", MC_SINGLE, -1, 0),
        (b"stats\r\n", MC_STATS, -1, 0),
        (b"stats slabs\r\n", MC_STATS, -1, 0),
    ],
)
def test_requests(db: Db, line: bytes, kind: int, num: int, flags: int) -> None:
    data = line + b"hello\r\n"  # what follows the line does not count
    for fill in FILLS:
        m = db.mc_request(data, fill=fill)
        assert m.ok
        assert (m.op_raw, m.type, m.num, m.len, m.flags) == (
            line.split()[0].ljust(OP_LEN, b"\0"), kind, num, len(line), flags)


@pytest.mark.parametrize(
    "data",
    [
        b"set k 0 0 x\r\n",  # no length
        b"set k 0 0\r\n",
        b"set k 0 0 -1\r\n",
        b"cas k 0 0 1234567890123456789 1\r\n",  # 19 digits
        b"bogus\r\n",  # not a command
        b"GET k\r\n",  # commands are lower case
        b"getx k\r\n",
        b"settings k 0 0 1\r\n",
        b"flush_allx\r\n",
        b"verbosityy 1\r\n",
        b"get\tk\r\n",
        b"get k\n",  # a line ends with CRLF
        b"get k",  # the line does not end in the window
        b"get k\r",
        b"mg k v\r\n",  # meta commands are not followed
        b"\r\n",
        b"",
        b" get k\r\n",
        b"VALUE k 0 1\r\n",
    ],
)
def test_not_a_request(db: Db, data: bytes) -> None:
    assert not db.mc_request(data).ok


@pytest.mark.parametrize(
    ("name", "op", "num", "flags"),
    [
        ("memcached_set_request.bin", b"set", 12, 0),
        ("memcached_get_request.bin", b"get", -1, 0),
        ("memcached_get_two_request.bin", b"get", -1, 0),
        ("memcached_gets_request.bin", b"gets", -1, 0),
        ("memcached_cas_request.bin", b"cas", 5, 0),
        ("memcached_set_noreply_request.bin", b"set", 2, 1),
        ("memcached_incr_request.bin", b"incr", -1, 0),
        ("memcached_delete_request.bin", b"delete", -1, 0),
        ("memcached_version_request.bin", b"version", -1, 0),
        ("memcached_verbosity_request.bin", b"verbosity", -1, 0),
        ("memcached_flush_all_request.bin", b"flush_all", -1, 0),
        ("memcached_too_large_request.bin", b"set", 2_000_000, 0),
    ],
)
def test_captured_requests(db: Db, name: str, op: bytes, num: int, flags: int) -> None:
    data = fixture(name)
    m = db.mc_request(data)
    assert (m.ok, m.op, m.num, m.flags) == (True, op, num, flags)
    assert m.len == data.index(b"\n") + 1
    if name != "memcached_too_large_request.bin":  # its 2 MB of data were sent, not saved
        assert m.len + (m.num + 2 if m.num >= 0 else 0) == len(data)  # the line, then a storage command's data


@pytest.mark.parametrize("name", ["memcached_unknown_request.bin", "memcached_bad_length_request.bin"])
def test_captured_requests_the_server_rejects(db: Db, name: str) -> None:
    assert not db.mc_request(fixture(name)).ok


def test_every_cut_of_a_request(db: Db) -> None:
    data = fixture("memcached_cas_request.bin")  # cas k 0 0 5 1\r\nworld\r\n
    line = data.index(b"\n") + 1
    for n in range(len(data) + 1):
        m = assert_window_only(db, "mc_request", data, n)
        assert m.ok == (n >= line), n


# ---------------------------------------------------------------- replies


@pytest.mark.parametrize(
    ("line", "op", "num", "error"),
    [
        (b"VALUE k 0 12\r\n", b"VALUE", 12, 0),
        (b"VALUE k 0 12 99\r\n", b"VALUE", 12, 0),  # gets: the cas unique follows
        (b"END\r\n", b"END", -1, 0),
        (b"STORED\r\n", b"STORED", -1, 0),
        (b"NOT_STORED\r\n", b"NOT_STORED", -1, 0),
        (b"EXISTS\r\n", b"EXISTS", -1, 0),
        (b"NOT_FOUND\r\n", b"NOT_FOUND", -1, 0),
        (b"DELETED\r\n", b"DELETED", -1, 0),
        (b"TOUCHED\r\n", b"TOUCHED", -1, 0),
        (b"OK\r\n", b"OK", -1, 0),
        (b"STAT pid 1234\r\n", b"STAT", -1, 0),
        (b"VERSION 1.6.18\r\n", b"VERSION", -1, 0),
        (b"CLIENT_ERROR bad\r\n", b"CLIENT_ERROR", -1, 1),
        (b"SERVER_ERROR out of memory storing object\r\n", b"SERVER_ERROR", -1, 1),
        (b"ERROR\r\n", b"ERROR", -1, 1),
        (b"15\r\n", b"", -1, 0),  # incr, decr: a number
        (b"18446744073709551615\r\n", b"", -1, 0),
        (b"end\n", b"END", -1, 0),  # upper case; a line feed alone ends a line
    ],
)
def test_replies(db: Db, line: bytes, op: bytes, num: int, error: int) -> None:
    data = line + b"hello, world\r\nEND\r\n"
    for fill in FILLS:
        m = db.mc_reply(data, fill=fill)
        assert m.ok
        assert (m.op_raw, m.num, m.len, m.error) == (op.ljust(OP_LEN, b"\0"), num, len(line), error)


@pytest.mark.parametrize("data", [b"", b"END", b"END\r", b"VALUE k 0 x\r\n", b"VALUE k 0\r\n",
                                  b"VALUE k 0 1234567890123456789\r\n"])
def test_not_a_reply(db: Db, data: bytes) -> None:
    assert not db.mc_reply(data).ok


def reply_lines(db: Db, data: bytes) -> list[tuple[bytes, int, int]]:
    """(op, num, error) of each line of a reply stream; data blocks are skipped."""
    out, pos = [], 0
    while pos < len(data):
        m = db.mc_reply(data, pos)
        assert m.ok, (pos, data[pos:pos + 20])
        out.append((m.op, m.num, m.error))
        pos += m.len + (m.num + 2 if m.num >= 0 else 0)
    assert pos == len(data)
    return out


@pytest.mark.parametrize(
    ("name", "lines"),
    [
        ("memcached_get_reply.bin", [(b"VALUE", 12, 0), (b"END", -1, 0)]),
        ("memcached_get_two_reply.bin", [(b"VALUE", 12, 0), (b"END", -1, 0)]),
        ("memcached_gets_reply.bin", [(b"VALUE", 12, 0), (b"END", -1, 0)]),
        ("memcached_set_reply.bin", [(b"STORED", -1, 0)]),
        ("memcached_cas_reply.bin", [(b"STORED", -1, 0)]),
        ("memcached_incr_reply.bin", [(b"", -1, 0)]),
        ("memcached_delete_reply.bin", [(b"DELETED", -1, 0)]),
        ("memcached_delete_missing_reply.bin", [(b"NOT_FOUND", -1, 0)]),
        ("memcached_incr_missing_reply.bin", [(b"NOT_FOUND", -1, 0)]),
        ("memcached_version_reply.bin", [(b"VERSION", -1, 0)]),
        ("memcached_verbosity_reply.bin", [(b"OK", -1, 0)]),
        ("memcached_flush_all_reply.bin", [(b"OK", -1, 0)]),
        ("memcached_unknown_reply.bin", [(b"ERROR", -1, 1)]),
        ("memcached_bad_length_reply.bin", [(b"CLIENT_ERROR", -1, 1)]),
        ("memcached_too_large_reply.bin", [(b"SERVER_ERROR", -1, 1)]),
    ],
)
def test_captured_replies(db: Db, name: str, lines: list[tuple[bytes, int, int]]) -> None:
    assert reply_lines(db, fixture(name)) == lines


def test_every_cut_of_a_reply(db: Db) -> None:
    data = fixture("memcached_get_reply.bin")  # VALUE k 0 12\r\nhello, world\r\nEND\r\n
    line = data.index(b"\n") + 1
    for n in range(len(data) + 1):
        m = assert_window_only(db, "mc_reply", data, n)
        assert (m.ok, m.len) == ((True, line) if n >= line else (False, 0)), n
        if m.ok:
            assert m.num == 12


# ---------------------------------------------------------------- generated lines

_KEYS = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789:_-.", min_size=1, max_size=250)


@PROPERTY
@given(st.sampled_from(["set", "add", "replace", "append", "prepend", "cas"]), _KEYS, st.integers(0, 2**32 - 1),
       st.integers(0, 2**31), st.integers(0, 10**15), st.booleans())
def test_generated_storage_commands(db: Db, command: str, key: str, flags: int, exptime: int, length: int,
                                    noreply: bool) -> None:
    line = f"{command} {key} {flags} {exptime} {length}" + (" 42" if command == "cas" else "")
    line += " noreply\r\n" if noreply else "\r\n"
    data = line.encode()
    for fill in FILLS:
        m = db.mc_request(data, fill=fill, stale=data + b"x" * 400)
        assert (m.ok, m.op, m.type, m.num, m.len, m.flags) == (
            True, command.encode(), MC_STORAGE, length, len(data), int(noreply))


@PROPERTY
@given(_KEYS, st.integers(0, 2**32 - 1), st.integers(0, 10**15), st.sampled_from(["", " 7", " 18446744073709551615"]))
def test_generated_value_lines(db: Db, key: str, flags: int, length: int, cas: str) -> None:
    data = f"VALUE {key} {flags} {length}{cas}\r\n".encode()
    m = db.mc_reply(data, stale=b" 123" * 100)
    assert (m.ok, m.op, m.num, m.len, m.error) == (True, b"VALUE", length, len(data), 0)
