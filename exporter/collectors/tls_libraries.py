"""Which files hold a TLS library's functions, for the TLS uprobes: the host's libssl, each libssl or
statically linked executable that running processes map, and Go executables using crypto/tls
(exporter/collectors/go_tls.py).

A process's candidates come from /proc/<pid>/maps: its executable mappings of a file named libssl.so*,
and of its main executable. Each maps line carries the device and inode of the mapped file, the inode
a uprobe attaches to (overlayfs's real one), so a file seen before costs no system call.

The kernel writes a process's maps out at each read, a line per mapping, so a partial scan reads only
the processes that no scan has read: a process is its pid and its start time, since pids are reused. A
full scan reads them all again, for the libraries that a process loads long after it starts (Python's
`import ssl`)."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from exporter.collectors.elf import Buffer, ElfError
from exporter.collectors.go_tls import GoTls, go_tls
from exporter.collectors.process_files import FileKey, display_name, file_key, function_offsets
from exporter.collectors.x86_calls import first_call, starts_with_push

OPENSSL_FUNCTIONS = ("SSL_write", "SSL_read", "SSL_write_ex", "SSL_read_ex")
REQUIRED_FUNCTIONS = ("SSL_write", "SSL_read")  # the _ex ones came with OpenSSL 1.1.1
INTERNAL_FUNCTIONS = ("ssl_write_internal", "ssl_read_internal")  # what they call (probe_points)
HOST_DIRS = ("/usr/lib/x86_64-linux-gnu", "/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu",
             "/lib/aarch64-linux-gnu", "/usr/lib64", "/lib64", "/usr/lib", "/lib", "/usr/local/lib64",
             "/usr/local/lib")
HOST_PATHS = tuple(f"{d}/{name}" for d in HOST_DIRS for name in ("libssl.so.3", "libssl.so.1.1"))
OPENSSL, GO = "openssl", "go"  # the kinds of library (L7.Tls.Libraries)
GO_READ, GO_WRITE = "go_read", "go_write"  # crypto/tls.(*Conn).Read and Write
GO_HANDSHAKE = "go_handshake"  # + a number: the client's and the server's handshake
MAX_IGNORED = 4096  # files without a library's functions remembered; the oldest is forgotten first
MAX_LIBRARIES = 256  # files returned at most over a finder's life
MAX_EXECUTABLES_PER_SCAN = 32  # main executables read per scan; the others wait for the next one


@dataclass(frozen=True)
class Library:
    key: FileKey
    path: str  # opens the file from here, for reading it and for attaching the uprobes
    display: str  # what logs and metrics call it: its path, seen from the host where possible
    offsets: Mapping[str, int] = field(hash=False)  # file offset of each function to probe (probe_points)
    kind: str = OPENSSL
    # Go's: the file offsets of each function's RET instructions, probed instead of its return
    returns: Mapping[str, tuple[int, ...]] = field(default_factory=lambda: MappingProxyType({}), hash=False)


@dataclass(frozen=True)
class MappedFile:
    """An executable file mapping of one /proc/<pid>/maps line."""

    key: FileKey
    path: str  # as the process sees it, " (deleted)" included
    addresses: str  # "start-end": its entry in /proc/<pid>/map_files


def is_libssl(path: str) -> bool:
    """OpenSSL's libssl.so, libssl.so.3, libssl.so.1.1...; not NSS's libssl3.so, which has no SSL_write."""
    name = os.path.basename(path.removesuffix(" (deleted)"))
    return name == "libssl.so" or name.startswith("libssl.so.")


def parse_maps_line(line: str) -> MappedFile | None:
    """The file an executable mapping maps; None for other mappings."""
    fields = line.split(maxsplit=5)
    if len(fields) < 6 or fields[1][2:3] != "x" or not fields[5].startswith("/"):
        return None
    addresses, _perms, _offset, device, inode, path = fields
    major, _, minor = device.partition(":")
    try:
        key = os.makedev(int(major, 16), int(minor, 16)), int(inode)
    except ValueError:
        return None
    return MappedFile(key, path, addresses)


def probe_points(image: Buffer, offsets: dict[str, int]) -> dict[str, int]:
    """Where to probe: the internal functions that SSL_read(_ex) and SSL_write(_ex) call, when all of
    them call the same one and it begins with an instruction the kernel emulates at a uprobe (~1 us a
    call instead of ~10 on a virtual machine; exporter/collectors/x86_calls.py), else the exported
    functions. The internal ones take SSL_read_ex's and SSL_write_ex's arguments. x86-64 only."""
    if not all(name in offsets for name in OPENSSL_FUNCTIONS) or not _is_x86_64(image):
        return offsets
    code = image[0:len(image)]
    points = {}
    for direction in ("read", "write"):
        targets = {first_call(code, offsets[f"SSL_{direction}{ex}"]) for ex in ("", "_ex")}
        target = targets.pop()
        if targets or target is None or not starts_with_push(code, target):
            return offsets
        points[f"ssl_{direction}_internal"] = target
    return points


def _is_x86_64(image: Buffer) -> bool:
    return len(image) > 20 and image[4:6] == b"\x02\x01" and image[18:20] == b"\x3e\x00"  # ELF64, LE, EM_X86_64


def _library(key: FileKey, path: str, display: str, offsets: Mapping[str, int]) -> Library | None:
    if not all(name in offsets for name in REQUIRED_FUNCTIONS) and not all(
            name in offsets for name in INTERNAL_FUNCTIONS):
        return None
    return Library(key, path, display, MappingProxyType(dict(offsets)))


def _go_library(key: FileKey, path: str, display: str, found: GoTls) -> Library:
    handshakes = {f"{GO_HANDSHAKE}{i}": at for i, at in enumerate(found.handshakes)}
    return Library(key, path, display,
                   MappingProxyType({GO_READ: found.read, GO_WRITE: found.write, **handshakes}), GO,
                   MappingProxyType({GO_READ: found.read_returns, GO_WRITE: found.write_returns}))


def host_libraries(paths: Iterable[str] = HOST_PATHS) -> list[Library]:
    """The host's libssl files that define OpenSSL's functions, once per file (links resolved)."""
    found: dict[FileKey, Library | None] = {}
    for path in paths:
        real = os.path.realpath(path)
        try:
            if file_key(real) in found:
                continue
            key, offsets = function_offsets(real, OPENSSL_FUNCTIONS, probe_points)
        except (OSError, ElfError):
            continue
        found[key] = _library(key, real, real, offsets)
    return [library for library in found.values() if library is not None]


def _pids(proc: Path) -> list[str]:
    try:
        return [entry.name for entry in os.scandir(proc) if entry.name.isdigit()]
    except OSError:
        return []


def parse_start_time(stat: bytes) -> int | None:
    """A process's start time, in clock ticks after boot: field 22 of /proc/<pid>/stat. The fields are
    counted after the last ')', since the command name (field 2) may hold spaces and parentheses."""
    _, paren, fields = stat.rpartition(b")")
    try:
        return int(fields.split()[19]) if paren else None  # split()[0] is field 3, the state
    except (IndexError, ValueError):
        return None


def _start_time(process_dir: Path) -> int | None:
    """None if the process is gone."""
    try:
        fd = os.open(process_dir / "stat", os.O_RDONLY)  # half the cost of open(): a partial scan's main one
        try:
            return parse_start_time(os.read(fd, 4096))  # a stat line is a few hundred bytes
        finally:
            os.close(fd)
    except OSError:
        return None


def _candidates(process_dir: Path) -> Iterator[tuple[MappedFile, bool]]:
    """The libssl files a process maps and its main executable, each with whether it is the latter.
    OSError if the process is gone."""
    with open(process_dir / "maps", "rb") as f:
        text = os.fsdecode(f.read())
    try:
        exe: str | None = os.readlink(process_dir / "exe")
    except OSError:  # a kernel thread, or gone
        exe = None
    for line in text.splitlines():
        # Substring tests first: a process maps hundreds of files, and few of them matter.
        wanted = "libssl.so" in line or (exe is not None and line.endswith(exe))
        if wanted and (mapped := parse_maps_line(line)):
            executable = mapped.path == exe
            if executable or is_libssl(mapped.path):
                yield mapped, executable


class LibraryFinder:
    """Finds the files holding the functions of the libraries of `kinds` that processes map, each
    file once. A Go executable that also links OpenSSL statically is taken as Go's."""

    def __init__(self, known: Iterable[FileKey] = (), max_ignored: int = MAX_IGNORED,
                 max_executables: int = MAX_EXECUTABLES_PER_SCAN, kinds: frozenset[str] = frozenset({OPENSSL})) -> None:
        self._kinds = kinds
        self._libraries: set[FileKey] = set(known)  # returned, or known to the caller (host_libraries)
        self._ignored: dict[FileKey, None] = {}  # read, and without the functions: oldest first
        self._max_ignored = max_ignored
        self._max_executables = max_executables
        self._started: dict[str, int] = {}  # pid -> start time, of the processes whose files are settled

    def seen(self, key: FileKey) -> bool:
        return key in self._libraries or key in self._ignored

    def scan(self, proc: Path = Path("/proc"), full: bool = True) -> list[Library]:
        """The files no earlier scan returned, among those of every process if full, else among those
        of the processes that no scan has read, or whose files wait for a later scan. A file that could
        not be read (its process exited...) is tried again at a later scan; one without the functions is
        not read again."""
        found: list[Library] = []
        tried: set[FileKey] = set()
        executables = 0
        pids = _pids(proc)
        self._forget_exited(pids)
        for pid in pids:
            process_dir = proc / pid
            if (unread := self._unread(pid, process_dir, full)) is None:
                continue
            started, candidates = unread
            for mapped, executable in candidates:
                if len(self._libraries) >= MAX_LIBRARIES:
                    return found
                if mapped.key in tried or (executable and executables >= self._max_executables):
                    continue
                tried.add(mapped.key)
                executables += 1 if executable else 0
                if (library := self._inspect(process_dir, mapped, executable)) is not None:
                    found.append(library)
            # Not remembered while one of its files waits for a later scan: partial scans read it again.
            if all(self.seen(mapped.key) for mapped, _ in candidates):
                self._started[pid] = started
        return found

    def _forget_exited(self, pids: list[str]) -> None:
        live = set(pids)
        self._started = {pid: started for pid, started in self._started.items() if pid in live}

    def _unread(self, pid: str, process_dir: Path, full: bool) -> tuple[int, list[tuple[MappedFile, bool]]] | None:
        """The start time of a process this scan reads and its candidates not seen yet; None if the scan
        skips the process, or if it is gone. The process is forgotten until its files are settled."""
        # The start time is read before the maps: a pid reused in between is read again at the next scan.
        started = _start_time(process_dir)
        if started is None or (not full and self._started.get(pid) == started):
            return None
        self._started.pop(pid, None)
        try:
            return started, [(mapped, executable) for mapped, executable in _candidates(process_dir)
                             if not self.seen(mapped.key) and (executable or OPENSSL in self._kinds)]
        except OSError:
            return None

    def _inspect(self, process_dir: Path, mapped: MappedFile, executable: bool) -> Library | None:
        display = display_name(mapped.path, mapped.key, process_dir)
        if executable:
            path = str(process_dir / "exe")  # opens the very file, whatever the mount namespace
        elif mapped.path.endswith(" (deleted)"):  # replaced by an upgrade while mapped
            path = str(process_dir / "map_files" / mapped.addresses)
        else:
            path = display
        go: list[GoTls] = []  # read from the bytes function_offsets maps, so that the file is opened once

        def refine(image: Buffer, offsets: dict[str, int]) -> dict[str, int]:
            if executable and GO in self._kinds and (found := go_tls(image)) is not None:
                go.append(found)
            return probe_points(image, offsets)

        names = OPENSSL_FUNCTIONS if OPENSSL in self._kinds else ()
        try:
            opened_key, offsets = function_offsets(path, names, refine)
        except ElfError:
            opened_key, offsets = mapped.key, {}
        except OSError:
            return None
        # stat's key differs from the maps line's on btrfs and overlayfs: the file may be a known one.
        if self.seen(opened_key):
            library = None
        elif go:
            library = _go_library(mapped.key, path, display, go[0])
        else:
            library = _library(mapped.key, path, display, offsets)
        self._remember(mapped.key, library is not None)
        self._remember(opened_key, library is not None)
        return library

    def _remember(self, key: FileKey, is_library: bool) -> None:
        if is_library:
            self._libraries.add(key)
            return
        self._ignored[key] = None
        if len(self._ignored) > self._max_ignored:
            del self._ignored[next(iter(self._ignored))]
