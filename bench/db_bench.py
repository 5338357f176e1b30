"""What database monitoring costs: redis-benchmark against redis-server and pgbench against
PostgreSQL on loopback, with the exporter off and on, alternating.

Each round runs the client once without the exporter and once with it (the default configuration
with Common.DropLocalConnections=false, scraped every second as Prometheus would). The client's own
throughput is compared, and the operations it reports are compared with what the exporter counted
for it: every operation must be counted. redis-benchmark makes --redis-requests times its pipeline
depth of each command, so that a pipelined run lasts about as long as an unpipelined one. Each run
also gives the whole machine's CPU time per operation (/proc/stat, steal excluded), steadier than
the rate on a shared virtual machine (bench/paired.py).

    .venv/bin/python bench/db_bench.py [--rounds N] [--only-l7] [--redis-requests N] [--pg-seconds S]

Needs root, redis-server, redis-benchmark, PostgreSQL 15, pgbench. Prints a table; exit status 0
whatever the figures (a benchmark, not a test)."""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from paired import BusyCpu, ratio_summary  # noqa: E402
from scraped import ScrapedExporter  # noqa: E402

from tests.kernel.servers import postgres, redis_server  # noqa: E402

PG_SCRIPT = """\\set aid random(1, 10000)
SELECT v FROM t WHERE id = :aid;
UPDATE t SET v = v + 1 WHERE id = :aid;
"""


def counted(url: str, comm: str, ops: tuple[str, ...] = ()) -> float:
    """Operations the exporter counted for the client `comm` (those named in ops)."""
    with urllib.request.urlopen(url, timeout=10) as r:
        text = r.read().decode()
    return sum(s.value for f in text_string_to_metric_families(text) for s in f.samples
               if s.name == "db_client_operation_duration_seconds_count"
               and s.labels.get("process_executable_name") == comm and s.labels.get("db_operation_name") in ops)


def redis_run(port: int, n: int, pipeline: int) -> tuple[float, int]:
    """Operations per second (SET and GET together) and operations made."""
    out = subprocess.run(["redis-benchmark", "-h", "127.0.0.1", "-p", str(port), "-n", str(n), "-c", "8",
                          "-t", "set,get", "-P", str(pipeline), "--csv"], capture_output=True, text=True,
                         check=True).stdout
    rates = [float(m) for m in re.findall(r'^"(?:SET|GET)","([\d.]+)"', out, re.M)]
    assert len(rates) == 2, out
    return 2 / sum(1 / r for r in rates), 2 * n


def pg_run(port: int, seconds: float, script: Path) -> tuple[float, int]:
    out = subprocess.run(["pgbench", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "-n", "-M", "prepared",
                          "-c", "4", "-T", f"{seconds:g}", "-f", str(script), "postgres"],
                         capture_output=True, text=True, check=True).stdout
    tps = float(re.search(r"tps = ([\d.]+)", out).group(1))  # type: ignore[union-attr]
    done = int(re.search(r"number of transactions actually processed: (\d+)", out).group(1))  # type: ignore[union-attr]
    return tps * 2, done * 2


def compare(name: str, rounds: int, only_l7: bool, run: Callable[[], tuple[float, int]], comm: str,
            ops: tuple[str, ...]) -> None:
    off: list[float] = []
    on: list[float] = []
    us_off: list[float] = []  # the whole machine's CPU time per operation
    us_on: list[float] = []
    lost = 0
    meter = BusyCpu()
    settings = ["Common.DropLocalConnections=false"]
    if only_l7:
        settings += ["Netflow.Enabled=false", "Dns.Enabled=false", "Bash.Enabled=false"]

    def measured(rates: list[float], us: list[float]) -> int:
        meter.start()
        rate, made = run()
        us.append(meter.stop() / max(made, 1) * 1e6)
        rates.append(rate)
        return made

    for r in range(rounds):
        measured(off, us_off)
        with ScrapedExporter(settings) as exp:
            before = counted(exp.url, comm, ops)
            made = measured(on, us_on)
            time.sleep(2.5)
            lost += made - int(counted(exp.url, comm, ops) - before)
        print(f"{name} round {r}: off {off[-1]:.0f}/s {us_off[-1]:.2f} us/op, on {on[-1]:.0f}/s {us_on[-1]:.2f} us/op",
              file=sys.stderr)
    measured(off, us_off)  # every ON run between two OFF runs (bench/paired.py)
    a, b = statistics.median(off), statistics.median(on)
    print(f"| {name} | {a:.0f} | {b:.0f} | {ratio_summary(off, on)} | {lost} |")
    print(f"| CPU time per operation, whole machine (us) | {statistics.median(us_off):.2f} | "
          f"{statistics.median(us_on):.2f} | {ratio_summary(us_off, us_on, cost=True)} | |")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--rounds", type=int, default=9)
    p.add_argument("--only-l7", action="store_true")
    p.add_argument("--redis-requests", type=int, default=100_000, help="per command, times the pipeline depth")
    p.add_argument("--pg-seconds", type=float, default=5.0)
    a = p.parse_args()
    what = "L7 only" if a.only_l7 else "default collectors"
    print(f"| operations/s ({what}) | off | on | ratio: median of rounds (95 % CI; lowest-highest) | not counted |")
    print("| --- | --- | --- | --- | --- |")
    tmp = Path(tempfile.mkdtemp(prefix="db-bench-"))
    with redis_server(tmp) as port:
        for pipeline in (1, 16):
            compare(f"redis-benchmark -c 8 -P {pipeline} set,get", a.rounds, a.only_l7,
                    lambda pipeline=pipeline: redis_run(port, a.redis_requests * pipeline, pipeline), "redis-benchmark",
                    ("SET", "GET"))
    with postgres(tmp) as port:
        subprocess.run(["psql", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "-X", "-q", "-c",
                        "CREATE TABLE t (id int PRIMARY KEY, v int);"
                        "INSERT INTO t SELECT g, 0 FROM generate_series(1, 10000) g;"], check=True)
        script = tmp / "pg.sql"
        script.write_text(PG_SCRIPT)
        compare("pgbench -M prepared -c 4 (SELECT + UPDATE)", a.rounds, a.only_l7,
                lambda: pg_run(port, a.pg_seconds, script), "pgbench", ("SELECT", "UPDATE"))


if __name__ == "__main__":
    main()
