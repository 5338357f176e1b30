"""root_cgroup: the root of cgroup v2, where programs that must see every process attach (SEC("cgroup/...")).

A program attached to the root runs for every process of the host, whatever cgroup it is in and
whether the host also uses cgroup v1 controllers. The root is looked for as the host's first process
sees it (/proc/1, the host's with hostPID), then as this process sees it; a container in a cgroup
namespace of its own sees only its own subtree there. If none is mounted, cgroup2 is mounted on a
directory of our own."""

from __future__ import annotations

import ctypes
import os
import pathlib

from exporter.bpf._libbpf import libc
from exporter.bpf.errors import NotSupported, errno_reason

OWN_MOUNT = pathlib.Path("/run/netobs/cgroup2")


def _cgroup2_mounts(mountinfo: pathlib.Path) -> list[str]:
    """Mount points of cgroup2 filesystems mounted at their root, in a mountinfo file."""
    found = []
    try:
        lines = mountinfo.read_text().splitlines()
    except OSError:
        return []
    for line in lines:
        fields = line.split()
        if " - cgroup2 " in line and len(fields) > 4 and fields[3] == "/":
            found.append(fields[4].replace("\\040", " "))
    return found


def _candidates() -> list[pathlib.Path]:
    paths = [pathlib.Path(f"/proc/1/root{m}") for m in _cgroup2_mounts(pathlib.Path("/proc/1/mountinfo"))]
    paths += [pathlib.Path(m) for m in _cgroup2_mounts(pathlib.Path("/proc/self/mountinfo"))]
    return [*paths, OWN_MOUNT]


def root_cgroup_fd() -> int:
    """An open descriptor of the cgroup v2 root; the caller closes it. NotSupported if there is none."""
    for path in _candidates():
        if path == OWN_MOUNT and not (path / "cgroup.procs").exists():
            _mount_own()
        try:
            return os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        except OSError:
            continue
    raise NotSupported("cgroup v2: no root found or mountable")


def _mount_own() -> None:
    try:
        OWN_MOUNT.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise NotSupported(f"cgroup v2: cannot create {OWN_MOUNT}: {e.strerror}") from None
    if libc().mount(b"cgroup2", str(OWN_MOUNT).encode(), b"cgroup2", 0, None) != 0:
        raise NotSupported(f"cgroup v2: cannot mount on {OWN_MOUNT}: {errno_reason(ctypes.get_errno())}")
