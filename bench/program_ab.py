"""Two builds of the socket programs on the same socket calls at once: their own time, side by side.

Comparing builds one after the other (churn_floor.py --programs, exchange_cost.py --programs) on
this shared machine, the programs' own time moves by 10-20 % from run to run with the load of the
neighbours, more than most changes to the programs. Here two exporters run at once, one per build
(NETOBS_BPF_OBJECTS), both attached: every socket call and state change of the workload runs the
programs of both builds, one right after the other, under the same load. Each program's own time
(kernel.bpf_stats_enabled) per unit of work, by build, comes from the program ids each exporter
holds (/proc/PID/fdinfo).

The build attached first runs first at each event, and finds the socket, the task and the caller's
data cold in the cache where the second finds them warm: the same objects against themselves
measured ~20 % slower first. So the rounds swap which build attaches first, and each pair of rounds
gives a ratio (B over A) free of the order to first order: the geometric mean of its two rounds'
ratios. Against itself, a build gave pairs of 0.98-1.00. What a change saves in cache misses shows
only in the rounds where its build runs first: the ratio understates such a saving, never the cost
of instructions or calls.

The workload is bench/exchange_cost.c, in the exporter's default configuration (loopback counted)
plus --set: by default one kept connection (HTTP exchanges, two sends and two receives each); with
--connections a connection of its own per exchange (connect, accept, exchange, close: every state
change and the release of both ends); with --opaque bytes of no protocol L7 parses.

    .venv/bin/python bench/program_ab.py [--pairs N] [--exchanges N] [--connections] [--opaque]
        [--set KEY=VALUE]... LABEL=DIR LABEL=DIR

DIR holds sockets.bpf.o and bash.bpf.o: exporter/bpf/objects (`make bpf`), a build of an earlier
commit (`git worktree add /tmp/old <commit> && make -C /tmp/old bpf`), or the floors of
churn_floor.py (`make floors FLOOR_OUT=DIR`: DIR/least, DIR/nothing). Needs root and clang; run it
alone: the two builds share the noise, not other benchmarks'."""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import exchange_cost
from churn_floor import SOCKET_PROGRAMS as PROGRAMS
from netflow_bench import git_commit
from scraped import ScrapedExporter


def prog_ids(pid: int) -> set[int]:
    """Ids of the BPF programs whose file descriptors process `pid` holds."""
    ids = set()
    for fd in os.listdir(f"/proc/{pid}/fdinfo"):
        try:
            info = Path(f"/proc/{pid}/fdinfo/{fd}").read_text()
        except OSError:
            continue  # closed meanwhile
        if m := re.search(r"^prog_id:\s*(\d+)", info, re.M):
            ids.add(int(m.group(1)))
    return ids


def run_times(owners: dict[int, str]) -> dict[tuple[str, str], int]:
    """(build, program name) -> run time (ns) of the socket programs whose id is in `owners`."""
    shown = json.loads(subprocess.run(["bpftool", "-j", "prog", "show"], capture_output=True, text=True,
                                      check=True).stdout)
    times: dict[tuple[str, str], int] = {}
    for p in shown:
        if p.get("name") in PROGRAMS and p["id"] in owners:
            key = (owners[p["id"]], p["name"])
            times[key] = times.get(key, 0) + p.get("run_time_ns", 0)
    return times


def started_whole(log: Path) -> str | None:
    """None if the exporter whose log this is loaded its socket object whole, with every collector it
    was given; else the line that says otherwise (a build the verifier refuses is loaded in pieces, or
    not at all: its figures would not be the build's)."""
    for line in log.read_text().splitlines():
        if "level=error" in line or "trying each alone" in line:
            return line
    return None


def order_cancelled(ratios: list[float]) -> list[float]:
    """B/A of each pair of rounds, A first in the first round of the pair and B in the second: the
    geometric mean of the two, in which running first or second cancels to first order."""
    return [math.sqrt(x * y) for x, y in zip(ratios[::2], ratios[1::2], strict=True)]


