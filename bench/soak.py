"""A soak: the exporter under steady mixed traffic for a long time, scraped and pushing OTLP, watched for
growth: its RSS, its series, its open files, and what it lost.

Traffic, all on loopback, at modest rates (the point is time, not load):
- connection churn: a new TCP connection (100 bytes, closed) 50 times a second;
- DNS: 20 lookups a second against dnsmasq, over 50 names;
- HTTP: 50 keep-alive requests a second to nginx, over 20 routes;
- Redis: 50 commands a second (SET, GET, INCR);
- PostgreSQL: pgbench at 10 transactions a second;
- bash: an interactive bash on a pty runs a command every 10 seconds (the audit's log records).
The exporter runs in its default configuration plus the servers' ports, with OTLP metrics and log
records pushed every 5 s to a receiver here, and is scraped every 5 s. Every 10 s the benchmark
samples its RSS, open file descriptors, series (lines of the scrape) and lost events by reason.

    .venv/bin/python bench/soak.py [--minutes M] [--plot docs/soak.png]

Reports the RSS slope after the first 5 minutes (MB per 10 minutes, least squares), the largest series
count, the open files, and the lost events. Needs root, nginx, redis, PostgreSQL, dnsmasq, pgbench."""

from __future__ import annotations

import argparse
import http.client
import os
import pty
import select
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from http_bench import NGINX_CONF  # noqa: E402

from tests.kernel.dns_peers import dnsmasq, query  # noqa: E402
from tests.kernel.servers import postgres, redis_server  # noqa: E402

SAMPLE_S = 10
WARM_UP_S = 300


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class OtlpSink(ThreadingHTTPServer):
    """Takes OTLP/HTTP requests (metrics and logs), answers 200 with an empty response, keeps counts only."""

    daemon_threads = True

    def __init__(self) -> None:
        counts = self.counts = {"/v1/metrics": 0, "/v1/logs": 0}

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                counts[self.path] = counts.get(self.path, 0) + 1
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_args: object) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()


def every(rate: float, stop: threading.Event, work: Callable[[int], None]) -> threading.Thread:
    """Runs work(i) `rate` times a second until stop, in a thread; errors are counted, never fatal."""
    errors = [0]

    def loop() -> None:
        i, period, next_at = 0, 1 / rate, time.monotonic()
        while not stop.is_set():
            try:
                work(i)
            except (OSError, http.client.HTTPException):
                errors[0] += 1
            i += 1
            next_at += period
            time.sleep(max(0.0, next_at - time.monotonic()))

    t = threading.Thread(target=loop, daemon=True)
    t.start()
    return t


def churn(port: int) -> Callable[[int], None]:
    def work(_i: int) -> None:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as c:
            c.sendall(b"x" * 100)
    return work


def lookups(port: int) -> Callable[[int], None]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.connect(("127.0.0.1", port))
    sock.settimeout(2)

    def work(i: int) -> None:
        sock.send(query(f"n{i % 50}.soak.wild.test", i & 0xFFFF))
        sock.recv(2048)
    return work


def http_requests(port: int) -> Callable[[int], None]:
    conn = [http.client.HTTPConnection("127.0.0.1", port, timeout=5)]

    def work(i: int) -> None:
        try:
            conn[0].request("GET", f"/r{i % 20}.html")
            conn[0].getresponse().read()
        except (OSError, http.client.HTTPException):
            conn[0] = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            raise
    return work


def redis_commands(port: int) -> Callable[[int], None]:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)

    def work(i: int) -> None:
        command = [b"SET", b"k%d" % (i % 100), b"v"] if i % 3 == 0 else \
            [b"GET", b"k%d" % (i % 100)] if i % 3 == 1 else [b"INCR", b"counter"]
        sock.sendall(b"*%d\r\n" % len(command) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in command))
        sock.recv(4096)
    return work


def bash_session(stop: threading.Event) -> threading.Thread:
    """An interactive bash on a pty, typing a command every 10 s (what the bash audit records)."""
    def run() -> None:
        pid, fd = pty.fork()
        if pid == 0:
            os.execvp("bash", ["bash", "--norc", "-i"])
        i = 0
        while not stop.wait(10):
            os.write(fd, f"echo soak {i}\n".encode())
            i += 1
            while select.select([fd], [], [], 0.2)[0]:
                os.read(fd, 4096)
        os.write(fd, b"exit\n")
        os.waitpid(pid, 0)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def sink_server(stop: threading.Event) -> int:
    server = socket.create_server(("127.0.0.1", 0), backlog=256)

    def accept() -> None:
        server.settimeout(1)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(5)
                while conn.recv(4096):
                    pass

    threading.Thread(target=accept, daemon=True).start()
    return int(server.getsockname()[1])


def status_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def scrape(url: str) -> tuple[int, dict[str, float]]:
    with urllib.request.urlopen(url, timeout=10) as r:
        text = r.read().decode()
    lost: dict[str, float] = {}
    series = 0
    for line in text.splitlines():
        if line.startswith("#") or not line:
            continue
        series += 1
        if line.startswith("netobs_events_lost_total{"):
            labels, value = line.rsplit(" ", 1)
            if float(value):
                lost[labels[len("netobs_events_lost_total"):]] = float(value)
    return series, lost


