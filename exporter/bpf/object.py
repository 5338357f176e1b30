"""BpfObject: one compiled *.bpf.o, from opening it through setting constants, loading and attaching.

The order is libbpf's: open -> set_autoload / set_rodata / set_max_entries -> load -> attach.
A failed load cannot be retried on the same object; open the file again.
"""

from __future__ import annotations

import ctypes
import os
import pathlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

from exporter.bpf import _libbpf
from exporter.bpf._libbpf import lib
from exporter.bpf.cgroupfs import root_cgroup_fd
from exporter.bpf.errors import BpfError, NotSupported, errno_reason, error_for_errno
from exporter.bpf.maps import BpfMap
from exporter.bpf.ringbuf import RingBuffer
from exporter.bpf.tracefs import ensure_tracefs

OBJECTS_ENV = "NETOBS_BPF_OBJECTS"
BPF_MAP_TYPE_RINGBUF = 27
# Sections libbpf attaches through tracefs's events/<category>/<name>/id.
_TRACEFS_SECTIONS = ("tracepoint/", "tp/")
# Iterators run on demand (BpfObject.iterator), not when attached.
_ITER_SECTION = "iter/"
_UPROBE_SECTIONS = ("uprobe", "uretprobe")  # attached to files by attach_uprobe(), not by attach_all()
# Sections attached to the root of cgroup v2 (exporter/bpf/cgroupfs.py).
_CGROUP_SECTION = "cgroup/"


def objects_dir() -> pathlib.Path:
    """The directory holding the compiled *.bpf.o files."""
    configured = os.environ.get(OBJECTS_ENV)
    if configured:
        return pathlib.Path(configured)
    return pathlib.Path(__file__).resolve().parent / "objects"


@dataclass(frozen=True)
class AttachResult:
    program: str
    section: str
    attached: bool
    error: str | None  # the kernel's reason, one line, when not attached


class BpfIterator:
    """An iterator program: each run() calls it once per element (of its map, or of the kernel objects
    it walks), in the kernel."""

    def __init__(self, what: str, link_fd: int) -> None:
        self.what = what
        self._link_fd = link_fd

    def run(self) -> None:
        fd = lib().bpf_iter_create(self._link_fd)
        if fd < 0:
            raise error_for_errno(f"{self.what}: run", -fd)
        try:
            while os.read(fd, 4096):  # the programs print nothing: one read walks every element
                pass
        except OSError as error:
            raise error_for_errno(f"{self.what}: run", error.errno or 0) from None
        finally:
            os.close(fd)


