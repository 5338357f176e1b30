""""Containers" made for real on this machine: a cgroup v2 directory named as a runtime names it, and
a network namespace. No runtime is involved: the exporter only ever sees cgroup paths, /proc and
the runtimes' APIs, which tests/kernel/fake_apis.py plays."""

from __future__ import annotations

import os
import secrets
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from exporter.enrich.cgroups import unified_mount


def cgroup_v2_mount() -> Path:
    mount = unified_mount(Path("/proc/self/mountinfo").read_text())
    if mount is None:
        raise RuntimeError("no cgroup v2 hierarchy is mounted")
    return Path(mount)


def container_id() -> str:
    return secrets.token_hex(32)


def pod_uid() -> str:
    return str(uuid.uuid4())


def containerd_path(pod: str, cid: str, qos: str = "burstable") -> str:
    underscored = pod.replace("-", "_")
    return (f"kubepods.slice/kubepods-{qos}.slice/kubepods-{qos}-pod{underscored}.slice/"
            f"cri-containerd-{cid}.scope")


def crio_path(pod: str, cid: str) -> str:
    underscored = pod.replace("-", "_")
    return f"kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{underscored}.slice/crio-{cid}.scope"


def docker_path(cid: str) -> str:
    return f"system.slice/docker-{cid}.scope"


@dataclass
class CgroupTree:
    root: Path  # <v2 mount>/netobs-t7-<pid>: everything the tests create, removed at the end

    def make(self, relative: str) -> str:
        path = self.root / relative
        path.mkdir(parents=True, exist_ok=True)
        return str(path)


@contextmanager
def cgroup_tree(tag: str = "t7") -> Iterator[CgroupTree]:
    root = cgroup_v2_mount() / f"netobs-{tag}-{os.getpid()}"
    root.mkdir()
    try:
        yield CgroupTree(root)
    finally:
        _remove(root)


def _remove(root: Path) -> None:
    """rmdir deepest first, once the processes in them are gone (killing any left)."""
    dirs = [*sorted((p for p in root.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True), root]
    for d in dirs:
        procs = (d / "cgroup.procs").read_text().split() if (d / "cgroup.procs").exists() else []
        for pid in procs:
            subprocess.run(["kill", "-9", pid], check=False, capture_output=True)
        for _ in range(50):
            try:
                d.rmdir()
                break
            except OSError:
                time.sleep(0.1)