def slope_mb_per_10min(samples: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, MB), in MB per 10 minutes."""
    if len(samples) < 2:
        return 0.0
    xs, ys = [s[0] for s in samples], [s[1] for s in samples]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / den * 600 if den else 0.0


def plot(path: str, samples: list[tuple[float, float, int, int]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    minutes = [s[0] / 60 for s in samples]
    fig, axes = plt.subplots(3, 1, figsize=(8, 7), sharex=True)
    for ax, values, label in ((axes[0], [s[1] for s in samples], "RSS (MB)"),
                              (axes[1], [s[2] for s in samples], "series (lines per scrape)"),
                              (axes[2], [s[3] for s in samples], "open file descriptors")):
        ax.plot(minutes, values)
        ax.set_ylabel(label)
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
    axes[0].axvline(WARM_UP_S / 60, color="grey", linestyle=":")
    axes[2].set_xlabel("minutes")
    fig.suptitle("netobs-exporter under steady mixed traffic (bench/soak.py)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--minutes", type=float, default=30)
    p.add_argument("--plot")
    a = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="netobs-soak-"))
    stop = threading.Event()
    dns_port, http_port, web = free_port(), free_port(), free_port()
    (work / "www").mkdir()
    for i in range(20):
        (work / "www" / f"r{i}.html").write_text("x" * 400)
    (work / "nginx.conf").write_text(NGINX_CONF.format(dir=work / "www", port=http_port))
    nginx = subprocess.Popen(["nginx", "-c", str(work / "nginx.conf"), "-p", str(work)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    dns = dnsmasq(dns_port, "127.0.0.1")
    sink = OtlpSink()
    samples: list[tuple[float, float, int, int]] = []
    lost: dict[str, float] = {}
    with redis_server(work) as redis_port, postgres(work / "pg") as pg_port:
        subprocess.run(["pgbench", "-i", "-q", "-h", "127.0.0.1", "-p", str(pg_port), "-U", "postgres", "postgres"],
                       check=True, capture_output=True)
        env = {**os.environ, "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{sink.server_address[1]}",
               "OTEL_METRIC_EXPORT_INTERVAL": "5000"}
        exporter = subprocess.Popen([sys.executable, "-m", "exporter", f"--web.listen-address=127.0.0.1:{web}",
                                     "--config.set", f"Dns.Ports=[53,{dns_port}]",
                                     "--config.set", "Common.DropLocalConnections=false"],
                                    cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        url = f"http://127.0.0.1:{web}/metrics"
        while True:
            try:
                scrape(url)
                break
            except OSError:
                time.sleep(0.5)
        seconds = a.minutes * 60
        pgbench = subprocess.Popen(["pgbench", "-h", "127.0.0.1", "-p", str(pg_port), "-U", "postgres", "-n",
                                    "-R", "10", "-T", str(int(seconds)), "postgres"],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        every(50, stop, churn(sink_server(stop)))
        every(20, stop, lookups(dns_port))
        every(50, stop, http_requests(http_port))
        every(50, stop, redis_commands(redis_port))
        bash_session(stop)
        began = time.monotonic()
        series = 0
        next_sample = began
        try:
            while (now := time.monotonic()) - began < seconds:
                series, lost = scrape(url)
                if now >= next_sample:
                    next_sample += SAMPLE_S
                    rss = status_kb(exporter.pid, "VmRSS") / 1024
                    fds = len(os.listdir(f"/proc/{exporter.pid}/fd"))
                    samples.append((now - began, rss, series, fds))
                    print(f"{(now - began) / 60:5.1f} min: RSS {rss:.1f} MB, {series} series, {fds} fds, "
                          f"lost {lost or 'nothing'}", file=sys.stderr)
                time.sleep(5)
        finally:
            stop.set()
            pgbench.wait()
            exporter.terminate()
            exporter.wait()
            nginx.terminate()
            dns.terminate()
    after = [(t, rss) for t, rss, _, _ in samples if t >= WARM_UP_S]
    print(f"| minutes | RSS after warm-up, first / last | RSS slope after {WARM_UP_S // 60} min | series, most "
          "| open fds, most | OTLP requests (metrics, logs) |")
    print("|---|---|---|---|---|---|")
    print(f"| {a.minutes:g} | {after[0][1]:.1f} / {after[-1][1]:.1f} MB | {slope_mb_per_10min(after):+.2f} MB per "
          f"10 min | {max(s[2] for s in samples)} | {max(s[3] for s in samples)} | "
          f"{sink.counts['/v1/metrics']}, {sink.counts['/v1/logs']} |" if after else "too short to judge")
    print(f"lost events at the end: {lost or 'none'}")
    if a.plot:
        plot(a.plot, samples)


if __name__ == "__main__":
    main()
