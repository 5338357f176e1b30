"""The Dockerfile without Docker: hadolint, then its build steps run on this machine.

The builder stage gets exactly the files its COPY lines name (so a missing COPY fails here), runs
scripts/build-image.sh build, and the runtime stage's step installs the locked dependencies and the
wheel into a venv, which must hold the BPF objects and start. The labels are read from the
Dockerfile, and `build-image.sh image` runs against a stand-in for docker that prints its arguments."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from datetime import UTC, datetime
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "Dockerfile"
SCRIPT = REPO / "scripts" / "build-image.sh"
HADOLINT = Path(sys.executable).with_name("hadolint")
PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]


def stage_instructions(stage: str) -> list[tuple[str, str]]:
    """(instruction, arguments) of one stage, continuation lines joined, comments dropped."""
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    current, out = "", []
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        instruction, _, args = line.strip().partition(" ")
        if instruction == "FROM":
            words = [w for w in args.split() if not w.startswith("--")]
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
    install = "build-image.sh install /opt/netobs /usr/local/lib/netobs/requirements.lock /tmp/dist/"
    assert any(install in " ".join(a.split()) for i, a in final if i == "RUN")
    assert ("COPY", "scripts/build-image.sh requirements.lock /usr/local/lib/netobs/") in final
    assert ("ENTRYPOINT", '["netobs-exporter"]') in final


def test_the_builder_builds_for_targetarch() -> None:
    """Docker sets TARGETARCH only in a stage that declares it, and the build step must see it."""
    build = stage_instructions("build")
    declared = build.index(("ARG", "TARGETARCH"))
    assert build.index(("RUN", "scripts/build-image.sh build /dist")) > declared


def labels() -> dict[str, str]:
    final = stage_instructions("debian:12-slim")
    pairs = [word.partition("=") for i, a in final if i == "LABEL" for word in shlex.split(a)]
    return {key: value for key, _, value in pairs}


def test_the_labels_say_what_pyproject_says() -> None:
    oci = {key.removeprefix("org.opencontainers.image."): value for key, value in labels().items()}
    assert set(oci) == {"title", "description", "source", "licenses", "version", "revision", "created"}
    assert (oci["title"], oci["description"]) == (PROJECT["name"], PROJECT["description"])
    assert oci["licenses"] == PROJECT["license"] == "Apache-2.0"
    assert (REPO / "LICENSE").read_text().split()[:4] == ["Apache", "License", "Version", "2.0,"]
    args = {name for i, a in stage_instructions("debian:12-slim") if i == "ARG" for name in a.split()}
    for key in ("source", "version", "revision", "created"):
        assert oci[key] == "${" + key.upper() + "}" and key.upper() in args


def run_image(tmp_path: Path, *flags: str, origin: str | None = None) -> dict[str, str]:
    """`build-image.sh image` with a docker that prints its arguments: the build arguments it got."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    docker = bin_dir / "docker"
    docker.write_text('#!/bin/sh\nprintf "%s\\n" "$@"\n')
    docker.chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    if origin is not None:
        env |= {"GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "remote.origin.url", "GIT_CONFIG_VALUE_0": origin}
    done = subprocess.run([str(SCRIPT), "image", *flags], capture_output=True, text=True, env=env, check=True)
    argv = done.stdout.splitlines()
    assert argv[0] == "build" and argv[-1] == "." and argv[-1 - len(flags):-1] == list(flags)
    values = [argv[i + 1] for i, word in enumerate(argv) if word == "--build-arg"]
    return dict(value.split("=", 1) for value in values)


def git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=True).stdout.strip()


def test_the_image_command_passes_version_commit_and_date(tmp_path: Path) -> None:
    build_args = run_image(tmp_path, "-t", "netobs-exporter:test", "--platform", "linux/amd64")
    init = (REPO / "exporter" / "__init__.py").read_text()
    assert build_args["VERSION"] == re.findall(r'^__version__ = "(.+)"$', init, re.M)[0]
    assert build_args["REVISION"] == git("rev-parse", "HEAD")
    epoch = int(git("log", "-1", "--format=%ct"))
    assert build_args["SOURCE_DATE_EPOCH"] == str(epoch)
    assert build_args["CREATED"] == datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    declared = {name for i, a in stage_instructions("debian:12-slim") if i == "ARG" for name in a.split()}
    assert set(build_args) - {"SOURCE_DATE_EPOCH"} == declared


