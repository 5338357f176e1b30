"""What the netflow exporter costs: loopback traffic with the exporter off and on, alternating.

Each round runs the same two workloads twice, first without and then with the exporter:
iperf3 TCP throughput, and the rate of short TCP connections (connect, send 100 bytes, receive
them back, close) made by a small Python client against a small Python server. During an ON round
the exporter is scraped every second, like Prometheus would, and its CPU time and peak RSS are read
from /proc. It also checks that the exporter counted at least the bytes iperf3 says it sent.

    .venv/bin/python bench/netflow_bench.py [--rounds N] [--seconds S] [--json] [--no-long-lived] [--set KEY=VALUE]...

Every round holds one TCP connection open from before the exporter starts, as an SSH session would
be on a real host (--no-long-lived leaves it out), because the exporter treats such connections
specially. The connection workload leaves tens of thousands of sockets in TIME_WAIT for a minute.

Progress goes to stderr; the table (or JSON) to stdout. Exit status is 0 whatever the figures:
this is a benchmark, not a test. Needs root (the exporter loads BPF programs) and iperf3."""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import date
from pathlib import Path

from paired import BusyCpu, ratio_summary
from prometheus_client.parser import text_string_to_metric_families

REPO_ROOT = Path(__file__).resolve().parents[1]
PAYLOAD = b"x" * 100
GOAL_THROUGHPUT_RATIO = 0.97
GOAL_RSS_MB = 80.0
CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass
class Round:
    index: int
    mode: str                          # "off" or "on"
    throughput_bps: float = 0.0        # iperf3 end.sum_received.bits_per_second
    iperf3_sent_bytes: int = 0         # iperf3 end.sum_sent.bytes (data only)
    conn_per_s: float = 0.0
    iperf3_cpu_s: float = 0.0          # the whole machine's busy CPU time during the iperf3 test
    connections: int = 0
    conn_cpu_s: float = 0.0            # ... during the connection workload
    other_exporters: int = 0           # exporter processes not started by us seen during the round
    exporter_counted_bytes: float | None = None  # netflow_bytes_total, iperf3 client, transmit
    exporter_cpu_s: float | None = None          # utime+stime while the workloads ran
    exporter_wall_s: float | None = None
    exporter_startup_cpu_s: float | None = None  # utime+stime until /metrics first answered
    exporter_peak_rss_mb: float | None = None    # VmHWM, 10^6 bytes
    exporter_max_series: int | None = None       # most series one scrape exported (all flows on the host)
    exporter_max_scrape_bytes: int | None = None
    exporter_adopted: int | None = None          # connections open before start-up, as its log says

    @property
    def exporter_cores(self) -> float | None:
        if self.exporter_cpu_s is None or not self.exporter_wall_s:
            return None
        return self.exporter_cpu_s / self.exporter_wall_s


# ------------------------------------------------------------------ processes and /proc

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_listening(port: int, proc: subprocess.Popen, name: str, timeout: float = 10) -> None:
    """Waits for a loopback TCP listener on `port` by reading /proc/net/tcp (a probe connection
    would count as iperf3's one test)."""
    wanted = f"0100007F:{port:04X}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited with {proc.returncode} before listening")
        with open("/proc/net/tcp") as f:
            if any(line.split()[1] == wanted and line.split()[3] == "0A" for line in f.readlines()[1:]):
                return
        time.sleep(0.02)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


def stop(proc: subprocess.Popen, timeout: float = 20) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime (fields 14 and 15)


def peak_rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024 / 1e6
    raise RuntimeError(f"no VmHWM in /proc/{pid}/status")


