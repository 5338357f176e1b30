"""requirements.lock pins what pyproject.toml's dependencies resolve to, and nothing else.

The image installs exactly the lock (scripts/build-image.sh install, with --require-hashes), so a
dependency added to pyproject.toml but not locked, a version range the pin falls outside, or a pin
no dependency needs any more must fail here, before an image is built. pip-compile writes under each
pin which packages need it ("# via"); those lines say how each pin is reached from pyproject.toml.
pip itself refuses, at install, a dependency of a pinned package that the lock does not pin: the
build test in test_image_build.py runs that install."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[2]
LOCK = REPO / "requirements.lock"
PYPROJECT = "netobs-exporter (pyproject.toml)"
REGENERATE = "scripts/build-image.sh lock"


@dataclass
class Pin:
    line: str
    hashes: list[str] = field(default_factory=list)
    via: list[str] = field(default_factory=list)


def read_lock() -> dict[str, Pin]:
    """Pins by normalised name, in pip-compile's layout: the pin, its hashes, then its "# via" lines."""
    pins: dict[str, Pin] = {}
    pin: Pin | None = None
    in_via = False
    for raw in LOCK.read_text().splitlines():
        line = raw.strip().removesuffix("\\").strip()
        if not raw.startswith((" ", "#")) and line:
            pin = pins.setdefault(canonicalize_name(Requirement(line).name), Pin(line))
            in_via = False
        elif pin is not None and line.startswith("--hash="):
            pin.hashes.append(line.removeprefix("--hash="))
        elif pin is not None and line.startswith("# via"):
            in_via = True
            if one := line.removeprefix("# via").strip():
                pin.via.append(one)
        elif pin is not None and in_via and line.startswith("#   "):
            pin.via.append(line.removeprefix("#").strip())
    return pins


def dependencies() -> dict[str, Requirement]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    return {canonicalize_name(r.name): r for r in map(Requirement, project["dependencies"])}


def test_every_pin_is_one_version_with_hashes() -> None:
    for name, pin in read_lock().items():
        requirement = Requirement(pin.line)
        assert not requirement.marker and not requirement.extras and not requirement.url, pin.line
        assert re.fullmatch(r"==[^,*]+", str(requirement.specifier)), f"{name} is not pinned to one version"
        assert pin.hashes and all(re.fullmatch(r"sha256:[0-9a-f]{64}", h) for h in pin.hashes), name


def test_the_direct_pins_are_pyproject_dependencies() -> None:
    pins = read_lock()
    direct = {name for name, pin in pins.items() if PYPROJECT in pin.via}
    assert direct == set(dependencies()), f"the lock's direct pins are not pyproject.toml's: run {REGENERATE}"
    for name, requirement in dependencies().items():
        version = str(Requirement(pins[name].line).specifier).removeprefix("==")
        assert requirement.specifier.contains(version, prereleases=True), \
            f"{name}=={version} is outside pyproject.toml's {requirement}: run {REGENERATE}"


def test_every_other_pin_is_needed_by_a_pin() -> None:
    pins = read_lock()
    reached = set(dependencies())
    while True:
        more = {name for name, pin in pins.items()
                if name not in reached and any(canonicalize_name(v) in reached for v in pin.via)}
        if not more:
            break
        reached |= more
    assert set(pins) - reached == set(), f"pins that nothing needs: run {REGENERATE}"


def test_the_lock_is_for_the_image_python_and_says_how_to_remake_it() -> None:
    lines = LOCK.read_text().splitlines()
    head = "\n".join(lines[:next(i for i, line in enumerate(lines) if not line.startswith("#"))])
    assert "pip-compile with Python 3.11" in head, "the image runs Debian 12's Python 3.11: lock with it"
    assert REGENERATE in head
