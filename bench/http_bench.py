"""What HTTP monitoring costs: nginx and wrk on loopback with the exporter off and on, alternating.

Each round runs wrk against nginx (a small static file, keep-alive) for S seconds without the
exporter, then again with it: the default configuration with Common.DropLocalConnections=false
(loopback is dropped by default), scraped every second as Prometheus would. With --only-l7 the
other collectors are off, to see the HTTP part alone; with --compare both configurations alternate
in one run (OFF, default, OFF, HTTP only, OFF, ...), so their difference is not the day's. During
ON runs the exporter's CPU time is read from /proc, and wrk's request count is compared with the
count the exporter reports for wrk: every request must be counted. With --server-only the exporter
watches nginx alone, as on a node whose clients are elsewhere, and nginx's count is compared with
wrk's. With --tls, nginx
serves HTTPS (a self-signed certificate) to h2load --h1 instead of wrk: the exporter reads the
plaintext from OpenSSL's calls (docs/tls.md). With --h2, nginx speaks HTTP/2 (in clear, or over TLS
with --tls) to h2load -m 10: ten streams at once on each connection (docs/grpc.md).

Each run also gives the whole machine's CPU time per request (/proc/stat, steal excluded): on a
shared virtual machine the rate follows the neighbours, the CPU time per request much less, so its
OFF/ON ratio is the steadier figure of what the exporter costs a CPU-bound workload. With
--programs, one more ON run of each configuration reads the kernel's own run time of each BPF
program (kernel.bpf_stats_enabled) per request: it moves with the machine's pace too, but between runs
of one stretch by a few percent, so objects alternated run for run compare well.

    .venv/bin/python bench/http_bench.py [--rounds N] [--seconds S] [--connections C] [--only-l7 | --compare]
        [--programs] [--server-only] [--tls] [--h2] [--set KEY=VALUE]...

Needs root, nginx, wrk (h2load and openssl for --tls). Prints a table; exit status 0 whatever the
figures (a benchmark, not a test)."""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from exchange_cost import STATS, program_times
from paired import BusyCpu, ratio_summary
from prometheus_client.parser import text_string_to_metric_families
from scraped import ScrapedExporter, free_port

CLK_TCK = os.sysconf("SC_CLK_TCK")
ROUTE = "/bench.html"
NGINX_CONF = """
worker_processes 1;
daemon off;
user root;
pid {dir}/nginx.pid;
error_log {dir}/error.log;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    sendfile on;
    keepalive_requests 100000000;
    server {{ listen 127.0.0.1:{port}{tls}; root {dir}; }}
}}
"""
CERTS = "; ssl_certificate {dir}/cert.pem; ssl_certificate_key {dir}/key.pem"


# name -> settings of the ON runs, besides Common.DropLocalConnections=false (loopback is dropped by default)
CONFIGURATIONS: dict[str, list[str]] = {
    "default collectors": [],
    "HTTP only": ["Netflow.Enabled=false", "Dns.Enabled=false", "Bash.Enabled=false"],
}


@dataclass
class Runs:
    """The ON runs of one configuration: each one's rate, CPU time per request, and which OFF run was just
    before it; the exporter's CPU, and the requests it did not count."""

    off_run: list[int] = field(default_factory=list)
    rate: list[float] = field(default_factory=list)
    us: list[float] = field(default_factory=list)
    cpu_per_10k: list[float] = field(default_factory=list)
    lost: int = 0


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def wrk(port: int, seconds: float, connections: int) -> int:
    out = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", f"http://127.0.0.1:{port}{ROUTE}"],
                         capture_output=True, text=True, check=True).stdout
    match = re.search(r"(\d+) requests in", out)
    assert match, out
    return int(match.group(1))


def h2load(port: int, seconds: float, connections: int, scheme: str, h2: bool) -> int:
    """HTTP/1.1 over TLS, or HTTP/2 with 10 streams at once: the requests h2load had answered (those in flight
    at the end are not)."""
    out = subprocess.run(["h2load", *(["-m10"] if h2 else ["--h1"]), "-t1", f"-c{connections}", f"-D{seconds:g}",
                          f"{scheme}://127.0.0.1:{port}{ROUTE}"], capture_output=True, text=True, check=True).stdout
    match = re.search(r"requests: \d+ total, \d+ started, (\d+) done", out)
    assert match, out
    return int(match.group(1))


def certificate(directory: Path) -> None:
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(directory / "key.pem"),
                    "-out", str(directory / "cert.pem"), "-days", "2", "-subj", "/CN=localhost"],
                   check=True, capture_output=True)


