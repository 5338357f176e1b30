"""What the dns collector costs and whether it counts every lookup at full rate: OFF and ON runs, alternated.

Workloads, each run OFF, ON, OFF, ON, ..., OFF (every ON run between two OFF runs, bench/paired.py):
- dnsperf: dnsperf (20 clients, unlimited rate) against unbound on loopback for S seconds. Its own
  report is the truth: with the exporter on, the lookups it counted on the client side must equal
  dnsperf's completed queries per response code, with no TIMEOUT but dnsperf's own lost queries,
  and the server side must equal unbound's num.queries;
- one-at-a-time: a Python client on a connected socket asking unbound one query at a time;
- syscalls: dd copying /dev/zero to /dev/null 64 bytes at a time (read+write syscalls on no socket),
  what the socket-layer programs cost a process that never touches the network.
The exporter (default configuration, the server's port added to Dns.Ports, scraped every second) is
started once and stays up through the ON runs; its CPU time per lookup is read from /proc.

    .venv/bin/python bench/dns_bench.py [--rounds N] [--seconds S]

Needs root, unbound, dnsperf. Prints a table; exit status 0 whatever the figures (a benchmark, not a test)."""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

sys.path.insert(0, str(Path(__file__).resolve().parent))
from paired import BusyCpu, ratio_summary
from scraped import ScrapedExporter, free_port

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
from tests.kernel.dns_peers import Unbound, query  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")
NAMES = [("a.perf.test", "A"), ("b.perf.test", "A"), ("nx.perf.test", "A")]
RECORDS = {"a.perf.test": "192.0.2.1", "b.perf.test": "192.0.2.2"}
TIMEOUT = 5  # Dns.Timeout (the default) and dnsperf's -t


def dnsperf(port: int, datafile: Path, seconds: float) -> tuple[int, dict[str, int], int]:
    """(completed, response codes, lost) of one dnsperf run."""
    proc = subprocess.Popen(["dnsperf", "-s", "127.0.0.1", "-p", str(port), "-d", str(datafile), "-c", "20",
                             "-l", str(seconds), "-t", str(TIMEOUT)], stdout=subprocess.PIPE, text=True)
    out, _ = proc.communicate()
    completed = int(re.search(r"Queries completed:\s+(\d+)", out).group(1))  # type: ignore[union-attr]
    lost = int(re.search(r"Queries lost:\s+(\d+)", out).group(1))  # type: ignore[union-attr]
    codes = {c: int(n) for c, n in re.findall(r"([A-Z]+) (\d+) \(", out.split("Response codes:", 1)[1])}
    return completed, codes, lost


def one_at_a_time(port: int, seconds: float) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect(("127.0.0.1", port))
        s.settimeout(2)
        n, end = 0, time.monotonic() + seconds
        while time.monotonic() < end:
            s.send(query("a.perf.test", n & 0xFFFF))
            s.recv(2048)
            n += 1
    return n


def syscalls(count: int = 400_000) -> tuple[float, float]:
    """(read+write syscalls, seconds) of one dd run."""
    began = time.monotonic()
    subprocess.run(["dd", "if=/dev/zero", "of=/dev/null", "bs=64", f"count={count}"], capture_output=True, check=True)
    return 2 * count, time.monotonic() - began


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def lookups(url: str, **labels: str) -> dict[str, float]:
    """dns_lookups_total by response code, over the series whose labels include `labels`."""
    with urllib.request.urlopen(url, timeout=10) as r:
        text = r.read().decode()
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == "dns_lookups_total" and all(s.labels.get(k) == v for k, v in labels.items()):
                code = s.labels["dns_response_code"]
                out[code] = out.get(code, 0) + s.value
    return out


class Runs:
    """Rates of the OFF and ON runs of one workload, and the machine's CPU time per unit of work."""

    def __init__(self) -> None:
        self.rate: dict[bool, list[float]] = {False: [], True: []}
        self.cpu: dict[bool, list[float]] = {False: [], True: []}

    def add(self, on: bool, units: float, seconds: float, busy_s: float) -> None:
        self.rate[on].append(units / seconds)
        self.cpu[on].append(busy_s / units)


