"""Every dashboard query returns data from a real Prometheus that scrapes the real exporter while
traffic of every kind runs on loopback: HTTP (nginx and curl, with 5xx), HTTP/2 (nginx and h2load),
gRPC (grpc_peer.py, with failing calls), TCP connections and refusals, DNS (dnsmasq and dig: NOERROR,
NXDOMAIN, REFUSED, timeouts) and Redis.

For the service map, a fake Kubernetes API lists a pod whose container's cgroup one curl per round runs
in, and a peer pod on 127.0.0.1: that curl's flows and requests are a workload pair.

The dashboard variables are replaced by their "All" values (`.*`), as on a plain host where the
Kubernetes labels are absent."""

from __future__ import annotations

import contextlib
import json
import math
import random
import re
import shutil
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.kernel.containers import cgroup_tree, container_id, containerd_path, pod_uid
from tests.kernel.dns_peers import dnsmasq
from tests.kernel.fake_apis import pod as node_pod
from tests.kernel.fake_cluster import FakeCluster
from tests.kernel.fake_cluster import pod as peer_pod
from tests.kernel.harness import Exporter, free_port
from tests.kernel.prometheus import Prometheus
from tests.kernel.servers import NGINX_CONF
from tests.ship.promql import substitute

pytestmark = pytest.mark.usefixtures("bpf_ready")

REPO = Path(__file__).resolve().parents[2]
GRPC_PEER = Path(__file__).with_name("grpc_peer.py")
JOB = "netobs-exporter"
VALUES = {"job": JOB, "__rate_interval": "15s", "__range": "5m"}

LOCATIONS = """
        location / { return 200 "ok\\n"; }
        location /fail { return 503 "down\\n"; }"""


class Servers:
    """nginx (HTTP/1.x, and HTTP/2 in clear on a port of its own), dnsmasq, a DNS port that never
    answers, a closed TCP port, redis-server and a gRPC server."""

    def __init__(self, workdir: Path) -> None:
        self.http, self.dns, self.redis, self.closed = free_port(), free_port(), free_port(), free_port()
        self.silent, self.http2, self.grpc = free_port(), free_port(), free_port()
        # nginx 1.22: http2 is a parameter of listen (see test_http2.py)
        h2 = f";\n        listen 127.0.0.1:{self.http2} http2"
        (workdir / "nginx.conf").write_text(NGINX_CONF.format(dir=workdir, port=self.http, listen=h2,
                                                              locations=LOCATIONS))
        self.procs = [
            subprocess.Popen(["nginx", "-c", str(workdir / "nginx.conf"), "-p", str(workdir)]),
            subprocess.Popen([sys.executable, str(GRPC_PEER), "serve", str(self.grpc)]),
            dnsmasq(self.dns, "127.0.0.1"),
            subprocess.Popen(["redis-server", "--port", str(self.redis), "--bind", "127.0.0.1", "--save", "",
                              "--appendonly", "no", "--dir", str(workdir)], stdout=subprocess.DEVNULL),
        ]
        self.silent_socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # reads nothing
        self.silent_socket.bind(("127.0.0.1", self.silent))

    def stop(self) -> None:
        for proc in self.procs:
            proc.terminate()
            proc.wait()
        self.silent_socket.close()


def dns_query(name: str) -> bytes:
    labels = b"".join(bytes([len(part)]) + part.encode() for part in name.split("."))
    return struct.pack(">HHHHHH", random.randrange(65536), 0x0100, 1, 0, 0, 0) + labels + b"\0" + b"\0\1\0\1"


class Client:
    """A client that lives as long as the test, so that its series grow and have rates (every
    dig and curl is a process, hence a series, of its own, which counts once and stops)."""

    def __init__(self, s: Servers) -> None:
        self.s = s
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.settimeout(1)

    def round(self) -> None:
        for name in ("b.wild.test", "missing.test", "elsewhere.example"):  # NOERROR, NXDOMAIN, REFUSED
            self.sock.sendto(dns_query(name), ("127.0.0.1", self.s.dns))
            with contextlib.suppress(OSError):
                self.sock.recvfrom(512)
        self.sock.sendto(dns_query("silent.example"), ("127.0.0.1", self.s.silent))  # TIMEOUT
        for path in ("/", "/fail"):
            with contextlib.suppress(OSError), urllib.request.urlopen(f"http://127.0.0.1:{self.s.http}{path}",
                                                                      timeout=5) as response:
                response.read()


def run(*argv: str) -> None:
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=20, check=False)


NODE = "e2e-node"


