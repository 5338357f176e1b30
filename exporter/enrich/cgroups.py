"""Which container a process runs in, from its cgroup paths (`/proc/<pid>/cgroup`).

Container runtimes name the cgroup of a container after its 64-hex-digit id:

- containerd (CRI):   .../kubepods-besteffort-pod<uid>.slice/cri-containerd-<id>.scope   (systemd driver)
                      /kubepods/besteffort/pod<uid>/<id>                                  (cgroupfs driver)
- CRI-O:              .../kubepods-pod<uid>.slice/crio-<id>.scope     (crio-conmon-<id>.scope is its monitor)
- Docker:             /system.slice/docker-<id>.scope, /docker/<id>
- Podman:             /machine.slice/libpod-<id>.scope[/container], .../user.slice/libpod-<id>.scope/container
                      (libpod-conmon-<id>.scope is its monitor)

Under cgroup v2 the `0::` line holds the path; under v1 every controller has its own line and the
`name=systemd` or `memory` hierarchy is the telling one. Paths can have a prefix (kind, Docker in
Docker, a cgroup namespace). Pure functions: the tests feed them real-world lines."""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass

_ID = r"(?P<id>[0-9a-f]{64})"
# (runtime, pattern of one path segment); the first match of the last matching segment wins
_SEGMENTS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("containerd", re.compile(rf"cri-containerd-{_ID}\.scope")),
    ("cri-o", re.compile(rf"crio-{_ID}\.scope")),
    ("docker", re.compile(rf"docker-{_ID}\.scope")),
    ("podman", re.compile(rf"libpod-{_ID}\.scope")),
    ("", re.compile(rf"(?:[a-z0-9]+-)?{_ID}(?:\.scope)?")),  # cgroupfs drivers, nerdctl, others
)
_MONITOR = re.compile(r"(?:crio|libpod)-conmon-[0-9a-f]{64}\.scope")
_UUID = r"[0-9a-f]{8}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{12}"
_POD_UID = re.compile(rf"pod(?P<uid>{_UUID})(?:\.slice)?$")
# where a bare id is the parent's: /docker/<id>, /kubepods/.../pod<uid>/<id>, /system.slice/containerd-...
_DOCKER_PARENTS = ("docker", "moby")
V1_PREFERRED = ("name=systemd", "memory", "pids", "cpu,cpuacct", "cpu", "devices")


@dataclass(frozen=True)
class ContainerRef:
    """A container as its cgroup path tells it."""

    id: str
    runtime: str  # containerd, cri-o, docker, podman; "" when the path does not say
    pod_uid: str = ""  # the Kubernetes pod, when the path holds it (dashes restored)


@dataclass(frozen=True)
class ProcCgroup:
    """/proc/<pid>/cgroup, parsed: the v2 path (None on a v1-only host) and the v1 paths by controller."""

    unified: str | None
    v1: dict[str, str]

    def paths(self) -> list[str]:
        """The paths worth looking at for a container id, the most telling first."""
        out = [self.unified] if self.unified not in (None, "/") else []
        out += [self.v1[c] for c in V1_PREFERRED if c in self.v1]
        out += [p for c, p in sorted(self.v1.items()) if c not in V1_PREFERRED]
        return [p for p in out if p]


def parse_proc_cgroup(text: str) -> ProcCgroup:
    """Parses `hierarchy-id:controllers:path` lines; ValueError on a malformed one."""
    unified: str | None = None
    v1: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        parts = line.split(":", 2)
        if len(parts) != 3 or not parts[0].isdigit() or not parts[2].startswith("/"):
            raise ValueError(f"malformed cgroup line {line[:80]!r}")
        hierarchy, controllers, path = parts
        if hierarchy == "0" and controllers == "":
            unified = path
        else:
            v1[controllers] = path
    return ProcCgroup(unified, v1)


def _pod_uid(segments: list[str]) -> str:
    for segment in reversed(segments):
        match = _POD_UID.search(segment)
        if match:
            return match["uid"].replace("_", "-")
    return ""


def container_from_path(path: str) -> ContainerRef | None:
    """The container of one cgroup path; None for host processes and for runtime monitors."""
    segments = [s for s in path.split("/") if s]
    for index in range(len(segments) - 1, -1, -1):
        segment = segments[index]
        if _MONITOR.fullmatch(segment):
            return None
        for runtime, pattern in _SEGMENTS:
            match = pattern.fullmatch(segment)
            if match is None:
                continue
            if not runtime and index > 0 and segments[index - 1] in _DOCKER_PARENTS:
                runtime = "docker"
            return ContainerRef(match["id"], runtime, _pod_uid(segments[:index]))
    return None


def container_of(cgroup: ProcCgroup) -> ContainerRef | None:
    for path in cgroup.paths():
        ref = container_from_path(path)
        if ref is not None:
            return ref
    return None


def unified_mount(mountinfo: str) -> str | None:
    """Where the cgroup v2 hierarchy is mounted (/sys/fs/cgroup, or /sys/fs/cgroup/unified on hybrid hosts)."""
    for line in mountinfo.splitlines():
        fields = line.split()
        if " - " not in line or len(fields) < 5:
            continue
        fstype = line.split(" - ", 1)[1].split()[0]
        if fstype == "cgroup2" and fields[3] == "/":
            return fields[4]
    return None


def cgroup_id(mount: str, path: str) -> int | None:
    """The kernel's id of a v2 cgroup (bpf_get_current_cgroup_id): the inode of its directory."""
    try:
        return os.stat(os.path.join(mount, path.lstrip("/"))).st_ino
    except OSError:
        return None


class CgroupIndex:
    """cgroup id -> path, from the cgroup v2 filesystem (the id is the directory's inode): the way back
    from an id while its directory exists. Walked again on a miss, at most every `rewalk` seconds."""

    def __init__(self, mount: str | None, rewalk: float = 5.0) -> None:
        self.mount = mount
        self.rewalk = rewalk
        self._paths: dict[int, str] = {}
        self._walked = float("-inf")

    def path(self, cgroup_id: int) -> str | None:
        found = self._paths.get(cgroup_id)
        if found is None and self.mount and time.monotonic() - self._walked >= self.rewalk:
            self._walked = time.monotonic()
            self._paths = _walk(self.mount)
            found = self._paths.get(cgroup_id)
        return found


def _walk(mount: str) -> dict[int, str]:
    paths: dict[int, str] = {}
    pending = [(mount, "/")]
    while pending:
        directory, relative = pending.pop()
        try:
            paths[os.stat(directory).st_ino] = relative
            with os.scandir(directory) as entries:
                for entry in entries:
                    if entry.is_dir(follow_symlinks=False):
                        pending.append((entry.path, relative.rstrip("/") + "/" + entry.name))
        except OSError:
            continue  # removed meanwhile
    return paths
