"""The Dockerfile without Docker: hadolint, then its build steps run on this machine.

The builder stage gets exactly the files its COPY lines name (so a missing COPY fails here), runs
scripts/build-image.sh build, and the runtime stage's step installs the wheel into a venv, which
must hold the BPF objects and start."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "Dockerfile"
HADOLINT = Path(sys.executable).with_name("hadolint")


def stage_instructions(stage: str) -> list[tuple[str, str]]:
    """(instruction, arguments) of one stage, continuation lines joined, comments dropped."""
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    current, out = "", []
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        instruction, _, args = line.strip().partition(" ")
        if instruction == "FROM":
            words = args.split()
            current = words[2] if len(words) == 3 and words[1].upper() == "AS" else words[0]
        elif current == stage:
            out.append((instruction, args.strip()))
    return out


def copy_like_the_builder(workdir: Path) -> None:
    """Docker's COPY: a directory's contents go into the destination; a file goes into a
    destination ending with / under its own name."""
    for instruction, args in stage_instructions("build"):
        if instruction != "COPY":
            continue
        *sources, dest = shlex.split(args)
        for source in sources:
            path = REPO / source
            if path.is_dir():
                ignore = shutil.ignore_patterns("__pycache__", "*.o")
                shutil.copytree(path, workdir / dest, dirs_exist_ok=True, ignore=ignore)
            else:
                target = workdir / dest / path.name if dest.endswith("/") else workdir / dest
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, target)


def test_hadolint_is_clean() -> None:
    done = subprocess.run([str(HADOLINT), "--no-color", str(DOCKERFILE)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_both_stages_run_the_build_script() -> None:
    runs = [args for instruction, args in stage_instructions("build") if instruction == "RUN"]
    assert any("scripts/build-image.sh build /dist" in r for r in runs)
    final = stage_instructions("debian:12-slim")
    assert any("build-image.sh install /opt/netobs" in a for i, a in final if i == "RUN")
    assert ("ENTRYPOINT", '["netobs-exporter"]') in final


def test_the_build_steps_make_a_working_install(tmp_path: Path) -> None:
    if shutil.which("clang") is None:
        pytest.fail("clang is missing: run make setup-test")
    src, dist, prefix = tmp_path / "src", tmp_path / "dist", tmp_path / "opt"
    src.mkdir()
    copy_like_the_builder(src)
    built = subprocess.run(["scripts/build-image.sh", "build", str(dist)], cwd=src, capture_output=True, text=True)
    assert built.returncode == 0, built.stderr
    wheel, = dist.glob("netobs_exporter-*.whl")

    script = REPO / "scripts" / "build-image.sh"
    installed = subprocess.run([str(script), "install", str(prefix), str(wheel)], capture_output=True, text=True)
    assert installed.returncode == 0, installed.stderr
    assert installed.stdout.startswith("netobs-exporter ")

    listing = "from exporter.bpf.object import objects_dir; print(*sorted(p.name for p in objects_dir().glob('*.o')))"
    objects = subprocess.run([str(prefix / "bin" / "python"), "-c", listing], capture_output=True, text=True,
                             cwd=tmp_path, check=True).stdout.split()
    assert objects == sorted(p.name.replace(".c", ".o") for p in (REPO / "bpf").glob("*.bpf.c"))
    usage = subprocess.run([str(prefix / "bin" / "netobs-exporter"), "--help"], capture_output=True, text=True)
    assert usage.returncode == 0 and "--web.listen-address" in usage.stdout
