"""Finding the files that hold OpenSSL's functions: ELF images built byte by byte, fake /proc trees,
this process's own maps and the host's real libssl."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from exporter.collectors import tls_libraries
from exporter.collectors.go_tls import go_tls
from exporter.collectors.process_files import FileKey, file_key, function_offsets
from exporter.collectors.tls_libraries import (
    GO_READ,
    GO_WRITE,
    OPENSSL_FUNCTIONS,
    Library,
    LibraryFinder,
    MappedFile,
    host_libraries,
    is_libssl,
    parse_maps_line,
    parse_start_time,
)
from tests.unit.elf_fixture import ET_DYN, LIBRARY_SEGMENTS, SEGMENT_OFFSET, SEGMENT_VADDR, build_elf, function
from tests.unit.test_go_tls import go_programs

# Functions in the second segment of a shared library, whose addresses are 0x1000 past their offsets.
ADDRESSES = {"SSL_write": 0x2100, "SSL_read": 0x2200, "SSL_write_ex": 0x2300, "SSL_read_ex": 0x2400}
OFFSETS = {name: address - 0x1000 for name, address in ADDRESSES.items()}
TWO = ("SSL_write", "SSL_read")


def library(names: tuple[str, ...] = OPENSSL_FUNCTIONS, tables: tuple[str, ...] = (".dynsym", ".symtab")) -> bytes:
    symbols = [function(name, ADDRESSES[name]) for name in names]
    return build_elf({table: symbols for table in tables}, segments=LIBRARY_SEGMENTS, elf_type=ET_DYN)


OPENSSL3 = library()
OPENSSL110 = library(TWO)  # OpenSSL 1.1.0: no _ex functions
STRIPPED = library(tables=(".dynsym",))
STATIC_SERVER = library(TWO, (".symtab",))  # a PIE linking OpenSSL statically, not stripped
NSS = build_elf({".dynsym": [function("SSL_ImportFD", SEGMENT_VADDR)]})
PLAIN = build_elf({".dynsym": [function("main", SEGMENT_VADDR + 0x10)]})


@pytest.mark.parametrize("image,offsets", [
    (OPENSSL3, OFFSETS),
    (OPENSSL110, {name: OFFSETS[name] for name in TWO}),
    (STRIPPED, OFFSETS),
    (STATIC_SERVER, {name: OFFSETS[name] for name in TWO}),
    (build_elf({".dynsym": [function("SSL_write", SEGMENT_VADDR)]}), None),  # SSL_read is required too
    (NSS, None),
    (b"#!/bin/sh\n", None),
])
def test_the_offsets_of_a_library(tmp_path: Path, image: bytes, offsets: dict[str, int] | None) -> None:
    (tmp_path / "libssl.so.3").write_bytes(image)
    found = host_libraries([str(tmp_path / "libssl.so.3")])
    assert [dict(lib.offsets) for lib in found] == ([] if offsets is None else [offsets])


def test_host_paths_that_are_one_file_give_one_library(tmp_path: Path) -> None:
    (tmp_path / "usr" / "lib").mkdir(parents=True)
    real = tmp_path / "usr" / "lib" / "libssl.so.3"
    real.write_bytes(OPENSSL3)
    os.symlink("usr/lib", tmp_path / "lib")  # merged /usr
    found = host_libraries([str(tmp_path / "lib" / "libssl.so.3"), str(real), str(tmp_path / "missing")])
    assert found == [Library(file_key(real), str(real), str(real), OFFSETS)]


@pytest.mark.parametrize("path,expected", [
    ("/usr/lib/x86_64-linux-gnu/libssl.so.3", True), ("/lib64/libssl.so.1.1", True), ("/opt/libssl.so", True),
    ("/usr/lib/libssl.so.3 (deleted)", True), ("/usr/lib/x86_64-linux-gnu/libssl3.so", False),
    ("/usr/lib/libssl.so3", False), ("/usr/lib/libcrypto.so.3", False), ("/libssl.so.3/libc.so.6", False),
])
def test_is_libssl(path: str, expected: bool) -> None:
    assert is_libssl(path) is expected


@pytest.mark.parametrize("line,expected", [
    ("7f3a1c000000-7f3a1c05d000 r-xp 00026000 fe:00 339380                     /usr/lib/libssl.so.3",
     MappedFile((os.makedev(0xFE, 0), 339380), "/usr/lib/libssl.so.3", "7f3a1c000000-7f3a1c05d000")),
    ("55d0c000-55d0d000 --xp 00001000 103:1a 12 /opt/my app/libssl.so.3 (deleted)",  # execute-only, nvme
     MappedFile((os.makedev(0x103, 0x1A), 12), "/opt/my app/libssl.so.3 (deleted)", "55d0c000-55d0d000")),
    ("7f3a1c000000-7f3a1c05d000 r--p 00000000 fe:00 339380                     /usr/lib/libssl.so.3", None),
    ("7ffd4e5f6000-7ffd4e5f8000 r-xp 00000000 00:00 0                          [vdso]", None),
    ("7f3a1c000000-7f3a1c05d000 rw-p 00000000 00:00 0 ", None),
    ("7f3a1c000000-7f3a1c05d000 r-xp 00000000 zz:00 1 /x", None),
])
def test_parse_maps_line(line: str, expected: MappedFile | None) -> None:
    assert parse_maps_line(line) == expected


def test_the_key_of_a_maps_line_is_the_key_stat_gives() -> None:
    """Device major:minor in hex, and inode, as os.stat gives them for files on this machine."""
    with open("/proc/self/maps") as f:
        mapped = [m for line in f if (m := parse_maps_line(line.rstrip("\n"))) and not m.path.endswith(")")]
    assert mapped, "this process maps no executable file"
    for m in mapped:
        assert m.key == file_key(m.path), m.path


def maps_line(start: int, perms: str, path: str, key: FileKey) -> str:
    dev, ino = key
    return f"{start:012x}-{start + 0x1000:012x} {perms} 00001000 {os.major(dev):02x}:{os.minor(dev):02x} {ino}  {path}"


def stat_text(pid: int, comm: str, started: int) -> str:
    """A /proc/<pid>/stat line: the start time is field 22, after the command name in parentheses."""
    fields_3_to_21 = f"S 1 {pid} {pid} 0 -1 4194560 120 0 0 0 3 1 0 0 20 0 1 0"
    return f"{pid} ({comm}) {fields_3_to_21} {started} 10485760 300 18446744073709551615 1 1 0 0 0 0 0 0 0 17 1\n"


class FakeProc:
    """A /proc tree: processes with maps, exe and root, and the files they map, under tmp_path."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp = tmp_path
        self.proc = tmp_path / "proc"
        self.proc.mkdir()

    def file(self, path: str, image: bytes) -> Path:
        full = self.tmp / path
        full.parent.mkdir(parents=True, exist_ok=True)
        full.write_bytes(image)
        return full

    def process(self, pid: int, exe: Path, root: Path, maps: list[tuple[str, str, Path]], started: int = 1000,
                comm: str = "app") -> Path:
        """maps: (perms, path as the process sees it, the file it is) per line; exe is mapped first."""
        base = self.proc / str(pid)
        base.mkdir()
        (base / "stat").write_text(stat_text(pid, comm, started))
        os.symlink(exe, base / "exe")
        os.symlink(root, base / "root")
        lines = [maps_line(0x400000, "r-xp", str(exe), file_key(exe))]
        lines += [maps_line(0x7F0000000000 + i * 0x10000, perms, path, file_key(real))
                  for i, (perms, path, real) in enumerate(maps)]
        lines.append(maps_line(0x7FFD00000000, "r-xp", "[vdso]", (0, 0)))
        (base / "maps").write_text("\n".join(lines) + "\n")
        return base


