"""What the exporter's programs cost short connections, against two floors, side by side in one run.

The workload is netflow_bench.py's connection churn (a Python client connects, sends 100 bytes,
reads them back and closes, against a Python server, as fast as it can), and the figure the
machine's busy CPU time per connection, OFF/ON. The exporter runs in its default configuration
(loopback counted), scraped every second, with one of three builds of its socket programs:

- "return at once": the socket programs do nothing (bench/floor.bpf.c -DFLOOR_NOTHING, `make floors`);
- "least exact work": the least any design must do to count each short connection exactly and
  find out its protocol (bench/floor.bpf.c -DFLOOR_LEAST says what that is, and what it leaves out);
- "the exporter's": exporter/bpf/objects, as `make bpf` built them.

--build LABEL=DIR adds a build: objects built elsewhere, say from an earlier commit, to compare
with the exporter's in the same run; --no-floors leaves the two floors out.

The runs go OFF, ON (first build), OFF, ON (second build), ... OFF: each ON run stands between two
OFF runs of its own (bench/paired.py). --programs [N] then adds N runs of each build (1 if N is
not given), the builds alternated, with kernel.bpf_stats_enabled: the programs' own run time per
connection, their median and range. It moves far less than the machine's figure from run to run.

    .venv/bin/python bench/churn_floor.py [--rounds N] [--seconds S] [--programs [N]] [--set KEY=VALUE]...
        [--build LABEL=DIR]... [--no-floors]

Needs root and clang; run it on a machine doing nothing else."""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from netflow_bench import connection_rate, git_commit
from paired import ratio_summary
from scraped import ScrapedExporter

REPO_ROOT = Path(__file__).resolve().parents[1]
OBJECTS = REPO_ROOT / "exporter/bpf/objects"
STATS = Path("/proc/sys/kernel/bpf_stats_enabled")
SOCKET_PROGRAMS = ("sock_send", "sock_recv", "sock_state", "sock_destroy")


def build_floors(workdir: Path) -> dict[str, Path]:
    """The two floor builds of the socket object (`make floors`), by label."""
    subprocess.run(["make", "-s", "floors", f"FLOOR_OUT={workdir}"], cwd=REPO_ROOT, check=True)
    return {"return at once": workdir / "nothing", "least exact work": workdir / "least"}


def program_times() -> dict[str, tuple[int, int]]:
    """Runs and run time (ns) of each socket program loaded, from bpftool."""
    shown = json.loads(subprocess.run(["bpftool", "prog", "show", "-j"], capture_output=True, text=True,
                                      check=True).stdout)
    return {p["name"]: (p.get("run_cnt", 0), p.get("run_time_ns", 0)) for p in shown
            if p.get("name") in SOCKET_PROGRAMS}


def churn(seconds: int) -> tuple[float, int]:
    """The machine's busy CPU time per connection (us), and the connections made."""
    _, n, busy = connection_rate(seconds)
    return busy / n * 1e6, n


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=10, help="rounds of the machine's figure (0: --programs only)")
    p.add_argument("--seconds", type=int, default=5, help="seconds of churn per run (default 5)")
    p.add_argument("--programs", type=int, nargs="?", const=1, default=0, metavar="N",
                   help="then N more runs of each build (default 1) for the programs' own time per connection "
                        "(bpf_stats)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="a further configuration setting for the exporter (repeatable)")
    p.add_argument("--build", action="append", default=[], metavar="LABEL=DIR",
                   help="a further build of the objects to run, from DIR (repeatable)")
    p.add_argument("--no-floors", dest="floors", action="store_false", help="leave the two floors out")
    a = p.parse_args()
    extra: dict[str, Path] = {}
    for item in a.build:
        label, _, directory = item.partition("=")
        if not label or not (Path(directory) / "sockets.bpf.o").exists():
            print(f"churn_floor: --build {item}: wants LABEL=DIR, DIR holding sockets.bpf.o", file=sys.stderr)
            return 2
        extra[label] = Path(directory)
    if not (OBJECTS / "sockets.bpf.o").exists():
        print("churn_floor: build the objects first (make bpf)", file=sys.stderr)
        return 2
    commit = git_commit()
    with tempfile.TemporaryDirectory(prefix="churn-floor-") as tmp:
        floors = build_floors(Path(tmp)) if a.floors else {}
        builds = {**floors, **extra, "the exporter's": OBJECTS}
        off: list[float] = []
        on: dict[str, list[float]] = {label: [] for label in builds}
        before: dict[str, list[int]] = {label: [] for label in builds}  # the OFF run before each ON run
        programs: dict[str, list[float]] = {label: [] for label in builds}

        def run_on(label: str, stats: bool = False) -> None:
            with ScrapedExporter(["Common.DropLocalConnections=false", *a.set],
                                 env={"NETOBS_BPF_OBJECTS": str(builds[label])}):
                time.sleep(1)
                if stats:
                    STATS.write_text("1")
                    start = program_times()
                try:
                    us, n = churn(a.seconds)
                finally:
                    if stats:
                        end = program_times()
                        STATS.write_text("0")
            if stats:
                programs[label].append(sum((ns - start.get(name, (0, 0))[1]) / n for name, (_, ns) in end.items()))
                return
            before[label].append(len(off) - 1)
            on[label].append(us)
            print(f"round {len(on[label])} {label}: off {off[-1]:.1f}, on {us:.1f} us per connection", file=sys.stderr)

        for _ in range(a.rounds):
            for label in builds:
                off.append(churn(a.seconds)[0])
                run_on(label)
        if a.rounds:
            off.append(churn(a.seconds)[0])  # every ON run between two OFF runs
        for _ in range(a.programs):
            for label in builds:
                run_on(label, stats=True)

    print(f"churn_floor: {os.cpu_count()} cores, Linux {platform.release()}, commit {commit}, {a.rounds} rounds "
          f"of {a.seconds} s{''.join(f', {kv}' for kv in a.set)}\n")
    print("| socket programs | us per connection, OFF | ON | machine CPU per connection, OFF/ON |"
          + (" programs' own time per connection (runs' range) |" if a.programs else ""))
    print("| --- | ---: | ---: | ---: |" + (" ---: |" if a.programs else ""))
    for label, costs in on.items():
        if costs:
            ratio = ratio_summary([off[i] for i in before[label]], costs, cost=True,
                                  after=[off[i + 1] for i in before[label]])
            row = f"| {label} | {statistics.median(off):.1f} | {statistics.median(costs):.1f} | {ratio} |"
        else:  # --rounds 0: the programs' own time only
            row = f"| {label} | | | |"
        if programs[label]:
            own = programs[label]
            spread = f" ({min(own):,.0f}-{max(own):,.0f})" if len(own) > 1 else ""
            row += f" {statistics.median(own):,.0f} ns{spread} |"
        print(row)
    return 0


if __name__ == "__main__":
    sys.exit(main())
