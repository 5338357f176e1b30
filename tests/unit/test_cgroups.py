"""Cgroup path parsing, on paths as container runtimes really write them."""

from __future__ import annotations

import pytest

from exporter.enrich.cgroups import (
    ContainerRef,
    container_from_path,
    container_of,
    parse_proc_cgroup,
    unified_mount,
)

ID = "3f1d2c5e9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d"
UID = "0f6a3c2e-5b1d-4e8f-9a7b-6c5d4e3f2a1b"
UID_ = UID.replace("-", "_")

PATHS = [
    # containerd, Kubernetes, systemd cgroup driver (kubeadm, EKS, GKE)
    (f"/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{UID_}.slice/cri-containerd-{ID}.scope",
     ContainerRef(ID, "containerd", UID)),
    (f"/kubepods.slice/kubepods-pod{UID_}.slice/cri-containerd-{ID}.scope", ContainerRef(ID, "containerd", UID)),
    # containerd or any CRI, cgroupfs driver (k3s, older kubeadm)
    (f"/kubepods/burstable/pod{UID}/{ID}", ContainerRef(ID, "", UID)),
    (f"/kubepods/pod{UID}/{ID}", ContainerRef(ID, "", UID)),
    # CRI-O (OpenShift)
    (f"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID_}.slice/crio-{ID}.scope",
     ContainerRef(ID, "cri-o", UID)),
    # Docker, systemd and cgroupfs drivers; dockershim under Kubernetes
    (f"/system.slice/docker-{ID}.scope", ContainerRef(ID, "docker")),
    (f"/docker/{ID}", ContainerRef(ID, "docker")),
    (f"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID_}.slice/docker-{ID}.scope",
     ContainerRef(ID, "docker", UID)),
    # Podman: root, and rootless with its nested "container" cgroup
    (f"/machine.slice/libpod-{ID}.scope", ContainerRef(ID, "podman")),
    (f"/machine.slice/libpod-{ID}.scope/container", ContainerRef(ID, "podman")),
    (f"/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-{ID}.scope/container",
     ContainerRef(ID, "podman")),
    # a prefix: kind nodes (Kubernetes in Docker), or a cgroup namespace
    (f"/docker/{'a' * 64}/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/"
     f"kubelet-kubepods-besteffort-pod{UID_}.slice/cri-containerd-{ID}.scope", ContainerRef(ID, "containerd", UID)),
    (f"/my-prefix/kubepods.slice/kubepods-pod{UID_}.slice/cri-containerd-{ID}.scope",
     ContainerRef(ID, "containerd", UID)),
]

HOST_PATHS = [
    "/",
    "/init.scope",
    "/system.slice/sshd.service",
    "/user.slice/user-0.slice/session-3.scope",
    f"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID_}.slice/crio-conmon-{ID}.scope",
    f"/machine.slice/libpod-conmon-{ID}.scope",
    "/process_api/498bff13d21930e5bba2bd3bc671cc33",  # 32 hex digits: not a container id
    "/system.slice/containerd.service",
]


@pytest.mark.parametrize(("path", "expected"), PATHS)
def test_container_paths(path: str, expected: ContainerRef) -> None:
    assert container_from_path(path) == expected


@pytest.mark.parametrize("path", HOST_PATHS)
def test_host_paths(path: str) -> None:
    assert container_from_path(path) is None


def test_cgroup_v2_file() -> None:
    cgroup = parse_proc_cgroup(f"0::/system.slice/docker-{ID}.scope\n")
    assert cgroup.unified == f"/system.slice/docker-{ID}.scope"
    assert container_of(cgroup) == ContainerRef(ID, "docker")


def test_cgroup_v1_file() -> None:
    text = "\n".join([
        f"12:pids:/kubepods/besteffort/pod{UID}/{ID}",
        f"11:memory:/kubepods/besteffort/pod{UID}/{ID}",
        f"4:cpu,cpuacct:/kubepods/besteffort/pod{UID}/{ID}",
        f"1:name=systemd:/kubepods/besteffort/pod{UID}/{ID}",
        "",
    ])
    cgroup = parse_proc_cgroup(text)
    assert cgroup.unified is None
    assert container_of(cgroup) == ContainerRef(ID, "", UID)


def test_hybrid_host_uses_unified_line_and_v1_fallback() -> None:
    # this machine's shape: the unified line is "/" and a v1 controller has a 32-digit sandbox id
    host = parse_proc_cgroup("9:name=systemd:/\n4:memory:/process_api/498bff13d21930e5bba2bd3bc671cc33\n0::/\n")
    assert container_of(host) is None
    docker_v1 = parse_proc_cgroup(f"9:name=systemd:/docker/{ID}\n4:memory:/docker/{ID}\n0::/\n")
    assert container_of(docker_v1) == ContainerRef(ID, "docker")


@pytest.mark.parametrize("text", ["garbage", "1:memory", "x:memory:/a", "0::relative/path"])
def test_malformed_lines(text: str) -> None:
    with pytest.raises(ValueError, match="malformed cgroup line"):
        parse_proc_cgroup(text)


def test_unified_mount() -> None:
    hybrid = (
        "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n"
        "34 31 0:31 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n"
        "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n"
    )
    assert unified_mount(hybrid) == "/sys/fs/cgroup/unified"
    pure = "30 23 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate\n"
    assert unified_mount(pure) == "/sys/fs/cgroup"
    assert unified_mount("34 31 0:31 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n") is None
