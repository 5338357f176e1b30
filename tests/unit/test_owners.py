"""The cgroup names the kernel records for owners, as user space reads them (exporter/collectors/owners.py)."""

from __future__ import annotations

from exporter.collectors.owners import CgroupNamesValue, path_of


def value(*names: bytes) -> CgroupNamesValue:
    v = CgroupNamesValue()
    for i, name in enumerate(names):
        v.names[i].value = name
    return v


def test_the_path_is_the_last_three_segments_root_first() -> None:
    assert path_of(value(b"cri-containerd-abc.scope", b"kubepods-pod1.slice", b"kubepods-burstable.slice")) == \
        "/kubepods-burstable.slice/kubepods-pod1.slice/cri-containerd-abc.scope"


def test_a_shallow_cgroup_stops_at_the_root() -> None:
    assert path_of(value(b"docker-abc.scope", b"system.slice", b"")) == "/system.slice/docker-abc.scope"
    assert path_of(value(b"", b"", b"")) == "/"
