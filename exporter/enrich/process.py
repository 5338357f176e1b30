"""Process facts from /proc, cached per (pid, start time) so a reused pid is never mislabelled."""

from __future__ import annotations

import time

MAX_CMDLINE = 512


class ProcessInfo:
    def __init__(self, ttl: float, proc: str = "/proc") -> None:
        self.ttl = ttl
        self.proc = proc
        self._cache: dict[int, tuple[float, str, str]] = {}  # pid -> (expires, start time, cmdline)

    def _start_time(self, pid: int) -> str:
        with open(f"{self.proc}/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]  # field 22, after the comm in parentheses

    def cmdline(self, pid: int, fallback: str = "") -> str:
        """The command line, bounded; `fallback` (the kernel's comm) once the process is gone."""
        now = time.monotonic()
        cached = self._cache.get(pid)
        try:
            start = self._start_time(pid)
            if cached and cached[0] > now and cached[1] == start:
                return cached[2]
            with open(f"{self.proc}/{pid}/cmdline", "rb") as f:
                raw = f.read(MAX_CMDLINE)
        except (OSError, IndexError):
            return cached[2] if cached else fallback
        text = raw.rstrip(b"\0").replace(b"\0", b" ").decode(errors="replace") or fallback
        self._cache[pid] = (now + self.ttl, start, text)
        if len(self._cache) > 65536:
            self._cache = {p: v for p, v in self._cache.items() if v[0] > now}
        return text
