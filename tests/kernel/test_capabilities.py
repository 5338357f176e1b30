"""The capabilities the chart gives the exporter are enough, and each one is needed: the real
exporter, as root but with only those capabilities (setpriv's bounding set, as a container with
`drop: [ALL]` and `add: [...]`), attaches every program with --check-config."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from tests.kernel.harness import REPO_ROOT
from tests.ship.test_chart import container, render

pytestmark = pytest.mark.usefixtures("bpf_ready")


def chart_capabilities(values: str) -> list[str]:
    return list(container(render(values))["securityContext"]["capabilities"]["add"])


def check_config(capabilities: list[str], *settings: str) -> subprocess.CompletedProcess[str]:
    if shutil.which("setpriv") is None:
        pytest.fail("setpriv (util-linux) is missing")
    bounding = "-all" + "".join(f",+{c.lower()}" for c in capabilities)
    argv = ["setpriv", f"--bounding-set={bounding}", "--inh-caps=-all", "--",
            sys.executable, "-m", "exporter", "--check-config"]
    for setting in settings:
        argv += ["--config.set", setting]
    return subprocess.run(argv, cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)


def test_the_default_capabilities_attach_everything() -> None:
    caps = chart_capabilities("defaults")
    done = check_config(caps)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "bash_readline" in done.stdout


NO_UPROBES = ("Bash.Enabled=false", "L7.Tls.Enabled=false")


def test_uprobes_need_sys_admin() -> None:
    """The bash audit's and TLS's: a uprobe perf event."""
    caps = chart_capabilities("otlp-filters")  # Bash.Enabled and L7.Tls.Enabled: false
    assert "SYS_ADMIN" not in caps
    done = check_config(caps, *NO_UPROBES)
    assert done.returncode == 0, done.stdout + done.stderr
    without = check_config(caps)  # both on, without CAP_SYS_ADMIN: their uprobes fail
    assert without.returncode == 1 and "bash_readline" in without.stdout and "tls:" in without.stdout


@pytest.mark.parametrize("needed", ["BPF", "PERFMON", "NET_ADMIN"])
def test_bpf_perfmon_and_net_admin_are_each_needed(needed: str) -> None:
    """Without the uprobes' CAP_SYS_ADMIN, which would stand in for each."""
    caps = [c for c in chart_capabilities("otlp-filters") if c != needed]
    assert check_config(caps, *NO_UPROBES).returncode != 0