class BpfObject:
    """A BPF object file opened with libbpf; use `open`, and close it (or use `with`)."""

    def __init__(self, path: pathlib.Path, pointer: int) -> None:
        self.path = path
        self._pointer: int | None = pointer
        self._load_attempted = False
        self._links: list[int] = []
        self._maps: dict[str, BpfMap] = {}
        self._ring_buffers: list[RingBuffer] = []
        self._iterators: dict[str, BpfIterator] = {}

    @classmethod
    def open(cls, path: pathlib.Path) -> BpfObject:
        pointer = lib().bpf_object__open_file(os.fsencode(path), None)
        if not pointer:
            raise BpfError(f"{path}: open failed: {errno_reason(_libbpf.last_errno())}")
        return cls(pathlib.Path(path), pointer)

    @property
    def name(self) -> str:
        """The file name without ".bpf.o", e.g. "netflow"."""
        return self.path.name.removesuffix(".o").removesuffix(".bpf")

    def programs(self) -> list[str]:
        return [_libbpf.decode(lib().bpf_program__name(program)) for program in self._program_pointers()]

    def section(self, program: str) -> str:
        return _libbpf.decode(lib().bpf_program__section_name(self._program(program)))

    def set_autoload(self, program: str, enabled: bool) -> None:
        self._require_not_loaded("set autoload")
        result = lib().bpf_program__set_autoload(self._program(program), enabled)
        if result < 0:
            raise error_for_errno(f"{self.path.name}: set autoload of '{program}'", -result)

    def set_rodata(self, values: Mapping[str, int | bool | bytes]) -> None:
        """Set `const volatile` globals by name; every name is checked before any is written."""
        self._require_not_loaded("set read-only constants")
        variables = self._rodata_variables()
        writes: list[tuple[int, bytes]] = []
        for name, value in values.items():
            if name not in variables:
                raise BpfError(f"{self.path.name}: no read-only constant named '{name}'")
            offset, size = variables[name]
            writes.append((offset, _encode_constant(f"{self.path.name}: constant '{name}'", value, size)))
        if not writes:
            return
        data_size = ctypes.c_size_t()
        data = lib().bpf_map__initial_value(self._rodata_map(), ctypes.byref(data_size))
        for offset, encoded in writes:
            if not data or offset + len(encoded) > data_size.value:
                raise BpfError(f"{self.path.name}: .rodata is smaller than its BTF says")
            ctypes.memmove(data + offset, encoded, len(encoded))

    def set_max_entries(self, map_name: str, n: int) -> None:
        self._require_not_loaded("set max_entries")
        result = lib().bpf_map__set_max_entries(self._map_pointer(map_name), n)
        if result < 0:
            raise error_for_errno(f"{self.path.name}: set max_entries of '{map_name}'", -result)

    def load(self) -> None:
        """Load every autoloaded program and create the maps; the verifier log goes to logging."""
        self._require_not_loaded("load")
        self._load_attempted = True
        result = lib().bpf_object__load(self._require_open())
        if result < 0:
            raise error_for_errno(f"{self.path.name}: load failed", -result)

    def attach(self, program: str) -> AttachResult:
        """Attach as the program's SEC() says; failures are reported, not raised."""
        pointer = self._program_for_attach(program)
        section = self.section(program)
        if not lib().bpf_program__autoload(pointer):
            return AttachResult(program, section, attached=False, error="not loaded (autoload disabled)")
        if section.startswith(_TRACEFS_SECTIONS):
            try:
                ensure_tracefs()
            except NotSupported as error:
                return AttachResult(program, section, attached=False, error=str(error))
        if section.startswith(_CGROUP_SECTION):
            try:
                fd = root_cgroup_fd()
            except NotSupported as error:
                return AttachResult(program, section, attached=False, error=str(error))
            try:
                return self._record_link(program, section, lib().bpf_program__attach_cgroup(pointer, fd))
            finally:
                os.close(fd)
        return self._record_link(program, section, lib().bpf_program__attach(pointer))

    def attach_all(self) -> list[AttachResult]:
        """Attach every autoloaded program in object order; one failure does not stop the others.
        An iterator is created by iterator() instead: reported attached if it was. A uprobe has no
        target of its own: its collector attaches it to files with attach_uprobe()."""
        results = []
        for program, pointer in zip(self.programs(), self._program_pointers(), strict=True):
            if not lib().bpf_program__autoload(pointer):
                continue
            section = self.section(program)
            if section.startswith(_UPROBE_SECTIONS):
                continue
            if not section.startswith(_ITER_SECTION):
                results.append(self.attach(program))
            elif program in self._iterators:
                results.append(AttachResult(program, section, attached=True, error=None))
            else:
                results.append(AttachResult(program, section, attached=False, error="iterator not created"))
        return results

    def iterator(self, program: str, map_name: str | None = None) -> BpfIterator:
        """The iterator program `program` (SEC("iter/...")), bound to the map `map_name` if it walks a
        map, created once; BpfIterator.run() then walks every element with it."""
        if program in self._iterators:
            return self._iterators[program]
        pointer = self._program_for_attach(program)
        opts = None
        if map_name is not None:
            info = (ctypes.c_uint32 * 2)(self.map(map_name).fd, 0)
            opts = ctypes.byref(_libbpf.BpfIterAttachOpts(ctypes.sizeof(_libbpf.BpfIterAttachOpts),
                                                          ctypes.addressof(info), ctypes.sizeof(info)))
        link = lib().bpf_program__attach_iter(pointer, opts)
        if not link:
            over = f" over '{map_name}'" if map_name else ""
            raise error_for_errno(f"{self.path.name}: iterator '{program}'{over}", _libbpf.last_errno())
        self._links.append(link)
        iterator = self._iterators[program] = BpfIterator(f"{self.path.name}: {program}", lib().bpf_link__fd(link))
        return iterator

    def attach_uprobe(
        self, program: str, binary: str, offset: int, *, retprobe: bool, pid: int = -1
    ) -> AttachResult:
        """Attach to `offset` in `binary` (pid -1: every process); failures are reported, not raised."""
        pointer = self._program_for_attach(program)
        section = self.section(program)
        link = lib().bpf_program__attach_uprobe(pointer, retprobe, pid, os.fsencode(binary), offset)
        return self._record_link(program, section, link)

    def map(self, name: str) -> BpfMap:
        """The loaded map named `name` (the same instance on every call)."""
        if name in self._maps:
            return self._maps[name]
        map_pointer = self._map_pointer(name)
        if not self._load_attempted or lib().bpf_map__fd(map_pointer) < 0:
            raise BpfError(f"{self.path.name}: map '{name}' does not exist until the object is loaded")
        bpf_map = self._maps[name] = BpfMap.from_libbpf(map_pointer)
        return bpf_map

    def ring_buffer(self, map_name: str, callback: Callable[[memoryview | bytes], None]) -> RingBuffer:
        bpf_map = self.map(map_name)
        if bpf_map.map_type != BPF_MAP_TYPE_RINGBUF:
            raise BpfError(f"{self.path.name}: map '{map_name}' is not a ring buffer")
        ring_buffer = RingBuffer(map_name, bpf_map.fd, callback)
        self._ring_buffers.append(ring_buffer)
        return ring_buffer

    def loaded_programs(self) -> list[str]:
        """The programs the kernel accepted, once loaded."""
        return [_libbpf.decode(lib().bpf_program__name(p)) for p in self._program_pointers()
                if lib().bpf_program__fd(p) >= 0]

    def verified_instructions(self, program: str) -> int:
        """How many instructions the verifier walked to accept a loaded program (0 where the kernel
        does not say). It refuses a program at 1,000,000; tests keep a margin below that."""
        fd = lib().bpf_program__fd(self._program(program))
        if fd < 0:
            raise BpfError(f"{self.path.name}: program '{program}' is not loaded")
        info = _libbpf.BpfProgInfo()
        size = ctypes.c_uint32(ctypes.sizeof(info))
        result = lib().bpf_obj_get_info_by_fd(fd, ctypes.byref(info), ctypes.byref(size))
        if result < 0:
            raise error_for_errno(f"{self.path.name}: info of '{program}'", -result)
        return int(info.verified_insns)

    def btf_type_size(self, type_name: str) -> int | None:
        """Size in bytes of `struct <type_name>` in the object's BTF; None if it has no such struct."""
        btf = lib().bpf_object__btf(self._require_open())
        if not btf:
            return None
        type_id = lib().btf__find_by_name_kind(btf, type_name.encode(), _libbpf.BTF_KIND_STRUCT)
        if type_id < 0:
            return None
        size = lib().btf__resolve_size(btf, type_id)
        return int(size) if size >= 0 else None

    def close(self) -> None:
        """Detach every link and unload every program and map; safe to call twice."""
        if self._pointer is None:
            return
        for ring_buffer in self._ring_buffers:
            ring_buffer.close()
        for link in self._links:
            lib().bpf_link__destroy(link)
        for bpf_map in self._maps.values():
            bpf_map.fd = -1
        lib().bpf_object__close(self._pointer)
        self._pointer = None
        self._links.clear()
        self._iterators.clear()
        self._maps.clear()
        self._ring_buffers.clear()

    def __enter__(self) -> BpfObject:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._pointer is None else "loaded" if self._load_attempted else "open"
        return f"BpfObject({str(self.path)!r}, {state})"

    def _record_link(self, program: str, section: str, link: int | None) -> AttachResult:
        if not link:
            return AttachResult(program, section, attached=False, error=errno_reason(_libbpf.last_errno()))
        self._links.append(link)
        return AttachResult(program, section, attached=True, error=None)

    def _require_open(self) -> int:
        if self._pointer is None:
            raise BpfError(f"{self.path.name}: object is closed")
        return self._pointer

    def _require_not_loaded(self, action: str) -> None:
        self._require_open()
        if self._load_attempted:
            raise BpfError(f"{self.path.name}: cannot {action} after load")

    def _program_for_attach(self, program: str) -> int:
        pointer = self._program(program)
        if not self._load_attempted:
            raise BpfError(f"{self.path.name}: cannot attach '{program}' before load")
        return pointer

    def _program_pointers(self) -> Iterator[int]:
        obj = self._require_open()
        program = lib().bpf_object__next_program(obj, None)
        while program:
            yield program
            program = lib().bpf_object__next_program(obj, program)

    def _program(self, name: str) -> int:
        for pointer in self._program_pointers():
            if _libbpf.decode(lib().bpf_program__name(pointer)) == name:
                return pointer
        raise BpfError(f"{self.path.name}: no program named '{name}'")

    def _map_pointer(self, name: str) -> int:
        pointer = lib().bpf_object__find_map_by_name(self._require_open(), name.encode())
        if not pointer:
            raise BpfError(f"{self.path.name}: no map named '{name}'")
        return int(pointer)

    def _rodata_map(self) -> int:
        obj = self._require_open()
        map_pointer = lib().bpf_object__next_map(obj, None)
        while map_pointer:
            if _libbpf.decode(lib().bpf_map__name(map_pointer)).endswith(".rodata"):
                return int(map_pointer)
            map_pointer = lib().bpf_object__next_map(obj, map_pointer)
        raise BpfError(f"{self.path.name}: has no .rodata map")

    def _rodata_variables(self) -> dict[str, tuple[int, int]]:
        """Name -> (offset, size) of every variable in the .rodata section, read from BTF."""
        btf = lib().bpf_object__btf(self._require_open())
        datasec_id = lib().btf__find_by_name_kind(btf, b".rodata", _libbpf.BTF_KIND_DATASEC) if btf else -1
        if datasec_id < 0:
            return {}
        datasec = lib().btf__type_by_id(btf, datasec_id)
        entry_count = _libbpf.BtfType.from_address(datasec).vlen
        entries = (_libbpf.BtfVarSecinfo * entry_count).from_address(datasec + ctypes.sizeof(_libbpf.BtfType))
        variables: dict[str, tuple[int, int]] = {}
        for entry in entries:
            variable = _libbpf.BtfType.from_address(lib().btf__type_by_id(btf, entry.type))
            if variable.kind == _libbpf.BTF_KIND_VAR:
                name = _libbpf.decode(lib().btf__name_by_offset(btf, variable.name_off))
                variables[name] = (entry.offset, entry.size)
        return variables


def _encode_constant(context: str, value: int | bool | bytes, size: int) -> bytes:
    """`value` as the `size` bytes of a little-endian C variable."""
    if isinstance(value, bytes):
        if len(value) > size:
            raise BpfError(f"{context}: {len(value)} bytes do not fit in {size}")
        return value.ljust(size, b"\0")
    if not isinstance(value, int):
        raise BpfError(f"{context}: needs an int, bool or bytes, not {type(value).__name__}")
    if size not in (1, 2, 4, 8):
        raise BpfError(f"{context}: is {size} bytes, not an integer")
    number = int(value)
    if not -(1 << (8 * size - 1)) <= number < (1 << (8 * size)):
        raise BpfError(f"{context}: {number} does not fit in {size} bytes")
    return number.to_bytes(size, "little", signed=number < 0)
