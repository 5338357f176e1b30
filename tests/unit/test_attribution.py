"""The per-pid lookup and the attribution stage, on a fake /proc: pid reuse, exits, peers' names, filters."""

from __future__ import annotations

from pathlib import Path

import pytest

from exporter.config import load_config
from exporter.enrich import attribution as attribution_module
from exporter.enrich.attribution import Attribution, image_name
from exporter.enrich.domains import DomainCache
from exporter.enrich.errors import SourceErrors
from exporter.enrich.filters import Filters
from exporter.enrich.kubernetes_pods import PodIndex, parse_pod
from exporter.enrich.stage import Enrichment
from exporter.enrich.verdicts import MODE_EXCLUDE, MODE_INCLUDE, MODE_OFF, kernel_verdicts, mode
from exporter.series.attributes import selected_by
from exporter.series.flows import FlowFigures, FlowKey
from exporter.series.rows import Owner, Row

CID = "ab" * 32
UID = "0f6a3c2e-5b1d-4e8f-9a7b-6c5d4e3f2a1b"
DOCKER_CGROUP = f"0::/system.slice/docker-{CID}.scope\n"
POD_CGROUP = f"0::/kubepods.slice/kubepods-pod{UID.replace('-', '_')}.slice/cri-containerd-{CID}.scope\n"


def fake_proc(root: Path, pid: int, comm: str = "app", start: int = 100, cgroup: str = "0::/\n",
              cmdline: str = "") -> None:
    d = root / str(pid)
    d.mkdir(parents=True, exist_ok=True)
    (d / "stat").write_text(f"{pid} ({comm}) S" + " 0" * 18 + f" {start} 0 0\n")
    (d / "cmdline").write_bytes((cmdline or comm).replace(" ", "\0").encode() + b"\0")
    (d / "cgroup").write_text(cgroup)


def attribution(root: Path, *settings: str, pods: PodIndex | None = None) -> Attribution:
    config = load_config(None, {}, settings)
    return Attribution(Filters(config.common, config.ebpf), 30, SourceErrors(), proc=str(root), pods=pods)


def test_host_and_container_processes(tmp_path: Path) -> None:
    fake_proc(tmp_path, 10, "sshd")
    fake_proc(tmp_path, 11, "nginx", cgroup=DOCKER_CGROUP, cmdline="nginx -g daemon off;")
    a = attribution(tmp_path)
    host, container = a.process(10), a.process(11)
    assert host.attributes["netobs.running_mode"] == "host" and "container.id" not in host.attributes
    assert container.attributes["container.id"] == CID
    assert container.attributes["container.runtime.name"] == "docker"
    assert container.attributes["process.command_line"] == "nginx -g daemon off;"
    assert container.records == {"_running_mode_": "container", "_container_id_": CID}


def flow_row(pid: int, comm: str, port: int, sent: int = 0, remote: bytes = bytes([10, 0, 0, 9])) -> Row:
    key = FlowKey(2, 6, bytes([10, 0, 0, 1]) + bytes(12), 0, remote + bytes(12), port, 2)
    return Row(key, Owner(pid, comm), FlowFigures(sent, 0, 0, 0, 0, 0, 0, 0, None, None, None))


def enrichment(root: Path, *settings: str, domains: DomainCache | None = None) -> Enrichment:
    return Enrichment(load_config(None, {}, settings), proc=str(root), domains=domains)


def test_pid_reuse_is_a_new_process_and_old_rows_keep_theirs(tmp_path: Path) -> None:
    fake_proc(tmp_path, 10, "old", start=100)
    stage = enrichment(tmp_path)
    old_row = flow_row(10, "old", 80, sent=5)
    (first,) = stage.attribute("netflow", [old_row])
    assert first.process.attributes["process.executable.name"] == "old"
    fake_proc(tmp_path, 10, "new", start=999)  # the pid now names another process
    stage.attribution.ttl = 0  # look again at once
    new_row = flow_row(10, "new", 443, sent=1)
    again, second = stage.attribute("netflow", [flow_row(10, "old", 80, sent=6), new_row])
    assert again.process is first.process  # bound to the process it was first seen with
    assert second.process.attributes["process.executable.name"] == "new"


