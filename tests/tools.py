"""Programs the tests need from the machine: found, or the test skips (fails in CI, where
scripts/setup.sh test installs them)."""

from __future__ import annotations

import os
import shutil

import pytest


def require(program: str, package: str) -> str:
    path = shutil.which(program)
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{program} missing in CI (scripts/setup.sh test installs Debian's {package})")
        pytest.skip(f"{program} is not installed (scripts/setup.sh test installs Debian's {package})")
    return path
