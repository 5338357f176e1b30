"""The kernel's database and cache parsers (bpf/l7_db.h), compiled for the host by way of tests/unit/l7_host.c
and driven through ctypes: what tests/unit/test_l7_*_parser.py share (the library, the struct l7_msg mirror,
the fixtures captured from real servers and the check that nothing past the window is read)."""

from __future__ import annotations

import ctypes
import functools
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

from tests.unit.bpf_host import build_host_library

HOST_SOURCE = Path(__file__).with_name("l7_host.c")
FIXTURES = Path(__file__).with_name("fixtures")

CAPTURE_MAX = 1024  # L7_CAPTURE_MAX
OP_LEN = 16  # L7_OP_LEN
FILLS = (0x00, 0x0A, 0xFF)  # what struct l7_parse holds before a parse: zeros, line feeds, 0xff

PROPERTY = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


class L7Msg(ctypes.Structure):
    """struct l7_msg of bpf/l7_http.h."""

    _fields_ = [
        ("num", ctypes.c_int64),
        ("len", ctypes.c_uint32),
        ("stmt", ctypes.c_uint32),
        ("type", ctypes.c_uint8),
        ("seq", ctypes.c_uint8),
        ("error", ctypes.c_uint8),
        ("flags", ctypes.c_uint8),
        ("pad", ctypes.c_uint32),
        ("op", ctypes.c_uint8 * OP_LEN),
        ("code", ctypes.c_uint8 * OP_LEN),
    ]


MSG_FIELDS = ("num", "len", "stmt", "type", "seq", "error", "flags", "pad", "op", "code")


def cstr(raw: bytes) -> bytes:
    return raw.split(b"\0", 1)[0]


@dataclass(frozen=True)
class Msg:
    """What a parser returned (a bool or a length) and the whole struct l7_msg after it."""

    ret: int
    raw: bytes
    num: int
    len: int
    stmt: int
    type: int
    seq: int
    error: int
    flags: int
    op_raw: bytes
    code_raw: bytes

    @property
    def ok(self) -> bool:
        return bool(self.ret)

    @property
    def op(self) -> bytes:
        return cstr(self.op_raw)

    @property
    def code(self) -> bytes:
        return cstr(self.code_raw)

    def fields(self, names: Iterable[str]) -> tuple[object, ...]:
        return tuple(getattr(self, name) for name in names)