def test_rows_name_their_process_by_pid_and_start(tmp_path: Path) -> None:
    """The kernel's owner carries the start: rows of the old and the new process of one pid each get
    their own, whichever order they come in."""
    fake_proc(tmp_path, 10, "old", start=100, cgroup=DOCKER_CGROUP)
    stage = enrichment(tmp_path)
    old_row = Row(flow_row(10, "old", 80).key, Owner(10, "old", 100, 7), flow_row(10, "old", 80).figures)
    (first,) = stage.attribute("netflow", [old_row])
    assert first.process.attributes["container.id"] == CID
    fake_proc(tmp_path, 10, "new", start=999)  # the pid now names another process, on the host
    stage.attribution.ttl = 0
    new_row = Row(flow_row(10, "new", 80).key, Owner(10, "new", 999, 1), flow_row(10, "new", 80).figures)
    second, again = stage.attribute("netflow", [new_row, old_row])
    assert second.process.attributes["netobs.running_mode"] == "host"
    assert again.process.attributes["container.id"] == CID


def test_a_process_never_seen_alive_is_attributed_from_the_kernel_facts(tmp_path: Path) -> None:
    """Gone before user space looked: its container comes from the names the kernel recorded of its
    cgroup (the last three segments), its pod from the uid in them."""
    pods = PodIndex()
    pods.replace([parse_pod({"metadata": {"uid": UID, "name": "job-1", "namespace": "ops"},
                             "spec": {"nodeName": "n1"}})])
    a = attribution(tmp_path, pods=pods)
    a.cgroup_path = {42: f"/kubepods-pod{UID.replace('-', '_')}.slice/cri-containerd-{CID}.scope"}.get
    gone = a.owner(Owner(77, "curl", 12345, 42))
    assert gone.attributes | {"k8s.pod.name": "job-1", "container.id": CID, "netobs.running_mode": "container",
                              "process.executable.name": "curl"} == gone.attributes
    assert gone.cgroup_id == 42 and gone.exited_at is not None and gone.watched
    assert a.owner(Owner(77, "curl", 12345, 42)) is gone  # remembered
    host = a.owner(Owner(78, "sh", 12346, 1))  # a cgroup the kernel did not name: the host, asked again
    assert host.attributes["netobs.running_mode"] == "host"


def test_a_filter_applies_to_a_process_never_seen_alive(tmp_path: Path) -> None:
    a = attribution(tmp_path, "Common.ExcludeCmdRegex=^curl")
    a.cgroup_path = {42: f"/system.slice/docker-{CID}.scope"}.get
    assert not a.owner(Owner(77, "curl", 12345, 42)).watched
    assert a.owner(Owner(78, "wget", 12345, 42)).watched


def test_an_unchanged_row_gives_the_same_attributed_row(tmp_path: Path) -> None:
    fake_proc(tmp_path, 10, "app")
    stage = enrichment(tmp_path)
    row = flow_row(10, "app", 80)
    (first,) = stage.attribute("netflow", [row])
    (second,) = stage.attribute("netflow", [row])
    assert second is first
    (changed,) = stage.attribute("netflow", [flow_row(10, "app", 80, sent=1)])
    assert changed is not first and changed.process is first.process


def test_a_peer_gets_its_name_once_known_and_keeps_it(tmp_path: Path) -> None:
    fake_proc(tmp_path, 10, "curl")
    clock = [0.0]
    domains = DomainCache(16, 60, 60, clock=lambda: clock[0])
    stage = enrichment(tmp_path, domains=domains)
    row = flow_row(10, "curl", 443)
    assert stage.attribute("netflow", [row])[0].remote.domain is None
    domains.learn("api.example.com", [("10.0.0.9", 30)])
    assert stage.attribute("netflow", [row])[0].remote.domain == "api.example.com"
    clock[0] = 3600.0  # the answer expired: the series keeps the name it had
    assert domains.name("10.0.0.9") is None
    assert stage.attribute("netflow", [row])[0].remote.domain == "api.example.com"


def test_rows_of_processes_the_filters_leave_out_are_dropped(tmp_path: Path) -> None:
    fake_proc(tmp_path, 10, "sshd")
    fake_proc(tmp_path, 11, "curl")
    stage = enrichment(tmp_path, "Common.ExcludeCmdRegex=^sshd")
    out = stage.attribute("netflow", [flow_row(10, "sshd", 22), flow_row(11, "curl", 80)])
    assert [a.row.owner.pid for a in out] == [11]


