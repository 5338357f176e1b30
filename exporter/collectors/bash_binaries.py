"""Which bash binaries to trace: the host's, and the ones running bash processes execute.

A uprobe belongs to a file (device and inode), so each distinct file is attached once, however
many processes run it. A container's bash is reached through /proc/<pid>/exe of a process that
runs it, which opens the very file whatever the process's mount namespace and root."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from exporter.collectors.elf import ElfError
from exporter.collectors.process_files import FileKey, display_name, file_key, function_offsets

HOST_PATHS = ("/bin/bash", "/usr/bin/bash")


@dataclass(frozen=True)
class Binary:
    key: FileKey
    path: str  # opens the file from here: for reading it and for attaching the uprobe
    display: str  # what logs and metrics call it: its path, seen from the host where possible


def host_binaries(paths: tuple[str, ...] = HOST_PATHS) -> list[Binary]:
    """The host's bash, once per file: /bin/bash and /usr/bin/bash are often the same one."""
    found: dict[FileKey, Binary] = {}
    for path in paths:
        real = os.path.realpath(path)
        try:
            key = file_key(real)
        except OSError:
            continue
        found.setdefault(key, Binary(key, real, real))
    return list(found.values())


def is_bash(exe: str) -> bool:
    """Whether /proc/<pid>/exe names a bash: bash, rbash, bash5, bash-static..."""
    name = os.path.basename(exe.removesuffix(" (deleted)"))
    return name == "rbash" or name.startswith("bash")


def bash_processes(proc: Path = Path("/proc"), containers: bool = True) -> list[tuple[int, Binary]]:
    """Running bash processes and the binary each executes. Without `containers`, only processes
    whose root directory is ours (the host's)."""
    try:
        own_root = file_key(proc / "self" / "root")
        entries = [e.name for e in os.scandir(proc) if e.name.isdigit()]
    except OSError:
        return []
    found: list[tuple[int, Binary]] = []
    for pid in entries:
        base = proc / pid
        try:
            exe = os.readlink(base / "exe")
            if not is_bash(exe):
                continue
            key = file_key(base / "exe")
            in_host = file_key(base / "root") == own_root
        except OSError:  # exited, or a kernel thread
            continue
        if in_host or containers:
            found.append((int(pid), Binary(key, str(base / "exe"), display_name(exe, key, base))))
    return found


def readline_offset(path: str) -> int:
    """The file offset of `readline` in the bash at `path`; ValueError (or OSError) says why there is none."""
    offset = function_offsets(path, ("readline",))[1].get("readline")
    if offset is None:
        raise ElfError("no readline function in its symbol tables (stripped, or readline in a shared library)")
    return offset