def parse_build(text: str) -> tuple[str, Path]:
    label, sep, directory = text.partition("=")
    path = Path(directory)
    if not sep or not label or not (path / "sockets.bpf.o").is_file():
        raise argparse.ArgumentTypeError(f"{text!r}: want LABEL=DIR, DIR holding sockets.bpf.o")
    return label, path.resolve()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("builds", nargs=2, type=parse_build, metavar="LABEL=DIR", help="build A, then build B")
    p.add_argument("--pairs", type=int, default=3, help="pairs of rounds, each build first in one of them")
    p.add_argument("--exchanges", type=int, default=0,
                   help="exchanges per round (default 100,000; 20,000 with --connections)")
    p.add_argument("--connections", action="store_true", help="a connection of its own per exchange")
    p.add_argument("--opaque", action="store_true", help="bytes of no protocol the exporter parses")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="a further configuration setting for both exporters (repeatable)")
    a = p.parse_args()
    (label_a, _), (label_b, _) = a.builds
    if label_a == label_b:
        p.error("the two builds need different labels")
    n = a.exchanges or (20_000 if a.connections else 100_000)
    exchange_cost.MODE[:] = ["connections" if a.connections else "steady", *(["opaque"] if a.opaque else [])]
    unit = "connection" if a.connections else "exchange"
    settings = ["Common.DropLocalConnections=false", *a.set]
    print(f"program_ab: {os.cpu_count()} cores, Linux {platform.release()}, "
          f"{time.strftime('%Y-%m-%d')}, commit {git_commit()}; {' '.join(exchange_cost.MODE)}, "
          f"{n} per round, settings {settings}", flush=True)

    per_unit: dict[str, list[dict[str, float]]] = {label_a: [], label_b: []}
    ratios: list[float] = []
    with tempfile.TemporaryDirectory(prefix="program-ab-") as tmp:
        binary = exchange_cost.build(Path(tmp))
        for r in range(2 * a.pairs):
            order = a.builds if r % 2 == 0 else a.builds[::-1]
            exporters: list[ScrapedExporter] = []
            try:
                for _, directory in order:  # one after the other: the first attached runs first
                    exporters.append(ScrapedExporter(settings, {"NETOBS_BPF_OBJECTS": str(directory)}))
                    exporters[-1].__enter__()
                    if complaint := started_whole(Path(exporters[-1].log_path)):
                        raise SystemExit(f"build {order[len(exporters) - 1][0]} did not start whole: {complaint}")
                owners = {i: label for (label, _), e in zip(order, exporters, strict=True) for i in prog_ids(e.pid)}
                exchange_cost.fastest(binary, n // 10, 1)  # connections and series exist from here on
                exchange_cost.STATS.write_text("1")
                try:
                    before = run_times(owners)
                    exchange_cost.fastest(binary, n, 1)
                    after = run_times(owners)
                finally:
                    exchange_cost.STATS.write_text("0")
            finally:
                for e in reversed(exporters):
                    e.__exit__()
            for label in per_unit:
                per_unit[label].append({prog: (after.get((label, prog), 0) - before.get((label, prog), 0)) / n
                                        for prog in PROGRAMS})
            total_a, total_b = (sum(per_unit[label][-1].values()) for label in (label_a, label_b))
            ratios.append(total_b / total_a)
            print(f"round {r + 1}: {order[0][0]} first; ns per {unit}: {label_a} {total_a:.0f}, "
                  f"{label_b} {total_b:.0f}, {label_b}/{label_a} {total_b / total_a:.3f}", flush=True)

    pairs = order_cancelled(ratios)
    print(f"\n| programs' own time per {unit} | {label_a} | {label_b} |\n| --- | ---: | ---: |")
    for prog in (*PROGRAMS, "all"):
        cells = []
        for label in (label_a, label_b):
            values = [sum(row.values()) if prog == "all" else row[prog] for row in per_unit[label]]
            cells.append(f"{statistics.median(values):,.0f} ns ({min(values):,.0f}-{max(values):,.0f})")
        print(f"| {prog} | {cells[0]} | {cells[1]} |")
    print(f"\n{label_b}/{label_a}, each pair of rounds with the order cancelled: "
          f"{', '.join(f'{x:.3f}' for x in pairs)}; median {statistics.median(pairs):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
