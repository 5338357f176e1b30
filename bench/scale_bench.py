"""How the exporter's cost grows with the number of flows: CPU, bytes and memory per scrape and per OTLP push.

For each number of flows N, the exporter runs as its users run it (`python -m exporter`, loopback
traffic kept, the kernel flow table sized for N) and a holder process keeps N/2 TCP connections open
on loopback, each to a distinct destination (addresses of 127.1.0.0/16, 50 listening ports on each),
so that the exporter sees exactly N flows: one client flow per destination (the client's ephemeral
port folds to `*`) and one server flow per local address and port. Once the exporter exports them
all (`netobs_series{instrument="netflow.tcp.active"}` reaches N and stops growing), it is scraped K
times as Prometheus 2.x scrapes (its Accept header, gzip accepted), at least 1.2 s apart since the
exporter reuses a collection younger than 1 s. Each scrape gives:

- the exporter's CPU time (every thread, those that exited included) read just before and after the
  request, from a cgroup of its own in nanoseconds (else /proc/<pid>/stat, in 10 ms ticks);
- the bytes on the wire and uncompressed, the lines and sample lines, the Content-Type;
- the share of that CPU spent in the collectors (the sum of `netobs_collector_duration_seconds`:
  reading and decoding the kernel maps), the rest being attribution, the series table and rendering.

Then the exporter's RSS and peak RSS (VmRSS, VmHWM; MB = 10^6 bytes), and its CPU while idle (no
scrape) over one OTLP interval. A second exporter run for the same N pushes OTLP/HTTP to a receiver
inside this script (no scrape but the readiness check); the CPU between the ends of consecutive
pushes, less the idle CPU of the first run over the same time, is the CPU per push; its peak RSS
says what pushing holds in memory.

    .venv/bin/python bench/scale_bench.py [--flows 100,1000,...] [--scrapes K] [--busy] [--no-otlp]
        [--otlp-interval MS] [--json | --markdown] [--plot PATH] [--source DIR]

--busy sends 1 byte each way on every connection before each scrape and after each push, so that
every flow changes between collections. --source runs the exporter from another tree, e.g. one made
with `git archive HEAD | tar -x -C DIR` (plus the built exporter/bpf/objects/) while the working
tree is being edited. The exporter's series limit (Telemetry.MaxSeriesPerInstrument) is raised above
2N when 2N passes its default, since netflow.bytes has two series per flow; nothing else differs
from the default configuration. Logs: /tmp/netobs-scale-<port>.log.

Progress goes to stderr; the table (or JSON, or Markdown) and the goals to stdout. Exit status is 0
whatever the figures: this is a benchmark, not a test. Needs root (the exporter loads BPF programs,
the holder raises its open-file limit); all traffic stays on 127.0.0.0/8. Where the open-file hard
limit may not be raised (no CAP_SYS_RESOURCE), the connections are spread over several holder
processes."""

from __future__ import annotations

import argparse
import contextlib
import errno
import gzip
import importlib.util
import itertools
import json
import os
import platform
import resource
import selectors
import signal
import socket
import statistics
import subprocess
import sys
import textwrap
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TextIO

from netflow_bench import cpu_seconds, free_port, git_commit, other_exporters, peak_rss_mb, stop
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest

REPO_ROOT = Path(__file__).resolve().parents[1]
PROMETHEUS_HEADERS = {
    "Accept": "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
              "text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
    "Accept-Encoding": "gzip",
}
LISTENING_PORTS = 50
BACKLOG = 4096
CONNECT_BATCH = 1000
SCRAPE_GAP_S = 1.2            # the exporter reuses a collection younger than 1 s
SETTLE_S = 0.3               # after a busy exchange, before a scrape
PUSH_GAP_S = 1.0              # OTLP requests closer than this belong to one push
DEFAULT_SERIES_LIMIT = 20000  # Telemetry.MaxSeriesPerInstrument's default
TCP_ACTIVE = "netflow.tcp.active"


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# ------------------------------------------------------------------ the holder (its own process)

