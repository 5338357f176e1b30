"""bench/floor.bpf.c, the two floors bench/churn_floor.py measures the socket programs against, still
builds from the socket object's code, and holds the same programs and maps under the same names, so
that the exporter loads either build as its own."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def sections(obj: Path) -> set[str]:
    """The object's program and map sections."""
    out = subprocess.run(["llvm-objdump", "--section-headers", str(obj)], capture_output=True, text=True,
                         check=True).stdout
    names = {m[1] for m in re.finditer(r"^\s*\d+\s+(\S+)", out, re.M)}
    return {n for n in names if n.startswith(("tp_btf/", "iter/", "cgroup/", "uprobe", "uretprobe", ".maps"))}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real objects and both floors (`make floors`), built in one directory."""
    out = tmp_path_factory.mktemp("objects")
    subprocess.run(["make", "-s", "bpf", "floors", f"BPF_OUT={out}", f"FLOOR_OUT={out}"], cwd=REPO, check=True)
    return out


@pytest.mark.parametrize("floor", ["nothing", "least"])
def test_a_floor_builds_with_the_programs_of_the_real_object(floor: str, built: Path) -> None:
    obj = built / floor / "sockets.bpf.o"
    assert {"tp_btf/sock_send_length", "tp_btf/inet_sock_set_state"} <= sections(obj)
    assert sections(obj) == sections(built / "sockets.bpf.o")
    assert (built / floor / "bash.bpf.o").exists()