@pytest.mark.parametrize(("origin", "source"), [
    ("https://github.com/example/netobs-exporter.git", "https://github.com/example/netobs-exporter"),
    ("https://user:token@github.com/example/netobs-exporter", "https://github.com/example/netobs-exporter"),
    ("git@github.com:example/netobs-exporter.git", "https://github.com/example/netobs-exporter"),
    ("ssh://git@gitlab.example.com/team/netobs-exporter/", "https://gitlab.example.com/team/netobs-exporter"),
    ("/srv/git/netobs-exporter", ""),
    ("https://git.example.com:8443/netobs-exporter", ""),
])
def test_the_source_label_is_origin_without_credentials(tmp_path: Path, origin: str, source: str) -> None:
    assert run_image(tmp_path, origin=origin)["SOURCE"] == source


@pytest.mark.parametrize(("targetarch", "message"), [
    ("arm64", "build-image: bpf/include/arm64/vmlinux.h does not exist yet: "
              "the BPF objects cannot be built for arm64"),
    ("s390x", "build-image: no BPF build for architecture s390x: amd64 or arm64"),
])
def test_an_architecture_without_vmlinux_h_fails_before_compiling(tmp_path: Path, targetarch: str,
                                                                  message: str) -> None:
    src = tmp_path / "src"
    src.mkdir()
    copy_like_the_builder(src)
    # Whether or not the arm64 header is committed yet, a tree without it must fail in one line.
    shutil.rmtree(src / "bpf" / "include" / "arm64", ignore_errors=True)
    env = {**os.environ, "TARGETARCH": targetarch}
    done = subprocess.run(["scripts/build-image.sh", "build", str(tmp_path / "dist")], cwd=src, env=env,
                          capture_output=True, text=True)
    assert (done.returncode, done.stderr, done.stdout) == (1, message + "\n", "")
    assert not list(src.glob("exporter/bpf/objects/*.o")) and not (tmp_path / "dist").exists()


def test_the_install_refuses_a_download_that_does_not_match_the_lock(tmp_path: Path) -> None:
    lock = tmp_path / "requirements.lock"
    lock.write_text("idna==3.10 \\\n    --hash=sha256:" + "0" * 64 + "\n")
    done = subprocess.run([str(SCRIPT), "install", str(tmp_path / "opt"), str(lock), str(tmp_path / "none.whl")],
                          capture_output=True, text=True)
    assert done.returncode != 0 and "DO NOT MATCH THE HASHES" in done.stderr


def test_the_build_steps_make_a_working_install(tmp_path: Path) -> None:
    if shutil.which("clang") is None:
        pytest.fail("clang is missing: run make setup-test")
    src, dist, prefix = tmp_path / "src", tmp_path / "dist", tmp_path / "opt"
    src.mkdir()
    copy_like_the_builder(src)
    # As docker build on an amd64 machine or for --platform linux/amd64.
    env = {**os.environ, "TARGETARCH": "amd64"}
    built = subprocess.run(["scripts/build-image.sh", "build", str(dist)], cwd=src, env=env,
                           capture_output=True, text=True)
    assert built.returncode == 0, built.stderr
    wheel, = dist.glob("netobs_exporter-*-py3-none-any.whl")

    lock = REPO / "requirements.lock"
    installed = subprocess.run([str(SCRIPT), "install", str(prefix), str(lock), str(wheel)],
                               capture_output=True, text=True)
    assert installed.returncode == 0, installed.stderr
    assert installed.stdout.startswith("netobs-exporter ")

    listing = "from exporter.bpf.object import objects_dir; print(*sorted(p.name for p in objects_dir().glob('*.o')))"
    objects = subprocess.run([str(prefix / "bin" / "python"), "-c", listing], capture_output=True, text=True,
                             cwd=tmp_path, check=True).stdout.split()
    assert objects == sorted(p.name.replace(".c", ".o") for p in (REPO / "bpf").glob("*.bpf.c"))
    usage = subprocess.run([str(prefix / "bin" / "netobs-exporter"), "--help"], capture_output=True, text=True)
    assert usage.returncode == 0 and "--web.listen-address" in usage.stdout
    licenses = list(prefix.glob("lib/python3*/site-packages/netobs_exporter-*.dist-info/licenses/LICENSE"))
    assert [p.read_bytes() for p in licenses] == [(REPO / "LICENSE").read_bytes()]
