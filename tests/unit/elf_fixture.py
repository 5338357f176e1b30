"""ELF images built byte by byte: an executable or a shared library with the symbols a test asks for."""

from __future__ import annotations

import struct
from collections.abc import Sequence

STT_OBJECT, STT_FUNC = 1, 2
STB_GLOBAL = 1
ET_EXEC, ET_DYN = 2, 3
SEGMENT_OFFSET, SEGMENT_VADDR, SEGMENT_SIZE = 0x1000, 0x401000, 0x2000

Symbol = tuple[str, int, int, int]  # name, type, section index (0: undefined), value
Segment = tuple[int, int, int]  # PT_LOAD file offset, virtual address, size
EXECUTABLE_SEGMENTS: tuple[Segment, ...] = ((SEGMENT_OFFSET, SEGMENT_VADDR, SEGMENT_SIZE),)
# A shared library or PIE: loaded at 0, and its second segment's addresses 0x1000 past its file offsets.
LIBRARY_SEGMENTS: tuple[Segment, ...] = ((0, 0, 0x1000), (0x1000, 0x2000, 0x1000))


def function(name: str, address: int) -> Symbol:
    """A global function defined in section 1 at `address`."""
    return name, STT_FUNC, 1, address


def build_elf(symbols: dict[str, list[Symbol]], bits: int = 64, endian: str = "<",
              segments: Sequence[Segment] = EXECUTABLE_SEGMENTS, elf_type: int = ET_EXEC) -> bytes:
    """An ELF image with a PT_LOAD program header per segment and a symbol table per entry of
    `symbols` (".dynsym" or ".symtab"), each with its own string table."""
    e = endian
    wide = bits == 64
    ehsize, phentsize, shentsize = (64, 56, 64) if wide else (52, 32, 40)
    symentsize = 24 if wide else 16
    body = bytearray(b"\0" * 0x40)  # section contents start after the headers' room
    sections = [(0, 0, 0, 0, 0, 0)]  # name offset, type, offset, size, link, entsize
    shstrtab = bytearray(b"\0")

    def add_section(name: str, kind: int, data: bytes, link: int = 0, entsize: int = 0) -> int:
        name_offset = len(shstrtab)
        shstrtab.extend(name.encode() + b"\0")
        offset = 0x2000 + len(body)
        body.extend(data)
        sections.append((name_offset, kind, offset, len(data), link, entsize))
        return len(sections) - 1

    for table, entries in symbols.items():
        strings = bytearray(b"\0")
        packed = bytearray(b"\0" * symentsize)
        for name, kind, shndx, value in entries:
            name_offset = len(strings)
            strings.extend(name.encode() + b"\0")
            info = (STB_GLOBAL << 4) | kind
            if wide:
                packed += struct.pack(e + "IBBHQQ", name_offset, info, 0, shndx, value, 16)
            else:
                packed += struct.pack(e + "IIIBBH", name_offset, value, 16, info, 0, shndx)
        strtab = add_section(".dynstr" if table == ".dynsym" else ".strtab", 3, bytes(strings))
        add_section(table, 11 if table == ".dynsym" else 2, bytes(packed), strtab, symentsize)
    shstrndx = add_section(".shstrtab", 3, bytes(shstrtab))

    phoff = ehsize
    shoff = 0x2000 + len(body)
    ident = b"\x7fELF" + bytes([2 if wide else 1, 1 if e == "<" else 2, 1]) + b"\0" * 9
    word = "Q" if wide else "I"
    header = ident + struct.pack(e + "HHI" + word * 3 + "IHHHHHH", elf_type, 62, 1, 0, phoff, shoff, 0, ehsize,
                                 phentsize, len(segments), shentsize, len(sections), shstrndx)
    program = b"".join(
        struct.pack(e + "IIQQQQQQ", 1, 5, offset, vaddr, vaddr, size, size, 0x1000) if wide
        else struct.pack(e + "IIIIIIII", 1, offset, vaddr, vaddr, size, size, 5, 0x1000)
        for offset, vaddr, size in segments)
    image = bytearray(header + program).ljust(0x2000, b"\0") + body
    for name_offset, kind, offset, size, link, entsize in sections:
        if wide:
            image += struct.pack(e + "IIQQQQIIQQ", name_offset, kind, 0, 0, offset, size, link, 0, 8, entsize)
        else:
            image += struct.pack(e + "IIIIIIIIII", name_offset, kind, 0, 0, offset, size, link, 0, 4, entsize)
    return bytes(image)