def measured(run: Runs, on: bool, work: Callable[[], tuple[float, float]]) -> None:
    busy = BusyCpu()
    busy.start()
    units, seconds = work()
    run.add(on, units, seconds, busy.stop())


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--seconds", type=float, default=4.0)
    a = p.parse_args()
    port = free_port()
    work = Path(tempfile.mkdtemp(prefix="dns-bench-"))
    datafile = work / "queries.txt"
    datafile.write_text("".join(f"{n} {t}\n" for n, t in NAMES))
    server = Unbound(work, port, free_port(), "perf.test", RECORDS)
    perf, single, dd = Runs(), Runs(), Runs()
    exporter_cpu: list[float] = []  # exporter CPU seconds per 10,000 dnsperf lookups
    wrong: list[str] = []

    def dnsperf_run(exp: ScrapedExporter | None) -> tuple[float, float]:
        """dnsperf's queries and seconds; with the exporter, its counts checked against dnsperf's and unbound's."""
        url = exp.url if exp else ""
        before_cpu = cpu_s(exp.pid) if exp else 0.0
        before_asked = lookups(url, process_executable_name="dnsperf", dnsflow_direction="outgoing") if exp else {}
        before_served = sum(lookups(url, process_executable_name="unbound").values()) if exp else 0.0
        before_queries = server.stats()["total.num.queries"]
        began = time.monotonic()
        completed, codes, lost = dnsperf(port, datafile, a.seconds)
        seconds = time.monotonic() - began
        if exp:
            exporter_cpu.append((cpu_s(exp.pid) - before_cpu) / completed * 10_000)
            expected = dict(codes) | ({"TIMEOUT": lost} if lost else {})
            deadline = time.monotonic() + TIMEOUT + 5
            got: dict[str, float] = {}
            while time.monotonic() < deadline:
                after = lookups(url, process_executable_name="dnsperf", dnsflow_direction="outgoing")
                got = {c: n - before_asked.get(c, 0) for c, n in after.items() if n > before_asked.get(c, 0)}
                if got == expected:
                    break
                time.sleep(0.5)
            served = sum(lookups(url, process_executable_name="unbound").values()) - before_served
            queries = server.stats()["total.num.queries"] - before_queries
            if got != expected or served != queries:
                wrong.append(f"dnsperf {codes}, lost {lost}: counted {got}; unbound {queries:.0f}, served {served:.0f}")
            print(f"  dnsperf: {completed} completed {codes}, lost {lost}; counted {got}; unbound {queries:.0f} "
                  f"served {served:.0f}", file=sys.stderr)
        return completed, seconds

    try:
        for r in range(a.rounds + 1):
            for on in ((False, True) if r < a.rounds else (False,)):
                with ScrapedExporter([f"Dns.Ports=[53,{port}]"]) if on else contextlib.nullcontext() as exp:
                    measured(perf, on, lambda: dnsperf_run(exp))
                    measured(single, on, lambda: (one_at_a_time(port, a.seconds), a.seconds))
                    measured(dd, on, syscalls)
                print(f"round {r} {'on' if on else 'off'}: dnsperf {perf.rate[on][-1]:.0f}/s, one at a time "
                      f"{single.rate[on][-1]:.0f}/s, dd {dd.rate[on][-1]:.0f} calls/s", file=sys.stderr)
    finally:
        server.stop()
    print("| workload | off | on | rate on/off | CPU per unit off/on |")
    print("|---|---|---|---|---|")
    for label, run in (("dnsperf, 20 clients, unbound (queries/s)", perf),
                       ("one query at a time, unbound (lookups/s)", single),
                       ("read+write syscalls, `dd bs=64`, no socket (/s)", dd)):
        print(f"| {label} | {statistics.median(run.rate[False]):,.0f} | {statistics.median(run.rate[True]):,.0f} "
              f"| {ratio_summary(run.rate[False], run.rate[True])} "
              f"| {ratio_summary(run.cpu[False], run.cpu[True], cost=True)} |")
    print(f"\nexporter CPU: {statistics.median(exporter_cpu):.3f} cores per 10,000 dnsperf lookups/s "
          f"(rounds {min(exporter_cpu):.3f}-{max(exporter_cpu):.3f}; each lookup seen by dnsperf and by unbound)")
    print(f"runs where the counts differ from dnsperf's or unbound's: {len(wrong)}")
    for line in wrong:
        print(f"  {line}")


if __name__ == "__main__":
    main()
