"""l7 over TLS: uprobes on the TLS libraries' read and write functions (bpf/l7_tls.c).

A uprobe belongs to a file (device and inode), so each library file is attached once, however many
processes map it: the host's libssl at start, then the files that processes map
(exporter/collectors/tls_libraries.py). Every L7.Tls.RescanInterval the processes started since are
looked at; every FULL_SCAN_EVERY intervals all of them, for libraries loaded long after a process
started (Python's `import ssl`). A file that could not be attached is logged once and counted; it
is not tried again."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

from exporter.bpf import AttachResult, BpfObject
from exporter.collectors.tls_libraries import Library, LibraryFinder, host_libraries

log = logging.getLogger(__name__)

# the entry program of each function; one return program per library serves them all: a uretprobe
# for OpenSSL, uprobes on each RET instruction for Go (a uretprobe rewrites a Go stack)
ENTRIES = {"SSL_write": "ssl_write", "SSL_read": "ssl_read", "SSL_write_ex": "ssl_write_ex",
           "SSL_read_ex": "ssl_read_ex", "ssl_write_internal": "ssl_write_ex", "ssl_read_internal": "ssl_read_ex",
           "go_read": "go_tls_read", "go_write": "go_tls_write", "go_handshake0": "go_tls_handshake",
           "go_handshake1": "go_tls_handshake"}
RETURNS = {"openssl": "ssl_return", "go": "go_tls_return"}
PROGRAMS = {"openssl": frozenset({"ssl_write", "ssl_read", "ssl_write_ex", "ssl_read_ex", "ssl_return"}),
            "go": frozenset({"go_tls_read", "go_tls_write", "go_tls_handshake", "go_tls_return"})}
MAX_FILES = 64  # files traced at most; bounds the program label of netobs_program_attached
FULL_SCAN_EVERY = 12  # rescans; reading every process's maps costs ~0.2 ms a process


class TlsTracer:
    """Finds the files holding a TLS library and attaches the uprobes to each, once."""

    def __init__(self, interval: float, kinds: frozenset[str], proc: Path = Path("/proc")) -> None:
        self.interval = interval
        self.kinds = kinds
        self.proc = proc
        self.finder = LibraryFinder(kinds=kinds)
        self.results: list[AttachResult] = []  # one per file: program "tls:<file>"
        self.traced = 0
        self.failures = 0
        self._next_scan = 0.0
        self._scans = 0

    def start(self, obj: BpfObject, now: float) -> None:
        host = host_libraries() if "openssl" in self.kinds else []
        self.finder = LibraryFinder(known=[library.key for library in host], kinds=self.kinds)
        for library in host:
            self._attach(obj, library)
        self.tick(obj, now)

    def tick(self, obj: BpfObject, now: float) -> None:
        if now < self._next_scan:
            return
        self._next_scan = now + self.interval
        full = self._scans % FULL_SCAN_EVERY == 0
        self._scans += 1
        for library in self.finder.scan(self.proc, full=full):
            self._attach(obj, library)

    def _attach(self, obj: BpfObject, library: Library) -> None:
        program = f"tls:{library.display}"
        if len(self.results) >= MAX_FILES:
            log.warning("l7: already tracing %d TLS library files; %s is not traced", MAX_FILES, library.display)
            self.failures += 1
            return
        error = None
        for function, name, offset, retprobe in _probes(library):
            result = obj.attach_uprobe(name, library.path, offset, retprobe=retprobe)
            if not result.attached and error is None:
                error = f"{function}: {result.error}"
        self.results.append(AttachResult(program, "uprobe", attached=error is None, error=error))
        if error is None:
            self.traced += 1
            log.info("l7: tracing TLS in %s", library.display)
        else:
            self.failures += 1
            log.warning("l7: not tracing TLS in %s: %s", library.display, error)

    @staticmethod
    def programs(kinds: frozenset[str]) -> frozenset[str]:
        return frozenset().union(*(PROGRAMS[kind] for kind in kinds))

    def counters(self) -> Mapping[str, int]:
        return {"netobs.tls.files": self.traced, "netobs.tls.attach.failures": self.failures}


def _probes(library: Library) -> list[tuple[str, str, int, bool]]:
    """(function, program, file offset, return probe?) of each probe a library gets."""
    returns = RETURNS[library.kind]
    probes = []
    for function, offset in sorted(library.offsets.items()):
        probes.append((function, ENTRIES[function], offset, False))
        if library.kind == "openssl":
            probes.append((function, returns, offset, True))
    for function, offsets in sorted(library.returns.items()):
        probes += [(f"{function} RET", returns, offset, False) for offset in offsets]
    return probes