@pytest.fixture
def fake(tmp_path: Path) -> FakeProc:
    fake = FakeProc(tmp_path)
    host, container = tmp_path / "host", tmp_path / "container"
    ssl3 = fake.file("host/usr/lib/x86_64-linux-gnu/libssl.so.3", OPENSSL3)
    nss = fake.file("host/usr/lib/x86_64-linux-gnu/libssl3.so", OPENSSL3)  # named like NSS's: not looked at
    curl = fake.file("host/usr/bin/curl", PLAIN)
    fake.process(100, curl, host, [("r--p", str(ssl3), ssl3), ("r-xp", str(ssl3), ssl3), ("r-xp", str(nss), nss)])
    fake.process(101, curl, host, [("r-xp", str(ssl3), ssl3)])  # the same files: read once
    fake.process(102, fake.file("host/usr/bin/server", STATIC_SERVER), host, [])
    ssl110 = fake.file("container/usr/lib/libssl.so.1.1", OPENSSL110)
    fake.process(200, fake.file("container/usr/bin/app", PLAIN), container,
                 [("r-xp", "/usr/lib/libssl.so.1.1", ssl110)])
    old = fake.file("old/libssl.so.3", STRIPPED)  # the file an upgrade replaced, still mapped
    deleted = fake.process(300, curl, host, [("r-xp", "/opt/app/libssl.so.3 (deleted)", old)])
    (deleted / "map_files").mkdir()
    os.symlink(old, deleted / "map_files" / "7f0000000000-7f0000001000")
    unmapped = fake.file("host/opt/other/libssl.so.1.1", OPENSSL110)
    fake.process(400, curl, host, [("r--p", str(unmapped), unmapped)])  # not executable: not a candidate
    (fake.proc / "500").mkdir()  # exited between the listing and the read: no maps
    (fake.proc / "uptime").write_text("1 1")
    return fake


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The paths of the files the finder reads."""
    paths: list[str] = []
    real = tls_libraries.function_offsets

    def spy(path: str, names: tuple[str, ...], *refine: Any) -> tuple[FileKey, dict[str, int]]:
        paths.append(path)
        return real(path, names, *refine)

    monkeypatch.setattr(tls_libraries, "function_offsets", spy)
    return paths


def test_every_library_is_found_once_and_the_others_are_not_read_again(fake: FakeProc, reads: list[str]) -> None:
    tmp, proc = fake.tmp, fake.proc
    ssl3 = tmp / "host/usr/lib/x86_64-linux-gnu/libssl.so.3"
    two = {name: OFFSETS[name] for name in TWO}
    found = {lib.display: lib for lib in LibraryFinder().scan(proc)}
    assert found == {
        str(ssl3): Library(file_key(ssl3), str(ssl3), str(ssl3), OFFSETS),
        str(tmp / "host/usr/bin/server"): Library(file_key(tmp / "host/usr/bin/server"), f"{proc}/102/exe",
                                                  str(tmp / "host/usr/bin/server"), two),
        f"{proc}/200/root/usr/lib/libssl.so.1.1": Library(
            file_key(tmp / "container/usr/lib/libssl.so.1.1"), f"{proc}/200/root/usr/lib/libssl.so.1.1",
            f"{proc}/200/root/usr/lib/libssl.so.1.1", two),
        f"{proc}/300/root/opt/app/libssl.so.3 (deleted)": Library(
            file_key(tmp / "old/libssl.so.3"), f"{proc}/300/map_files/7f0000000000-7f0000001000",
            f"{proc}/300/root/opt/app/libssl.so.3 (deleted)", OFFSETS),
    }
    files = ["host/usr/lib/x86_64-linux-gnu/libssl.so.3", "host/usr/bin/curl", "host/usr/bin/server",
             "container/usr/bin/app", "container/usr/lib/libssl.so.1.1", "old/libssl.so.3"]
    assert sorted(os.path.realpath(path) for path in reads) == sorted(str(tmp / file) for file in files)


def test_a_second_scan_reads_nothing_and_finds_only_new_files(fake: FakeProc, reads: list[str]) -> None:
    finder = LibraryFinder()
    assert len(finder.scan(fake.proc)) == 4
    reads.clear()
    assert finder.scan(fake.proc) == []
    assert reads == []  # curl and app, without the functions, are not read again
    ssl = fake.file("new/libssl.so.3", OPENSSL3)
    fake.process(600, fake.tmp / "host/usr/bin/curl", fake.tmp / "host", [("r-xp", str(ssl), ssl)])
    assert [lib.path for lib in finder.scan(fake.proc)] == [str(ssl)]
    assert reads == [str(ssl)]


@pytest.mark.parametrize("stat,expected", [
    (stat_text(42, "bash", 5678), 5678),
    (stat_text(42, "my app) (x 1 2 3", 5678), 5678),  # what a program may name itself
    (stat_text(42, "", 5678), 5678),
    (stat_text(42, "bash", 5678)[:40], None),  # cut short
    ("42 bash S 1", None),
    ("", None),
])
def test_parse_start_time(stat: str, expected: int | None) -> None:
    assert parse_start_time(stat.encode()) == expected


def test_the_start_time_of_this_process() -> None:
    """Field 22 of /proc/self/stat, in clock ticks after boot: before now, after boot."""
    started = parse_start_time(Path("/proc/self/stat").read_bytes())
    with open("/proc/uptime") as f:
        uptime = float(f.read().split()[0])
    assert started is not None and 0 <= started <= uptime * os.sysconf("SC_CLK_TCK") + 1


def add_libssl(fake: FakeProc, pid: int, name: str) -> Path:
    """A libssl file that a process of the fixture maps from now on; its path."""
    ssl = fake.file(f"late/{name}/libssl.so.3", OPENSSL3)
    with (fake.proc / str(pid) / "maps").open("a") as f:
        f.write(maps_line(0x7E0000000000, "r-xp", str(ssl), file_key(ssl)) + "\n")
    return ssl


@pytest.fixture
def maps_read(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The pids whose maps the finder reads."""
    pids: list[str] = []
    real = tls_libraries._candidates

    def spy(process_dir: Path) -> Iterator[tuple[MappedFile, bool]]:
        pids.append(process_dir.name)
        return real(process_dir)

    monkeypatch.setattr(tls_libraries, "_candidates", spy)
    return pids


