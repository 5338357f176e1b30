"""Every fuzz target (tests/fuzz/run.py) runs for a bounded time: NETOBS_FUZZ_SECONDS, 30 by default,
two targets at a time. Any crash, sanitizer report or uncaught exception fails its test, with the end
of the target's log; the input is kept under the run's directory (printed)."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

from tests.fuzz import run as fuzz
from tests.tools import require

SECONDS = int(os.environ.get("NETOBS_FUZZ_SECONDS", "30"))


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, fuzz.Result]:
    require("clang", "clang")
    if not Path("/usr/lib/llvm-14/lib/clang/14.0.6/lib/linux/libclang_rt.fuzzer-x86_64.a").exists() and \
            not list(Path("/usr/lib").glob("llvm-*/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a")):
        require("libclang_rt.fuzzer", "libclang-rt-14-dev")  # names the package to install
    if importlib.util.find_spec("atheris") is None:
        pytest.fail("atheris is not installed: scripts/setup.sh test installs it (pyproject's test extra)")
    workdir = tmp_path_factory.mktemp("fuzz")
    return {r.target: r for r in fuzz.run(list(fuzz.TARGETS), SECONDS, workdir)}


@pytest.mark.parametrize("target", fuzz.TARGETS)
def test_target_finds_nothing(results: dict[str, fuzz.Result], target: str) -> None:
    result = results[target]
    assert result.ok, "\n".join(result.log.splitlines()[-40:])
