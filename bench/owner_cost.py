"""What naming each owner costs in the kernel: BPF time per connection, per datagram, per socket call
of other families, and per process start, for this tree and others side by side.

For each tree (this one, and each --source DIR, e.g. a `git archive` of an older commit with its
objects built), the exporter runs in its default configuration and these workloads run on loopback,
with kernel.bpf_stats_enabled on: the kernel's own count of the time its programs ran, summed over
every program, divided by the units of work. Each workload runs --rounds times per tree, trees
alternating, and the median is kept with the spread.

- connection: connect, send 100 bytes, close; the server accepts, reads to the end, closes (both ends);
- datagram: sendto on an unconnected UDP socket, recvfrom on the server (both ends);
- unix call: one send and one recv on an AF_UNIX socket pair (the "other families" path);
- process start: fork and exec /bin/true. Nothing of the exporter runs there: the figure is 0 unless
  a program does.

    .venv/bin/python bench/owner_cost.py [--source DIR ...] [--rounds N] [--count N]

Needs root. Prints a Markdown table; exit status 0 whatever the figures (a benchmark, not a test)."""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
STATS = Path("/proc/sys/kernel/bpf_stats_enabled")


def bpf_time_ns() -> int:
    listing = json.loads(subprocess.run(["bpftool", "-j", "prog", "show"], capture_output=True, text=True,
                                        check=True).stdout)
    return sum(p.get("run_time_ns", 0) for p in listing)


def connections(n: int) -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]

        def serve() -> None:
            for _ in range(n):
                conn, _ = server.accept()
                with conn:
                    while conn.recv(4096):
                        pass

        t = threading.Thread(target=serve)
        t.start()
        for _ in range(n):
            with socket.create_connection(("127.0.0.1", port)) as c:
                c.sendall(b"x" * 100)
        t.join()


def datagrams(n: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as server, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
        server.bind(("127.0.0.1", 0))
        address = server.getsockname()
        for _ in range(n):
            client.sendto(b"x" * 100, address)
            server.recvfrom(2048)


def unix_calls(n: int) -> None:
    a, b = socket.socketpair()
    with a, b:
        for _ in range(n):
            a.send(b"x" * 100)
            b.recv(2048)


def process_starts(n: int) -> None:
    for _ in range(n):
        subprocess.run(["/bin/true"], check=True)


WORKLOADS: dict[str, tuple[Callable[[int], None], int]] = {  # name -> (run, units per --count)
    "connection": (connections, 1),
    "datagram (both ends)": (datagrams, 10),
    "unix call (send + recv)": (unix_calls, 10),
    "process start": (process_starts, 1),
}


def start_exporter(tree: Path, port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([sys.executable, "-m", "exporter", f"--web.listen-address=127.0.0.1:{port}"], cwd=tree,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
                if b"netobs_program_attached" in r.read():
                    return proc
        except OSError:
            time.sleep(0.3)
    proc.kill()
    raise RuntimeError(f"the exporter of {tree} did not start")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--source", action="append", default=[], help="another tree to compare (its objects built)")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--count", type=int, default=2000)
    a = p.parse_args()
    trees = [REPO_ROOT, *map(Path, a.source)]
    results: dict[tuple[str, str], list[float]] = {}
    was = STATS.read_text().strip()
    STATS.write_text("1")
    try:
        for r in range(a.rounds):
            for tree in trees:
                port = 20000 + r
                exporter = start_exporter(tree, port)
                try:
                    for name, (run, scale) in WORKLOADS.items():
                        count = a.count * scale
                        before = bpf_time_ns()
                        run(count)
                        results.setdefault((str(tree), name), []).append((bpf_time_ns() - before) / count)
                finally:
                    exporter.terminate()
                    exporter.wait()
                print(f"round {r} {tree}: " + ", ".join(f"{n} {results[(str(tree), n)][-1]:.0f} ns"
                                                         for n in WORKLOADS), file=sys.stderr)
    finally:
        STATS.write_text(was)
    print("| BPF time per unit (median, rounds' range) | " + " | ".join(str(t) for t in trees) + " |")
    print("|---|" + "---|" * len(trees))
    for name in WORKLOADS:
        cells = []
        for tree in trees:
            values = results[(str(tree), name)]
            cells.append(f"{statistics.median(values):,.0f} ns ({min(values):,.0f}-{max(values):,.0f})")
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