def test_a_partial_scan_reads_only_the_maps_of_new_processes(fake: FakeProc, maps_read: list[str]) -> None:
    finder = LibraryFinder()
    assert len(finder.scan(fake.proc, full=False)) == 4
    assert sorted(maps_read) == ["100", "101", "102", "200", "300", "400"]  # 500 has exited
    maps_read.clear()
    late = add_libssl(fake, 101, "late")  # loaded long after the process started: import ssl
    assert finder.scan(fake.proc, full=False) == []
    assert maps_read == []
    curl, host = fake.tmp / "host/usr/bin/curl", fake.tmp / "host"
    new = fake.file("new/libssl.so.3", OPENSSL3)
    fake.process(600, curl, host, [("r-xp", str(new), new)])
    assert [lib.path for lib in finder.scan(fake.proc, full=False)] == [str(new)]
    assert maps_read == ["600"]
    assert [lib.path for lib in finder.scan(fake.proc, full=True)] == [str(late)]


def test_a_reused_pid_is_read_again(fake: FakeProc) -> None:
    finder = LibraryFinder()
    finder.scan(fake.proc)
    shutil.rmtree(fake.proc / "101")
    ssl = fake.file("reused/libssl.so.3", OPENSSL3)
    fake.process(101, fake.tmp / "host/usr/bin/curl", fake.tmp / "host", [("r-xp", str(ssl), ssl)], started=2000,
                 comm="a) (b c")
    assert [lib.path for lib in finder.scan(fake.proc, full=False)] == [str(ssl)]
    add_libssl(fake, 101, "same-process")
    assert finder.scan(fake.proc, full=False) == []  # the same start time: the process was read


