"""Builds and runs the fuzz targets, each for a bounded time, two at a time (one per core):

- the kernel's L7 parsers, one libFuzzer target per protocol (tests/fuzz/l7_fuzz.c, built with clang's
  -fsanitize=fuzzer,address,undefined), seeded from the captured fixtures (tests/unit/fixtures);
- the Python parsers, one atheris target each (tests/fuzz/py_*.py), seeded where seeds make sense.

Inputs that made a target fail before are replayed first (tests/fuzz/regressions/<target>/). A target
fails on a crash, a sanitizer report, an uncaught exception or a timeout; its input is kept in
WORKDIR/crashes and its log's end is printed.

    .venv/bin/python tests/fuzz/run.py [--seconds S] [--workdir DIR] [TARGET ...]

`make fuzz` runs every target for 10 minutes; the tests (tests/fuzz/test_fuzz.py) for 30 seconds.
Exit status 1 if any target failed."""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
FIXTURES = REPO / "tests" / "unit" / "fixtures"
C_TARGETS = ("http", "redis", "pg", "mysql", "memcached")
PY_TARGETS = ("dns", "elf", "cgroups", "config", "records")
TARGETS = C_TARGETS + PY_TARGETS
CFLAGS = ["-g", "-O1", "-fsanitize=fuzzer,address,undefined", "-fno-sanitize-recover=all", f"-I{REPO / 'bpf'}"]
HTTP_SEEDS = (
    b"GET /api/v1/items?id=7 HTTP/1.1\r\nHost: shop.example\r\nUser-Agent: curl/8\r\n\r\n",
    b"POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok",
    b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
)
DNS_SEEDS = (  # a query and an answer for example.com (A), and a DNS-over-TCP framed query
    bytes.fromhex("123401000001000000000000076578616d706c6503636f6d0000010001"),
    bytes.fromhex("123481800001000100000000076578616d706c6503636f6d0000010001c00c000100010000012c00045db8d822"),
    bytes.fromhex("001d123401000001000000000000076578616d706c6503636f6d0000010001"),
)
CGROUP_SEEDS = (
    b"0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod0f6a3c2e_5b1d_4e8f_9a7b_6c5d4e3f2a1b.slice/"
    b"cri-containerd-" + b"ab" * 32 + b".scope\n",
    b"12:memory:/docker/" + b"cd" * 32 + b"\n0::/\n",
)


@dataclass
class Result:
    target: str
    ok: bool
    log: str


def build(workdir: Path) -> None:
    """The libFuzzer binaries, in workdir."""
    for target in C_TARGETS:
        subprocess.run(["clang", *CFLAGS, f"-DFUZZ_{target.upper()}", "-o", str(workdir / f"fuzz_{target}"),
                        str(HERE / "l7_fuzz.c")], check=True, capture_output=True, text=True)


def seed(target: str, corpus: Path) -> None:
    corpus.mkdir(parents=True, exist_ok=True)
    seeds: list[bytes] = []
    if target in ("redis", "pg", "mysql", "memcached"):
        seeds = [b"\0\0" + f.read_bytes() for f in sorted(FIXTURES.glob(f"{target}_*.bin"))]
    elif target == "http":
        seeds = [b"\0\0" + s for s in HTTP_SEEDS]
    elif target == "dns":
        seeds = [b"\0" * 8 + s for s in DNS_SEEDS]
    elif target == "cgroups":
        seeds = list(CGROUP_SEEDS)
    elif target == "config":
        seeds = [(REPO / "exporter" / "default.yaml").read_bytes()]
    for i, data in enumerate(seeds):
        (corpus / f"seed-{i}").write_bytes(data)


def command(target: str, workdir: Path) -> list[str]:
    if target in C_TARGETS:
        return [str(workdir / f"fuzz_{target}")]
    return [sys.executable, str(HERE / f"py_{target}.py")]


def run_one(target: str, seconds: int, workdir: Path) -> Result:
    corpus = workdir / "corpus" / target
    seed(target, corpus)
    crashes = workdir / "crashes"
    crashes.mkdir(exist_ok=True)
    dirs = [str(corpus)]
    regressions = HERE / "regressions" / target
    if regressions.is_dir():
        dirs.append(str(regressions))
    argv = [*command(target, workdir), f"-max_total_time={seconds}", "-timeout=10", "-rss_limit_mb=2048",
            "-max_len=4096", f"-artifact_prefix={crashes}/{target}-", "-print_final_stats=1", *dirs]
    proc = subprocess.run(argv, capture_output=True, text=True, cwd=workdir,
                          env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}, timeout=seconds + 120)
    return Result(target, proc.returncode == 0, proc.stderr + proc.stdout)


def run(targets: list[str], seconds: int, workdir: Path, jobs: int = 2) -> list[Result]:
    if any(t in C_TARGETS for t in targets):
        build(workdir)
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        return list(pool.map(lambda t: run_one(t, seconds, workdir), targets))


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--seconds", type=int, default=600)
    p.add_argument("--workdir", type=Path)
    p.add_argument("targets", nargs="*", default=list(TARGETS))
    a = p.parse_args()
    workdir = a.workdir or Path(tempfile.mkdtemp(prefix="netobs-fuzz-"))
    workdir.mkdir(parents=True, exist_ok=True)
    failed = 0
    for result in run(a.targets, a.seconds, workdir):
        stats = [line for line in result.log.splitlines() if line.startswith(("Done", "stat::number_of_executed"))]
        print(f"{result.target}: {'ok' if result.ok else 'FAILED'} {' '.join(stats[:2])}")
        if not result.ok:
            failed += 1
            print("\n".join(result.log.splitlines()[-40:]))
    print(f"corpus and crashes in {workdir}")
    if shutil.which("clang") is None:
        print("clang is missing: scripts/setup.sh test installs it")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