def counted(url: str, server: bool, client: str) -> float:
    """Requests the exporter counted for the client (wrk, h2load), or for nginx (as its server)."""
    with urllib.request.urlopen(url, timeout=10) as r:
        text = r.read().decode()
    name, comm = ("http_server_request_duration_seconds_count", "nginx") if server else \
        ("http_client_request_duration_seconds_count", client)
    return sum(s.value for f in text_string_to_metric_families(text) for s in f.samples
               if s.name == name and s.labels.get("http_route") == ROUTE
               and s.labels.get("process_executable_name") == comm and s.labels.get("http_response_status_code"))


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--rounds", type=int, default=9)
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--connections", type=int, default=8)
    p.add_argument("--only-l7", action="store_true")
    p.add_argument("--compare", action="store_true",
                   help="alternate the default collectors and HTTP only in one run, each ON run between two OFF runs")
    p.add_argument("--server-only", action="store_true",
                   help="watch nginx only (Common.IncludeCmdRegex), as a node serving remote clients would: "
                        "wrk stands for them and is not watched")
    p.add_argument("--tls", action="store_true", help="HTTPS, driven by h2load --h1")
    p.add_argument("--h2", action="store_true", help="HTTP/2, driven by h2load -m10 (over TLS with --tls)")
    p.add_argument("--programs", action="store_true",
                   help="then one more ON run of each configuration for the kernel's own time of each BPF program "
                        "per request (kernel.bpf_stats_enabled)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="a further configuration setting for the ON runs (repeatable)")
    a = p.parse_args()
    port = free_port()
    root = Path(tempfile.mkdtemp(prefix="http-bench-"))
    (root / ROUTE.lstrip("/")).write_text("<html>bench</html>\n" * 20)
    if a.tls:
        certificate(root)
    listen = (" ssl" if a.tls else "") + (" http2" if a.h2 else "") + (CERTS.format(dir=root) if a.tls else "")
    (root / "nginx.conf").write_text(NGINX_CONF.format(dir=root, port=port, tls=listen))
    scheme = "https" if a.tls else "http"
    client, load = ("h2load", lambda port, s, c: h2load(port, s, c, scheme, a.h2)) if a.tls or a.h2 else ("wrk", wrk)
    nginx = subprocess.Popen(["nginx", "-c", str(root / "nginx.conf"), "-p", str(root)])
    time.sleep(0.5)
    common = ["Common.DropLocalConnections=false"] + (["Common.IncludeCmdRegex=^nginx"] if a.server_only else [])
    names = list(CONFIGURATIONS) if a.compare else ["HTTP only" if a.only_l7 else "default collectors"]
    configurations = {name: common + CONFIGURATIONS[name] + a.set for name in names}
    off, us_off = [], []  # every OFF run, in order
    on: dict[str, Runs] = {name: Runs() for name in configurations}
    meter = BusyCpu()

    def run() -> tuple[int, float, float]:
        """One wrk run: its requests, their rate and the machine's CPU time per request (us)."""
        meter.start()
        n = load(port, a.seconds, a.connections)
        return n, n / a.seconds, meter.stop() / max(n, 1) * 1e6

    def run_off() -> None:
        _, rate, us = run()
        off.append(rate)
        us_off.append(us)

    def run_on(name: str, settings: list[str], programs: dict[str, float] | None = None) -> None:
        """One run with the exporter in this configuration. With `programs`, the kernel's own run time of
        each BPF program (kernel.bpf_stats_enabled) per request instead, in that dict, and no rates."""
        with ScrapedExporter(settings) as exp:
            before_cpu, before = cpu_s(exp.pid), counted(exp.url, a.server_only, client)
            if programs is not None:
                STATS.write_text("1")
                start = program_times()
            try:
                n, rate, us = run()
            finally:
                if programs is not None:
                    end = program_times()
                    STATS.write_text("0")
            spent = cpu_s(exp.pid) - before_cpu
            time.sleep(2.5)
            runs = on[name]
            runs.lost += n - int(counted(exp.url, a.server_only, client) - before)
        if programs is not None:
            for prog, (calls, ns) in end.items():
                spent_ns = ns - start.get(prog, (0, 0))[1]
                if calls > start.get(prog, (0, 0))[0] and spent_ns > 0:
                    programs[prog] = spent_ns / n
            return
        runs.off_run.append(len(off) - 1)
        runs.rate.append(rate)
        runs.us.append(us)
        runs.cpu_per_10k.append(spent / a.seconds / rate * 10_000)
        print(f"round {len(runs.rate) - 1} {name}: off {off[-1]:.0f}/s {us_off[-1]:.1f} us/req, "
              f"on {rate:.0f}/s {us:.1f} us/req, exporter cpu {spent:.2f}s", file=sys.stderr)

    try:
        for _ in range(a.rounds):
            for name, settings in configurations.items():
                run_off()
                run_on(name, settings)
        run_off()  # every ON run between two OFF runs
        program_ns: dict[str, dict[str, float]] = {}
        if a.programs:
            for name, settings in configurations.items():
                run_on(name, settings, program_ns.setdefault(name, {}))
    finally:
        nginx.terminate()
        nginx.wait()
    kind = (", HTTPS" if a.tls else "") + (", HTTP/2 -m10" if a.h2 else "")
    for name, runs in on.items():
        what = name + (", nginx only" if a.server_only else "") + "".join(f", {x}" for x in a.set)
        if runs.rate:
            # each ON run against the OFF runs just before and just after it
            before = [off[i] for i in runs.off_run]
            after = [off[i + 1] for i in runs.off_run if i + 1 < len(off)]
            us_before = [us_off[i] for i in runs.off_run]
            us_after = [us_off[i + 1] for i in runs.off_run if i + 1 < len(us_off)]
            print(f"| requests/s (nginx + {client} -c{a.connections}{kind}, loopback, {what}) "
                  f"| {statistics.median(off):.0f} | {statistics.median(runs.rate):.0f} "
                  f"| {ratio_summary(before, runs.rate, after=after)} |")
            print(f"| CPU time per request, whole machine (us) | {statistics.median(us_off):.2f} "
                  f"| {statistics.median(runs.us):.2f} "
                  f"| {ratio_summary(us_before, runs.us, cost=True, after=us_after)} |")
            print(f"exporter CPU: {statistics.median(runs.cpu_per_10k):.3f} cores per 10,000 requests/s; requests "
                  f"not counted ({'nginx' if a.server_only else client}'s side): {runs.lost}")
        if name in program_ns:
            progs = program_ns[name]
            print(f"{what}: BPF programs' own time per request {sum(progs.values()):.0f} ns ("
                  + ", ".join(f"{prog} {ns:.0f}" for prog, ns in sorted(progs.items(), key=lambda x: -x[1])) + ")")


if __name__ == "__main__":
    main()
