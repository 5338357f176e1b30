"""ctypes declarations of exactly the libbpf 1.x (and libc) functions this package uses.

libbpf is loaded once, on first use, so importing `exporter.bpf` works where libbpf is absent.
libbpf 1.x returns NULL or a negative errno on failure and also sets errno.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import functools
import logging
import platform
from collections.abc import Iterator
from ctypes import (
    CFUNCTYPE,
    POINTER,
    c_bool,
    c_char_p,
    c_int,
    c_int32,
    c_int64,
    c_size_t,
    c_uint32,
    c_uint64,
    c_ulong,
    c_void_p,
)
from typing import Any

from exporter.bpf.errors import NotSupported

LIBBPF = "libbpf.so.1"
LIBC = "libc.so.6"

log = logging.getLogger("exporter.bpf.libbpf")

LIBBPF_WARN = 0

BTF_KIND_STRUCT = 4
BTF_KIND_VAR = 14
BTF_KIND_DATASEC = 15

BPF_MAP_TYPE_PERCPU_HASH = 5
BPF_MAP_TYPE_PERCPU_ARRAY = 6
BPF_MAP_TYPE_LRU_PERCPU_HASH = 10
PERCPU_MAP_TYPES = frozenset(
    {BPF_MAP_TYPE_PERCPU_HASH, BPF_MAP_TYPE_PERCPU_ARRAY, BPF_MAP_TYPE_LRU_PERCPU_HASH}
)


class BtfType(ctypes.Structure):
    """`struct btf_type`: the 12-byte header every BTF type starts with."""

    _fields_ = [("name_off", c_uint32), ("info", c_uint32), ("size_or_type", c_uint32)]

    @property
    def kind(self) -> int:
        return (self.info >> 24) & 0x1F

    @property
    def vlen(self) -> int:
        return self.info & 0xFFFF


class BtfVarSecinfo(ctypes.Structure):
    """`struct btf_var_secinfo`: one variable of a DATASEC, following the DATASEC's header."""

    _fields_ = [("type", c_uint32), ("offset", c_uint32), ("size", c_uint32)]


class BpfMapBatchOpts(ctypes.Structure):
    """`struct bpf_map_batch_opts`, laid out as LIBBPF_OPTS would fill it."""

    _fields_ = [("sz", c_size_t), ("elem_flags", c_uint64), ("flags", c_uint64)]


class BpfIterAttachOpts(ctypes.Structure):
    """`struct bpf_iter_attach_opts`; link_info points to a `union bpf_iter_link_info` whose
    first member is the map's fd, for an iterator over a map."""

    _fields_ = [("sz", c_size_t), ("link_info", c_void_p), ("link_info_len", c_uint32)]


class BpfProgInfo(ctypes.Structure):
    """`struct bpf_prog_info` up to `verified_insns` (the kernel fills what it has; older kernels
    leave the rest 0)."""

    _fields_ = [("type", c_uint32), ("id", c_uint32), ("tag", ctypes.c_uint8 * 8), ("jited_prog_len", c_uint32),
                ("xlated_prog_len", c_uint32), ("jited_prog_insns", c_uint64), ("xlated_prog_insns", c_uint64),
                ("load_time", c_uint64), ("created_by_uid", c_uint32), ("nr_map_ids", c_uint32),
                ("map_ids", c_uint64), ("name", ctypes.c_char * 16), ("ifindex", c_uint32),
                ("gpl_compatible", c_uint32), ("netns_dev", c_uint64), ("netns_ino", c_uint64),
                ("nr_jited_ksyms", c_uint32), ("nr_jited_func_lens", c_uint32), ("jited_ksyms", c_uint64),
                ("jited_func_lens", c_uint64), ("btf_id", c_uint32), ("func_info_rec_size", c_uint32),
                ("func_info", c_uint64), ("nr_func_info", c_uint32), ("nr_line_info", c_uint32),
                ("line_info", c_uint64), ("jited_line_info", c_uint64), ("nr_jited_line_info", c_uint32),
                ("line_info_rec_size", c_uint32), ("jited_line_info_rec_size", c_uint32),
                ("nr_prog_tags", c_uint32), ("prog_tags", c_uint64), ("run_time_ns", c_uint64),
                ("run_cnt", c_uint64), ("recursion_misses", c_uint64), ("verified_insns", c_uint32)]


