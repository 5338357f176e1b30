"""The file offset of a function, from ELF images built here byte by byte and from the real bash."""

from __future__ import annotations

import mmap
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from exporter.collectors.bash_elf import ElfError, address_to_offset, symbol_address, symbol_file_offset

STT_OBJECT, STT_FUNC = 1, 2
STB_GLOBAL = 1
SEGMENT_OFFSET, SEGMENT_VADDR, SEGMENT_SIZE = 0x1000, 0x401000, 0x2000

Symbol = tuple[str, int, int, int]  # name, type, section index (0: undefined), value


def build_elf(symbols: dict[str, list[Symbol]], bits: int = 64, endian: str = "<") -> bytes:
    """An ELF image with one PT_LOAD segment and a symbol table per entry of `symbols`
    (".dynsym" or ".symtab"), each with its own string table."""
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
    header = ident + struct.pack(e + "HHI" + word * 3 + "IHHHHHH", 3, 62, 1, 0, phoff, shoff, 0, ehsize,
                                 phentsize, 1, shentsize, len(sections), shstrndx)
    if wide:
        program = struct.pack(e + "IIQQQQQQ", 1, 5, SEGMENT_OFFSET, SEGMENT_VADDR, SEGMENT_VADDR,
                              SEGMENT_SIZE, SEGMENT_SIZE, 0x1000)
    else:
        program = struct.pack(e + "IIIIIIII", 1, SEGMENT_OFFSET, SEGMENT_VADDR, SEGMENT_VADDR,
                              SEGMENT_SIZE, SEGMENT_SIZE, 5, 0x1000)
    image = bytearray(header + program).ljust(0x2000, b"\0") + body
    for name_offset, kind, offset, size, link, entsize in sections:
        if wide:
            image += struct.pack(e + "IIQQQQIIQQ", name_offset, kind, 0, 0, offset, size, link, 0, 8, entsize)
        else:
            image += struct.pack(e + "IIIIIIIIII", name_offset, kind, 0, 0, offset, size, link, 0, 4, entsize)
    return bytes(image)


READLINE = ("readline", STT_FUNC, 1, SEGMENT_VADDR + 0x234)


@pytest.mark.parametrize("bits,endian", [(64, "<"), (64, ">"), (32, "<"), (32, ">")])
def test_offset_of_a_dynamic_function_in_every_elf_class_and_byte_order(bits: int, endian: str) -> None:
    image = build_elf({".dynsym": [("other", STT_FUNC, 1, SEGMENT_VADDR + 0x10), READLINE]}, bits, endian)
    assert symbol_address(image, "readline") == SEGMENT_VADDR + 0x234
    assert symbol_file_offset(image, "readline") == SEGMENT_OFFSET + 0x234


def test_symtab_is_used_when_dynsym_lacks_the_function() -> None:
    image = build_elf({".dynsym": [("other", STT_FUNC, 1, SEGMENT_VADDR)], ".symtab": [READLINE]})
    assert symbol_file_offset(image, "readline") == SEGMENT_OFFSET + 0x234


def test_undefined_and_non_function_symbols_do_not_count() -> None:
    imported = ("readline", STT_FUNC, 0, 0)  # bash linked against libreadline.so
    variable = ("readline", STT_OBJECT, 1, SEGMENT_VADDR + 0x40)
    assert symbol_file_offset(build_elf({".dynsym": [imported, variable]}), "readline") is None


def test_a_name_is_matched_whole() -> None:
    image = build_elf({".dynsym": [("readline_internal", STT_FUNC, 1, SEGMENT_VADDR), ("readlin", STT_FUNC, 1, 5)]})
    assert symbol_file_offset(image, "readline") is None


def test_an_address_outside_every_segment_has_no_offset() -> None:
    image = build_elf({".dynsym": [("readline", STT_FUNC, 1, SEGMENT_VADDR + SEGMENT_SIZE)]})
    assert symbol_address(image, "readline") == SEGMENT_VADDR + SEGMENT_SIZE
    assert symbol_file_offset(image, "readline") is None
    assert address_to_offset(image, SEGMENT_VADDR) == SEGMENT_OFFSET


@pytest.mark.parametrize("image,message", [
    (b"", "not an ELF file"),
    (b"#!/bin/sh\necho hi\n", "not an ELF file"),
    (b"\x7fELF\x03\x01" + b"\0" * 58, "unknown ELF class"),
    (b"\x7fELF\x02\x01\x01" + b"\0" * 9 + b"\0" * 10, "truncated ELF file"),
])
def test_what_is_not_an_elf_file_says_so(image: bytes, message: str) -> None:
    with pytest.raises(ElfError, match=message):
        symbol_file_offset(image, "readline")


def test_section_headers_past_the_end_are_an_error() -> None:
    image = build_elf({".dynsym": [READLINE]})
    with pytest.raises(ElfError, match="truncated"):
        symbol_file_offset(image[: len(image) - 10], "readline")


BASH = Path("/usr/bin/bash")


@pytest.mark.skipif(not BASH.exists() or shutil.which("readelf") is None, reason="needs /usr/bin/bash and readelf")
def test_the_real_bash_agrees_with_readelf() -> None:
    symbols = subprocess.run(["readelf", "-Ws", "--dyn-syms", str(BASH)], capture_output=True, text=True,
                             check=True).stdout
    values = {int(fields[1], 16) for line in symbols.splitlines()
              if len(fields := line.split()) >= 8 and fields[7] == "readline" and fields[3] == "FUNC"}
    with BASH.open("rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as image:
        assert symbol_address(image, "readline") in values
        offset = symbol_file_offset(image, "readline")
    segments = subprocess.run(["readelf", "-lW", str(BASH)], capture_output=True, text=True, check=True).stdout
    address = values.pop()
    for line in segments.splitlines():
        fields = line.split()
        if fields[:1] == ["LOAD"]:
            file_offset, vaddr, filesz = int(fields[1], 16), int(fields[2], 16), int(fields[4], 16)
            if vaddr <= address < vaddr + filesz:
                assert offset == address - vaddr + file_offset
                return
    pytest.fail("readelf shows no segment holding readline")
