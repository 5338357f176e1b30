"""The files that processes run or map: what identifies one, what to call it, where its functions start.

A uprobe belongs to a file (device and inode), so each distinct file is attached once, however many
processes run or map it."""

from __future__ import annotations

import mmap
import os
from collections.abc import Callable, Iterable
from pathlib import Path

from exporter.collectors.elf import Buffer, ElfError, symbol_file_offsets

FileKey = tuple[int, int]  # (st_dev, st_ino)


def file_key(path: str | Path) -> FileKey:
    st = os.stat(path)
    return st.st_dev, st.st_ino


def display_name(seen_path: str, key: FileKey, process_dir: Path) -> str:
    """What to call a file a process runs or maps, given the path the process sees (readlink of
    /proc/<pid>/exe, or a /proc/<pid>/maps path): that path when it names the same file from here
    (host processes, chroots), else the path through the process's root (a container in a mount
    namespace of its own, where that path means another file here)."""
    deleted = seen_path.endswith(" (deleted)")
    path = seen_path.removesuffix(" (deleted)")
    try:
        reachable = not deleted and file_key(path) == key
    except OSError:
        reachable = False
    name = path if reachable else f"{process_dir}/root{path}"
    return f"{name} (deleted)" if deleted else name


def function_offsets(path: str, names: Iterable[str],
                     refine: Callable[[Buffer, dict[str, int]], dict[str, int]] | None = None,
                     ) -> tuple[FileKey, dict[str, int]]:
    """The key of the file at `path` (of the file opened, whatever replaces the path meanwhile) and
    the file offsets of the functions among `names` that it defines, passed through `refine` (with the
    file's bytes) if given. ElfError for a file that is not ELF, OSError for one that cannot be read."""
    with open(path, "rb") as f:
        st = os.fstat(f.fileno())
        if st.st_size == 0:
            raise ElfError("empty file")
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as image:
            offsets = symbol_file_offsets(image, names)
            return (st.st_dev, st.st_ino), refine(image, offsets) if refine else offsets