def test_a_process_that_exited_is_forgotten(fake: FakeProc) -> None:
    """Seen only through a pid that comes back with the same start time, which a real /proc never shows."""
    finder = LibraryFinder()
    finder.scan(fake.proc)
    maps = (fake.proc / "101" / "maps").read_text()
    shutil.rmtree(fake.proc / "101")
    assert finder.scan(fake.proc, full=False) == []
    fake.process(101, fake.tmp / "host/usr/bin/curl", fake.tmp / "host", [])
    (fake.proc / "101" / "maps").write_text(maps)
    ssl = add_libssl(fake, 101, "back")
    assert [lib.path for lib in finder.scan(fake.proc, full=False)] == [str(ssl)]


def test_a_process_whose_maps_could_not_be_read_is_read_again(fake: FakeProc) -> None:
    base = fake.process(700, fake.tmp / "host/usr/bin/curl", fake.tmp / "host", [])
    maps = (base / "maps").read_text()
    (base / "maps").unlink()  # as for a process of another user, when the exporter lacks CAP_SYS_PTRACE
    finder = LibraryFinder()
    finder.scan(fake.proc)
    (base / "maps").write_text(maps)
    ssl = add_libssl(fake, 700, "readable")
    assert [lib.path for lib in finder.scan(fake.proc, full=False)] == [str(ssl)]


