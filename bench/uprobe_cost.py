"""What one uprobe hit costs on this machine: the floor under TLS tracing (docs/tls.md).

A uprobe replaces an instruction with a breakpoint. After the handler, the kernel either emulates
the instruction it replaced (x86: push, jmp, call, jcc, nop) or copies it out of line and runs it
in single-step mode, which traps a second time. On a virtual machine that intercepts the
single-step trap, that second trap dominates. OpenSSL's SSL_read and SSL_write begin with
`sub $n,%rsp`, which is single-stepped.

This measures it without BPF: a C loop calling a function, timed bare, then with a tracefs uprobe
(p:) or return probe (r:) on it, for a function whose first instruction is emulated (`push %rbp`)
and one whose first instruction is not (`sub $n,%rsp`), and with the host's SSL_read itself (on a
session with no connection: it returns at once).

    .venv/bin/python bench/uprobe_cost.py [--calls N] [--rounds R]

Needs root, x86-64, clang, tracefs and libssl-dev. Prints ns per call, median and range of the rounds."""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import tempfile
from pathlib import Path

from exporter.collectors.elf import symbol_file_offsets

TRACEFS = Path("/sys/kernel/tracing")
LIBSSL = "/usr/lib/x86_64-linux-gnu/libssl.so.3"
PROGRAM = r"""
#include <openssl/ssl.h>
#include <openssl/err.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
/* the same work after a first instruction the kernel emulates, or one it single-steps */
__attribute__((naked, noinline)) long pushes(long a, long b)
{
	__asm__("push %rbp\n mov %rsp, %rbp\n lea 1(%rdi, %rsi), %rax\n pop %rbp\n ret");
}
__attribute__((naked, noinline)) long subtracts(long a, long b)
{
	__asm__("sub $0x18, %rsp\n lea 1(%rdi, %rsi), %rax\n add $0x18, %rsp\n ret");
}
int main(int argc, char **argv)
{
	long n = atol(argv[1]), s = 0;
	int which = atoi(argv[2]);
	char buf[16];
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	SSL *ssl = SSL_new(ctx);
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (long i = 0; i < n; i++) {
		if (which == 0) s += pushes(i, s);
		else if (which == 1) s += subtracts(i, s);
		else { s += SSL_read(ssl, buf, sizeof(buf)); ERR_clear_error(); }
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	printf("%.1f\n", ((t1.tv_sec - t0.tv_sec) * 1e9 + (t1.tv_nsec - t0.tv_nsec)) / n + (s & 0));
	return 0;
}
"""


def build(directory: Path) -> Path:
    source, binary = directory / "loop.c", directory / "loop"
    source.write_text(PROGRAM)
    subprocess.run(["clang", "-O2", "-o", str(binary), str(source), "-lssl", "-lcrypto"], check=True)
    return binary


def first_instruction(binary: Path, function: str) -> str:
    out = subprocess.run(["objdump", "-d", f"--disassemble={function}", str(binary)], capture_output=True,
                         text=True, check=True).stdout
    match = re.search(rf"<{function}(?:@@[^>]*)?>:\n\s*[0-9a-f]+:\s+(?:[0-9a-f]{{2}} )+\s*(.+)", out)
    return match.group(1).strip() if match else "?"


def probe(definition: str | None) -> None:
    """Defines and enables the probe, or disables and removes it (others' probes are left alone)."""
    enable = TRACEFS / "events/netobs_bench/probe/enable"
    if definition is None:
        enable.write_text("0")
    fd = os.open(TRACEFS / "uprobe_events", os.O_WRONLY | os.O_APPEND)  # open(..., "a") seeks: tracefs refuses
    try:
        os.write(fd, f"{definition}\n".encode() if definition else b"-:netobs_bench/probe\n")
    finally:
        os.close(fd)
    if definition is not None:
        enable.write_text("1")


def per_call(binary: Path, which: int, calls: int) -> float:
    out = subprocess.run([str(binary), str(calls), str(which)], capture_output=True, text=True, check=True).stdout
    return float(out)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--calls", type=int, default=100_000)
    p.add_argument("--rounds", type=int, default=5)
    a = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        binary = build(Path(tmp))
        offsets = symbol_file_offsets(binary.read_bytes(), ["pushes", "subtracts"])
        offsets |= {"SSL_read": symbol_file_offsets(Path(LIBSSL).read_bytes(), ["SSL_read"])["SSL_read"]}
        targets = [(0, "pushes", str(binary)), (1, "subtracts", str(binary)), (2, "SSL_read", LIBSSL)]
        print("| function (first instruction) | bare | uprobe | return probe |")
        print("| --- | ---: | ---: | ---: |")
        for which, function, path in targets:
            shown = first_instruction(Path(path), function)
            cells = []
            for kind in ("", "p", "r"):
                rounds = []
                for _ in range(a.rounds):
                    if kind:
                        probe(f"{kind}:netobs_bench/probe {path}:{offsets[function]:#x}")
                    try:
                        rounds.append(per_call(binary, which, a.calls))
                    finally:
                        if kind:
                            probe(None)
                cells.append(f"{statistics.median(rounds):,.0f} ns ({min(rounds):,.0f}-{max(rounds):,.0f})")
            print(f"| `{function}` (`{shown}`) | {' | '.join(cells)} |")


if __name__ == "__main__":
    main()
