"""What the exporter exports, against the real kernel: the scrape, OTLP push, records, tags,
series limits, --check-config, clean stops and the web endpoint."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.proto.metrics.v1.metrics_pb2 import (
    AggregationTemporality,
    HistogramDataPoint,
    NumberDataPoint,
)
from prometheus_client.parser import text_string_to_metric_families

from exporter.bpf import BpfObject, objects_dir
from exporter.collectors.netflow import NetflowCollector
from tests.kernel.harness import REPO_ROOT, WITH_PID, Exporter, Peer, free_port, wait_until
from tests.kernel.otlp_receiver import GrpcReceiver, HttpReceiver, Received, attributes
from tests.tools import require

pytestmark = pytest.mark.kernel

BYTES = "netflow_bytes_total"
LOCAL = "Common.DropLocalConnections=false"
RTT_BUCKETS = 19  # the 18 bounds of Netflow.RttBuckets in exporter/default.yaml, plus +Inf
ILOGTAIL_STATISTICS_FIELDS = {  # the `statistics` record of /work/shared/seeds/ilogtail-network-observer.md
    "type", "_process_pid_", "_process_cmd_", "_running_mode_", "remote_info", "socket_type", "role",
    "send_bytes", "recv_bytes", "send_packets", "recv_packets", "send_total_latency", "recv_total_latency",
    "__time__",
}  # fmt: skip


@pytest.fixture(scope="module")
def exporter(bpf_ready: None) -> Iterator[Exporter]:
    e = Exporter(WITH_PID, LOCAL)
    yield e
    assert e.stop() == 0


@pytest.fixture
def no_otlp_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The exporter inherits our environment: no OTLP settings but the ones a test gives."""
    for name in list(os.environ):
        if name.startswith("OTEL_"):
            monkeypatch.delenv(name)


def tcp_transfer(up: int, down: int) -> tuple[Peer, Peer]:
    server = Peer("tcp-server", f"--reply={down}")
    client = Peer("tcp-client", f"--port={server.ready['port']}", f"--send={up}")
    assert client.finish()["received"] == down
    assert server.finish()["received"] == up
    return server, client


def transmit_labels(pid: str) -> dict[str, str]:
    return {"process_pid": pid, "network_io_direction": "transmit"}


def udp_exchange(size: int, count: int) -> tuple[Peer, Peer]:
    server = Peer("udp-server", f"--count={count}")
    client = Peer("udp-client", f"--port={server.ready['port']}", f"--send={size}", f"--count={count}")
    assert client.finish()["received"] == size * count
    assert server.finish()["received"] == size * count
    return server, client


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


# ---------------------------------------------------------------------------- the scrape


def test_scrape_passes_promtool_and_has_the_core_families(exporter: Exporter) -> None:
    promtool = require("promtool", "prometheus")
    _, client = tcp_transfer(up=200_000, down=5_000)
    _, udp_client = udp_exchange(size=700, count=5)
    flow = {"process_pid": client.pid, "network_io_direction": "transmit"}
    assert exporter.wait_for(BYTES, 200_000, **flow) == 200_000
    assert exporter.wait_for(BYTES, 3_500, process_pid=udp_client.pid, network_transport="udp",
                             network_io_direction="transmit") == 3_500
    text = exporter.scrape_text()

    checked = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True)
    assert (checked.returncode, checked.stdout, checked.stderr) == (0, "", "")

    helps = [line for line in text.splitlines() if line.startswith("# HELP ")]
    assert helps
    for line in helps:
        assert re.fullmatch(r"# HELP \S+ \S.*", line), f"HELP without a description: {line!r}"
    samples = {s.name for f in text_string_to_metric_families(text) for s in f.samples}
    for name in (BYTES, "netflow_tcp_rtt_seconds_bucket", "netflow_tcp_active", "netobs_program_attached"):
        assert name in samples
    assert exporter.samples("netflow_tcp_rtt_seconds_bucket", process_pid=client.pid, le="+Inf")


# ---------------------------------------------------------------------------- OTLP push

OTLP_ENV = {"OTEL_METRIC_EXPORT_INTERVAL": "1000", "OTEL_SERVICE_NAME": "svc-under-test",
            "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment=test"}


def number(point: NumberDataPoint) -> float:
    return point.as_int if point.WhichOneof("value") == "as_int" else point.as_double