def test_known_files_are_not_returned(fake: FakeProc) -> None:
    ssl3 = fake.tmp / "host/usr/lib/x86_64-linux-gnu/libssl.so.3"
    found = LibraryFinder(known=[file_key(ssl3)]).scan(fake.proc)
    assert str(ssl3) not in [lib.path for lib in found] and len(found) == 3


def test_a_known_file_under_another_maps_key_is_not_returned(tmp_path: Path) -> None:
    """btrfs and overlayfs: the maps line's device differs from stat's, yet the file is the host's."""
    fake = FakeProc(tmp_path)
    host = tmp_path / "host"
    ssl3 = fake.file("host/usr/lib/libssl.so.3", OPENSSL3)
    base = fake.process(100, fake.file("host/usr/bin/curl", PLAIN), host, [])
    with (base / "maps").open("a") as f:
        f.write(maps_line(0x7F0000000000, "r-xp", "/usr/lib/libssl.so.3", (os.makedev(0x99, 1), 42)) + "\n")
    finder = LibraryFinder(known=[file_key(ssl3)])
    assert finder.scan(fake.proc) == []
    assert finder.seen((os.makedev(0x99, 1), 42))


def test_a_file_that_cannot_be_read_is_tried_again(tmp_path: Path) -> None:
    fake = FakeProc(tmp_path)
    ssl = fake.file("container/usr/lib/libssl.so.3", OPENSSL3)
    base = fake.process(100, fake.file("host/usr/bin/curl", PLAIN), tmp_path / "gone",
                        [("r-xp", "/usr/lib/libssl.so.3", ssl)])
    finder = LibraryFinder()
    assert finder.scan(fake.proc) == []
    assert not finder.seen(file_key(ssl))
    os.remove(base / "root")
    os.symlink(tmp_path / "container", base / "root")
    assert [lib.key for lib in finder.scan(fake.proc, full=False)] == [file_key(ssl)]


def test_a_file_a_full_scan_could_not_read_is_tried_again_by_partial_scans(tmp_path: Path) -> None:
    fake = FakeProc(tmp_path)
    base = fake.process(100, fake.file("host/usr/bin/curl", PLAIN), tmp_path / "container", [])
    finder = LibraryFinder()
    assert finder.scan(fake.proc) == []
    ssl = fake.file("container/usr/lib/libssl.so.3", OPENSSL3)
    with (base / "maps").open("a") as f:
        f.write(maps_line(0x7F0000000000, "r-xp", "/usr/lib/libssl.so.3", file_key(ssl)) + "\n")
    os.rename(tmp_path / "container", tmp_path / "moved")  # the process's root cannot be reached for now
    assert finder.scan(fake.proc, full=True) == []
    os.rename(tmp_path / "moved", tmp_path / "container")
    assert [lib.key for lib in finder.scan(fake.proc, full=False)] == [file_key(ssl)]


def test_executables_read_per_scan_are_bounded(fake: FakeProc, reads: list[str]) -> None:
    finder = LibraryFinder(max_executables=1)
    scans = [finder.scan(fake.proc, full=False) for _ in range(4)]  # the processes that wait are read again
    executables_read = [path for path in reads if path.endswith("/exe")]
    assert len(executables_read) == 3  # curl, server and app, one per scan
    assert sum(len(found) for found in scans) == 4 and scans[3] == []


def test_the_files_remembered_are_bounded(tmp_path: Path) -> None:
    fake = FakeProc(tmp_path)
    keys = [file_key(fake.file(f"bin/tool{i}", PLAIN)) for i in range(3)]
    for i in range(3):
        fake.process(100 + i, tmp_path / f"bin/tool{i}", tmp_path, [])
    finder = LibraryFinder(max_ignored=2)
    assert finder.scan(fake.proc) == []
    assert sum(finder.seen(key) for key in keys) == 2


def test_a_missing_proc_finds_nothing(tmp_path: Path) -> None:
    assert LibraryFinder().scan(tmp_path / "nothing") == []


