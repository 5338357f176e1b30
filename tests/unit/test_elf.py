"""The file offset of a function, from ELF images built byte by byte and from the real bash."""

from __future__ import annotations

import mmap
import shutil
import subprocess
from pathlib import Path

import pytest

from exporter.collectors import elf
from exporter.collectors.elf import (
    ElfError,
    address_to_offset,
    symbol_address,
    symbol_file_offset,
    symbol_file_offsets,
)
from tests.unit.elf_fixture import (
    ET_DYN,
    LIBRARY_SEGMENTS,
    SEGMENT_OFFSET,
    SEGMENT_SIZE,
    SEGMENT_VADDR,
    STT_FUNC,
    STT_OBJECT,
    build_elf,
    function,
)

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


def test_several_functions_at_once_dynsym_first_and_the_missing_left_out() -> None:
    image = build_elf({
        ".dynsym": [function("SSL_write", SEGMENT_VADDR + 0x100), ("SSL_read", STT_FUNC, 0, 0)],
        ".symtab": [function("SSL_write", SEGMENT_VADDR + 0x900), function("SSL_read", SEGMENT_VADDR + 0x200)],
    })
    offsets = symbol_file_offsets(image, ["SSL_write", "SSL_read", "SSL_write_ex"])
    assert offsets == {"SSL_write": SEGMENT_OFFSET + 0x100, "SSL_read": SEGMENT_OFFSET + 0x200}
    assert symbol_file_offsets(image, []) == {}


@pytest.mark.parametrize("bits,endian", [(64, "<"), (32, ">")])
def test_a_shared_library_gives_file_offsets_not_addresses(bits: int, endian: str) -> None:
    image = build_elf({".dynsym": [function("early", 0x40), function("late", 0x2040)]}, bits, endian,
                      LIBRARY_SEGMENTS, ET_DYN)
    assert symbol_file_offsets(image, ("early", "late")) == {"early": 0x40, "late": 0x1040}


def test_one_walk_of_the_symbol_table_for_every_name(monkeypatch: pytest.MonkeyPatch) -> None:
    names = [f"SSL_f{index}" for index in range(100)]
    image = build_elf({".dynsym": [function(name, SEGMENT_VADDR + index) for index, name in enumerate(names)]})
    decoded: list[int] = []
    real = elf._c_string

    def counting(image: elf.Buffer, offset: int, end: int) -> bytes:
        decoded.append(offset)
        return real(image, offset, end)

    monkeypatch.setattr(elf, "_c_string", counting)
    assert len(symbol_file_offsets(image, names[::-1])) == 100
    assert len(decoded) == 100
    decoded.clear()
    assert symbol_file_offsets(image, ["SSL_write"]) == {}
    assert decoded == []  # not in the string table: the table is not walked


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
