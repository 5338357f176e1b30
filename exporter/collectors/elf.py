"""Where functions start in an ELF file (an executable or a shared library): each symbol's address
turned into a file offset, as uprobes need (bash's readline, OpenSSL's SSL_write...).

A uprobe is placed at a file offset. The offset is found from the symbol tables (.dynsym, then
.symtab) and the PT_LOAD program header that maps the symbol's address. Pure functions over bytes:
32- and 64-bit, little- and big-endian."""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol

SHT_SYMTAB, SHT_DYNSYM = 2, 11
PT_LOAD = 1
STT_FUNC = 2
SHN_UNDEF = 0


class Buffer(Protocol):
    """bytes or mmap: what struct.unpack_from, slicing and find accept."""

    def __len__(self) -> int: ...
    def __getitem__(self, index: slice, /) -> bytes: ...
    def find(self, sub: bytes, start: int, end: int, /) -> int: ...


class ElfError(ValueError):
    """Not an ELF file, or one whose headers point outside the file."""


@dataclass(frozen=True)
class _Layout:
    """struct formats of one ELF class and byte order."""

    endian: str
    header: str  # e_entry .. e_shstrndx, from offset 24
    section: str  # name, type, flags, addr, offset, size, link, info, addralign, entsize
    symbol: str
    symbol_fields: tuple[int, int, int, int]  # positions of st_name, st_info, st_shndx, st_value
    program: str
    program_fields: tuple[int, int, int, int]  # positions of p_type, p_offset, p_vaddr, p_filesz


def _layout(image: Buffer) -> _Layout:
    if len(image) < 16 or image[0:4] != b"\x7fELF":
        raise ElfError("not an ELF file")
    elf_class, data = image[4:5][0], image[5:6][0]
    if data not in (1, 2) or elf_class not in (1, 2):
        raise ElfError(f"unknown ELF class {elf_class} or byte order {data}")
    e = "<" if data == 1 else ">"
    if elf_class == 2:
        return _Layout(e, e + "QQQIHHHHHH", e + "IIQQQQIIQQ", e + "IBBHQQ", (0, 1, 3, 4),
                       e + "IIQQQQQQ", (0, 2, 3, 5))
    return _Layout(e, e + "IIIIHHHHHH", e + "IIIIIIIIII", e + "IIIBBH", (0, 3, 5, 1),
                   e + "IIIIIIII", (0, 1, 2, 4))


def _unpack(fmt: str, image: Buffer, offset: int) -> tuple[int, ...]:
    if offset < 0 or offset + struct.calcsize(fmt) > len(image):
        raise ElfError(f"truncated ELF file: a header at offset {offset} ends past the end")
    return struct.unpack_from(fmt, image, offset)  # type: ignore[arg-type]


def _records(fmt: str, image: Buffer, offset: int, count: int, entsize: int) -> Iterator[tuple[int, ...]]:
    size = struct.calcsize(fmt)
    if count and entsize < size:
        raise ElfError(f"ELF entries of {entsize} bytes are smaller than {size}")
    for index in range(count):
        yield _unpack(fmt, image, offset + index * entsize)


def _c_string(image: Buffer, offset: int, end: int) -> bytes:
    chunk = image[offset:end]
    nul = chunk.find(b"\0")
    return chunk if nul < 0 else chunk[:nul]


def _section_headers(image: Buffer, layout: _Layout) -> list[tuple[int, ...]]:
    header = _unpack(layout.header, image, 24)
    shoff, shentsize, shnum = header[2], header[7], header[8]
    return list(_records(layout.section, image, shoff, shnum, shentsize))


def _table_functions(image: Buffer, layout: _Layout, table: tuple[int, ...], strings: tuple[int, ...],
                     wanted: set[bytes]) -> dict[bytes, int]:
    """The defined functions of one symbol table whose names are in `wanted`: the first of each name."""
    strings_offset, strings_end = strings[4], strings[4] + strings[5]
    # A name absent from the string table names no symbol: most tables are skipped without a walk.
    present = {name for name in wanted if image.find(name, strings_offset, strings_end) >= 0}
    found: dict[bytes, int] = {}
    if not present:
        return found
    _name, _kind, _f, _a, offset, size, _link, _i, _al, entsize = table
    name_at, info_at, shndx_at, value_at = layout.symbol_fields
    for symbol in _records(layout.symbol, image, offset, size // entsize, entsize):
        if symbol[info_at] & 0xF != STT_FUNC or symbol[shndx_at] == SHN_UNDEF:
            continue
        name = _c_string(image, strings_offset + symbol[name_at], strings_end)
        if name in present and name not in found:
            found[name] = symbol[value_at]
            if len(found) == len(present):
                break
    return found


def symbol_addresses(image: Buffer, names: Iterable[str]) -> dict[str, int]:
    """The virtual addresses of the defined functions among `names`, from .dynsym then .symtab,
    walking each symbol table once whatever the number of names. Names not found are left out."""
    layout = _layout(image)
    sections = _section_headers(image, layout)
    tables = [section for kind in (SHT_DYNSYM, SHT_SYMTAB) for section in sections
              if section[1] == kind and section[9] and section[6] < len(sections)]  # type, entsize, link
    missing = {name.encode() for name in names}
    found: dict[bytes, int] = {}
    for table in tables:
        if not missing:
            break
        found |= _table_functions(image, layout, table, sections[table[6]], missing)
        missing -= found.keys()
    return {name.decode(): address for name, address in found.items()}


def symbol_address(image: Buffer, name: str) -> int | None:
    """The virtual address of the defined function `name`, from .dynsym then .symtab; None if absent."""
    return symbol_addresses(image, (name,)).get(name)


def _load_segments(image: Buffer, layout: _Layout) -> list[tuple[int, int, int]]:
    """(p_vaddr, p_filesz, p_offset) of every PT_LOAD program header."""
    header = _unpack(layout.header, image, 24)
    phoff, phentsize, phnum = header[1], header[5], header[6]
    type_at, offset_at, vaddr_at, filesz_at = layout.program_fields
    return [(h[vaddr_at], h[filesz_at], h[offset_at]) for h in _records(layout.program, image, phoff, phnum, phentsize)
            if h[type_at] == PT_LOAD]


def _file_offset(segments: list[tuple[int, int, int]], address: int) -> int | None:
    for vaddr, filesz, offset in segments:
        if vaddr <= address < vaddr + filesz:
            return address - vaddr + offset
    return None


def address_to_offset(image: Buffer, address: int) -> int | None:
    """The file offset of a virtual address, through the PT_LOAD segment that maps it."""
    return _file_offset(_load_segments(image, _layout(image)), address)


def symbol_file_offsets(image: Buffer, names: Iterable[str]) -> dict[str, int]:
    """Where to put uprobes on the functions `names`: the file offset of each one the file defines
    (one pass over its symbol tables). Names without a function, or without an offset, are left out."""
    addresses = symbol_addresses(image, names)
    segments = _load_segments(image, _layout(image))
    offsets = {name: _file_offset(segments, address) for name, address in addresses.items()}
    return {name: offset for name, offset in offsets.items() if offset is not None}


def symbol_file_offset(image: Buffer, name: str) -> int | None:
    """Where to put a uprobe on function `name`: its file offset, or None if the file has no such function."""
    return symbol_file_offsets(image, (name,)).get(name)
