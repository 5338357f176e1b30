"""What one HTTP exchange costs in the kernel with the exporter on: a steady, low-noise figure.

bench/exchange_cost.c plays client and server of a loopback TCP connection in one thread, so
nothing waits on anything else and each exchange (two sends, two receives) costs the same. Rounds
alternate the exporter off and on in each configuration; a round runs the program K times and keeps
its fastest run, the one least disturbed by the rest of the machine. With --programs, one more ON
run reads the kernel's own run time of each BPF program (kernel.bpf_stats_enabled), per call.

The exporter must count every exchange: the client's and the server's series for the program are
checked against the number of exchanges run, and a difference is printed.

With --connections, each exchange runs on a connection of its own (connect, accept, the exchange,
the server closes, the client reads the end of file and closes): every TCP state change of both ends
and the sockets' release are in the figure. Use --exchanges 20000 then (ephemeral ports). With
--opaque the bytes are of no protocol the exporter parses (as SSH or TLS would be to its L7), of the
same lengths: what L7 costs on the connections it looks at and does not follow.

    .venv/bin/python bench/exchange_cost.py [--rounds N] [--exchanges N] [--runs K] [--programs] [--connections]
                                            [--opaque] [--only CONFIGURATION]...

Needs root and clang. Prints a Markdown table; exit status 0 whatever the figures."""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families
from scraped import ScrapedExporter

REPO_ROOT = Path(__file__).resolve().parents[1]
# name -> (settings, environment); the exchanges are checked in each configuration that parses HTTP
CONFIGURATIONS: dict[str, tuple[list[str], dict[str, str]]] = {
    "netflow only": (["Common.ProtocolProcess=false", "Dns.Enabled=false", "Bash.Enabled=false"], {}),
    "HTTP only": (["Netflow.Enabled=false", "Dns.Enabled=false", "Bash.Enabled=false"], {}),
    "default collectors": ([], {}),
    # as on a kernel that refuses the walk of TCP sockets: each TCP call brings its flow up to date
    "default, without the walk": ([], {"NETOBS_WITHOUT_PROGRAMS": "collect_tcp"}),
}
STATS = Path("/proc/sys/kernel/bpf_stats_enabled")


def build(workdir: Path) -> Path:
    binary = workdir / "exchange_cost"
    subprocess.run(["clang", "-O2", "-Wall", "-Werror", "-o", str(binary), str(REPO_ROOT / "bench/exchange_cost.c")],
                   check=True)
    return binary


MODE: list[str] = []  # exchange_cost's arguments after N: "connections" or "steady", then "opaque" or not


def fastest(binary: Path, exchanges: int, runs: int) -> float:
    """ns per exchange of the fastest of `runs` runs, pinned to the last CPU."""
    cpu = max(os.sched_getaffinity(0))
    times = []
    for _ in range(runs):
        out = subprocess.run([str(binary), str(exchanges), *MODE], capture_output=True, text=True, check=True,
                             preexec_fn=lambda: os.sched_setaffinity(0, {cpu})).stdout
        times.append(float(out))
    return min(times)


def program_times() -> dict[str, tuple[int, int]]:
    """BPF program name -> (runs, ns), summed over programs of that name."""
    listing = json.loads(subprocess.run(["bpftool", "-j", "prog", "show"], capture_output=True, text=True,
                                        check=True).stdout)
    totals: dict[str, tuple[int, int]] = {}
    for p in listing:
        runs, ns = totals.get(p.get("name", "?"), (0, 0))
        totals[p.get("name", "?")] = (runs + p.get("run_cnt", 0), ns + p.get("run_time_ns", 0))
    return totals