def other_exporters(ours: int | None) -> int:
    """Exporter processes that someone else started: they load the same kernel programs and
    would make an OFF round partly ON."""
    count = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == ours:
            continue
        try:
            with open(f"/proc/{entry.name}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if b"netobs-exporter" in argv[0] or ("-m", "exporter") in itertools.pairwise(a.decode() for a in argv):
            count += 1
    return count


# ------------------------------------------------------------------ the exporter

class Exporter:
    """The exporter as its users run it, on a free loopback port, scraped every second."""

    def __init__(self, settings: list[str]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/metrics"
        self.log = open(f"/tmp/netobs-bench-exporter-{self.port}.log", "w+")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "exporter", f"--web.listen-address=127.0.0.1:{self.port}",
             "--config.set", "Common.DropLocalConnections=false",
             *(x for kv in settings for x in ("--config.set", kv))],
            cwd=REPO_ROOT, stdout=self.log, stderr=subprocess.STDOUT)
        self._stop_scraping = threading.Event()
        self.scrapes = self.scrape_errors = self.max_scrape_bytes = self.max_series = 0

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                if "netobs_program_attached" in self.scrape():
                    return
            except OSError:
                pass
            time.sleep(0.1)
        self.log.seek(0)
        raise RuntimeError(f"exporter not ready (exit status {self.proc.poll()}):\n{self.log.read()[-3000:]}")

    def scrape(self) -> str:
        with urllib.request.urlopen(self.url, timeout=10) as response:
            return str(response.read().decode())

    def start_scraping(self) -> None:
        threading.Thread(target=self._scrape_every_second, daemon=True).start()

    def _scrape_every_second(self) -> None:
        while not self._stop_scraping.wait(1.0):
            try:
                text = self.scrape()
            except OSError:
                self.scrape_errors += 1
                continue
            self.scrapes += 1
            self.max_scrape_bytes = max(self.max_scrape_bytes, len(text))
            self.max_series = max(self.max_series, exported_series(text))

    def adopted_connections(self) -> int | None:
        self.log.flush()
        with open(self.log.name) as f:
            found = re.search(r"netflow: (\d+) connections open before start-up", f.read())
        return int(found.group(1)) if found else None

    def transmitted_bytes(self) -> float:
        """What the iperf3 client sent, by the exporter's count (its series carry the process name,
        not the pid, in the default configuration)."""
        total = 0.0
        for family in text_string_to_metric_families(self.scrape()):
            for s in family.samples:
                if (s.name == "netflow_bytes_total" and s.labels.get("process_executable_name") == "iperf3"
                        and s.labels.get("netflow_direction") == "outgoing"
                        and s.labels.get("network_io_direction") == "transmit"):
                    total += s.value
        return total

    def __enter__(self) -> Exporter:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self._stop_scraping.set()
        stop(self.proc)
        self.log.close()
        if self.proc.returncode == 0:
            os.unlink(self.log.name)


def exported_series(text: str) -> int:
    """The exporter's own count of the series it exports (netobs_series, summed over instruments)."""
    return int(sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                   if line.startswith("netobs_series{")))


# ------------------------------------------------------------------ the workloads