def raise_open_files(needed: int) -> int:
    """Raises RLIMIT_NOFILE to `needed`, or as far as the hard limit goes when it may not be raised
    (no CAP_SYS_RESOURCE); returns the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= needed:
        return soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, max(hard, needed)))
        return needed
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        return hard


def destinations(connections: int, ports: list[int], first_host: int) -> list[tuple[str, int]]:
    """One (address, port) per connection: the first host's address (127.1.0.1 for host 0) with every
    port, then the next address, ..."""
    out = []
    for i in range(connections):
        host = first_host + i // len(ports)
        out.append((f"127.1.{host // 254}.{host % 254 + 1}", ports[i % len(ports)]))
    return out


def accept_pending(listener: socket.socket) -> list[socket.socket]:
    accepted = []
    with contextlib.suppress(BlockingIOError):
        while True:
            accepted.append(listener.accept()[0])
    return accepted


def connect_batch(batch: list[tuple[str, int]], selector: selectors.BaseSelector,
                  accepted: list[socket.socket]) -> list[socket.socket]:
    """Starts a non-blocking connect to each destination and waits until all are connected,
    accepting on the listeners (registered with data None) meanwhile."""
    clients = []
    for destination in batch:
        client = socket.socket()
        client.setblocking(False)
        if (err := client.connect_ex(destination)) not in (0, errno.EINPROGRESS):
            raise OSError(err, f"connect to {destination}: {os.strerror(err)}")
        selector.register(client, selectors.EVENT_WRITE, "client")
        clients.append(client)
    pending = len(clients)
    while pending:
        ready = selector.select(timeout=30)
        if not ready:
            raise RuntimeError(f"{pending} connections still not established after 30 s")
        for key, _ in ready:
            sock: Any = key.fileobj
            if key.data is None:
                accepted += accept_pending(sock)
                continue
            if err := sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                raise OSError(err, f"connect: {os.strerror(err)}")
            selector.unregister(sock)
            pending -= 1
    return clients


def open_connections(targets: list[tuple[str, int]],
                     listeners: list[socket.socket]) -> tuple[list[socket.socket], list[socket.socket]]:
    """(client ends, server ends) of one connection per target, made in batches."""
    selector = selectors.DefaultSelector()
    for listener in listeners:
        listener.setblocking(False)
        selector.register(listener, selectors.EVENT_READ, None)
    clients: list[socket.socket] = []
    servers: list[socket.socket] = []
    for start in range(0, len(targets), CONNECT_BATCH):
        clients += connect_batch(targets[start:start + CONNECT_BATCH], selector, servers)
    deadline = time.monotonic() + 30
    while len(servers) < len(clients) and time.monotonic() < deadline:
        for key, _ in selector.select(timeout=1):
            servers += accept_pending(key.fileobj)  # type: ignore[arg-type]
    selector.close()
    if len(servers) < len(clients):
        raise RuntimeError(f"accepted {len(servers)} of {len(clients)} connections")
    return clients, servers


def exchange(clients: list[socket.socket], servers: list[socket.socket]) -> None:
    """Each client sends 1 byte and each server end answers 1 byte."""
    for client in clients:
        client.sendall(b"q")
    for server in servers:
        server.recv(1)
        server.sendall(b"a")
    for client in clients:
        client.recv(1)


def hosts(connections: int) -> int:
    return -(-connections // LISTENING_PORTS)


def hold(connections: int, first_host: int) -> None:
    """Opens the connections, says so on stdout (one JSON line), then answers each 'exchange' line
    of stdin with an exchange and a JSON line, until stdin closes."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    open_files = raise_open_files(2 * connections + 1000)
    listeners = [socket.create_server(("0.0.0.0", 0), backlog=BACKLOG) for _ in range(LISTENING_PORTS)]
    ports = [int(listener.getsockname()[1]) for listener in listeners]
    began = time.monotonic()
    clients, servers = open_connections(destinations(connections, ports, first_host), listeners)
    for sock in clients + servers:
        sock.settimeout(30)
    exchange(clients, servers)
    print(json.dumps({"connections": len(clients), "addresses": hosts(connections), "ports": len(ports),
                      "open_files_limit": open_files, "seconds": round(time.monotonic() - began, 2)}), flush=True)
    for line in sys.stdin:
        if line.strip() == "exchange":
            exchange(clients, servers)
            print(json.dumps({"exchanged": len(clients)}), flush=True)