PrintFn = CFUNCTYPE(c_int, c_int, c_void_p, c_void_p)
RingBufferSampleFn = CFUNCTYPE(c_int, c_void_p, c_void_p, c_size_t)

_LIBBPF_SIGNATURES: dict[str, tuple[Any, list[Any]]] = {
    "libbpf_set_print": (c_void_p, [PrintFn]),
    "libbpf_num_possible_cpus": (c_int, []),
    "bpf_object__open_file": (c_void_p, [c_char_p, c_void_p]),
    "bpf_object__load": (c_int, [c_void_p]),
    "bpf_object__close": (None, [c_void_p]),
    "bpf_object__btf": (c_void_p, [c_void_p]),
    "bpf_object__next_program": (c_void_p, [c_void_p, c_void_p]),
    "bpf_object__next_map": (c_void_p, [c_void_p, c_void_p]),
    "bpf_object__find_map_by_name": (c_void_p, [c_void_p, c_char_p]),
    "bpf_program__name": (c_char_p, [c_void_p]),
    "bpf_program__section_name": (c_char_p, [c_void_p]),
    "bpf_program__autoload": (c_bool, [c_void_p]),
    "bpf_program__set_autoload": (c_int, [c_void_p, c_bool]),
    "bpf_program__attach": (c_void_p, [c_void_p]),
    "bpf_program__fd": (c_int, [c_void_p]),
    "bpf_obj_get_info_by_fd": (c_int, [c_int, c_void_p, POINTER(c_uint32)]),
    "bpf_program__attach_uprobe": (c_void_p, [c_void_p, c_bool, c_int, c_char_p, c_size_t]),
    "bpf_program__attach_iter": (c_void_p, [c_void_p, POINTER(BpfIterAttachOpts)]),
    "bpf_program__attach_cgroup": (c_void_p, [c_void_p, c_int]),
    "bpf_link__destroy": (c_int, [c_void_p]),
    "bpf_link__fd": (c_int, [c_void_p]),
    "bpf_iter_create": (c_int, [c_int]),
    "bpf_map__name": (c_char_p, [c_void_p]),
    "bpf_map__fd": (c_int, [c_void_p]),
    "bpf_map__type": (c_int, [c_void_p]),
    "bpf_map__key_size": (c_uint32, [c_void_p]),
    "bpf_map__value_size": (c_uint32, [c_void_p]),
    "bpf_map__max_entries": (c_uint32, [c_void_p]),
    "bpf_map__set_max_entries": (c_int, [c_void_p, c_uint32]),
    "bpf_map__initial_value": (c_void_p, [c_void_p, POINTER(c_size_t)]),
    "btf__find_by_name_kind": (c_int32, [c_void_p, c_char_p, c_uint32]),
    "btf__type_by_id": (c_void_p, [c_void_p, c_uint32]),
    "btf__name_by_offset": (c_char_p, [c_void_p, c_uint32]),
    "btf__resolve_size": (c_int64, [c_void_p, c_uint32]),
    "bpf_map_lookup_elem": (c_int, [c_int, c_void_p, c_void_p]),
    "bpf_map_update_elem": (c_int, [c_int, c_void_p, c_void_p, c_uint64]),
    "bpf_map_delete_elem": (c_int, [c_int, c_void_p]),
    "bpf_map_get_next_key": (c_int, [c_int, c_void_p, c_void_p]),
    "bpf_map_lookup_batch": (
        c_int,
        [c_int, c_void_p, c_void_p, c_void_p, c_void_p, POINTER(c_uint32), POINTER(BpfMapBatchOpts)],
    ),
    "ring_buffer__new": (c_void_p, [c_int, RingBufferSampleFn, c_void_p, c_void_p]),
    "ring_buffer__poll": (c_int, [c_void_p, c_int]),
    "ring_buffer__consume": (c_int, [c_void_p]),
    "ring_buffer__free": (None, [c_void_p]),
}