@pytest.mark.parametrize("how", ["grpc-env", "http-env", "grpc-config"])
def test_otlp_push_carries_exact_bytes_rtt_and_resource(bpf_ready: None, no_otlp_env: None, how: str) -> None:
    env, settings = dict(OTLP_ENV), [LOCAL]
    with GrpcReceiver() if how.startswith("grpc") else HttpReceiver() as receiver:
        if how == "grpc-config":
            settings += [f"Telemetry.OtlpEndpoint={receiver.endpoint}", "Telemetry.OtlpProtocol=grpc"]
        else:
            env |= {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
                    "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc" if how == "grpc-env" else "http/protobuf"}
        e = Exporter(WITH_PID, *settings, env=env)
        try:
            check_otlp_push(e, receiver)
        finally:
            assert e.stop() == 0


def test_otlp_endpoint_down_for_a_minute(bpf_ready: None, no_otlp_env: None) -> None:
    """Pushes every second to an endpoint that is not there (each push retries, so fewer fail than are
    due): one log line about it, every failure counted, and once it is there, the current values arrive
    at the next push and one line says so."""
    port = free_port()
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port}", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
           "OTEL_METRIC_EXPORT_INTERVAL": "1000", "OTEL_METRIC_EXPORT_TIMEOUT": "900"}
    e = Exporter(WITH_PID, LOCAL, env=env)
    try:
        wait_until(lambda: 0.0, lambda v: False, timeout=60)  # a minute down (each push retries within it)
        failures = e.value("netobs_otlp_exports_total", outcome="failure")
        assert failures >= 5
        otlp_lines = [line for line in e.log().splitlines() if "level=info" not in line and "OTLP" in line]
        assert len(otlp_lines) == 1 and "OTLP metrics push failing" in otlp_lines[0], otlp_lines
        with HttpReceiver(port) as receiver:
            assert wait_until(lambda: len(receiver.requests), lambda n: n > 0, timeout=10) > 0
            assert wait_until(lambda: sum("works again" in line for line in e.log().splitlines()),
                              lambda n: n == 1) == 1
            # a scrape may reuse a collection younger than a second: wait for one taken after the push
            assert wait_until(lambda: e.value("netobs_otlp_exports_total", outcome="success"), lambda v: v >= 1) >= 1
    finally:
        assert e.stop() == 0


def check_otlp_push(e: Exporter, receiver: GrpcReceiver | HttpReceiver) -> None:
    size = 1_234_567
    _, client = tcp_transfer(up=size, down=4_321)
    transmit = {"process.pid": int(client.pid), "network.io.direction": "transmit"}

    def bytes_points() -> list[tuple[Received, NumberDataPoint]]:
        return [(r, p) for r in receiver.metrics("netflow.bytes") for p in r.metric.sum.data_points
                if transmit.items() <= attributes(p.attributes).items()]

    found = receiver.wait_for(lambda: [(r, p) for r, p in bytes_points() if number(p) == size], timeout=30)
    assert found, f"no netflow.bytes point of {size} for pid {client.pid}: {[number(p) for _, p in bytes_points()]}"
    received, point = found[-1]
    metric = received.metric
    assert metric.sum.is_monotonic
    assert metric.sum.aggregation_temporality == AggregationTemporality.AGGREGATION_TEMPORALITY_CUMULATIVE
    assert metric.unit == "By"
    assert received.resource["service.name"] == "svc-under-test"
    assert received.resource["deployment.environment"] == "test"
    assert isinstance(received.resource["host.name"], str) and received.resource["host.name"]

    # The scrape sees the same series, with the same value.
    # (An attribute the series lacks is an empty label when another series has it, e.g. destination_domain
    # once any process on the machine resolved a name: empty labels are left out of the comparison.)
    labels = {k.replace(".", "_"): str(v) for k, v in attributes(point.attributes).items()}
    scraped = [({k: v for k, v in seen.items() if v}, value) for seen, value in
               e.samples(BYTES, **transmit_labels(client.pid))]
    assert scraped == [(labels, float(size))]

    def rtt_points() -> list[HistogramDataPoint]:
        return [p for r in receiver.metrics("netflow.tcp.rtt") for p in r.metric.histogram.data_points
                if attributes(p.attributes).get("process.pid") == int(client.pid)]

    rtt = receiver.wait_for(rtt_points, timeout=30)
    assert rtt, f"no netflow.tcp.rtt point for pid {client.pid}"
    assert len(rtt[-1].bucket_counts) == RTT_BUCKETS
    assert len(rtt[-1].explicit_bounds) == RTT_BUCKETS - 1
    assert sum(rtt[-1].bucket_counts) == rtt[-1].count >= 1
    assert not rtt[-1].HasField("min") and not rtt[-1].HasField("max")  # not tracked by the kernel


