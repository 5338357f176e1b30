"""Process, container and pod attribution, and iLogtail's filters, against the real kernel.

"Containers" are processes in cgroups named as containerd, CRI-O and Docker name them (under the
cgroup v2 hierarchy) and in their own network namespaces, talking over a veth pair; a fake Docker
Engine API and a fake Kubernetes API server describe them (tests/kernel/fake_apis.py)."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import threading
import time
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


def kernel_flow_pids(exporter: Exporter, every: bool = False) -> list[int]:
    """The pids in the kernel's flow table of this exporter, once each, or once per flow with `every`."""
    pids = [entry["key"]["pid"] for entry in exporter.kernel_map("flows")]
    return pids if every else sorted(set(pids))


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
        in_kernel = set(kernel_flow_pids(e))
        assert {int(pids[key]) for key in watched} <= in_kernel
        for key in set(pids) - watched:
            assert int(pids[key]) not in in_kernel, f"{key} should not be counted in the kernel"
    finally:
        assert e.stop() == 0


# ---------------------------------------------------------------------------------------------- short lives

class Sink:
    """A TCP server on 127.0.0.1 reading every connection to its end, each in its own thread."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0), backlog=512)
        self.port = self.sock.getsockname()[1]
        self.received = 0
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._read, args=(conn,), daemon=True).start()

    def _read(self, conn: socket.socket) -> None:
        with conn:
            while chunk := conn.recv(1 << 16):
                with self._lock:
                    self.received += len(chunk)

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def sink() -> Iterator[Sink]:
    s = Sink()
    yield s
    s.close()


def short_lived(cgroup: str, port: int, n: int, *, linger: float = 0, pid: int | None = None,
                cpu: int | None = None) -> int:
    """A process that joins `cgroup`, connects to 127.0.0.1:port, sends n bytes and exits: bash with
    /dev/tcp, a millisecond or two. With `linger`, a child keeps the connection open that long after.
    With `pid`, the process gets that pid (ns_last_pid), or the test fails. With `cpu`, it runs on that
    CPU only. Returns its pid."""
    script = f'exec 3<>/dev/tcp/127.0.0.1/{port} && printf "%{n}s" "" >&3'
    if linger:
        script += f" && (sleep {linger} &)"
    argv = ["sh", "-c", 'echo $$ > "$0/cgroup.procs" && exec bash -c "$1"', cgroup, script]
    if cpu is not None:
        argv = ["taskset", "-c", str(cpu), *argv]
    for _ in range(50):
        if pid is not None:
            Path("/proc/sys/kernel/ns_last_pid").write_text(str(pid - 1))
        proc = subprocess.Popen(argv)
        proc.wait(10)
        assert proc.returncode == 0
        if pid is None or proc.pid == pid:
            return proc.pid
    raise AssertionError(f"pid {pid} could not be had")


def remove_cgroup(path: str) -> None:
    """As a runtime removes a finished container's cgroup: at once (its processes are gone)."""
    for _ in range(50):
        try:
            os.rmdir(path)
            return
        except OSError:
            time.sleep(0.02)
    raise AssertionError(f"{path} still busy")


RUNTIMES = {
    "containerd": (lambda uid, cid: containerd_path(uid, cid), "containerd"),
    "cri-o": (lambda uid, cid: crio_path(uid, cid), "cri-o"),
    "docker": (lambda uid, cid: docker_path(cid), "docker"),
}


@pytest.mark.parametrize("runtime", list(RUNTIMES))
def test_a_process_gone_before_the_first_collection_keeps_its_container_and_pod(
        world: World, sink: Sink, runtime: str) -> None:
    """It connects, sends N bytes and exits within milliseconds, and its cgroup is removed at once, all
    before the exporter collects: its bytes still go to its container (and pod), every one of them."""
    cid, uid, n = container_id(), pod_uid(), 7777
    path, scheme = RUNTIMES[runtime]
    if runtime == "docker":
        world.docker.server.containers[cid] = docker_inspect(cid, "oneshot", "busybox:1.36", {}, {})
    else:
        world.k8s.change("ADDED", pod(uid, f"oneshot-{runtime}", "jobs", NODE, {"app": "oneshot"}, None,
                                      [("task", "busybox:1.36", f"{scheme}://{cid}", {})]))
    e = world.exporter("Attributes.Process=[container.id, container.name, k8s.pod.name, netobs.running_mode]")
    try:
        cgroup = world.cgroups.make(path(uid, cid))
        short_lived(cgroup, sink.port, n)
        remove_cgroup(cgroup)
        assert wait_bytes(e, n, destination_port=str(sink.port)) == n
        [(labels, value)] = outgoing(e, destination_port=str(sink.port))
        assert value == n
        expected = {"container_id": cid, "netobs_running_mode": "container"}
        if runtime == "docker":
            expected["container_name"] = "oneshot"
        else:
            expected |= {"k8s_pod_name": f"oneshot-{runtime}", "container_name": "task"}
        assert {k: labels.get(k) for k in expected} == expected
    finally:
        assert e.stop() == 0