def holder_sizes(connections: int) -> list[int]:
    """Connections per holder process: all in one if it may open two files per connection, else
    split by what the open-file limit allows (a whole number of addresses each)."""
    hard = raise_open_files(2 * connections + 1000)  # children inherit a raised hard limit
    per_holder = max(LISTENING_PORTS, (hard - 1000) // 2 // LISTENING_PORTS * LISTENING_PORTS)
    return [min(per_holder, connections - start) for start in range(0, connections, per_holder)]


class Holder:
    """One holder process, seen from the benchmark."""

    def __init__(self, connections: int, first_host: int) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--role", "holder", "--connections", str(connections),
             "--first-host", str(first_host)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def answer(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"holder exited with {self.proc.wait()}")
        return dict(json.loads(line))

    def ask_exchange(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write("exchange\n")
        self.proc.stdin.flush()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            if self.proc.stdin is not None:
                self.proc.stdin.close()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            stop(self.proc)


class Holders:
    """The holder processes that together keep `connections` connections open."""

    def __init__(self, connections: int) -> None:
        self.holders: list[Holder] = []
        first_host = 0
        try:
            for size in holder_sizes(connections):
                self.holders.append(Holder(size, first_host))
                first_host += hosts(size)
        except BaseException:
            self.close()
            raise

    def wait_ready(self) -> dict[str, Any]:
        """What they opened, added up, and the longest time one took."""
        ready = [h.answer() for h in self.holders]
        return {"processes": len(ready), **{k: sum(r[k] for r in ready) for k in ("connections", "addresses")},
                "ports": ready[0]["ports"], "open_files_limit": min(r["open_files_limit"] for r in ready),
                "seconds": max(r["seconds"] for r in ready)}

    def exchange(self) -> None:
        for h in self.holders:
            h.ask_exchange()
        for h in self.holders:
            h.answer()

    def close(self) -> None:
        for h in self.holders:
            h.close()


# ------------------------------------------------------------------ the exporter

def max_flows(flows: int) -> int:
    return max(65536, 2 * flows + 4096)


def series_limit(flows: int) -> int:
    """Above 2N series per instrument: netflow.bytes and netflow.packets have two per flow."""
    return max(DEFAULT_SERIES_LIMIT, 2 * flows + 4096)


@dataclass
class Scrape:
    cpu_s: float
    wall_s: float
    wire_bytes: int
    bytes: int
    lines: int
    samples: int
    netflow_samples: int        # sample lines of netflow_* metrics
    tcp_series: int             # netobs_series{instrument="netflow.tcp.active"}
    collector_s: float          # sum of netobs_collector_duration_seconds
    series_dropped: int         # sum of netobs_series_dropped_total
    content_type: str
    content_encoding: str
    cpu_since_previous_s: float | None = None  # from the end of the previous scrape to the end of this one


def sample_sum(samples: list[str], prefix: str) -> float:
    return sum(float(s.rsplit(" ", 1)[1]) for s in samples if s.startswith(prefix))


def tcp_series(samples: list[str]) -> int:
    own_count = [s for s in samples if s.startswith(f'netobs_series{{instrument="{TCP_ACTIVE}"}}')]
    if own_count:
        return int(float(own_count[0].rsplit(" ", 1)[1]))
    return sum(s.startswith(("netflow_tcp_active{", "netflow_tcp_active ")) for s in samples)


def decoded(wire: bytes, encoding: str) -> bytes:
    return gzip.decompress(wire) if encoding == "gzip" else wire


def parse_scrape(wire: bytes, content_type: str, encoding: str, cpu_s: float, wall_s: float) -> Scrape:
    body = decoded(wire, encoding)
    lines = body.decode().splitlines()
    samples = [line for line in lines if line and not line.startswith("#")]
    return Scrape(cpu_s, wall_s, len(wire), len(body), len(lines), len(samples),
                  sum(s.startswith("netflow_") for s in samples), tcp_series(samples),
                  sample_sum(samples, "netobs_collector_duration_seconds{"),
                  int(sample_sum(samples, "netobs_series_dropped_total{")), content_type, encoding)


class ProcessCpu:
    """The CPU time of one process and all its threads, those that exited included (the web server's
    threads live for one connection). A cgroup of its own counts it in nanoseconds (cgroup v1
    cpuacct.usage, or v2 cpu.stat usage_usec); without one, /proc/<pid>/stat counts in clock ticks
    (10 ms), too coarse for a scrape of a few milliseconds."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.group: Path | None = None
        for base, counter in ((Path("/sys/fs/cgroup/cpuacct"), "cpuacct.usage"), (Path("/sys/fs/cgroup"), "cpu.stat")):
            if (base / counter).exists() or (base / "cgroup.controllers").exists():
                try:
                    group = base / f"netobs-scale-{pid}"
                    group.mkdir()
                    (group / "cgroup.procs").write_text(str(pid))
                except OSError:
                    continue
                self.group, self.counter = group, counter
                break

    @property
    def precise(self) -> bool:
        return self.group is not None

    def seconds(self) -> float:
        if self.group is None:
            return cpu_seconds(self.pid)
        text = (self.group / self.counter).read_text()
        if self.counter == "cpuacct.usage":
            return int(text) / 1e9
        return int(next(line.split()[1] for line in text.splitlines() if line.startswith("usage_usec"))) / 1e6

    def close(self) -> None:
        """Once the process has exited: the group is empty and goes."""
        if self.group is not None:
            with contextlib.suppress(OSError):
                self.group.rmdir()


class Exporter:
    """`python -m exporter` on a free loopback port, with the flow table and series limit sized for N."""

    def __init__(self, source: Path, flows: int, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/metrics"
        self.log_path = Path(f"/tmp/netobs-scale-{self.port}.log")
        self.log: TextIO = open(self.log_path, "w")  # noqa: SIM115
        inherited = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "exporter", f"--web.listen-address=127.0.0.1:{self.port}",
             "--config.set", "Common.DropLocalConnections=false",
             "--config.set", f"Netflow.MaxFlows={max_flows(flows)}",
             "--config.set", f"Telemetry.MaxSeriesPerInstrument={series_limit(flows)}"],
            cwd=source, stdout=self.log, stderr=subprocess.STDOUT, env={**inherited, **(env or {})})
        self.cpu = ProcessCpu(self.proc.pid)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def fetch(self, timeout: float) -> tuple[bytes, str, str]:
        """(body as received, Content-Type, Content-Encoding) of one scrape."""
        request = urllib.request.Request(self.url, headers=PROMETHEUS_HEADERS)
        with urllib.request.urlopen(request, timeout=timeout) as response:
            wire = response.read()
            return wire, response.headers.get("Content-Type", ""), response.headers.get("Content-Encoding", "")

    def scrape(self, timeout: float) -> Scrape:
        cpu_before, began = self.cpu.seconds(), time.monotonic()
        wire, content_type, encoding = self.fetch(timeout)
        wall_s, cpu_s = time.monotonic() - began, self.cpu.seconds() - cpu_before
        return parse_scrape(wire, content_type, encoding, cpu_s, wall_s)

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.proc.poll() is None:
            with contextlib.suppress(OSError):
                wire, _, encoding = self.fetch(10)
                if b"netobs_program_attached" in decoded(wire, encoding):
                    return
            time.sleep(0.2)
        raise RuntimeError(f"exporter not ready (exit status {self.proc.poll()}), see {self.log_path}:\n"
                           f"{self.log_path.read_text()[-3000:]}")

    def memory_mb(self) -> tuple[float, float]:
        """(VmRSS, VmHWM) in MB of 10^6 bytes."""
        with open(f"/proc/{self.pid}/status") as f:
            rss = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
        return rss * 1024 / 1e6, peak_rss_mb(self.pid)

    def log_problems(self) -> list[str]:
        """The log's error and warning lines."""
        self.log.flush()
        return [line for line in self.log_path.read_text().splitlines()
                if "level=error" in line or "level=warn" in line]

    def close(self) -> None:
        stop(self.proc)
        self.log.close()
        self.cpu.close()


# ------------------------------------------------------------------ scrapes

def wait_for_flows(exporter: Exporter, flows: int, timeout: float, scrape_timeout: float) -> int:
    """Scrapes until the exporter exports at least `flows` TCP flows and the count stops growing
    (by more than 1 % of `flows`: other processes' short connections on the host add a few)."""
    deadline, last, stalled = time.monotonic() + timeout, -1, 0
    while True:
        seen = exporter.scrape(scrape_timeout).tcp_series
        say(f"  exporter exports {seen} TCP flows")
        if seen >= flows and 0 <= seen - last <= flows // 100:
            return seen
        stalled = stalled + 1 if seen <= last else 0
        if time.monotonic() > deadline or stalled >= 5:
            say(f"  giving up waiting: {seen} of {flows} TCP flows exported")
            return seen
        last = seen
        time.sleep(SCRAPE_GAP_S)


def measure_scrapes(exporter: Exporter, holder: Holders | None, count: int, timeout: float) -> list[Scrape]:
    """`count` scrapes at least SCRAPE_GAP_S apart; with a holder, its connections exchange before each."""
    scrapes = []
    previous_end: float | None = None
    for i in range(count):
        time.sleep(SCRAPE_GAP_S)
        if holder is not None:
            holder.exchange()
            # the kernel's delayed ACKs of the exchange (40 ms) run in softirqs, which the CPU
            # accounting charges to whichever process is on the CPU: let them pass before the scrape
            time.sleep(SETTLE_S)
        scrape = exporter.scrape(timeout)
        end = exporter.cpu.seconds()
        if previous_end is not None:
            scrape.cpu_since_previous_s = end - previous_end
        previous_end = end
        say(f"  scrape {i + 1}/{count}: {scrape.cpu_s * 1000:.0f} ms CPU, {scrape.wall_s:.2f} s, "
            f"{scrape.lines} lines, {scrape.wire_bytes} bytes")
        scrapes.append(scrape)
    return scrapes


def idle_cores(cpu: ProcessCpu, seconds: float) -> float:
    """The exporter's CPU per second while nothing scrapes it."""
    time.sleep(SCRAPE_GAP_S)
    before = cpu.seconds()
    time.sleep(seconds)
    return (cpu.seconds() - before) / seconds


# ------------------------------------------------------------------ OTLP

@dataclass
class OtlpRequest:
    arrived: float          # monotonic, when its body had been read
    exporter_cpu_s: float   # the exporter's utime + stime then
    wire_bytes: int
    bytes: int
    tcp_points: int         # data points of netflow.tcp.active in it


@dataclass
class Push:
    requests: int
    wire_bytes: int
    bytes: int
    ended: float
    exporter_cpu_s: float   # at its last request
    tcp_points: int


def tcp_points(body: bytes) -> int:
    request = ExportMetricsServiceRequest.FromString(body)
    return sum(len(getattr(m, m.WhichOneof("data")).data_points)
               for rm in request.resource_metrics for sm in rm.scope_metrics for m in sm.metrics
               if m.name == TCP_ACTIVE)


def read_body(handler: BaseHTTPRequestHandler) -> bytes:
    if handler.headers.get("Transfer-Encoding", "").lower() != "chunked":
        return handler.rfile.read(int(handler.headers.get("Content-Length", 0)))
    chunks = []
    while size := int(handler.rfile.readline().split(b";")[0], 16):
        chunks.append(handler.rfile.read(size))
        handler.rfile.readline()
    handler.rfile.readline()
    return b"".join(chunks)


class OtlpReceiver:
    """An OTLP/HTTP receiver on loopback: answers every POST with 200 and records /v1/metrics."""

    def __init__(self) -> None:
        self.exporter_cpu: ProcessCpu | None = None
        self.requests: list[OtlpRequest] = []
        self.other_requests = 0  # /v1/logs and anything else
        self._lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])
        threading.Thread(target=self.server.serve_forever, name="otlp", daemon=True).start()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                wire = read_body(self)
                arrived = time.monotonic()
                cpu = receiver.exporter_cpu.seconds() if receiver.exporter_cpu is not None else 0.0
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()
                receiver.record(self.path, wire, self.headers.get("Content-Encoding", ""), arrived, cpu)

            def log_message(self, format: str, *args: object) -> None:
                pass

        return Handler

    def record(self, path: str, wire: bytes, encoding: str, arrived: float, cpu: float) -> None:
        if path.rstrip("/") != "/v1/metrics":
            with self._lock:
                self.other_requests += 1
            return
        body = decoded(wire, encoding)
        request = OtlpRequest(arrived, cpu, len(wire), len(body), tcp_points(body))
        with self._lock:
            self.requests.append(request)

    def pushes(self) -> list[Push]:
        """Complete pushes: requests less than PUSH_GAP_S apart are one push, complete once
        PUSH_GAP_S has passed after its last."""
        with self._lock:
            requests = sorted(self.requests, key=lambda r: r.arrived)
        pushes: list[Push] = []
        for r in requests:
            if pushes and r.arrived - pushes[-1].ended < PUSH_GAP_S:
                p = pushes[-1]
                pushes[-1] = Push(p.requests + 1, p.wire_bytes + r.wire_bytes, p.bytes + r.bytes, r.arrived,
                                  r.exporter_cpu_s, p.tcp_points + r.tcp_points)
            else:
                pushes.append(Push(1, r.wire_bytes, r.bytes, r.arrived, r.exporter_cpu_s, r.tcp_points))
        return [p for p in pushes if time.monotonic() - p.ended >= PUSH_GAP_S]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def otlp_env(port: int, interval_ms: int) -> dict[str, str]:
    return {"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port}",
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf", "OTEL_METRIC_EXPORT_INTERVAL": str(interval_ms)}


def full_pushes(receiver: OtlpReceiver, flows: int, wanted: int, holder: Holders | None,
                patience: float) -> list[Push]:
    """The first `wanted` pushes from the first that holds every flow; with a holder, its connections
    exchange after each push. Gives up when no push arrives for `patience` seconds."""
    seen, last_news = 0, time.monotonic()
    while time.monotonic() - last_news < patience:
        pushes = receiver.pushes()
        for p in pushes[seen:]:
            say(f"  push: {p.requests} requests, {p.wire_bytes} bytes, {p.tcp_points} TCP flows")
            last_news = time.monotonic()
            if holder is not None:
                holder.exchange()
        seen = len(pushes)
        full = [i for i, p in enumerate(pushes) if p.tcp_points >= flows]
        if full and len(pushes) - full[0] >= wanted:
            return pushes[full[0]:full[0] + wanted]
        time.sleep(0.2)
    raise RuntimeError(f"no OTLP push for {patience:g} s ({seen} pushes, {wanted} with {flows} TCP flows wanted): "
                       "see the exporter's log")


def cpu_per_push(pushes: list[Push], idle: float) -> list[float]:
    """The exporter's CPU from the end of each push to the end of the next, less its idle CPU."""
    return [b.exporter_cpu_s - a.exporter_cpu_s - idle * (b.ended - a.ended) for a, b in itertools.pairwise(pushes)]


# ------------------------------------------------------------------ one N

@dataclass
class Result:
    flows: int
    connections: int = 0
    holder_connect_s: float = 0.0
    holder_processes: int = 0
    tcp_series: int = 0
    scrapes: list[Scrape] = field(default_factory=list)
    rss_mb: float | None = None
    peak_rss_mb: float | None = None
    idle_cores: float | None = None
    idle_window_s: float | None = None
    otlp_pushes: list[Push] = field(default_factory=list)
    otlp_cpu_s: list[float] = field(default_factory=list)
    otlp_peak_rss_mb: float | None = None  # of the exporter that pushed (and was not scraped)
    otlp_other_requests: int = 0
    other_exporters: int = 0  # most exporter processes not started here, seen at a run's start or end
    logs: dict[str, list[str]] = field(default_factory=dict)  # log path -> error and warning lines
    error: str | None = None


@dataclass
class Settings:
    scrapes: int
    busy: bool
    otlp: bool
    otlp_interval_ms: int
    otlp_pushes: int
    scrape_timeout: float
    source: Path


@contextlib.contextmanager
def running(exporter: Exporter, result: Result) -> Iterator[Exporter]:
    """Stops the exporter and keeps its log's problems; notes exporters that others ran meanwhile
    (they share the machine's two cores and see the holder's flows)."""
    result.other_exporters = max(result.other_exporters, other_exporters(exporter.pid))
    try:
        yield exporter
    finally:
        result.other_exporters = max(result.other_exporters, other_exporters(exporter.pid))
        result.logs[str(exporter.log_path)] = exporter.log_problems()
        exporter.close()


@contextlib.contextmanager
def holding(connections: int, result: Result) -> Iterator[Holders]:
    holders = Holders(connections)
    try:
        ready = holders.wait_ready()
        result.connections, result.holder_connect_s = ready["connections"], ready["seconds"]
        result.holder_processes = ready["processes"]
        say(f"  holder: {ready['connections']} connections to {ready['addresses']} addresses x {ready['ports']} "
            f"ports in {ready['seconds']} s ({ready['processes']} processes, open-file limit "
            f"{ready['open_files_limit']})")
        yield holders
    finally:
        holders.close()


def scrape_run(result: Result, s: Settings) -> None:
    with running(Exporter(s.source, result.flows), result) as exporter:
        exporter.wait_ready()
        with holding(result.flows // 2, result) as holder:
            result.tcp_series = wait_for_flows(exporter, result.flows, 600, s.scrape_timeout)
            result.scrapes = measure_scrapes(exporter, holder if s.busy else None, s.scrapes, s.scrape_timeout)
            result.rss_mb, result.peak_rss_mb = exporter.memory_mb()
            if s.otlp:
                result.idle_window_s = max(5.0, s.otlp_interval_ms / 1000)
                result.idle_cores = idle_cores(exporter.cpu, result.idle_window_s)
                say(f"  idle: {result.idle_cores:.4f} cores over {result.idle_window_s:g} s")


def otlp_run(result: Result, s: Settings) -> None:
    receiver = OtlpReceiver()
    try:
        with running(Exporter(s.source, result.flows, otlp_env(receiver.port, s.otlp_interval_ms)),
                     result) as exporter:
            receiver.exporter_cpu = exporter.cpu
            exporter.wait_ready()
            with holding(result.flows // 2, result) as holder:
                patience = s.otlp_interval_ms / 1000 + s.scrape_timeout  # a push costs about a scrape
                pushes = full_pushes(receiver, result.flows, s.otlp_pushes + 1, holder if s.busy else None,
                                     patience)
                result.otlp_peak_rss_mb = exporter.memory_mb()[1]
        result.otlp_pushes, result.otlp_cpu_s = pushes, cpu_per_push(pushes, result.idle_cores or 0.0)
        result.otlp_other_requests = receiver.other_requests
    finally:
        receiver.close()


def measure(flows: int, s: Settings) -> Result:
    result = Result(flows)
    try:
        say(f"{flows} flows: scrapes...")
        scrape_run(result, s)
        if s.otlp:
            say(f"{flows} flows: OTLP pushes every {s.otlp_interval_ms} ms...")
            otlp_run(result, s)
    except Exception as e:  # one N failing leaves the others to run
        say(f"{flows} flows: failed: {e}")
        result.error = str(e)
    return result


# ------------------------------------------------------------------ figures

def median_min_max(values: list[float]) -> tuple[float | None, float | None, float | None]:
    if not values:
        return None, None, None
    return statistics.median(values), min(values), max(values)


def median_or_none(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def figures(r: Result) -> dict[str, Any]:
    """What the table, the goals and the plot show for one N."""
    cpu = median_min_max([x.cpu_s * 1000 for x in r.scrapes])
    otlp = median_min_max([x * 1000 for x in r.otlp_cpu_s])
    last = r.scrapes[-1] if r.scrapes else None
    shares = [x.collector_s / x.cpu_s for x in r.scrapes if x.cpu_s > 0]
    return {
        "flows": r.flows, "tcp_series": r.tcp_series,
        "lines": last.lines if last else None, "samples": last.samples if last else None,
        "lines_per_flow": last.netflow_samples / last.tcp_series if last and last.tcp_series else None,
        "scrape_cpu_ms": cpu[0], "scrape_cpu_min_ms": cpu[1], "scrape_cpu_max_ms": cpu[2],
        "scrape_wall_s": median_or_none([x.wall_s for x in r.scrapes]),
        "scrape_interval_cpu_ms": median_or_none([x.cpu_since_previous_s * 1000 for x in r.scrapes
                                                  if x.cpu_since_previous_s is not None]),
        "wire_bytes": median_or_none([x.wire_bytes for x in r.scrapes]),
        "bytes": median_or_none([x.bytes for x in r.scrapes]),
        "content_type": last.content_type if last else None,
        "content_encoding": (last.content_encoding or "identity") if last else None,
        "series_dropped": last.series_dropped if last else None,
        "rss_mb": r.rss_mb, "peak_rss_mb": r.peak_rss_mb,
        "collector_share": median_or_none(shares),
        "otlp_cpu_ms": otlp[0], "otlp_cpu_min_ms": otlp[1], "otlp_cpu_max_ms": otlp[2],
        "otlp_wire_bytes": median_or_none([p.wire_bytes for p in r.otlp_pushes]),
        "otlp_bytes": median_or_none([p.bytes for p in r.otlp_pushes]),
        "otlp_requests": median_or_none([p.requests for p in r.otlp_pushes]),
        "otlp_peak_rss_mb": r.otlp_peak_rss_mb,
        "idle_cores": r.idle_cores, "other_exporters": r.other_exporters, "error": r.error,
    }


@dataclass(frozen=True)
class Goal:
    flows: int | None    # None: at the largest N measured, where fixed costs weigh least
    what: str
    figure: str          # a key of figures()
    limit: float
    at_most: bool
    shown: str           # how to print the figure and the limit


GOALS = (
    Goal(2000, "CPU per scrape (median)", "scrape_cpu_ms", 60, True, "{:.0f} ms"),
    Goal(2000, "peak RSS", "peak_rss_mb", 110, True, "{:.1f} MB"),
    Goal(20000, "CPU per scrape (median)", "scrape_cpu_ms", 600, True, "{:.0f} ms"),
    Goal(20000, "peak RSS", "peak_rss_mb", 300, True, "{:.1f} MB"),
    Goal(20000, "CPU per OTLP push (median)", "otlp_cpu_ms", 600, True, "{:.0f} ms"),
    Goal(None, "collectors' share of the scrape CPU (rendering <= 3x reading)", "collector_share", 0.25, False,
         "{:.1%}"),
    Goal(None, "netflow sample lines per TCP flow", "lines_per_flow", 16, True, "{:.1f}"),
)


def judge(goal: Goal, rows: list[dict[str, Any]]) -> dict[str, Any]:
    measured = [r for r in rows if r.get(goal.figure) is not None]
    if goal.flows is None:
        row = max(measured, key=lambda r: r["flows"]) if measured else None
    else:
        row = next((r for r in measured if r["flows"] == goal.flows), None)
    sign = "<=" if goal.at_most else ">="
    verdict: dict[str, Any] = {"goal": f"{goal.what} {sign} {goal.shown.format(goal.limit)}",
                               "flows": row["flows"] if row else goal.flows, "value": None, "pass": None}
    if row is not None:
        value = row[goal.figure]
        verdict.update(value=value, shown=goal.shown.format(value),
                       **{"pass": value <= goal.limit if goal.at_most else value >= goal.limit})
    return verdict


def goal_lines(verdicts: list[dict[str, Any]]) -> list[str]:
    lines = []
    for v in verdicts:
        outcome = "not measured" if v["pass"] is None else f"{v['shown']} {'PASS' if v['pass'] else 'FAIL'}"
        lines.append(f"goal at {v['flows']} flows: {v['goal']}: {outcome}")
    return lines


# ------------------------------------------------------------------ output

def machine() -> dict[str, Any]:
    with open("/proc/cpuinfo") as f:
        model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "")
    return {"date": date.today().isoformat(), "kernel": platform.release(), "arch": platform.machine(),
            "cores": os.cpu_count(), "cpu": model}


def commit_label(source: Path) -> str:
    if source.resolve() == REPO_ROOT:
        return git_commit()
    return f"exporter run from {source}; repository at {git_commit()}"


def fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def fmt_bytes(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value / 1e6:.2f} MB" if value >= 1e6 else f"{value / 1e3:.1f} kB"


def fmt_range(median: float | None, low: float | None, high: float | None) -> str:
    return "-" if median is None else f"{median:.0f} ({low:.0f}-{high:.0f})"


HEAD = ("flows", "series", "lines", "lines/flow", "CPU/scrape ms (min-max)", "wire", "uncompressed", "RSS MB",
        "peak RSS MB", "OTLP CPU/push ms (min-max)", "OTLP/push wire (uncompr.)", "req/push", "OTLP peak RSS MB",
        "collector share")


def table_row(f: dict[str, Any]) -> tuple[str, ...]:
    if f["error"] and f["scrape_cpu_ms"] is None:
        return (str(f["flows"]), f"failed: {f['error'][:80]}", *[""] * (len(HEAD) - 2))
    otlp_bytes = "-" if f["otlp_wire_bytes"] is None else \
        f"{fmt_bytes(f['otlp_wire_bytes'])} ({fmt_bytes(f['otlp_bytes'])})"
    return (str(f["flows"]), str(f["tcp_series"]), fmt(f["lines"], "d"), fmt(f["lines_per_flow"], ".1f"),
            fmt_range(f["scrape_cpu_ms"], f["scrape_cpu_min_ms"], f["scrape_cpu_max_ms"]),
            fmt_bytes(f["wire_bytes"]), fmt_bytes(f["bytes"]), fmt(f["rss_mb"], ".1f"), fmt(f["peak_rss_mb"], ".1f"),
            fmt_range(f["otlp_cpu_ms"], f["otlp_cpu_min_ms"], f["otlp_cpu_max_ms"]), otlp_bytes,
            fmt(f["otlp_requests"], "g"), fmt(f["otlp_peak_rss_mb"], ".1f"), fmt(f["collector_share"], ".1%"))


def header_line(report: dict[str, Any]) -> str:
    m, s = report["machine"], report["settings"]
    return (f"scale benchmark, {m['date']}, commit {report['commit']}, Linux {m['kernel']} {m['arch']}, "
            f"{m['cores']} cores ({m['cpu']}); {s['scrapes']} scrapes per N, flows "
            f"{'busy (1 byte each way before each scrape and push)' if s['busy'] else 'idle'}")


def notes(report: dict[str, Any]) -> list[str]:
    s = report["settings"]
    out = [f"content type: {', '.join(sorted({str(f['content_type']) for f in report['rows']}))}; "
           f"encoding: {', '.join(sorted({str(f['content_encoding']) for f in report['rows']}))}",
           "series: netobs_series{instrument=\"netflow.tcp.active\"}, the TCP flows exported (the holder's, and "
           "a few of other processes on the host)",
           "lines/flow: netflow_* sample lines of the last scrape / TCP flows exported; collector share: "
           "sum of netobs_collector_duration_seconds (wall time) / scrape CPU (median of the scrapes)",
           "CPU: the exporter's cgroup of its own (ns, every thread) where one could be made, else "
           "/proc/<pid>/stat (10 ms clock ticks)"]
    intervals = [f"{f['flows']}: {f['scrape_interval_cpu_ms']:.0f} ms" for f in report["rows"]
                 if f["scrape_interval_cpu_ms"] is not None]
    if intervals:
        out.append("CPU from the end of one scrape to the end of the next (median; includes the "
                   f"{SCRAPE_GAP_S} s between them): {', '.join(intervals)}")
    if s["otlp"]:
        out.append(f"OTLP: every {s['otlp_interval_ms']} ms, CPU from the end of one push to the end of the next "
                   f"({s['otlp_pushes']} intervals), less the idle CPU measured in the scrape run (no OTLP endpoint, "
                   "no scrape, same flows) over one interval, scaled to each interval's length")
    out += [f"{f['flows']} flows: failed: {f['error']}" for f in report["rows"] if f["error"]]
    out += [f"{f['flows']} flows: {f['other_exporters']} exporter processes started by someone else ran at the same "
            "time: figures disturbed" for f in report["rows"] if f["other_exporters"]]
    dropped = [f"{f['flows']}: {f['series_dropped']}" for f in report["rows"] if f["series_dropped"]]
    if dropped:
        out.append(f"series dropped (netobs_series_dropped_total) at N = {', '.join(dropped)}")
    for path, problems in report["logs"].items():
        errors = [p for p in problems if "level=error" in p]
        out.append(f"{path}: {len(errors)} errors, {len(problems) - len(errors)} warnings")
        out += [f"  {line[:300]}" for line in errors[:3]]
    warnings = {p.split(" msg=", 1)[-1][:200] for problems in report["logs"].values() for p in problems
                if "level=warn" in p}
    out += [f"warning logged: {w}" for w in sorted(warnings)]
    return out


def print_table(report: dict[str, Any]) -> None:
    print(header_line(report) + "\n")
    rows = [HEAD, *(table_row(f) for f in report["rows"])]
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEAD))]
    for row in rows:
        print("  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    print()


def print_markdown(report: dict[str, Any]) -> None:
    print(header_line(report) + "\n")
    print("| " + " | ".join(HEAD) + " |")
    print("|" + " ---: |" * len(HEAD))
    for f in report["rows"]:
        print("| " + " | ".join(table_row(f)) + " |")
    print()


def plot(report: dict[str, Any], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [f for f in report["rows"] if f["scrape_cpu_ms"] is not None]
    flows = [f["flows"] for f in rows]
    fig, (cpu_ax, rss_ax) = plt.subplots(2, 1, sharex=True, figsize=(8, 8))
    cpu_ax.plot(flows, [f["scrape_cpu_ms"] for f in rows], "o-", label="CPU per scrape (median)")
    cpu_ax.fill_between(flows, [f["scrape_cpu_min_ms"] for f in rows], [f["scrape_cpu_max_ms"] for f in rows],
                        alpha=0.2)
    otlp = [f for f in rows if f["otlp_cpu_ms"] is not None]
    if otlp:
        cpu_ax.plot([f["flows"] for f in otlp], [f["otlp_cpu_ms"] for f in otlp], "s--", label="CPU per OTLP push")
    rss_ax.plot(flows, [f["rss_mb"] for f in rows], "o-", label="RSS after the scrapes")
    rss_ax.plot(flows, [f["peak_rss_mb"] for f in rows], "^--", label="peak RSS")
    if otlp:
        rss_ax.plot([f["flows"] for f in otlp], [f["otlp_peak_rss_mb"] for f in otlp], "s:",
                    label="peak RSS of an exporter that only pushes OTLP")
    markers = {"scrape_cpu_ms": (cpu_ax, "v"), "otlp_cpu_ms": (cpu_ax, "s"), "peak_rss_mb": (rss_ax, "v")}
    for goal in GOALS:
        if goal.figure in markers and goal.flows is not None:
            ax, marker = markers[goal.figure]
            ax.plot([goal.flows], [goal.limit], marker, color="red", markerfacecolor="none", markersize=11,
                    label=f"goal: {goal.what} at {goal.flows} flows")
    fig.suptitle(textwrap.fill(header_line(report), 110), fontsize=8)
    cpu_ax.set(xscale="log", yscale="log", ylabel="exporter CPU, ms")
    rss_ax.set(xscale="log", yscale="log", xlabel="flows", ylabel="MB (10^6 bytes)")
    for ax in (cpu_ax, rss_ax):
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def report_of(results: list[Result], s: Settings, commit: str) -> dict[str, Any]:
    rows = [figures(r) for r in results]
    logs = {path: problems for r in results for path, problems in r.logs.items()}
    settings = {**asdict(s), "source": str(s.source),
                "exporter_flags": "--config.set Common.DropLocalConnections=false, Netflow.MaxFlows="
                                  "max(65536, 2N+4096), Telemetry.MaxSeriesPerInstrument=max(20000, 2N+4096)"}
    report = {"machine": machine(), "commit": commit, "settings": settings, "rows": rows,
              "goals": [judge(g, rows) for g in GOALS], "logs": logs}
    return {**report, "notes": notes(report), "raw": [asdict(r) for r in results]}


# ------------------------------------------------------------------ main

def flow_counts(text: str) -> list[int]:
    counts = [int(x) for x in text.split(",") if x.strip()]
    if not counts or any(n <= 0 or n % 2 for n in counts):
        raise argparse.ArgumentTypeError("positive even numbers: N/2 connections make N flows")
    return counts


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--flows", type=flow_counts, default=flow_counts("100,1000,2000,10000,20000,50000"),
                   help="comma-separated numbers of flows (even; default 100,1000,2000,10000,20000,50000)")
    p.add_argument("--scrapes", type=int, default=5, help="scrapes measured per N (default 5)")
    p.add_argument("--scrape-timeout", type=float, default=300, help="seconds per scrape (default 300)")
    p.add_argument("--busy", action="store_true", help="every connection sends 1 byte each way before each scrape")
    p.add_argument("--no-otlp", dest="otlp", action="store_false", help="skip the OTLP push runs")
    p.add_argument("--otlp-interval", type=int, default=5000, help="OTEL_METRIC_EXPORT_INTERVAL in ms (default 5000)")
    p.add_argument("--otlp-pushes", type=int, default=3, help="push intervals measured per N (default 3)")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="print the results as JSON instead of a table")
    out.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    p.add_argument("--plot", metavar="PATH", help="write a PNG of CPU and RSS against flows (needs matplotlib)")
    p.add_argument("--source", type=Path, default=REPO_ROOT,
                   help="the exporter tree to run (default: this repository)")
    p.add_argument("--role", choices=("holder",), help=argparse.SUPPRESS)
    p.add_argument("--connections", type=int, help=argparse.SUPPRESS)
    p.add_argument("--first-host", type=int, default=0, help=argparse.SUPPRESS)
    return p.parse_args()