def test_exited_process_keeps_its_attributes(tmp_path: Path) -> None:
    fake_proc(tmp_path, 12, "job", cgroup=DOCKER_CGROUP)
    a = attribution(tmp_path)
    assert a.process(12).exited_at is None
    for f in (tmp_path / "12").iterdir():
        f.unlink()
    (tmp_path / "12").rmdir()
    gone = a.process(12)
    assert gone.exited_at is not None and gone.attributes["container.id"] == CID
    unknown = a.process(13, "ghost")
    assert unknown.attributes == {"process.pid": 13, "process.executable.name": "ghost"}


def test_selection_per_instrument_longest_prefix() -> None:
    per = {"dns": frozenset({"b"}), "dns.lookup.duration": frozenset({"c"})}
    default = frozenset({"a"})
    assert selected_by("netflow.bytes", default, per) == frozenset({"a"})
    assert selected_by("dns.lookups", default, per) == frozenset({"b"})
    assert selected_by("dns.lookup.duration", default, per) == frozenset({"c"})
    assert selected_by("dns.lookup.duration.max", default, per) == frozenset({"c"})


def test_pods_by_container_id_and_by_pod_uid(tmp_path: Path) -> None:
    pods = PodIndex()
    pods.replace([parse_pod({
        "metadata": {"uid": UID, "name": "api-5c9f7-abcde", "namespace": "prod", "labels": {"app": "api"},
                     "ownerReferences": [{"kind": "ReplicaSet", "name": "api-5c9f7", "controller": True}]},
        "spec": {"nodeName": "n1", "containers": [{"name": "api", "image": "ghcr.io/acme/api:v1@sha256:00"}]},
        "status": {"containerStatuses": [{"name": "api", "containerID": f"containerd://{CID}"}]},
    })])
    fake_proc(tmp_path, 30, "api", cgroup=POD_CGROUP)
    fake_proc(tmp_path, 31, "pause", cgroup=POD_CGROUP.replace(CID, "cd" * 32))
    a = attribution(tmp_path, "Common.IncludeNamespaceNameRegex=^prod$", pods=pods)
    api, pause = a.process(30).attributes, a.process(31).attributes
    assert (api["k8s.pod.name"], api["k8s.container.name"], api["container.image.name"]) == \
        ("api-5c9f7-abcde", "api", "ghcr.io/acme/api")
    assert api["k8s.replicaset.name"] == "api-5c9f7" and "k8s.deployment.name" not in api  # no hash label
    assert pause["k8s.pod.name"] == "api-5c9f7-abcde" and "k8s.container.name" not in pause
    assert a.process(30).watched and a.process(31).watched


def test_image_name() -> None:
    assert image_name("nginx:1.25") == "nginx"
    assert image_name("registry:5000/team/app") == "registry:5000/team/app"
    assert image_name("registry:5000/team/app:1.2@sha256:abc") == "registry:5000/team/app"


def test_kernel_verdicts(tmp_path: Path) -> None:
    fake_proc(tmp_path, 40, "sshd")
    fake_proc(tmp_path, 41, "nginx", cgroup=DOCKER_CGROUP)
    config = load_config(None, {}, ["Common.ExcludeContainerNameRegex=.", "Common.ExcludeCmdRegex=^sshd"])
    filters = Filters(config.common, config.ebpf)
    a = Attribution(filters, 30, SourceErrors(), proc=str(tmp_path), cgroup_mount=str(tmp_path))
    # cgroup ids need a cgroup v2 directory: fake one under the fake mount
    (tmp_path / "system.slice" / f"docker-{CID}.scope").mkdir(parents=True)
    workloads = a.scan().values()
    assert mode(filters) == MODE_EXCLUDE
    cgroups, pids = kernel_verdicts(filters, workloads)
    nginx = next(w for w in workloads if w.pid == 41)
    # the container has no name (no Docker here), so the name regex cannot exclude it; sshd's command line does
    assert cgroups == {} and pids == {40: False}
    assert nginx.cgroup_id is not None
    include = load_config(None, {}, ["EBPF.Pid=[41]"])
    assert mode(Filters(include.common, include.ebpf)) == MODE_INCLUDE
    assert mode(Filters(load_config(None, {}, []).common, include.ebpf)) == MODE_INCLUDE
    none = load_config(None, {}, [])
    assert mode(Filters(none.common, none.ebpf)) == MODE_OFF


