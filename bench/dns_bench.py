"""What the dns collector costs: DNS lookups and plain syscalls with the exporter off and on, alternating.

Each round runs, first without and then with the exporter (default configuration, Dns.Ports
including the test server's port, scraped every second):
- lookups: a Python client asks dnsmasq on loopback one query at a time for S seconds (lookups/s);
- syscalls: dd copies /dev/zero to /dev/null 64 bytes at a time (read+write syscalls/s), the cost
  of the read/write tracepoints to processes that never touch DNS.
During ON rounds the exporter's CPU time is read from /proc, and its lookup count is compared with
the client's: every lookup must be counted.

    .venv/bin/python bench/dns_bench.py [--rounds N] [--seconds S]

Needs root, dnsmasq. Prints a table; exit status 0 whatever the figures (a benchmark, not a test)."""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import struct
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

REPO_ROOT = Path(__file__).resolve().parents[1]
CLK_TCK = os.sysconf("SC_CLK_TCK")
NAME = b"".join(bytes([len(p)]) + p for p in b"bench.wild.test".split(b".")) + b"\0"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def lookups(port: int, seconds: float) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect(("127.0.0.1", port))
        s.settimeout(2)
        n, end = 0, time.monotonic() + seconds
        while time.monotonic() < end:
            s.send(struct.pack(">HHHHHH", n & 0xFFFF, 0x0100, 1, 0, 0, 0) + NAME + b"\0\x01\0\x01")
            s.recv(2048)
            n += 1
    return n


def syscalls_per_s(seconds: float) -> float:
    count = 400_000
    began = time.monotonic()
    subprocess.run(["dd", "if=/dev/zero", "of=/dev/null", "bs=64", f"count={count}"], capture_output=True, check=True)
    return 2 * count / (time.monotonic() - began)


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def counted(url: str) -> float:
    with urllib.request.urlopen(url, timeout=10) as r:
        text = r.read().decode()
    return sum(s.value for f in text_string_to_metric_families(text) for s in f.samples
               if s.name == "dns_lookups_total" and s.labels.get("dns_question_name") == "bench.wild.test"
               and s.labels.get("dnsflow_direction") == "outgoing")


def scrape_every_second(url: str, stop: threading.Event) -> None:
    """As Prometheus would: the exporter's cost includes turning its series into text."""
    while not stop.wait(1.0):
        counted(url)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seconds", type=float, default=5.0)
    a = p.parse_args()
    port, web = free_port(), free_port()
    server = subprocess.Popen(["dnsmasq", "--keep-in-foreground", "--no-resolv", "--no-hosts", "--conf-file=/dev/null",
                               "--bind-interfaces", "--listen-address=127.0.0.1", f"--port={port}", "--user=root",
                               "--address=/wild.test/192.0.2.1", "--log-facility=/dev/null", "--pid-file="])
    time.sleep(0.5)
    rows: dict[str, list[float]] = {k: [] for k in ("off_qps", "on_qps", "off_sys", "on_sys", "cpu_per_10k")}
    lost = 0
    try:
        for r in range(a.rounds):
            rows["off_qps"].append(lookups(port, a.seconds) / a.seconds)
            rows["off_sys"].append(syscalls_per_s(a.seconds))
            url = f"http://127.0.0.1:{web}/metrics"
            exp = subprocess.Popen([sys.executable, "-m", "exporter", f"--web.listen-address=127.0.0.1:{web}",
                                    "--config.set", f"Dns.Ports=[53,{port}]"], cwd=REPO_ROOT,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            while True:
                try:
                    counted(url)
                    break
                except OSError:
                    time.sleep(0.2)
            stop = threading.Event()
            scraper = threading.Thread(target=scrape_every_second, args=(url, stop))
            scraper.start()
            before_cpu, before = cpu_s(exp.pid), counted(url)
            n = lookups(port, a.seconds)
            spent = cpu_s(exp.pid) - before_cpu
            rows["on_qps"].append(n / a.seconds)
            rows["cpu_per_10k"].append(spent / a.seconds / (n / a.seconds) * 10_000)
            time.sleep(2.5)
            lost += n - int(counted(url) - before)
            rows["on_sys"].append(syscalls_per_s(a.seconds))
            stop.set()
            scraper.join()
            exp.terminate()
            exp.wait()
            print(f"round {r}: off {rows['off_qps'][-1]:.0f}/s on {rows['on_qps'][-1]:.0f}/s "
                  f"cpu {spent:.2f}s", file=sys.stderr)
    finally:
        server.terminate()
        server.wait()
    med = {k: statistics.median(v) for k, v in rows.items()}
    print(f"| lookups/s (dnsmasq on loopback, one at a time) | {med['off_qps']:.0f} | {med['on_qps']:.0f} "
          f"| {med['on_qps'] / med['off_qps']:.1%} |")
    print(f"| read+write syscalls/s (dd bs=64, no sockets) | {med['off_sys']:.0f} | {med['on_sys']:.0f} "
          f"| {med['on_sys'] / med['off_sys']:.1%} |")
    print(f"exporter CPU: {med['cpu_per_10k']:.3f} cores per 10,000 lookups/s; lookups not counted: {lost}")


if __name__ == "__main__":
    main()