def iperf3(seconds: float) -> tuple[float, int, int, float]:
    """(bits/s received, data bytes sent, client pid, the machine's busy CPU seconds) of one loopback
    iperf3 TCP test."""
    port = free_port()
    server = subprocess.Popen(["iperf3", "-s", "-1", "-p", str(port), "-B", "127.0.0.1"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_listening(port, server, "iperf3 server")
        cpu = BusyCpu()
        cpu.start()
        client = subprocess.Popen(["iperf3", "-c", "127.0.0.1", "-p", str(port), "-t", str(seconds), "-J"],
                                  stdout=subprocess.PIPE, text=True)
        out, _ = client.communicate(timeout=seconds + 30)
        busy = cpu.stop()
        end = json.loads(out)["end"]
        if client.returncode != 0 or "sum_received" not in end:
            raise RuntimeError(f"iperf3 client failed: {out[-2000:]}")
        server.wait(timeout=10)
    finally:
        stop(server)
    return float(end["sum_received"]["bits_per_second"]), int(end["sum_sent"]["bytes"]), client.pid, busy


def connection_rate(seconds: float) -> tuple[float, int, float]:
    """(connections per second, connections, the machine's busy CPU seconds) made by this script's
    `client` role against its `server` role."""
    port = free_port()
    me = [sys.executable, str(Path(__file__).resolve())]
    server = subprocess.Popen([*me, "--role", "server", "--port", str(port)])
    try:
        wait_listening(port, server, "connection server")
        cpu = BusyCpu()
        cpu.start()
        out = subprocess.run([*me, "--role", "client", "--port", str(port), "--seconds", str(seconds)],
                             check=True, capture_output=True, text=True, timeout=seconds + 30).stdout
        busy = cpu.stop()
    finally:
        stop(server)
    result = json.loads(out)
    return float(result["connections"] / result["seconds"]), int(result["connections"]), busy


def serve(port: int) -> None:
    """Echoes 100 bytes per connection, then closes it (so TIME_WAIT is on this side)."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with socket.create_server(("127.0.0.1", port), backlog=1024) as listener:
        while True:
            conn, _ = listener.accept()
            with conn:
                got = b""
                while len(got) < len(PAYLOAD) and (chunk := conn.recv(len(PAYLOAD) - len(got))):
                    got += chunk
                conn.sendall(got)


def connect_repeatedly(port: int, seconds: float) -> None:
    """connect, send 100 bytes, read until the server closes, close; as fast as possible."""
    count, began = 0, time.monotonic()
    deadline = began + seconds
    while time.monotonic() < deadline:
        with socket.socket() as s:
            s.connect(("127.0.0.1", port))
            s.sendall(PAYLOAD)
            while s.recv(4096):
                pass
        count += 1
    print(json.dumps({"connections": count, "seconds": time.monotonic() - began}))


# ------------------------------------------------------------------ rounds

def run_workloads(r: Round, seconds: float, exporter: Exporter | None) -> None:
    before = exporter.transmitted_bytes() if exporter is not None else 0.0
    r.throughput_bps, r.iperf3_sent_bytes, _client_pid, r.iperf3_cpu_s = iperf3(seconds)
    if exporter is not None:  # the kernel counts; /metrics may lag by its 1 s snapshot cache
        deadline = time.monotonic() + 15
        while (counted := exporter.transmitted_bytes() - before) < r.iperf3_sent_bytes:
            if time.monotonic() > deadline:
                break
            time.sleep(0.25)
        r.exporter_counted_bytes = counted
    r.conn_per_s, r.connections, r.conn_cpu_s = connection_rate(seconds)


@contextlib.contextmanager
def long_lived_connection() -> Iterator[None]:
    """A loopback TCP connection open from before the exporter starts until the round ends, as an SSH
    session would be on a real host. The exporter adopts such connections at start-up (its first walk)."""
    with socket.create_server(("127.0.0.1", 0)) as listener, \
            socket.create_connection(listener.getsockname()) as client:
        server, _ = listener.accept()
        with server:
            client.sendall(b"hello")
            server.recv(5)
            yield


def measure_on(r: Round, seconds: float, exporter: Exporter) -> None:
    pid = exporter.proc.pid
    exporter.wait_ready()
    r.exporter_startup_cpu_s = cpu_seconds(pid)
    r.exporter_adopted = exporter.adopted_connections()
    exporter.start_scraping()
    began = time.monotonic()
    r.other_exporters = other_exporters(pid)
    run_workloads(r, seconds, exporter)
    r.other_exporters = max(r.other_exporters, other_exporters(pid))
    r.exporter_wall_s = time.monotonic() - began
    r.exporter_cpu_s = cpu_seconds(pid) - r.exporter_startup_cpu_s
    r.exporter_peak_rss_mb = peak_rss_mb(pid)
    r.exporter_max_series = exporter.max_series
    r.exporter_max_scrape_bytes = exporter.max_scrape_bytes


def run_round(index: int, mode: str, seconds: float, long_lived: bool, settings: list[str]) -> Round:
    r = Round(index, mode)
    with contextlib.ExitStack() as stack:
        if long_lived:
            stack.enter_context(long_lived_connection())
        if mode == "on":
            measure_on(r, seconds, stack.enter_context(Exporter(settings)))
        else:
            r.other_exporters = other_exporters(None)
            run_workloads(r, seconds, None)
            r.other_exporters = max(r.other_exporters, other_exporters(None))
    return r


# ------------------------------------------------------------------ results

def median(rounds: list[Round], mode: str, value: str) -> float | None:
    values = [getattr(r, value) for r in rounds if r.mode == mode and getattr(r, value) is not None]
    return statistics.median(values) if values else None


def ratio(on: float | None, off: float | None) -> float:
    return on / off if on is not None and off else float("nan")


def git_commit() -> str:
    """HEAD, with '+dirty' when tracked files differ from it: what the exporter ran from."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True).stdout.strip()
    head = git("rev-parse", "--short", "HEAD") or "unknown"
    return head + ("+dirty" if git("status", "--porcelain", "--untracked-files=no") else "")


def summarise(rounds: list[Round], seconds: float, long_lived: bool, commit: str) -> dict:
    med = {mode: {v: median(rounds, mode, v) for v in (
        "throughput_bps", "conn_per_s", "exporter_cores", "exporter_peak_rss_mb", "exporter_startup_cpu_s")}
        for mode in ("off", "on")}
    ratios = {v: ratio(med["on"][v], med["off"][v]) for v in ("throughput_bps", "conn_per_s")}
    worst_rss = max(r.exporter_peak_rss_mb or 0.0 for r in rounds)
    on = [r for r in rounds if r.mode == "on"]
    return {
        "machine": {"cores": os.cpu_count(), "kernel": platform.release(), "date": date.today().isoformat(),
                    "commit": commit},
        "settings": {"rounds": len(on), "seconds": seconds, "long_lived_connection": long_lived},
        "rounds": [{**asdict(r), "exporter_cores": r.exporter_cores} for r in rounds],
        "medians": med,
        "ratios_on_off": ratios,
        "goals": {
            "throughput_ratio": {"goal": f">= {GOAL_THROUGHPUT_RATIO:.0%}", "value": ratios["throughput_bps"],
                                 "pass": ratios["throughput_bps"] >= GOAL_THROUGHPUT_RATIO},
            "peak_rss_mb": {"goal": f"< {GOAL_RSS_MB:g} MB", "value": worst_rss, "pass": worst_rss < GOAL_RSS_MB},
        },
        "counted_at_least_sent": all((r.exporter_counted_bytes or 0) >= r.iperf3_sent_bytes for r in on),
        "cpu_off_on": cpu_ratios(rounds),
    }


def cpu_ratios(rounds: list[Round]) -> dict[str, str]:
    """The machine's CPU time per byte (iperf3) and per connection, OFF/ON: each ON round against the
    OFF rounds on either side (bench/paired.py), with a 95 % confidence interval."""
    def per(mode: str, cpu: str, work: str) -> list[float]:
        return [getattr(r, cpu) / getattr(r, work) for r in rounds if r.mode == mode and getattr(r, work)]
    return {
        "cpu_per_byte": ratio_summary(per("off", "iperf3_cpu_s", "iperf3_sent_bytes"),
                                      per("on", "iperf3_cpu_s", "iperf3_sent_bytes"), cost=True),
        "cpu_per_connection": ratio_summary(per("off", "conn_cpu_s", "connections"),
                                            per("on", "conn_cpu_s", "connections"), cost=True),
    }


def fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


HEAD = ("round", "exporter", "iperf3 Gbit/s", "conn/s", "exp. cores", "exp. RSS MB", "exp. series",
        "adopted", "iperf3 sent B", "exp. counted B", "others")


def round_row(r: dict) -> tuple[str, ...]:
    return (str(r["index"]), r["mode"], fmt(r["throughput_bps"] / 1e9, ".2f"), fmt(r["conn_per_s"], ".0f"),
            fmt(r["exporter_cores"], ".3f"), fmt(r["exporter_peak_rss_mb"], ".1f"),
            fmt(r["exporter_max_series"], "d"), fmt(r["exporter_adopted"], "d"), str(r["iperf3_sent_bytes"]),
            fmt(r["exporter_counted_bytes"], ".0f"), str(r["other_exporters"]))


def summary_rows(result: dict) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    for mode, v in result["medians"].items():
        gbps = v["throughput_bps"] and v["throughput_bps"] / 1e9
        rows.append(("median", mode, fmt(gbps, ".2f"), fmt(v["conn_per_s"], ".0f"), fmt(v["exporter_cores"], ".3f"),
                     fmt(v["exporter_peak_rss_mb"], ".1f"), "", "", "", "", ""))
    ratio = result["ratios_on_off"]
    rows.append(("ON/OFF", "", f"{ratio['throughput_bps']:.1%}", f"{ratio['conn_per_s']:.1%}", *[""] * 7))
    return rows


def print_table(result: dict) -> None:
    m = result["machine"]
    print(f"netflow benchmark: {m['cores']} cores, Linux {m['kernel']}, {m['date']}, commit {m['commit']}, "
          f"{result['settings']['rounds']} rounds of {result['settings']['seconds']:g} s per workload, "
          f"{'with' if result['settings']['long_lived_connection'] else 'without'} a long-lived connection\n")
    rows = [HEAD, *(round_row(r) for r in result["rounds"]), *summary_rows(result)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEAD))]
    for row in rows:
        cells = [c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))]
        print("  ".join(cells).rstrip())
    print(f"\nexporter start-up CPU (median): {fmt(result['medians']['on']['exporter_startup_cpu_s'], '.2f')} s")
    for name, goal in result["goals"].items():
        value = f"{goal['value']:.1%}" if name == "throughput_ratio" else f"{goal['value']:.1f} MB (worst round)"
        print(f"goal {name} {goal['goal']}: {value} {'PASS' if goal['pass'] else 'FAIL'}")
    print("exporter counted >= iperf3 sent in every ON round: "
          f"{'PASS' if result['counted_at_least_sent'] else 'FAIL'}")
    cpu = result["cpu_off_on"]
    print(f"machine CPU time per iperf3 byte, OFF/ON: {cpu['cpu_per_byte']}")
    print(f"machine CPU time per connection, OFF/ON: {cpu['cpu_per_connection']}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=5, help="ON/OFF pairs (default 5)")
    p.add_argument("--seconds", type=int, default=5, help="seconds per workload (default 5)")
    p.add_argument("--json", action="store_true", help="print the results as JSON instead of a table")
    p.add_argument("--no-long-lived", dest="long_lived", action="store_false",
                   help="do not hold a TCP connection open through each round (default: one is, as on a real host)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="a configuration setting for the exporter (repeatable), e.g. Common.ProtocolProcess=false")
    p.add_argument("--role", choices=("server", "client"), help=argparse.SUPPRESS)
    p.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.role == "server":
        serve(args.port)
        return 0
    if args.role == "client":
        connect_repeatedly(args.port, args.seconds)
        return 0
    if shutil.which("iperf3") is None:
        print("netflow_bench: iperf3 not found (make setup-test installs it)", file=sys.stderr)
        return 2
    commit, rounds = git_commit(), []  # before the rounds: others may commit while they run
    for i in range(1, args.rounds + 1):
        for mode in ("off", "on"):
            print(f"round {i}/{args.rounds}, exporter {mode}...", file=sys.stderr, flush=True)
            rounds.append(run_round(i, mode, args.seconds, args.long_lived, args.set))
    print("closing OFF run...", file=sys.stderr, flush=True)  # every ON run between two OFF runs
    rounds.append(run_round(args.rounds + 1, "off", args.seconds, args.long_lived, args.set))
    result = summarise(rounds, args.seconds, args.long_lived, commit)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print_table(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
