"""User names of processes, from the passwd file of each process's own root directory.

A process in a container sees its image's /etc/passwd, so its uid is looked up there, through
/proc/<pid>/root. Parsed files are cached per root directory (device and inode) and re-read after
`ttl` seconds; the uid is first mapped into the process's user namespace (/proc/<pid>/uid_map)."""

from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

RootKey = tuple[int, int]  # (st_dev, st_ino) of a root directory


def parse_passwd(text: str) -> dict[int, str]:
    """uid -> name from the text of a passwd file; the first entry of a uid wins, bad lines are skipped."""
    names: dict[int, str] = {}
    for line in text.splitlines():
        fields = line.split(":")
        if len(fields) < 3 or not fields[0] or line.startswith(("#", "+", "-")):
            continue
        try:
            uid = int(fields[2])
        except ValueError:
            continue
        names.setdefault(uid, fields[0])
    return names


def map_uid(uid_map: str, kernel_uid: int) -> int | None:
    """The uid inside a user namespace of `kernel_uid`, from the text of /proc/<pid>/uid_map as read
    from the initial namespace ("inside outside count" per line); None if it is not mapped."""
    for line in uid_map.splitlines():
        parts = line.split()
        if len(parts) != 3 or not all(p.isdigit() for p in parts):
            continue
        inside, outside, count = (int(p) for p in parts)
        if outside <= kernel_uid < outside + count:
            return inside + kernel_uid - outside
    return None


@dataclass(frozen=True)
class User:
    uid: int  # as the process sees it, in its user namespace
    name: str | None  # None when its passwd file has no entry for uid


class UserNames:
    """Resolves (pid, kernel uid) to a User; thread-safe."""

    def __init__(self, proc: Path = Path("/proc"), ttl: float = 60.0, max_roots: int = 256,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.proc = proc
        self.ttl = ttl
        self.max_roots = max_roots
        self._clock = clock
        self._passwd: OrderedDict[RootKey, tuple[float, dict[int, str]]] = OrderedDict()
        self._root_of_pid: OrderedDict[int, RootKey] = OrderedDict()  # for processes that exited since
        self._lock = threading.Lock()

    def lookup(self, pid: int, kernel_uid: int) -> User:
        with self._lock:
            uid = self._namespace_uid(pid, kernel_uid)
            root = self._root(pid)
            if root is None:
                return User(uid, None)
            return User(uid, self._names(pid, root).get(uid))

    def remember(self, pid: int) -> None:
        """Notes the root of a live process and reads its passwd file, so that a lookup made after
        the process exits (a command typed just before `exit`) still finds its users."""
        with self._lock:
            root = self._root(pid)
            if root is not None:
                self._names(pid, root)

    def _namespace_uid(self, pid: int, kernel_uid: int) -> int:
        try:
            uid_map = (self.proc / str(pid) / "uid_map").read_text()
        except OSError:
            return kernel_uid
        mapped = map_uid(uid_map, kernel_uid)
        return kernel_uid if mapped is None else mapped

    def _root(self, pid: int) -> RootKey | None:
        try:
            st = os.stat(self.proc / str(pid) / "root")
        except OSError:
            return self._root_of_pid.get(pid)
        key = (st.st_dev, st.st_ino)
        self._root_of_pid[pid] = key
        self._root_of_pid.move_to_end(pid)
        while len(self._root_of_pid) > self.max_roots * 16:
            self._root_of_pid.popitem(last=False)
        return key

    def _names(self, pid: int, root: RootKey) -> dict[int, str]:
        now = self._clock()
        cached = self._passwd.get(root)
        if cached is not None and now < cached[0]:
            return cached[1]
        try:
            names = parse_passwd((self.proc / str(pid) / "root" / "etc" / "passwd").read_text(errors="replace"))
        except OSError:  # the process exited, or its root has no passwd file
            return cached[1] if cached is not None else {}
        self._passwd[root] = (now + self.ttl, names)
        self._passwd.move_to_end(root)
        while len(self._passwd) > self.max_roots:
            self._passwd.popitem(last=False)
        return names