def test_include_mode_names_what_is_not_watched_and_leaves_the_rest_to_the_default(tmp_path: Path) -> None:
    """The kernel watches what its maps do not name (a container newer than the last scan), so user
    space can filter it; in include mode the maps name every known process that is not watched."""
    fake_proc(tmp_path, 40, "sshd")
    fake_proc(tmp_path, 41, "nginx", cgroup=DOCKER_CGROUP)
    (tmp_path / "system.slice" / f"docker-{CID}.scope").mkdir(parents=True)
    config = load_config(None, {}, ["EBPF.Pid=[41]"])
    filters = Filters(config.common, config.ebpf)
    a = Attribution(filters, 30, SourceErrors(), proc=str(tmp_path), cgroup_mount=str(tmp_path))
    assert kernel_verdicts(filters, a.scan().values()) == ({}, {40: False})
    config = load_config(None, {}, ["Common.IncludeContainerNameRegex=^web$"])
    filters = Filters(config.common, config.ebpf)
    a = Attribution(filters, 30, SourceErrors(), proc=str(tmp_path), cgroup_mount=str(tmp_path))
    workloads = a.scan()
    cgroups, pids = kernel_verdicts(filters, workloads.values())
    assert cgroups == {workloads[40].cgroup_id: False, workloads[41].cgroup_id: False} and pids == {}


def test_an_excluded_container_is_one_cgroup_verdict(tmp_path: Path) -> None:
    pods = PodIndex()
    pods.replace([parse_pod({"metadata": {"uid": UID, "name": "noisy-0", "namespace": "ops"},
                             "spec": {"nodeName": "n1"}})])
    fake_proc(tmp_path, 50, "noisy", cgroup=POD_CGROUP)
    fake_proc(tmp_path, 51, "noisy", cgroup=POD_CGROUP)
    fake_proc(tmp_path, 52, "sshd")
    (tmp_path / POD_CGROUP[4:].strip()).mkdir(parents=True)
    config = load_config(None, {}, ["Common.ExcludePodNameRegex=^noisy-"])
    filters = Filters(config.common, config.ebpf)
    a = Attribution(filters, 30, SourceErrors(), proc=str(tmp_path), cgroup_mount=str(tmp_path), pods=pods)
    workloads = a.scan()
    cgroup_id = workloads[50].cgroup_id
    assert cgroup_id is not None and not workloads[50].watched and workloads[52].watched
    assert kernel_verdicts(filters, workloads.values()) == ({cgroup_id: False}, {})


def test_a_malformed_cgroup_file_is_a_counted_error(tmp_path: Path) -> None:
    fake_proc(tmp_path, 60, "odd", cgroup="this is not a cgroup file\n")
    a = attribution(tmp_path)
    assert a.process(60).attributes["netobs.running_mode"] == "host"
    assert a.errors.counts() == {"cgroup": 1}


def test_a_cgroup_the_kernel_did_not_name_is_found_by_its_directory(tmp_path: Path) -> None:
    """The cgroup id is the directory's inode: while the directory exists, it tells the path."""
    mount = tmp_path / "cgroup"
    leaf = mount / "system.slice" / f"docker-{CID}.scope"
    leaf.mkdir(parents=True)
    config = load_config(None, {}, [])
    a = Attribution(Filters(config.common, config.ebpf), 30, SourceErrors(), proc=str(tmp_path / "proc"),
                    cgroup_mount=str(mount))
    gone = a.owner(Owner(90, "job", 555, leaf.stat().st_ino))
    assert gone.attributes["container.id"] == CID


def test_the_answers_kept_for_gone_processes_are_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Past MAX_PAST answers the oldest go first; attribution goes on (a forgotten one is built again)."""
    monkeypatch.setattr(attribution_module, "MAX_PAST", 3)
    a = attribution(tmp_path)
    a.cgroup_path = {42: f"/system.slice/docker-{CID}.scope"}.get
    first = a.owner(Owner(100, "job", 1, 42))
    for pid in range(101, 106):
        a.owner(Owner(pid, "job", 1, 42))
    assert len(a._past) == 3
    again = a.owner(Owner(100, "job", 1, 42))
    assert again is not first and again.attributes == first.attributes