_WINDOW: list[Any] = [ctypes.c_char_p, ctypes.c_uint, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
_MSG = ctypes.POINTER(L7Msg)

# wrapper of l7_host.c: (return type, extra arguments between the window and out)
_SIGNATURES: dict[str, tuple[Any, list[Any]]] = {
    "resp_element": (ctypes.c_int, [ctypes.c_uint]),
    "resp_command": (ctypes.c_int, [ctypes.c_uint]),
    "pg_startup": (ctypes.c_uint, [ctypes.c_uint]),
    "pg_message": (ctypes.c_int, [ctypes.c_uint]),
    "pg_parse_message": (ctypes.c_int, [ctypes.c_uint]),
    "pg_bind_message": (ctypes.c_int, [ctypes.c_uint]),
    "pg_error_code": (None, [ctypes.c_uint]),
    "sql_operation": (ctypes.c_int, [ctypes.c_uint]),
    "mysql_header": (ctypes.c_int, [ctypes.c_uint]),
    "mysql_greeting": (ctypes.c_int, []),
    "mysql_command": (ctypes.c_int, [ctypes.c_uint, ctypes.c_uint]),
    "mc_request": (ctypes.c_int, [ctypes.c_uint]),
    "mc_reply": (ctypes.c_int, [ctypes.c_uint]),
    "l7_line_len": (ctypes.c_uint, [ctypes.c_uint]),
}


class Db:
    """One method per parser: db.resp_element(data, pos, fill=..., stale=...) -> Msg.

    fill: every byte of struct l7_parse before the parse (the message struct included); stale: what the window
    holds past the data (the per-CPU buffer is reused, so typically a longer message parsed before)."""

    def __init__(self, lib: ctypes.CDLL) -> None:
        self.lib = lib
        for name, (restype, extra) in _SIGNATURES.items():
            fn = getattr(lib, name + "_over")
            fn.argtypes = [*_WINDOW, *extra, _MSG]
            fn.restype = restype
        lib.l7_number_over.argtypes = [*_WINDOW, ctypes.c_uint, _MSG, ctypes.POINTER(ctypes.c_longlong),
                                       ctypes.POINTER(ctypes.c_uint)]
        lib.l7_number_over.restype = ctypes.c_int
        for name, restype, extra in (("resp_command_span", ctypes.c_uint, [ctypes.c_uint]),
                                     ("l7_repeats", ctypes.c_uint, [ctypes.c_uint, ctypes.c_uint]),
                                     ("l7_hash_at", ctypes.c_ulonglong, [ctypes.c_uint, ctypes.c_uint])):
            fn = getattr(lib, name + "_over")
            fn.argtypes = [*_WINDOW, *extra]
            fn.restype = restype

    def call(self, name: str, data: bytes, *args: int, fill: int = 0, stale: bytes = b"") -> Msg:
        out = L7Msg()
        ret = getattr(self.lib, name + "_over")(data, len(data), fill, stale, len(stale), *args, ctypes.byref(out))
        return Msg(ret=int(ret or 0), raw=bytes(out), num=out.num, len=out.len, stmt=out.stmt, type=out.type,
                   seq=out.seq, error=out.error, flags=out.flags, op_raw=bytes(out.op), code_raw=bytes(out.code))

    def resp_element(self, data: bytes, pos: int = 0, *, fill: int = 0, stale: bytes = b"") -> Msg:
        return self.call("resp_element", data, pos, fill=fill, stale=stale)

    def resp_command(self, data: bytes, pos: int = 0, *, fill: int = 0, stale: bytes = b"") -> Msg:
        return self.call("resp_command", data, pos, fill=fill, stale=stale)

    def pg_startup(self, data: bytes, pos: int = 0, *, fill: int = 0, stale: bytes = b"") -> Msg:
        return self.call("pg_startup", data, pos, fill=fill, stale=stale)

    def pg_message(self, data: bytes, pos: int = 0, *, fill: int = 0, stale: bytes = b"") -> Msg:
        return self.call("pg_message", data, pos, fill=fill, stale=stale)

    def pg_parse_message(self, data: bytes, pos: int = 0, *, fill: int = 0, stale: bytes = b"") -> Msg:
        return self.call("pg_parse_message", data, pos, fill=fill, stale=stale)

    def pg_bind_message(self, data: bytes, pos: int = 0, *, fill: int = 0, stale: bytes = b"") -> Msg:
        return self.call("pg_bind_message", data, pos, fill=fill, stale=stale)

    def pg_error_code(self, data: bytes, pos: int = 0, *, fill: int = 0, stale: bytes = b"") -> Msg:
        return self.call("pg_error_code", data, pos, fill=fill, stale=stale)

    def sql_operation(self, data: bytes, pos: int = 0, *, fill: int = 0, stale: bytes = b"") -> Msg:
        return self.call("sql_operation", data, pos, fill=fill, stale=stale)

    def mysql_header(self, data: bytes, pos: int = 0, *, fill: int = 0, stale: bytes = b"") -> Msg:
        return self.call("mysql_header", data, pos, fill=fill, stale=stale)

    def mysql_greeting(self, data: bytes, *, fill: int = 0, stale: bytes = b"") -> Msg:
        return self.call("mysql_greeting", data, fill=fill, stale=stale)

    def mysql_command(self, data: bytes, pos: int = 0, seq: int = 0, *, fill: int = 0, stale: bytes = b"") -> Msg:
        return self.call("mysql_command", data, pos, seq, fill=fill, stale=stale)

    def mc_request(self, data: bytes, pos: int = 0, *, fill: int = 0, stale: bytes = b"") -> Msg:
        return self.call("mc_request", data, pos, fill=fill, stale=stale)

    def mc_reply(self, data: bytes, pos: int = 0, *, fill: int = 0, stale: bytes = b"") -> Msg:
        return self.call("mc_reply", data, pos, fill=fill, stale=stale)

    def line_len(self, data: bytes, pos: int = 0, *, fill: int = 0, stale: bytes = b"") -> int:
        return self.call("l7_line_len", data, pos, fill=fill, stale=stale).ret

    def command_span(self, data: bytes, pos: int = 0, *, fill: int = 0, stale: bytes = b"") -> int:
        """resp_command_span after resp_command at pos: the bytes of the whole command, or 0."""
        return int(self.lib.resp_command_span_over(data, len(data), fill, stale, len(stale), pos))

    def repeats(self, data: bytes, pos: int, length: int, *, fill: int = 0, stale: bytes = b"") -> int:
        """l7_repeats: copies of data[pos:pos + length] that follow it back to back."""
        return int(self.lib.l7_repeats_over(data, len(data), fill, stale, len(stale), pos, length))

    def hash_at(self, data: bytes, start: int, length: int, *, fill: int = 0, stale: bytes = b"") -> int:
        return int(self.lib.l7_hash_at_over(data, len(data), fill, stale, len(stale), start, length))

    def number(self, data: bytes, pos: int = 0, *, fill: int = 0, stale: bytes = b"") -> tuple[bool, int, int]:
        """l7_number: (found, the number, where it ends)."""
        out, num, end = L7Msg(), ctypes.c_longlong(), ctypes.c_uint()
        ok = self.lib.l7_number_over(data, len(data), fill, stale, len(stale), pos, ctypes.byref(out),
                                     ctypes.byref(num), ctypes.byref(end))
        return bool(ok), num.value, end.value


# ---------------------------------------------------------------- what each parser answers

# The fields of struct l7_msg a parser documents, when it returns true (a length: non-zero). The others keep what
# was there before (fill): the kernel reads only these.
OUTPUTS: dict[str, tuple[str, ...]] = {
    "resp_element": ("type", "num", "len", "error"),  # and code, for '-'
    "resp_command": ("op_raw", "num", "len"),
    "pg_startup": ("type",),
    "pg_message": ("type", "num"),
    "pg_parse_message": ("stmt", "op_raw"),
    "pg_bind_message": ("stmt",),
    "pg_error_code": ("code_raw",),
    "sql_operation": ("op_raw",),
    "mysql_header": ("num", "seq"),
    "mysql_greeting": ("num", "seq"),
    "mysql_command": ("type", "op_raw", "stmt"),
    "mc_request": ("op_raw", "type", "num", "len", "flags"),
    "mc_reply": ("op_raw", "num", "len", "error"),
    "l7_line_len": (),
}

# what a parser answers even when it returns false
OUTPUTS_ALWAYS: dict[str, tuple[str, ...]] = {
    "resp_element": ("type",),
    "pg_error_code": ("code_raw",),
    "mc_reply": ("num", "len", "error"),
}


def answer(name: str, m: Msg) -> tuple[object, ...]:
    """The part of a parse the kernel relies on: the return, and the documented fields."""
    names = OUTPUTS[name] if m.ret or name == "pg_error_code" else OUTPUTS_ALWAYS.get(name, ())
    if name == "resp_element" and m.ret and m.type == ord("-"):
        names = (*names, "code_raw")
    return (m.ret, *m.fields(names))


def run(db: Db, name: str, data: bytes, pos: int, *, fill: int = 0, stale: bytes = b"") -> Msg:
    if name == "mysql_greeting":
        return db.call(name, data, fill=fill, stale=stale)
    if name == "mysql_command":
        return db.call(name, data, pos, 0, fill=fill, stale=stale)
    return db.call(name, data, pos, fill=fill, stale=stale)


PARSERS = tuple(OUTPUTS)


def assert_window_only(db: Db, name: str, data: bytes, n: int, pos: int = 0) -> Msg:
    """The parse of data[:n] at pos does not depend on what lies past n: zeros, line feeds, 0xff or the rest of
    data. With the same fill, the whole struct l7_msg is the same; with another, what the parser answers."""
    cut = data[:n]
    clean = run(db, name, cut, pos)
    for fill, stale in ((0, data), (0, data + b"\r\n" * 8), (0, b"\n" * CAPTURE_MAX)):
        other = run(db, name, cut, pos, fill=fill, stale=stale)
        assert other.raw == clean.raw and other.ret == clean.ret, (name, n, pos, stale[:40])
    for fill in (0x0A, 0xFF):
        base = run(db, name, cut, pos, fill=fill)
        assert answer(name, base) == answer(name, clean), (name, n, pos, fill)
        assert run(db, name, cut, pos, fill=fill, stale=data).raw == base.raw, (name, n, pos, fill)
    return clean


# ---------------------------------------------------------------- the library and the fixtures


@functools.cache
def _build(directory: Path) -> Db:
    return Db(build_host_library(HOST_SOURCE, directory, "bpf/l7_db.h"))


def build(tmp_path_factory: pytest.TempPathFactory) -> Db:
    """The library, built once a session (every test_l7_*_parser.py module's `db` fixture asks for it)."""
    directory = tmp_path_factory.getbasetemp() / "l7_db_host"
    directory.mkdir(exist_ok=True)
    return _build(directory)


def fixture(name: str) -> bytes:
    """A byte stream captured from a real server by tests/unit/fixtures/capture_db.py."""
    return (FIXTURES / name).read_bytes()