@contextlib.contextmanager
def cluster(workdir: Path) -> Iterator[tuple[str, str]]:
    """A client pod (the cgroup its container runs in) and a peer pod on 127.0.0.1, listed by a fake API:
    (the client's cgroup, a kubeconfig)."""
    uid, cid = pod_uid(), container_id()
    with cgroup_tree("e2e") as cgroups:
        cgroup = cgroups.make(containerd_path(uid, cid))
        api = FakeCluster([
            node_pod(uid, "storefront-5d8f9-abcde", "shop", NODE, {"pod-template-hash": "5d8f9"},
                     ("ReplicaSet", "storefront-5d8f9"), [("web", "shop/web:1", f"containerd://{cid}", {})]),
            peer_pod("backend-7c9d8-fghij", "shop", "127.0.0.1", owner=("ReplicaSet", "backend-7c9d8"),
                     labels={"pod-template-hash": "7c9d8"}, node=NODE),
        ])
        try:
            yield cgroup, api.kubeconfig(str(workdir / "kubeconfig"))
        finally:
            api.stop()


def run_in(cgroup: str, *argv: str) -> None:
    run("sh", "-c", 'echo $$ > "$0/cgroup.procs" && exec "$@"', cgroup, *argv)


def traffic_round(s: Servers, pod_cgroup: str) -> None:
    base = f"http://127.0.0.1:{s.http}"
    run("curl", "-s", "-o", "/dev/null", base + "/", base + "/index", base + "/fail")
    run_in(pod_cgroup, "curl", "-s", "-o", "/dev/null", base + "/", base + "/fail")  # a workload pair
    run("curl", "-s", "-o", "/dev/null", f"http://127.0.0.1:{s.closed}/")  # refused
    run("dig", "@127.0.0.1", "-p", str(s.dns), "+tries=1", "+timeout=1", "a.wild.test", "A",
        "missing.test", "A", "elsewhere.example", "A")  # NOERROR, NXDOMAIN, REFUSED
    run("dig", "@127.0.0.1", "-p", str(s.silent), "+tries=1", "+timeout=1", "silent.example", "A")  # TIMEOUT
    run("redis-benchmark", "-p", str(s.redis), "-n", "200", "-q", "-t", "get,set")
    run("redis-cli", "-p", str(s.redis), "nosuchcommand")  # an error reply
    run("h2load", "-n", "200", "-c", "1", "-m", "10", f"http://127.0.0.1:{s.http2}/")  # prior knowledge
    # NOT_FOUND is an error on the client's side only, UNAVAILABLE on both
    run(sys.executable, str(GRPC_PEER), "call", str(s.grpc), "ok=8", "not_found=1", "unavailable=1")


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    for tool in ("prometheus", "nginx", "dnsmasq", "dig", "redis-server", "redis-benchmark", "h2load"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is missing: run make setup-test")
    workdir = tmp_path_factory.mktemp("dashboards-e2e")
    servers = Servers(workdir)
    stack = contextlib.ExitStack()
    pod_cgroup, kubeconfig = stack.enter_context(cluster(workdir))
    exporter = Exporter("Common.DropLocalConnections=false", f"Dns.Ports=[53,{servers.dns},{servers.silent}]",
                        "Dns.Timeout=1", "Bash.Enabled=false", f"Kubernetes.Kubeconfig={kubeconfig}",
                        "Kubernetes.Peers.Enabled=true", env={"NODE_NAME": NODE})
    prom = Prometheus(f"127.0.0.1:{exporter.port}", JOB, workdir)
    stop = threading.Event()

    client = Client(servers)

    def traffic() -> None:
        while not stop.is_set():
            client.round()
            traffic_round(servers, pod_cgroup)

    thread = threading.Thread(target=traffic, daemon=True)
    thread.start()
    try:
        # Rates need two scrapes of the grown counters inside the 15 s window.
        time.sleep(12)
        yield prom
    finally:
        stop.set()
        thread.join(timeout=30)
        prom.stop()
        exporter.stop()
        servers.stop()
        stack.close()


def dashboard_queries() -> list[tuple[str, str, str]]:
    """(dashboard, panel title or variable, expression) of every query of every dashboard."""
    out = []
    for path in sorted((REPO / "dashboards").glob("*.json")):
        board = json.loads(path.read_text())
        out += [(path.stem, p["title"], t["expr"]) for p in board["panels"] if p["type"] != "row"
                for t in p["targets"]]
        for v in board["templating"]["list"]:
            if v["type"] == "query":
                selector = re.fullmatch(r"label_values\((.*), *[\w${}]+\)", v["query"]["query"])
                assert selector is not None
                out.append((path.stem, f"variable {v['name']}", f"count({selector.group(1)})"))
    return out


def has_a_number(prom: Prometheus, expr: str, patience: float = 10) -> bool:
    """At least one series with a value that is not NaN (a quantile of no samples), waiting a little."""
    deadline = time.monotonic() + patience
    while True:
        if any(math.isfinite(float(r["value"][1])) for r in prom.query(expr)):
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(1)


def test_every_panel_returns_data(prometheus: Prometheus) -> None:
    empty = [f"{board}: {where}: {expr}" for board, where, expr in dashboard_queries()
             if not has_a_number(prometheus, substitute(expr, VALUES))]
    assert empty == []

