"""Process facts from /proc, cached per (pid, start time) so a reused pid is never mislabelled."""

from __future__ import annotations

import time
from dataclasses import dataclass

MAX_CMDLINE = 512


@dataclass(frozen=True)
class ProcessFacts:
    pid: int
    start: str  # clock ticks after boot (field 22 of stat): with the pid, names one process for good
    comm: str  # the kernel's name of the process (its main thread), at most 15 characters
    cmdline: str  # arguments joined by spaces, at most MAX_CMDLINE bytes; "" for kernel threads
    cgroup: str  # /proc/<pid>/cgroup as read


def start_and_comm(proc: str, pid: int) -> tuple[str, str]:
    """OSError when the process is gone; IndexError when stat is cut short."""
    with open(f"{proc}/{pid}/stat") as f:
        text = f.read()
    comm = text[text.find("(") + 1 : text.rfind(")")]
    return text.rsplit(")", 1)[1].split()[19], comm  # field 22, after the comm in parentheses


def read_cmdline(proc: str, pid: int) -> str:
    with open(f"{proc}/{pid}/cmdline", "rb") as f:
        raw = f.read(MAX_CMDLINE)
    return raw.rstrip(b"\0").replace(b"\0", b" ").decode(errors="replace")


def read_process(proc: str, pid: int) -> ProcessFacts:
    """OSError when the process is gone, IndexError when its stat is malformed."""
    start, comm = start_and_comm(proc, pid)
    with open(f"{proc}/{pid}/cgroup") as f:
        cgroup = f.read()
    return ProcessFacts(pid, start, comm, read_cmdline(proc, pid), cgroup)


class ProcessInfo:
    def __init__(self, ttl: float, proc: str = "/proc") -> None:
        self.ttl = ttl
        self.proc = proc
        self._cache: dict[int, tuple[float, str, str]] = {}  # pid -> (expires, start time, cmdline)

    def cmdline(self, pid: int, fallback: str = "") -> str:
        """The command line, bounded; `fallback` (the kernel's comm) once the process is gone."""
        now = time.monotonic()
        cached = self._cache.get(pid)
        try:
            start = start_and_comm(self.proc, pid)[0]
            if cached and cached[0] > now and cached[1] == start:
                return cached[2]
            text = read_cmdline(self.proc, pid)
        except (OSError, IndexError):
            return cached[2] if cached else fallback
        text = text or fallback
        self._cache[pid] = (now + self.ttl, start, text)
        if len(self._cache) > 65536:
            self._cache = {p: v for p, v in self._cache.items() if v[0] > now}
        return text