def print_report(report: dict[str, Any], args: argparse.Namespace) -> None:
    if args.json:
        print(json.dumps(report, indent=2, default=str))
        return
    (print_markdown if args.markdown else print_table)(report)
    for line in [*goal_lines(report["goals"]), "", *report["notes"]]:
        print(line)


def main() -> int:
    args = parse_args()
    if args.role == "holder":
        with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C: the benchmark cleans up and says so
            hold(args.connections, args.first_host)
        return 0
    if args.plot and importlib.util.find_spec("matplotlib") is None:
        print("scale_bench: --plot needs matplotlib: pip install matplotlib", file=sys.stderr)
        return 2
    if os.geteuid() != 0:
        print("scale_bench: needs root (the exporter loads BPF programs)", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so that every finally stops its processes
    settings = Settings(args.scrapes, args.busy, args.otlp, args.otlp_interval, args.otlp_pushes,
                        args.scrape_timeout, args.source)
    commit = commit_label(args.source)  # before the runs: others may commit while they run
    try:
        results = [measure(n, settings) for n in args.flows]
    except KeyboardInterrupt:
        say("interrupted: every process started was stopped")
        return 130
    report = report_of(results, settings, commit)
    print_report(report, args)
    if args.plot:
        plot(report, args.plot)
        say(f"plot: {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
