"""What netflow's walk of TCP sockets (collect_tcp, bpf/netflow.c) costs the kernel per read.

Before each read of the flows, the exporter runs collect_tcp: an iter/task_file iterator that visits
every open file of every process and brings each TCP socket's flow up to date. Its cost follows the
open files and sockets on the host, never the traffic. This measures it with the kernel's own
accounting of program run time (kernel.bpf_stats_enabled): the exporter runs while this process
holds first F plain files (/dev/null), then N idle loopback TCP connections (2 N sockets), and reads
are triggered by scrapes. Reported: nanoseconds per file visited and per walk, in each phase, with
the spread over the walks.

    .venv/bin/python bench/walk_cost.py [--files F] [--connections N] [--walks W]

Needs root. Prints a Markdown table; exit status 0 whatever the figures."""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
STATS = Path("/proc/sys/kernel/bpf_stats_enabled")
PROGRAM = "collect_tcp"


def program_counters() -> tuple[int, int]:
    """(runs, ns) of collect_tcp, summed over programs of that name."""
    listing = json.loads(subprocess.run(["bpftool", "-j", "prog", "show"], capture_output=True, text=True,
                                        check=True).stdout)
    runs = ns = 0
    for p in listing:
        if p.get("name") == PROGRAM:
            runs += p.get("run_cnt", 0)
            ns += p.get("run_time_ns", 0)
    return runs, ns


def open_connections(count: int) -> list[socket.socket]:
    held = []
    with socket.create_server(("127.0.0.1", 0), backlog=4096) as listener:
        for _ in range(count):
            client = socket.create_connection(listener.getsockname())
            server, _ = listener.accept()
            client.sendall(b"q")
            server.recv(1)
            held += [client, server]
    return held


def walks(url: str, count: int) -> list[tuple[int, float]]:
    """(files visited, ns) of each of `count` walks, each triggered by a scrape."""
    out = []
    for _ in range(count):
        time.sleep(1.1)  # past the exporter's snapshot cache: each scrape reads the kernel again
        runs, ns = program_counters()
        with urllib.request.urlopen(url, timeout=30) as r:
            r.read()
        runs2, ns2 = program_counters()
        if runs2 > runs:
            out.append((runs2 - runs, float(ns2 - ns)))
    return out


def row(name: str, measured: list[tuple[int, float]]) -> str:
    per_file = [ns / runs for runs, ns in measured]
    per_walk = [ns / 1e6 for _, ns in measured]
    files = statistics.median(runs for runs, _ in measured)
    return (f"| {name} | {files:,.0f} | {statistics.median(per_file):.0f} ({min(per_file):.0f}-{max(per_file):.0f}) "
            f"| {statistics.median(per_walk):.2f} ({min(per_walk):.2f}-{max(per_walk):.2f}) |")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--files", type=int, default=10_000)
    p.add_argument("--connections", type=int, default=5_000)
    p.add_argument("--walks", type=int, default=8)
    a = p.parse_args()
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/metrics"
    argv = [sys.executable, "-m", "exporter", f"--web.listen-address=127.0.0.1:{port}",
            "--config.set", "Common.DropLocalConnections=false", "--config.set", "Bash.Enabled=false"]
    exporter = subprocess.Popen(argv, cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    STATS.write_text("1")
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(url, timeout=5).read()
                break
            except OSError:
                if exporter.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("walk_cost: the exporter did not start") from None
                time.sleep(0.2)
        idle = walks(url, a.walks)
        files = [open(os.devnull) for _ in range(a.files)]  # noqa: SIM115 - held open on purpose
        with_files = walks(url, a.walks)
        for f in files:
            f.close()
        held = open_connections(a.connections)
        with_sockets = walks(url, a.walks)
        for s in held:
            s.close()
    finally:
        STATS.write_text("0")
        exporter.terminate()
        exporter.wait()
    print("| host's open files | files visited per walk | ns per file visited (min-max) | ms per walk (min-max) |")
    print("| --- | ---: | ---: | ---: |")
    print(row("as found", idle))
    print(row(f"+ {a.files:,} plain files", with_files))
    print(row(f"+ {a.connections:,} idle TCP connections ({2 * a.connections:,} sockets)", with_sockets))


if __name__ == "__main__":
    main()