def test_the_segment_offset_is_what_a_non_pie_executable_gives(tmp_path: Path) -> None:
    image = build_elf({".symtab": [function(name, SEGMENT_VADDR + 0x40 * i) for i, name in enumerate(TWO)]})
    (tmp_path / "libssl.so").write_bytes(image)
    [found] = host_libraries([str(tmp_path / "libssl.so")])
    assert dict(found.offsets) == {"SSL_write": SEGMENT_OFFSET, "SSL_read": SEGMENT_OFFSET + 0x40}


HOST_LIBSSL = Path("/usr/lib/x86_64-linux-gnu/libssl.so.3")


def readelf(*args: str) -> list[list[str]]:
    out = subprocess.run(["readelf", "-W", *args, str(HOST_LIBSSL)], capture_output=True, text=True, check=True)
    return [line.split() for line in out.stdout.splitlines()]


@pytest.mark.skipif(not HOST_LIBSSL.exists() or shutil.which("readelf") is None, reason="needs libssl.so.3, readelf")
def test_the_real_libssl_agrees_with_readelf() -> None:
    addresses = {f[7].split("@")[0]: int(f[1], 16) for f in readelf("--dyn-syms")
                 if len(f) >= 8 and f[3] == "FUNC" and f[6] != "UND" and f[7].split("@")[0] in OPENSSL_FUNCTIONS}
    segments = [(int(f[1], 16), int(f[2], 16), int(f[4], 16)) for f in readelf("-l") if f[:1] == ["LOAD"]]
    expected = {name: address - vaddr + offset for name, address in addresses.items()
                for offset, vaddr, filesz in segments if vaddr <= address < vaddr + filesz}
    assert set(expected) == set(OPENSSL_FUNCTIONS)
    assert function_offsets(str(HOST_LIBSSL), OPENSSL_FUNCTIONS)[1] == expected
    # the probes go where objdump says SSL_read and SSL_write first call, both for them and their _ex
    calls = {}
    for name in OPENSSL_FUNCTIONS:
        vaddr = addresses[name]
        out = subprocess.run(["objdump", "-d", f"--start-address={vaddr:#x}", f"--stop-address={vaddr + 64:#x}",
                              str(HOST_LIBSSL)], capture_output=True, text=True, check=True).stdout
        target = int(re.search(r"\scall\s+([0-9a-f]+)", out).group(1), 16)  # type: ignore[union-attr]
        calls[name] = next(target - v + o for o, v, size in segments if v <= target < v + size)
    assert calls["SSL_read"] == calls["SSL_read_ex"] and calls["SSL_write"] == calls["SSL_write_ex"]
    [found] = host_libraries([str(HOST_LIBSSL)])
    assert dict(found.offsets) == {"ssl_read_internal": calls["SSL_read"], "ssl_write_internal": calls["SSL_write"]}
    assert found.key == file_key(HOST_LIBSSL)


BOTH = frozenset({"openssl", "go"})


def test_a_go_executable_is_a_go_library(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    fake = FakeProc(tmp_path)
    server = fake.file("host/usr/bin/go-server", go_programs(tmp_path_factory)["stripped"].read_bytes())
    fake.process(100, server, tmp_path / "host", [])
    assert LibraryFinder().scan(fake.proc) == []  # OpenSSL only, as before L7.Tls.Libraries named go
    found = go_tls(server.read_bytes())
    assert found is not None
    assert LibraryFinder(kinds=BOTH).scan(fake.proc) == [Library(
        file_key(server), f"{fake.proc}/100/exe", str(server),
        {GO_READ: found.read, GO_WRITE: found.write,
         **{f"go_handshake{i}": at for i, at in enumerate(found.handshakes)}},
        "go",
        {GO_READ: found.read_returns, GO_WRITE: found.write_returns})]


def test_the_kinds_say_which_files_are_read(fake: FakeProc, reads: list[str]) -> None:
    assert LibraryFinder(kinds=frozenset({"go"})).scan(fake.proc) == []  # no Go executable there
    assert reads and all(path.endswith("/exe") for path in reads)  # libssl files are not looked at
    reads.clear()
    assert len(LibraryFinder(kinds=BOTH).scan(fake.proc)) == 4
    assert any(not path.endswith("/exe") for path in reads)


def test_an_openssl_library_is_of_kind_openssl(fake: FakeProc) -> None:
    found = LibraryFinder(kinds=BOTH).scan(fake.proc)
    assert found and all(lib.kind == "openssl" and not lib.returns for lib in found)
