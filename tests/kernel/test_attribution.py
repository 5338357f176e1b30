"""Process, container and pod attribution, and iLogtail's filters, against the real kernel.

"Containers" are processes in cgroups named as containerd, CRI-O and Docker name them (under the
cgroup v2 hierarchy) and in their own network namespaces, talking over a veth pair; a fake Docker
Engine API and a fake Kubernetes API server describe them (tests/kernel/fake_apis.py)."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.kernel.containers import (
    CgroupTree,
    cgroup_tree,
    container_id,
    containerd_path,
    crio_path,
    docker_path,
    pod_uid,
)
from tests.kernel.fake_apis import FakeDocker, FakeKubernetes, docker_inspect, pod
from tests.kernel.harness import Exporter, Labels, Peer, free_port, wait_until
from tests.kernel.netns import veth_pair

pytestmark = pytest.mark.kernel

BYTES = "netflow_bytes_total"
NODE = f"t7-node-{os.getpid()}"
SEND = {"web": 1111, "batch": 2222, "legacy": 3333, "host": 4444}
CLIENTS = tuple(SEND)
LIGHT = ("Dns.Enabled=false", "Bash.Enabled=false", "Common.ProtocolProcess=false",
         "Common.DropLocalConnections=false", "Common.FlushMetaInterval=60")


@dataclass
class World:
    ids: dict[str, str]  # container key -> container id
    uids: dict[str, str]  # pod key -> pod uid
    clients: dict[str, Peer]
    server: Peer  # the db pod's server, in the other network namespace
    host_server: Peer
    docker: FakeDocker
    k8s: FakeKubernetes
    kubeconfig: str
    cgroups: CgroupTree
    netns: str
    pods: dict[str, dict] = field(default_factory=dict)

    def settings(self, *extra: str) -> list[str]:
        return [*LIGHT, f"Containers.DockerSocket={self.docker.path}", f"Kubernetes.Kubeconfig={self.kubeconfig}",
                "Kubernetes.PodLabels=[app]", *extra]

    def exporter(self, *extra: str) -> Exporter:
        return Exporter(*self.settings(*extra), env={"NODE_NAME": NODE})

    def talk(self, *keys: str) -> None:
        """One connection from each client named, each sending its own number of bytes."""
        for key in keys:
            self.clients[key].send_line()
        for key in keys:
            assert self.clients[key].line()["received"] == 0


def _pods(ids: dict[str, str], uids: dict[str, str]) -> dict[str, dict]:
    return {
        "web": pod(uids["web"], "web-7d4b9c8f6-x2x9z", "shop", NODE, {"app": "web", "pod-template-hash": "7d4b9c8f6"},
                   ("ReplicaSet", "web-7d4b9c8f6"),
                   [("nginx", "docker.io/library/nginx:1.25", f"containerd://{ids['web']}", {"MODE": "prod"})]),
        "batch": pod(uids["batch"], "report-28934420-abcde", "jobs", NODE, {"app": "report"},
                     ("Job", "report-28934420"),
                     [("report", "quay.io/acme/report:3", f"cri-o://{ids['batch']}", {"MODE": "batch"})]),
        "db": pod(uids["db"], "db-0", "shop", NODE, {"app": "db"}, ("StatefulSet", "db"),
                  [("postgres", "postgres:16", f"containerd://{ids['db']}", {})]),
        "elsewhere": pod(pod_uid(), "other-0", "shop", "another-node", {"app": "web"}, None, []),
    }


@pytest.fixture(scope="module")
def world(bpf_ready: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    ids = {key: container_id() for key in ("web", "batch", "legacy", "db")}
    uids = {key: pod_uid() for key in ("web", "batch", "db")}
    tmp = tmp_path_factory.mktemp("attribution")
    docker = FakeDocker(f"/tmp/netobs-t7-{os.getpid()}-docker.sock", {ids["legacy"]: docker_inspect(
        ids["legacy"], "legacy-app", "registry.local:5000/legacy/app:2.1", {"team": "billing"},
        {"SERVICE_PORT": "8080", "FOO": "bar"})})
    pods = _pods(ids, uids)
    k8s = FakeKubernetes(free_port(), list(pods.values()))
    peers: list[Peer] = []
    try:
        with cgroup_tree() as cgroups, veth_pair("t7") as veth:
            server = Peer("tcp-server", f"--host={veth.b_v4}", "--count=100000", netns=veth.b,
                          cgroup=cgroups.make(containerd_path(uids["db"], ids["db"], "besteffort")))
            host_server = Peer("tcp-server", "--count=100000")
            paths = {"web": containerd_path(uids["web"], ids["web"]), "batch": crio_path(uids["batch"], ids["batch"]),
                     "legacy": docker_path(ids["legacy"])}
            clients = {key: Peer("tcp-client-on-demand", f"--host={veth.b_v4}", f"--port={server.ready['port']}",
                                 f"--send={SEND[key]}", netns=veth.a, cgroup=cgroups.make(paths[key]))
                       for key in ("web", "batch", "legacy")}
            clients["host"] = Peer("tcp-client-on-demand", f"--port={host_server.ready['port']}",
                                   f"--send={SEND['host']}")
            peers = [server, host_server, *clients.values()]
            yield World(ids, uids, clients, server, host_server, docker, k8s,
                        k8s.kubeconfig(str(tmp / "kubeconfig")), cgroups, veth.a, pods)
            for client in clients.values():
                assert client.proc.stdin is not None
                client.proc.stdin.close()
                client.proc.wait(10)
    finally:
        for peer in peers:
            peer.proc.kill()
            peer.proc.wait()
        docker.close()
        if k8s.server is not None:
            k8s.stop()


def outgoing(e: Exporter, **labels: str) -> list[tuple[Labels, float]]:
    return e.samples(BYTES, network_io_direction="transmit", netflow_direction="outgoing", **labels)


def wait_bytes(e: Exporter, expected: float, timeout: float = 15, **labels: str) -> float:
    return wait_until(lambda: sum(v for _, v in outgoing(e, **labels)), lambda v: v >= expected, timeout)


# ---------------------------------------------------------------------------------------------- attribution


def test_each_container_carries_its_container_pod_and_workload(world: World) -> None:
    e = world.exporter()
    try:
        world.talk(*CLIENTS)
        ids = world.ids
        assert wait_bytes(e, SEND["web"], container_id=ids["web"]) == SEND["web"]
        [(web, _)] = outgoing(e, container_id=ids["web"])
        assert web | {
            "netobs_running_mode": "container", "container_name": "nginx",
            "container_image_name": "docker.io/library/nginx", "k8s_namespace_name": "shop",
            "k8s_pod_name": "web-7d4b9c8f6-x2x9z", "k8s_container_name": "nginx", "k8s_deployment_name": "web",
            "k8s_node_name": NODE, "k8s_pod_label_app": "web",
        } == web
        assert web["process_executable_name"].startswith("python")
        assert not web.get("process_pid") and not web.get("k8s_pod_uid")  # off by default (an absent attribute
        # is an empty label in Prometheus, when other series of the family have it)

        assert wait_bytes(e, SEND["batch"], container_id=ids["batch"]) == SEND["batch"]
        [(batch, _)] = outgoing(e, container_id=ids["batch"])
        assert (batch["k8s_cronjob_name"], batch["k8s_job_name"], batch["k8s_namespace_name"]) == \
            ("report", "report-28934420", "jobs")
        assert (batch["container_name"], batch["container_image_name"]) == ("report", "quay.io/acme/report")

        assert wait_bytes(e, SEND["legacy"], container_id=ids["legacy"]) == SEND["legacy"]
        [(legacy, _)] = outgoing(e, container_id=ids["legacy"])
        assert (legacy["container_name"], legacy["container_image_name"]) == \
            ("legacy-app", "registry.local:5000/legacy/app")
        assert not legacy.get("k8s_pod_name")

        port = world.host_server.ready["port"]
        assert wait_bytes(e, SEND["host"], destination_port=str(port)) == SEND["host"]
        [(host, _)] = outgoing(e, destination_port=str(port))
        assert host["netobs_running_mode"] == "host" and not host.get("container_id")

        incoming = {"network_io_direction": "receive", "netflow_direction": "incoming"}
        total = SEND["web"] + SEND["batch"] + SEND["legacy"]
        assert wait_until(lambda: e.value(BYTES, container_id=ids["db"], **incoming), lambda v: v == total) == total
        [(db, _)] = e.samples(BYTES, container_id=ids["db"], **incoming)
        assert (db["k8s_statefulset_name"], db["k8s_pod_name"]) == ("db", "db-0")
        assert any(p.startswith("/api/v1/pods?fieldSelector=spec.nodeName%3D" + NODE) for p in world.k8s.requests)
    finally:
        assert e.stop() == 0


def test_attributes_are_chosen_per_instrument(world: World) -> None:
    e = world.exporter("Attributes.Process=[container.id]",
                       "Attributes.Instruments={netflow.bytes: [process.pid, k8s.pod.uid, k8s.pod.name]}")
    try:
        world.talk("web")
        assert wait_bytes(e, SEND["web"], process_pid=world.clients["web"].pid) == SEND["web"]
        [(web, _)] = outgoing(e, process_pid=world.clients["web"].pid)
        assert (web["k8s_pod_uid"], web["k8s_pod_name"]) == (world.uids["web"], "web-7d4b9c8f6-x2x9z")
        assert not web.get("container_id") and not web.get("process_executable_name")
        [(packets, _)] = e.samples("netflow_packets_total", network_io_direction="transmit",
                                   netflow_direction="outgoing", container_id=world.ids["web"])
        assert not packets.get("process_pid") and not packets.get("k8s_pod_name")
    finally:
        assert e.stop() == 0


def test_records_say_running_mode_container_and_pod(world: World, tmp_path: Path) -> None:
    records = tmp_path / "records.jsonl"
    e = world.exporter(f"Telemetry.Records={records}", "Common.FlushOutL4Interval=1")
    try:
        world.talk("web", "host")

        def mine() -> list[dict[str, str]]:
            lines = records.read_text().splitlines() if records.exists() else []
            return [r for r in map(json.loads, lines) if r["_process_pid_"] in
                    (world.clients["web"].pid, world.clients["host"].pid) and r["role"] == "client"]

        found = wait_until(lambda: len(mine()), lambda n: n >= 2, timeout=15)
        assert found >= 2
        by_pid = {r["_process_pid_"]: r for r in mine()}
        web, host = by_pid[world.clients["web"].pid], by_pid[world.clients["host"].pid]
        assert (web["_running_mode_"], web["_pod_name_"], web["_namespace_"], web["_container_id_"]) == \
            ("container", "web-7d4b9c8f6-x2x9z", "shop", world.ids["web"])
        assert host["_running_mode_"] == "host" and "_container_id_" not in host
    finally:
        assert e.stop() == 0


def test_api_server_away_and_back(world: World) -> None:
    """The last known pods stay while the API server is away; errors are counted; changes made
    meanwhile arrive once it is back."""
    e = world.exporter("Attributes.Process=[process.pid, container.id, k8s.pod.name, k8s.pod.label.*]")
    web = world.clients["web"].pid
    try:
        world.talk("web")
        assert wait_bytes(e, SEND["web"], process_pid=web, k8s_pod_name="web-7d4b9c8f6-x2x9z") == SEND["web"]
        world.k8s.stop()
        errors = wait_until(lambda: e.value("netobs_enrich_errors_total", source="kubernetes"), lambda v: v > 0)
        assert errors > 0
        world.talk("web")
        assert wait_bytes(e, 2 * SEND["web"], process_pid=web, k8s_pod_name="web-7d4b9c8f6-x2x9z") == 2 * SEND["web"]

        changed = world.pods["web"]
        changed["metadata"]["labels"]["app"] = "web-v2"
        world.k8s.change("MODIFIED", changed)  # while away: only the next list will tell
        world.k8s.start()
        relabelled = wait_until(lambda: len(outgoing(e, process_pid=web, k8s_pod_label_app="web-v2")),
                                lambda n: n == 1, timeout=60)
        assert relabelled == 1
        assert sum(v for _, v in outgoing(e, process_pid=web)) == 2 * SEND["web"]
    finally:
        assert e.stop() == 0
        changed["metadata"]["labels"]["app"] = "web"
        world.k8s.change("MODIFIED", changed)


# ---------------------------------------------------------------------------------------------- filters

def _pid_filter(world: World) -> str:
    return f"EBPF.Pid=[{world.clients['web'].pid}, {world.clients['host'].pid}]"


FILTERS: list[tuple[str, object, set[str]]] = [
    ("IncludeContainerLabels", "Common.IncludeContainerLabels={team: billing}", {"legacy"}),
    ("ExcludeContainerLabels", "Common.ExcludeContainerLabels={team: billing}", {"web", "batch", "host", "db"}),
    ("IncludeK8sLabels", "Common.IncludeK8sLabels={app: '^(web|db)$'}", {"web", "db"}),
    ("ExcludeK8sLabels", "Common.ExcludeK8sLabels={app: '^web$'}", {"batch", "legacy", "host", "db"}),
    ("IncludeEnvs", "Common.IncludeEnvs={MODE: '^prod$', SERVICE_PORT: '^8080$'}", {"web", "legacy"}),
    ("ExcludeEnvs", "Common.ExcludeEnvs={MODE: prod}", {"batch", "legacy", "host", "db"}),
    ("IncludeCmdRegex", "Common.IncludeCmdRegex=--send=(1111|4444)", {"web", "host"}),
    ("ExcludeCmdRegex", "Common.ExcludeCmdRegex=--send=2222", {"web", "legacy", "host", "db"}),
    ("IncludeContainerNameRegex", "Common.IncludeContainerNameRegex=^(legacy-app|report)$", {"legacy", "batch"}),
    ("ExcludeContainerNameRegex", "Common.ExcludeContainerNameRegex=^nginx$", {"batch", "legacy", "host", "db"}),
    ("IncludePodNameRegex", "Common.IncludePodNameRegex=^web-", {"web"}),
    ("ExcludePodNameRegex", "Common.ExcludePodNameRegex=^db-", {"web", "batch", "legacy", "host"}),
    ("IncludeNamespaceNameRegex", "Common.IncludeNamespaceNameRegex=^jobs$", {"batch"}),
    ("ExcludeNamespaceNameRegex", "Common.ExcludeNamespaceNameRegex=^shop$", {"batch", "legacy", "host"}),
    ("EBPF.Pid", _pid_filter, {"web", "host"}),
    ("exclude wins, kinds add up", "Common.IncludeNamespaceNameRegex=shop", {"web"}),
]


def kernel_flow_pids(exporter_pid: int) -> set[int]:
    """The pids in the kernel's flow table of this exporter (bpftool, with the object's BTF)."""
    held = set()  # the ids of the maps the exporter holds, from its file descriptors
    for info in Path(f"/proc/{exporter_pid}/fdinfo").iterdir():
        with contextlib.suppress(OSError):
            held |= {int(line.split()[1]) for line in info.read_text().splitlines() if line.startswith("map_id:")}
    maps = json.loads(subprocess.run(["bpftool", "-j", "map", "show"], check=True, capture_output=True,
                                     text=True).stdout)
    ids = [m["id"] for m in maps if m.get("name") == "flows" and m["id"] in held]
    assert len(ids) == 1, ids
    dump = json.loads(subprocess.run(["bpftool", "-j", "map", "dump", "id", str(ids[0])], check=True,
                                     capture_output=True, text=True).stdout)
    return {entry["formatted"]["key"]["pid"] for entry in dump}


@pytest.mark.parametrize(("name", "setting", "watched"), FILTERS, ids=[f[0] for f in FILTERS])
def test_filter(world: World, name: str, setting: object, watched: set[str]) -> None:
    settings = [setting(world) if callable(setting) else str(setting)]
    if name == "exclude wins, kinds add up":
        settings.append("Common.ExcludePodNameRegex=^db-")
    e = world.exporter("Attributes.Process=[process.pid, container.id]", *settings)
    pids = {key: world.clients[key].pid for key in CLIENTS} | {"db": world.server.pid}
    try:
        world.talk(*CLIENTS)
        for key in sorted(watched - {"db"}):
            assert wait_bytes(e, SEND[key], process_pid=pids[key]) == SEND[key], key
        if "db" in watched:
            received = SEND["web"] + SEND["batch"] + SEND["legacy"]
            assert wait_until(lambda: e.value(BYTES, process_pid=pids["db"], network_io_direction="receive"),
                              lambda v: v >= received) >= received
        series_pids = {labels.get("process_pid") for labels, _ in e.samples(BYTES)}
        for key in set(pids) - watched:
            assert pids[key] not in series_pids, f"{key} should not have series"
        in_kernel = kernel_flow_pids(e.proc.pid)
        assert {int(pids[key]) for key in watched} <= in_kernel
        for key in set(pids) - watched:
            assert int(pids[key]) not in in_kernel, f"{key} should not be counted in the kernel"
    finally:
        assert e.stop() == 0