def test_a_reused_pid_never_joins_the_older_process_flow(world: World, sink: Sink) -> None:
    """A connects and exits while a child of its keeps the connection open; B gets A's pid and connects
    to the same server: the kernel keeps two flows, and each goes to its own container."""
    first, second = container_id(), container_id()
    e = world.exporter("Attributes.Process=[container.id, process.pid]")
    try:
        pid = short_lived(world.cgroups.make(docker_path(first)), sink.port, 1000, linger=20)
        short_lived(world.cgroups.make(docker_path(second)), sink.port, 2345, pid=pid)
        assert wait_bytes(e, 3345, destination_port=str(sink.port)) == 3345
        by_container = {labels["container_id"]: (labels["process_pid"], value)
                        for labels, value in outgoing(e, destination_port=str(sink.port))}
        assert by_container == {first: (str(pid), 1000), second: (str(pid), 2345)}
        assert sorted(kernel_flow_pids(e, every=True)).count(pid) >= 2
    finally:
        assert e.stop() == 0


def test_an_exclude_filter_applies_to_a_process_that_lived_under_a_second(world: World, sink: Sink) -> None:
    excluded, kept = (container_id(), pod_uid()), (container_id(), pod_uid())
    for (cid, uid), name in ((excluded, "noisy-cron-1"), (kept, "report-cron-1")):
        world.k8s.change("ADDED", pod(uid, name, "jobs", NODE, {"app": "cron"}, None,
                                      [("task", "busybox:1.36", f"containerd://{cid}", {})]))
    e = world.exporter("Attributes.Process=[container.id]", "Common.ExcludePodNameRegex=^noisy-")
    try:
        for (cid, uid), n in ((excluded, 500), (kept, 600)):
            cgroup = world.cgroups.make(containerd_path(uid, cid))
            short_lived(cgroup, sink.port, n)
            remove_cgroup(cgroup)
        assert wait_bytes(e, 600, destination_port=str(sink.port)) == 600
        wait_until(lambda: 0.0, lambda v: False, timeout=2)  # the excluded one would be there by now
        got = {labels.get("container_id"): value for labels, value in outgoing(e, destination_port=str(sink.port))}
        assert got == {kept[0]: 600}
    finally:
        assert e.stop() == 0


def test_a_burst_of_200_short_processes_is_attributed_to_the_last_byte(world: World, sink: Sink) -> None:
    """A CronJob-like pod runs 200 commands one after another, each connecting once and exiting."""
    cid, uid = container_id(), pod_uid()
    world.k8s.change("ADDED", pod(uid, "burst-28934421-xyz12", "jobs", NODE, {"app": "burst"},
                                  ("Job", "burst-28934421"), [("task", "busybox:1.36", f"containerd://{cid}", {})]))
    e = world.exporter("Attributes.Process=[container.id, k8s.cronjob.name]")
    try:
        cgroup = world.cgroups.make(containerd_path(uid, cid))
        sizes = [100 + i for i in range(200)]
        for n in sizes:
            short_lived(cgroup, sink.port, n)
        remove_cgroup(cgroup)
        total = sum(sizes)
        assert wait_bytes(e, total, timeout=30, destination_port=str(sink.port)) == total
        series = outgoing(e, destination_port=str(sink.port))
        assert len(series) == 1, [(labels.get("container_id"), value) for labels, value in series]
        [(labels, value)] = series
        assert (labels["container_id"], labels["k8s_cronjob_name"], value) == (cid, "burst", total)
        assert sink.received == total
    finally:
        assert e.stop() == 0


def recorded_cgroups(e: Exporter) -> set[int]:
    """The cgroups whose names the kernel holds for user space to take (netobs_cgroups)."""
    return {entry["key"] for entry in e.kernel_map("netobs_cgroups")}


def takes_counted(e: Exporter) -> int:
    """The takes user space has counted in netobs_cgroups_taken (bpftool shows 15 characters of a name)."""
    return int(e.kernel_map("netobs_cgroups_")[0]["value"])


def test_a_cgroup_whose_names_user_space_took_is_recorded_again(world: World, sink: Sink) -> None:
    """User space takes every cgroup's names the kernel recorded (reads and deletes them) when it must
    name a gone cgroup's container. A cgroup seen after that is recorded again, on the CPU that recorded
    it before the take too: each CPU remembers the cgroup it recorded last, and a take makes it look
    again. Everything else here runs on another CPU, so that nothing else becomes the first CPU's last."""
    cpus = sorted(os.sched_getaffinity(0))
    mine, other = cpus[0], cpus[-1]
    threads = [int(tid) for tid in os.listdir("/proc/self/task")]  # the sink's among them
    for tid in threads:
        os.sched_setaffinity(tid, {other})
    e = world.exporter("Attributes.Process=[container.id]")  # started from a thread on `other`: so are its own
    try:
        alive = world.cgroups.make(docker_path(container_id()))
        gone = world.cgroups.make(docker_path(container_id()))
        alive_id = os.stat(alive).st_ino
        short_lived(alive, sink.port, 400, cpu=mine)
        assert alive_id in recorded_cgroups(e)
        takes = takes_counted(e)
        short_lived(gone, sink.port, 300, cpu=other)
        remove_cgroup(gone)
        assert wait_bytes(e, 700, destination_port=str(sink.port)) == 700  # the gone one named: a take
        # the take deletes what it read, then counts itself: until it has, a CPU may still skip alive
        wait_until(lambda: takes_counted(e), lambda n: n > takes)
        assert alive_id not in recorded_cgroups(e)
        short_lived(alive, sink.port, 500, cpu=mine)
        assert alive_id in recorded_cgroups(e)
        assert wait_bytes(e, 1200, destination_port=str(sink.port)) == 1200
    finally:
        for tid in threads:
            with contextlib.suppress(OSError):
                os.sched_setaffinity(tid, set(cpus))
        assert e.stop() == 0
