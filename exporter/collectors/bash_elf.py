"""Where a function starts in an ELF file: its symbol's address turned into a file offset.

A uprobe is placed at a file offset. The offset is found from the symbol tables (.dynsym, then
.symtab) and the PT_LOAD program header that maps the symbol's address. Pure functions over bytes:
32- and 64-bit, little- and big-endian."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

SHT_SYMTAB, SHT_DYNSYM = 2, 11
PT_LOAD = 1
STT_FUNC = 2
SHN_UNDEF = 0


class Buffer(Protocol):
    """bytes, memoryview or mmap: anything struct.unpack_from and slicing accept."""

    def __len__(self) -> int: ...
    def __getitem__(self, index: slice, /) -> bytes: ...


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


def symbol_address(image: Buffer, name: str) -> int | None:
    """The virtual address of the defined function `name`, from .dynsym then .symtab; None if absent."""
    layout = _layout(image)
    _entry, _phoff, shoff, _flags, _ehsize, _phentsize, _phnum, shentsize, shnum, _shstrndx = _unpack(
        layout.header, image, 24)
    sections = list(_records(layout.section, image, shoff, shnum, shentsize))
    wanted = name.encode()
    name_at, info_at, shndx_at, value_at = layout.symbol_fields
    for table_type in (SHT_DYNSYM, SHT_SYMTAB):
        for section in sections:
            _name, kind, _f, _a, offset, size, link, _i, _al, entsize = section
            if kind != table_type or not entsize or link >= len(sections):
                continue
            strings_offset, strings_size = sections[link][4], sections[link][5]
            for symbol in _records(layout.symbol, image, offset, size // entsize, entsize):
                if symbol[info_at] & 0xF != STT_FUNC or symbol[shndx_at] == SHN_UNDEF:
                    continue
                start = strings_offset + symbol[name_at]
                if _c_string(image, start, strings_offset + strings_size) == wanted:
                    return symbol[value_at]
    return None


def address_to_offset(image: Buffer, address: int) -> int | None:
    """The file offset of a virtual address, through the PT_LOAD segment that maps it."""
    layout = _layout(image)
    _entry, phoff, _shoff, _flags, _ehsize, phentsize, phnum, _she, _shn, _shstrndx = _unpack(
        layout.header, image, 24)
    type_at, offset_at, vaddr_at, filesz_at = layout.program_fields
    for header in _records(layout.program, image, phoff, phnum, phentsize):
        vaddr, filesz = header[vaddr_at], header[filesz_at]
        if header[type_at] == PT_LOAD and vaddr <= address < vaddr + filesz:
            return address - vaddr + header[offset_at]
    return None


def symbol_file_offset(image: Buffer, name: str) -> int | None:
    """Where to put a uprobe on function `name`: its file offset, or None if the file has no such function."""
    address = symbol_address(image, name)
    return None if address is None else address_to_offset(image, address)