def test_otlp_endpoint_from_config_beats_the_environment(bpf_ready: None, no_otlp_env: None) -> None:
    with GrpcReceiver() as configured, GrpcReceiver() as from_env:
        e = Exporter(WITH_PID, f"Telemetry.OtlpEndpoint={configured.endpoint}", "Telemetry.OtlpProtocol=grpc",
                     env={**OTLP_ENV, "OTEL_EXPORTER_OTLP_ENDPOINT": from_env.endpoint})
        assert e.stop() == 0  # shutting down pushes once more
        assert (len(configured.requests) > 0, len(from_env.requests)) == (True, 0)


# ---------------------------------------------------------------------------- --check-config


def object_programs(name: str) -> set[tuple[str, str]]:
    """(program, section) of every program in a built object."""
    with BpfObject.open(objects_dir() / f"{name}.bpf.o") as obj:
        return {(program, obj.section(program)) for program in obj.programs()}


def refused_optional_programs(log: str) -> set[str]:
    """Programs a collector can do without and that this kernel refused: the exporter says so when it
    loads the object without them (exporter/collectors/base.py: load_object_or_fewer)."""
    names = re.findall(r"this kernel refuses ([\w, ]+) \(", log)
    return {n.strip() for line in names for n in line.split(",")}


def test_check_config_attaches_every_program(bpf_ready: None) -> None:
    done = subprocess.run([sys.executable, "-m", "exporter", "--check-config"], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    refused = refused_optional_programs(done.stderr)
    assert refused <= NetflowCollector.optional_programs
    # uprobes are attached per file (a row "tls:<file>" each), not as programs of their own
    expected = {(p, s) for p, s in object_programs("sockets")
                if p not in refused and not s.startswith(("uprobe", "uretprobe"))}
    assert len(expected) >= 9 - len(refused)
    header, *lines = done.stdout.splitlines()
    assert header.split() == ["COLLECTOR", "PROGRAM", "SECTION", "RESULT"]
    rows = [line.split() for line in lines]
    assert all(len(row) == 4 and row[3] == "attached" for row in rows), done.stdout
    shared = {(program, section) for collector, program, section, _ in rows
              if collector in ("netflow", "dns", "l7") and not program.startswith("tls:")}
    assert shared == expected  # every program of the shared object, each attached once for all
    tls = {program for collector, program, _, _ in rows if collector == "l7" and program.startswith("tls:")}
    assert "tls:/usr/lib/x86_64-linux-gnu/libssl.so.3" in tls  # the host's libssl (test_tls.py)
    netflow = {program for collector, program, _, _ in rows if collector == "netflow"}
    assert netflow == NetflowCollector.programs - refused


# ---------------------------------------------------------------------------- clean stop


def loaded_programs() -> dict[int, str]:
    """id -> name of every loaded BPF program (bpftool shows the full name only with BTF)."""
    shown = subprocess.run(["bpftool", "prog", "show", "-j"], capture_output=True, text=True, check=True)
    return {int(p["id"]): p.get("name", "") for p in json.loads(shown.stdout)}


def program_ids_held_by(pid: int) -> set[int]:
    """Programs whose fds (or links' fds) the process holds: others' tests may load programs too."""
    ids = set()
    for info in Path(f"/proc/{pid}/fdinfo").iterdir():
        with contextlib.suppress(OSError):  # the fd closed meanwhile
            ids |= {int(m) for m in re.findall(r"^prog_id:\s*(\d+)", info.read_text(), re.M)}
    return ids


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_stop_on_signal_exits_0_and_unloads_every_program(bpf_ready: None, sig: signal.Signals) -> None:
    before = loaded_programs()
    e = Exporter(WITH_PID)
    try:
        now = loaded_programs()
        added = (now.keys() - before.keys()) & program_ids_held_by(e.proc.pid)
        refused = refused_optional_programs(e.log())
        assert {name[:15] for name, _ in object_programs("sockets") if name not in refused} <= \
            {now[i][:15] for i in added}
    finally:
        e.proc.send_signal(sig)
        try:
            code = e.proc.wait(timeout=20)
        finally:
            e.stop()
    assert code == 0, e.log()
    # The kernel may drop a tracepoint's last reference to its program after a grace period, not at exit.
    assert wait_until(lambda: len(added & loaded_programs().keys()), lambda n: n == 0) == 0


# ---------------------------------------------------------------------------- Common.Tags


def test_tags_label_every_sample_but_target_info(bpf_ready: None) -> None:
    e = Exporter(WITH_PID, LOCAL, "Common.Tags={team: net, env: ci}")
    try:
        _, client = tcp_transfer(up=10_000, down=100)
        assert e.wait_for(BYTES, 10_000, **transmit_labels(client.pid)) == 10_000
        families = list(text_string_to_metric_families(e.scrape_text()))
        tagged = [f for f in families if f.name != "target_info" and f.samples]
        assert {"netflow_bytes", "netflow_tcp_rtt_seconds", "netobs_program_attached",
                "netobs_series_limit"} <= {f.name for f in tagged}
        for family in tagged:
            for sample in family.samples:
                assert (sample.labels.get("team"), sample.labels.get("env")) == ("net", "ci"), sample
        target = [s for f in families if f.name == "target_info" for s in f.samples]
        assert len(target) == 1 and "team" not in target[0].labels
    finally:
        assert e.stop() == 0


# ---------------------------------------------------------------------------- records


def read_records(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_records_are_ilogtail_statistics_with_exact_bytes(bpf_ready: None, tmp_path: Path) -> None:
    path = tmp_path / "records.jsonl"
    e = Exporter(WITH_PID, LOCAL, f"Telemetry.Records={path}", "Common.FlushOutL4Interval=1")
    try:
        server, client = tcp_transfer(up=333_333, down=22_222)

        def total(pid: str, field: str) -> float:
            return sum(int(r[field]) for r in read_records(path)
                       if r.get("type") == "statistics" and r["_process_pid_"] == pid)

        assert wait_until(lambda: total(client.pid, "send_bytes"), lambda v: v == 333_333) == 333_333
        assert wait_until(lambda: total(server.pid, "recv_bytes"), lambda v: v == 333_333) == 333_333
        assert total(client.pid, "recv_bytes") == 22_222
        assert total(server.pid, "send_bytes") == 22_222
        statistics = [r for r in read_records(path) if r.get("type") == "statistics"]
        for record in statistics:
            assert set(record) == ILOGTAIL_STATISTICS_FIELDS, record
            assert all(isinstance(v, str) for v in record.values()), record
        mine = [r for r in statistics if r["_process_pid_"] == client.pid]
        assert {(r["role"], r["socket_type"], r["_running_mode_"]) for r in mine} == {
            ("client", "inet_socket", "host")}
        assert [json.loads(r["remote_info"]) for r in mine] == len(mine) * [
            {"remote_ip": "127.0.0.1", "remote_port": str(server.ready["port"]), "remote_type": "server"}]
    finally:
        assert e.stop() == 0


# ---------------------------------------------------------------------------- series limit


def test_series_limit_caps_each_instrument_and_counts_the_rest(bpf_ready: None) -> None:
    e = Exporter(WITH_PID, LOCAL, "Telemetry.MaxSeriesPerInstrument=3")
    try:
        for _ in range(3):  # 3 client and 3 server flows: 12 netflow.bytes series
            tcp_transfer(up=1_000, down=10)
        dropped = wait_until(lambda: e.value("netobs_series_dropped_total", instrument="netflow.bytes"),
                             lambda v: v > 0)
        assert dropped > 0
        assert len(e.samples(BYTES)) == 3
        assert e.value("netobs_series", instrument="netflow.bytes") == 3
        assert e.value("netobs_series_limit") == 3
    finally:
        assert e.stop() == 0


# ---------------------------------------------------------------------------- web endpoint


def test_landing_page_links_to_the_metrics(exporter: Exporter) -> None:
    status, body = get(f"http://127.0.0.1:{exporter.port}/")
    assert status == 200
    assert 'href="/metrics"' in body


class CustomPathExporter(Exporter):
    """An Exporter started with --web.telemetry-path=/custom, and scraped there."""

    def _wait_ready(self, timeout: float = 30) -> None:
        self.url = f"http://127.0.0.1:{self.port}/custom"
        super()._wait_ready(timeout)


def test_custom_telemetry_path(bpf_ready: None) -> None:
    e = CustomPathExporter(extra_args=["--web.telemetry-path=/custom"])
    try:
        base = f"http://127.0.0.1:{e.port}"
        status, body = get(base + "/custom")
        assert status == 200 and "netobs_program_attached{" in body
        assert get(base + "/metrics")[0] == 404
        status, body = get(base + "/")
        assert status == 200 and 'href="/custom"' in body
    finally:
        assert e.stop() == 0
