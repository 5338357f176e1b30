"""The BPF objects for arm64: they build against the committed bpf/include/arm64/vmlinux.h, that header
is the pinned Debian arm64 kernel's, and every CO-RE relocation of every object resolves against that
kernel's BTF, as libbpf would resolve it when loading on an arm64 node (scripts/arm64_btf.py).

bpftool's `gen min_core_btf` runs libbpf's own relocation logic against a BTF file without loading
anything; with -d it prints each relocation and whether it found a target."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "scripts"))

import arm64_btf  # noqa: E402

EXISTENCE = ("<field_exists>", "<type_exists>", "<type_matches>", "<enumval_exists>")


def relocations(btf: Path, obj: Path, tmp: Path) -> tuple[set[str], set[str]]:
    """(every relocation, those with no target) of `obj` against `btf`, as "<kind> struct t.field"."""
    out = subprocess.run(["bpftool", "-d", "gen", "min_core_btf", str(btf), str(tmp / "min.btf"), str(obj)],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    described: dict[tuple[str, str], str] = {}
    unresolved = set()
    for line in (out.stdout + out.stderr).splitlines():
        m = re.match(r"libbpf: prog '([^']+)': relo #(\d+): (.*)", line)
        if not m:
            continue
        key, rest = (m[1], m[2]), m[3]
        if rest.startswith("<"):  # "<kind> [type id] struct t.field (access @ offset)"
            described.setdefault(key, re.sub(r" \[\d+\]| \(.*", "", rest))
        elif "no matching targets" in rest:
            unresolved.add(described.get(key, f"relo {key}"))
    return set(described.values()), unresolved


def guarded(relocation: str, every: set[str]) -> bool:
    """An existence check never fails a load; and a field of a type flavour (`t___old`) that does not
    exist is one of alternatives, chosen by an existence check on a flavour of the same type."""
    if relocation.startswith(EXISTENCE):
        return True
    flavour = re.search(r"struct (\w+?)___\w+\.", relocation)
    return bool(flavour) and any(r.startswith(EXISTENCE) and f"struct {flavour[1]}___" in r for r in every)


@pytest.fixture(scope="module")
def arm64(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(the arm64 kernel's BTF, a directory with the objects built for arm64)."""
    out = tmp_path_factory.mktemp("arm64-objects")
    subprocess.run(["make", "-s", "bpf", "ARCH=arm64", f"BPF_OUT={out}"], cwd=REPO, check=True)
    return arm64_btf.btf_path(), out


def test_the_committed_arm64_vmlinux_h_is_the_pinned_kernels() -> None:
    assert (REPO / "bpf/include/arm64/vmlinux.h").read_text() == arm64_btf.vmlinux_h(), "run make vmlinux-arm64"


def test_every_relocation_of_every_object_resolves_against_the_arm64_kernel(arm64: tuple[Path, Path],
                                                                             tmp_path: Path) -> None:
    btf, objects = arm64
    built = sorted(objects.glob("*.bpf.o"))
    assert [o.name for o in built] == sorted(p.name.replace(".c", ".o") for p in (REPO / "bpf").glob("*.bpf.c"))
    for obj in built:
        every, unresolved = relocations(btf, obj, tmp_path)
        assert every, f"{obj.name}: bpftool showed no relocation: the check did not run"
        assert sorted(r for r in unresolved if not guarded(r, every)) == [], obj.name


def test_the_check_sees_a_relocation_that_does_not_resolve(arm64: tuple[Path, Path], tmp_path: Path) -> None:
    """The x86 objects read x86 registers (struct pt_regs' si, dx...), which an arm64 kernel has not."""
    btf, _ = arm64
    x86 = tmp_path / "x86"
    subprocess.run(["make", "-s", "bpf", "ARCH=x86", f"BPF_OUT={x86}"], cwd=REPO, check=True)
    every, unresolved = relocations(btf, x86 / "sockets.bpf.o", tmp_path)
    assert "<byte_off> struct pt_regs.si" in {r for r in unresolved if not guarded(r, every)}
