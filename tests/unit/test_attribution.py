"""The per-pid lookup and the series stage, on a fake /proc: pid reuse, exits, merging, filters."""

from __future__ import annotations

from pathlib import Path

from exporter.config import load_config
from exporter.enrich.attribution import Attribution, image_name
from exporter.enrich.errors import SourceErrors
from exporter.enrich.filters import Filters
from exporter.enrich.kubernetes_pods import PodIndex, parse_pod
from exporter.enrich.series import SeriesAttribution
from exporter.enrich.verdicts import MODE_EXCLUDE, MODE_INCLUDE, MODE_OFF, kernel_verdicts, mode
from exporter.telemetry.points import HistogramValue

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


def test_pid_reuse_is_a_new_process_and_old_series_keep_theirs(tmp_path: Path) -> None:
    fake_proc(tmp_path, 10, "old", start=100)
    a = attribution(tmp_path)
    stage = SeriesAttribution(a, frozenset({"process.executable.name"}), {})
    old_series = (("destination.port", "80"), ("process.pid", 10), ("process.executable.name", "old"))
    first = stage.decorate("netflow", {"netflow.bytes": {old_series: 5.0}})
    assert list(first["netflow.bytes"]) == [(("destination.port", "80"), ("process.executable.name", "old"))]
    fake_proc(tmp_path, 10, "new", start=999)  # the pid now names another process
    assert a.process(10).attributes["process.executable.name"] == "new"
    new_series = (("destination.port", "443"), ("process.pid", 10), ("process.executable.name", "new"))
    second = stage.decorate("netflow", {"netflow.bytes": {old_series: 6.0, new_series: 1.0}})
    assert second["netflow.bytes"] == {
        (("destination.port", "80"), ("process.executable.name", "old")): 6.0,
        (("destination.port", "443"), ("process.executable.name", "new")): 1.0,
    }


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


def test_merging_sums_counters_and_histograms_and_keeps_counters_monotonic(tmp_path: Path) -> None:
    for pid in (20, 21):
        fake_proc(tmp_path, pid, "curl")
    stage = SeriesAttribution(attribution(tmp_path), frozenset({"process.executable.name"}), {})
    a = (("process.pid", 20), ("process.executable.name", "curl"))
    b = (("process.pid", 21), ("process.executable.name", "curl"))
    merged = (("process.executable.name", "curl"),)
    h1, h2 = HistogramValue((1, 0), 0.5, 1), HistogramValue((0, 2), 3.0, 2)
    out = stage.decorate("netflow", {"netflow.bytes": {a: 10.0, b: 5.0}, "netflow.tcp.srtt": {a: 0.1, b: 0.3},
                                     "netflow.tcp.active": {a: 1.0, b: 2.0}, "netflow.tcp.rtt": {a: h1, b: h2}})
    assert out["netflow.bytes"] == {merged: 15.0}
    assert out["netflow.tcp.srtt"] == {merged: 0.3}  # gauges: the largest
    assert out["netflow.tcp.active"] == {merged: 3.0}
    assert out["netflow.tcp.rtt"] == {merged: HistogramValue((1, 2), 3.5, 3)}
    # a's flow expired: its bytes stay in the sum while the merged series lives
    assert stage.decorate("netflow", {"netflow.bytes": {b: 7.0}})["netflow.bytes"] == {merged: 17.0}
    assert stage.decorate("netflow", {"netflow.bytes": {}})["netflow.bytes"] == {}
    assert stage.decorate("netflow", {"netflow.bytes": {b: 1.0}})["netflow.bytes"] == {merged: 1.0}


def test_selection_per_instrument_longest_prefix(tmp_path: Path) -> None:
    stage = SeriesAttribution(attribution(tmp_path), frozenset({"a"}),
                              {"dns": frozenset({"b"}), "dns.lookup.duration": frozenset({"c"})})
    assert stage.selection("netflow.bytes") == frozenset({"a"})
    assert stage.selection("dns.lookups") == frozenset({"b"})
    assert stage.selection("dns.lookup.duration") == frozenset({"c"})
    assert stage.selection("dns.lookup.duration.max") == frozenset({"c"})


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
