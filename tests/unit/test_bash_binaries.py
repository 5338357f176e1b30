"""Finding bash binaries: the host's, and those of running processes, with fake /proc trees."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from exporter.collectors.bash_binaries import (
    bash_processes,
    display_name,
    file_key,
    host_binaries,
    is_bash,
    readline_offset,
)
from exporter.collectors.elf import ElfError


@pytest.mark.parametrize("exe,expected", [
    ("/usr/bin/bash", True), ("/bin/rbash", True), ("/opt/bash5", True), ("/usr/bin/bash (deleted)", True),
    ("/usr/bin/bash-static", True), ("/usr/bin/dash", False), ("/usr/bin/python3", False), ("/bash/sh", False),
])
def test_is_bash(exe: str, expected: bool) -> None:
    assert is_bash(exe) is expected


def test_host_paths_that_are_one_file_give_one_binary(tmp_path: Path) -> None:
    (tmp_path / "usr" / "bin").mkdir(parents=True)
    real = tmp_path / "usr" / "bin" / "bash"
    real.write_bytes(b"\x7fELF")
    os.symlink("usr/bin", tmp_path / "bin")  # merged /usr
    found = host_binaries((str(tmp_path / "bin" / "bash"), str(real), str(tmp_path / "missing")))
    assert [b.path for b in found] == [str(real)]
    assert found[0].key == file_key(real) and found[0].display == str(real)


def fake_process(proc: Path, pid: int, exe: Path, root: Path) -> None:
    """/proc/<pid>/exe and root as plain symlinks. (The kernel's exe link names the path inside the
    process's root; a plain one must name the file from here, so displays show the full path.)"""
    (proc / str(pid)).mkdir(parents=True)
    os.symlink(exe, proc / str(pid) / "exe")
    os.symlink(root, proc / str(pid) / "root")


@pytest.fixture
def proc(tmp_path: Path) -> Path:
    proc = tmp_path / "proc"
    host, container = tmp_path / "host", tmp_path / "container"
    for root in (host, container):
        (root / "bin").mkdir(parents=True)
        (root / "bin" / "bash").write_bytes(b"\x7fELF" + root.name.encode())
        (root / "bin" / "python3").write_bytes(b"\x7fELF")
    proc.mkdir()
    os.symlink(host, proc / "self")  # self/root is resolved as self -> host, then host/root
    os.symlink(".", host / "root")
    fake_process(proc, 100, host / "bin" / "bash", host)
    fake_process(proc, 101, host / "bin" / "bash", host)  # the same file: one binary
    fake_process(proc, 102, host / "bin" / "python3", host)
    fake_process(proc, 200, container / "bin" / "bash", container)
    (proc / "300").mkdir()  # a kernel thread: no exe
    (proc / "uptime").write_text("1 1")
    return proc


def test_every_bash_process_is_found_with_its_binary(proc: Path, tmp_path: Path) -> None:
    found = dict(bash_processes(proc, containers=True))
    assert sorted(found) == [100, 101, 200]
    host_key, container_key = file_key(tmp_path / "host/bin/bash"), file_key(tmp_path / "container/bin/bash")
    assert found[100].key == found[101].key == host_key  # one file, so one uprobe
    assert (found[100].path, found[100].display) == (str(proc / "100" / "exe"), str(tmp_path / "host/bin/bash"))
    assert found[200].key == container_key
    assert found[200].path == str(proc / "200" / "exe")
    assert found[200].display == str(tmp_path / "container/bin/bash")  # a chroot: reachable from here


def test_display_names(tmp_path: Path) -> None:
    mine, theirs = tmp_path / "bash", tmp_path / "other-bash"
    mine.write_bytes(b"mine")
    theirs.write_bytes(b"theirs")
    process = Path("/proc/77")
    # readlink names the same file from here: a host process, or a chroot.
    assert display_name(str(mine), file_key(mine), process) == str(mine)
    # In a container's mount namespace, the same path names another file here, or none.
    assert display_name(str(mine), file_key(theirs), process) == f"/proc/77/root{mine}"
    assert display_name("/usr/bin/no-such-bash", file_key(theirs), process) == "/proc/77/root/usr/bin/no-such-bash"
    # Replaced by an upgrade while it runs.
    assert display_name(f"{mine} (deleted)", (0, 1), process) == f"/proc/77/root{mine} (deleted)"


def test_without_containers_only_processes_in_our_root_count(proc: Path, tmp_path: Path) -> None:
    assert sorted(pid for pid, _ in bash_processes(proc, containers=False)) == [100, 101]


def test_a_missing_proc_finds_nothing(tmp_path: Path) -> None:
    assert bash_processes(tmp_path / "nothing") == []


def test_readline_offset_of_a_file_that_is_not_elf(tmp_path: Path) -> None:
    (tmp_path / "script").write_text("#!/bin/sh\n")
    (tmp_path / "empty").write_bytes(b"")
    with pytest.raises(ElfError, match="not an ELF file"):
        readline_offset(str(tmp_path / "script"))
    with pytest.raises(ElfError, match="empty file"):
        readline_offset(str(tmp_path / "empty"))


def test_readline_offset_of_a_program_without_readline() -> None:
    true = shutil.which("true")
    assert true is not None
    with pytest.raises(ElfError, match="no readline function"):
        readline_offset(true)


@pytest.mark.skipif(not Path("/usr/bin/bash").exists(), reason="needs /usr/bin/bash")
def test_readline_offset_of_the_real_bash() -> None:
    assert readline_offset("/usr/bin/bash") > 0
