"""Builds a kernel parser for the host (tests/unit/l7_host.c, tests/unit/h2_host.c) as a library for ctypes."""

from __future__ import annotations

import ctypes
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CFLAGS = ["-Ibpf", "-Wall", "-Werror", "-O2", "-shared", "-fPIC"]


def build_host_library(source: Path, directory: Path, what: str) -> ctypes.CDLL:
    """`source` built with clang into `directory`; `what` names the header it builds, for the failure."""
    if shutil.which("clang") is None:
        pytest.fail(f"clang is not installed: it builds {what} for the host (tests/unit/{source.name})")
    library = directory / source.with_suffix(".so").name
    command = ["clang", *CFLAGS, "-o", str(library), str(source)]
    completed = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        pytest.fail(f"clang failed on {source.name}:\n{' '.join(command)}\n{completed.stderr}")
    return ctypes.CDLL(str(library))