_LIBC_SIGNATURES: dict[str, tuple[Any, list[Any]]] = {
    "mount": (c_int, [c_char_p, c_char_p, c_char_p, c_ulong, c_void_p]),
}
_FORMATTING_SIGNATURES: dict[str, tuple[Any, list[Any]]] = {
    "vsnprintf": (c_int, [c_void_p, c_size_t, c_void_p, c_void_p]),
}

# On these machines a va_list argument arrives as a pointer to one record of this size,
# so copying the record is va_copy.
_VA_LIST_SIZES = {"x86_64": 24, "aarch64": 32}
_VA_LIST_SIZE = _VA_LIST_SIZES.get(platform.machine())
_FIRST_FORMAT_BUFFER = 1024
_ONLY_FORMAT_BUFFER = 256 * 1024  # elsewhere: one large buffer, longer messages are truncated


def _declare(library: ctypes.CDLL, signatures: dict[str, tuple[Any, list[Any]]]) -> ctypes.CDLL:
    for name, (restype, argtypes) in signatures.items():
        function = getattr(library, name)
        function.restype = restype
        function.argtypes = argtypes
    return library


@functools.cache
def libc() -> ctypes.CDLL:
    return _declare(ctypes.CDLL(LIBC, use_errno=True), _LIBC_SIGNATURES)


@functools.cache
def _formatting_libc() -> ctypes.CDLL:
    # Without use_errno: formatting inside libbpf's print callback must leave libbpf's errno alone.
    return _declare(ctypes.CDLL(LIBC), _FORMATTING_SIGNATURES)


def _format_message(fmt: int, args: int) -> str:
    if _VA_LIST_SIZE is None:
        buffer = ctypes.create_string_buffer(_ONLY_FORMAT_BUFFER)
        _formatting_libc().vsnprintf(buffer, len(buffer), fmt, args)
    else:
        saved_args = ctypes.create_string_buffer(ctypes.string_at(args, _VA_LIST_SIZE), _VA_LIST_SIZE)
        buffer = ctypes.create_string_buffer(_FIRST_FORMAT_BUFFER)
        length = _formatting_libc().vsnprintf(buffer, len(buffer), fmt, args)
        if length >= len(buffer):  # the verifier log arrives as one long message
            buffer = ctypes.create_string_buffer(length + 1)
            _formatting_libc().vsnprintf(buffer, len(buffer), fmt, saved_args)
    return buffer.value.decode(errors="replace").removeprefix("libbpf: ").rstrip("\n")


# While set (held_messages()), libbpf's warnings are kept here instead of logged: the caller decides.
_held: list[str] | None = None


def _log_libbpf_message(level: int, fmt: int | None, args: int | None) -> int:
    python_level = logging.WARNING if level == LIBBPF_WARN else logging.DEBUG
    held = _held
    if fmt is None or args is None or (held is None and not log.isEnabledFor(python_level)):
        return 0
    try:
        text = _format_message(fmt, args)
        if held is not None and python_level == logging.WARNING:
            held.append(text)
        else:
            log.log(python_level, "%s", text)
    except Exception:  # an exception must not unwind through libbpf's C frames
        log.exception("could not format a libbpf message")
    return 0


@contextlib.contextmanager
def held_messages() -> Iterator[list[str]]:
    """libbpf's warnings during the block, kept in the list yielded instead of logged (libbpf calls back
    on the thread that called it; objects are loaded from one thread)."""
    global _held
    kept: list[str] = []
    before, _held = _held, kept
    try:
        yield kept
    finally:
        _held = before


# Module-level so the C function pointer outlives every libbpf call that may use it.
_print_callback = PrintFn(_log_libbpf_message)


@functools.cache
def lib() -> ctypes.CDLL:
    """libbpf with every function declared and its messages routed into `logging`."""
    try:
        library = ctypes.CDLL(LIBBPF, use_errno=True)
    except OSError as error:
        raise NotSupported(f"{LIBBPF}: cannot load: {error}") from None
    _declare(library, _LIBBPF_SIGNATURES)
    library.libbpf_set_print(_print_callback)
    return library


def last_errno() -> int:
    """errno left by the last libbpf call that returned NULL (EINVAL if it left none)."""
    return ctypes.get_errno() or errno.EINVAL


def decode(name: bytes | None) -> str:
    return name.decode(errors="replace") if name is not None else ""