def exchanges_counted(url: str) -> tuple[float, float]:
    """(client, server) exchanges of exchange_cost counted by the exporter."""
    with urllib.request.urlopen(url, timeout=10) as r:
        text = r.read().decode()
    seen = {"client": 0.0, "server": 0.0}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.labels.get("process_executable_name") != "exchange_cost" or s.labels.get("http_route") != "/exchange":
                continue
            if s.name == "http_client_request_duration_seconds_count":
                seen["client"] += s.value
            elif s.name == "http_server_request_duration_seconds_count":
                seen["server"] += s.value
    return seen["client"], seen["server"]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--exchanges", type=int, default=100_000)
    p.add_argument("--runs", type=int, default=5, help="runs per round; the fastest counts")
    p.add_argument("--programs", action="store_true", help="also each BPF program's run time per call")
    p.add_argument("--connections", action="store_true",
                   help="each exchange on a connection of its own: connect, accept, exchange, close (both ends)")
    p.add_argument("--opaque", action="store_true",
                   help="bytes of no protocol the exporter parses, of the same lengths, instead of HTTP")
    p.add_argument("--only", action="append", choices=list(CONFIGURATIONS), metavar="CONFIGURATION",
                   help="run this configuration (repeatable; default: all of them)")
    a = p.parse_args()
    if a.only:
        for name in list(CONFIGURATIONS):
            if name not in a.only:
                del CONFIGURATIONS[name]
    MODE.append("connections" if a.connections else "steady")
    if a.opaque:
        MODE.append("opaque")
    with tempfile.TemporaryDirectory(prefix="exchange-cost-") as tmp:
        binary = build(Path(tmp))
        off: list[float] = []
        on: dict[str, list[float]] = {name: [] for name in CONFIGURATIONS}
        per_call: dict[str, dict[str, list[float]]] = {name: {} for name in CONFIGURATIONS}
        missing: dict[str, int] = dict.fromkeys(CONFIGURATIONS, 0)
        for r in range(a.rounds):
            for name, (settings, env) in CONFIGURATIONS.items():
                off.append(fastest(binary, a.exchanges, a.runs))
                with ScrapedExporter(["Common.DropLocalConnections=false", *settings], env, scrape=False) as exporter:
                    fastest(binary, a.exchanges // 10, 1)  # series exist from here on
                    time.sleep(2.5)  # the kernel tables are read once a second
                    before = exchanges_counted(exporter.url)
                    on[name].append(fastest(binary, a.exchanges, a.runs))
                    if a.programs:  # a run of its own: the kernel's timing of programs costs time too
                        STATS.write_text("1")
                        start = program_times()
                        fastest(binary, a.exchanges, 1)
                        end = program_times()
                        STATS.write_text("0")
                        for prog, (runs, ns) in end.items():
                            calls = runs - start.get(prog, (0, 0))[0]
                            spent = ns - start.get(prog, (0, 0))[1]
                            if a.connections and calls > 0:  # per connection
                                per_call[name].setdefault(prog, []).append(spent / a.exchanges)
                            elif calls >= a.exchanges:
                                per_call[name].setdefault(prog, []).append(spent / calls)
                    time.sleep(2.5)
                    after = exchanges_counted(exporter.url)
                expected = (a.runs + a.programs) * (a.exchanges + a.exchanges // 10)
                if "Common.ProtocolProcess=false" not in settings and not a.opaque:
                    missing[name] += sum(abs(expected - (x - y)) for x, y in zip(after, before, strict=True))
                print(f"round {r} {name}: off {off[-1]:.0f} ns, on {on[name][-1]:.0f} ns", file=sys.stderr)
    base = statistics.median(off)
    unit = "connection" if a.connections else "exchange"
    print(f"| configuration | ns per {unit} (min-max) | added | added per socket call |")
    print("| --- | ---: | ---: | ---: |")
    print(f"| exporter off | {base:.0f} ({min(off):.0f}-{max(off):.0f}) | | |")
    for name in CONFIGURATIONS:
        cost = statistics.median(on[name])
        spread = f"{min(on[name]):.0f}-{max(on[name]):.0f}"
        per_call_added = "" if a.connections else f"{(cost - base) / 4:+.0f} ns"
        print(f"| {name} | {cost:.0f} ({spread}) | {cost - base:+.0f} ns ({cost / base - 1:+.1%}) "
              f"| {per_call_added} |")
    if "HTTP only" in on and "default collectors" in on:
        http = statistics.median(on["HTTP only"])
        print(f"default collectors over HTTP only: {statistics.median(on['default collectors']) / http - 1:+.1%}")
    for name in CONFIGURATIONS:
        for prog, values in sorted(per_call[name].items()):
            print(f"{name}: {prog} {statistics.median(values):.0f} ns per {'connection' if a.connections else 'call'}")
    print("exchanges not counted (client and server sides): "
          + ", ".join(f"{name}: {n}" for name, n in missing.items() if name != "netflow only"))


if __name__ == "__main__":
    main()
