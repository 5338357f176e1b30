"""Shared set-up for tests that load real BPF programs into the running kernel (as root)."""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
from collections.abc import Callable

import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
BPF_CFLAGS = [
    "-g", "-O2", "-target", "bpf", "-D__TARGET_ARCH_x86", "-Wall", "-Werror",
    "-I", str(REPO_ROOT / "bpf" / "include"), "-I", str(REPO_ROOT / "bpf" / "include" / "x86"),
]  # fmt: skip


def _why_bpf_is_unusable() -> str | None:
    if os.geteuid() != 0:
        return "kernel tests need root"
    if not pathlib.Path("/sys/kernel/btf/vmlinux").exists():
        return "kernel has no BTF (/sys/kernel/btf/vmlinux)"
    if shutil.which("clang") is None:
        return "clang is not installed"
    return None


def require_bpf() -> None:
    """Skip the test when eBPF cannot be used here; fail instead in CI, where it must work."""
    reason = _why_bpf_is_unusable()
    if reason is None:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"eBPF unusable in CI: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def bpf_ready() -> None:
    require_bpf()


@pytest.fixture(scope="session")
def compile_bpf(
    bpf_ready: None, tmp_path_factory: pytest.TempPathFactory
) -> Callable[[pathlib.Path], pathlib.Path]:
    """Compiles a .bpf.c against the committed vmlinux.h and returns the object's path."""
    out_dir = tmp_path_factory.mktemp("bpf-objects")

    def compile_source(source: pathlib.Path) -> pathlib.Path:
        output = out_dir / source.with_suffix(".o").name
        command = ["clang", *BPF_CFLAGS, "-c", str(source), "-o", str(output)]
        completed = subprocess.run(command, capture_output=True, text=True, check=False)
        if completed.returncode != 0:
            pytest.fail(f"clang failed on {source.name}:\n{completed.stderr}")
        return output

    return compile_source
