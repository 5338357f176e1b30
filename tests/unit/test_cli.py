"""The command line: one-line errors with exit status 2, --version, and what main() hands to the app."""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import types
from collections.abc import Iterator
from pathlib import Path

import pytest

import exporter
from exporter.cli import main
from exporter.config import Config

REPO = Path(__file__).resolve().parents[2]


def run_exporter(*args: str, **extra_env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("NETOBS_")}
    environ.update(PYTHONPATH=str(REPO), **extra_env)
    return subprocess.run(
        [sys.executable, "-m", "exporter", *args],
        cwd=REPO,
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def assert_one_line_error(result: subprocess.CompletedProcess[str], start: str = "config:") -> str:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(start)
    assert result.stdout == ""
    return lines[0]


BAD_FILES = {
    "bad_number": ("Common:\n  FlushOutL4Interval: abc\n", "Common.FlushOutL4Interval"),
    "unknown_key": ("Common:\n  Bogus: 1\n", "Common.Bogus"),
    "bad_regex": ("Common:\n  IncludeCmdRegex: 'abc('\n", "Common.IncludeCmdRegex"),
    "out_of_range": ("Common:\n  Sampling: 150\n", "Common.Sampling"),
    "not_yaml": ("Common:\n  Sampling: [1\n", "not valid YAML"),
    "bad_tags": ("Common:\n  Tags: [a]\n", "Common.Tags"),
    "bad_protocol": ("Common:\n  IncludeProtocols: [FTP]\n", "Common.IncludeProtocols"),
    "not_a_map": ("just text\n", "expected a map of sections"),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_config_file_is_one_line(tmp_path: Path, case: str) -> None:
    text, expected = BAD_FILES[case]
    path = tmp_path / "netobs.yaml"
    path.write_text(text, encoding="utf-8")
    line = assert_one_line_error(run_exporter("--config.file", str(path)))
    assert expected in line


def test_missing_config_file_from_environment(tmp_path: Path) -> None:
    missing = tmp_path / "missing.yaml"
    line = assert_one_line_error(run_exporter(NETOBS_CONFIG_FILE=str(missing)))
    assert line == f"config: {missing}: cannot read: No such file or directory"


def test_bad_environment_variable() -> None:
    line = assert_one_line_error(run_exporter(NETOBS_COMMON_SAMPLING="150"))
    assert "Common.Sampling (from NETOBS_COMMON_SAMPLING)" in line


def test_bad_config_set() -> None:
    line = assert_one_line_error(run_exporter("--config.set", "EBPF.Pid=abc"))
    assert line.startswith("config: EBPF.Pid (from --config.set):")


def test_version() -> None:
    result = run_exporter("--version")
    assert result.returncode == 0
    assert result.stdout == f"netobs-exporter {exporter.__version__}\n"


@pytest.mark.parametrize("address", ["10039", ":99999", "::1:80"])
def test_bad_listen_address(address: str) -> None:
    line = assert_one_line_error(run_exporter("--web.listen-address", address))
    assert line.startswith("config: --web.listen-address:")


def test_bad_telemetry_path() -> None:
    line = assert_one_line_error(run_exporter("--web.telemetry-path", "metrics"))
    assert line.startswith("config: --web.telemetry-path:")


def test_a_taken_listen_address_is_one_line_before_anything_starts() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        address = f"127.0.0.1:{taken.getsockname()[1]}"
        result = run_exporter("--web.listen-address", address)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert "level=error" in lines[0] and f'msg="cannot listen on {address}: Address already in use"' in lines[0]


def test_unknown_flag_is_one_line() -> None:
    line = assert_one_line_error(run_exporter("--no-such-flag"), start="netobs-exporter:")
    assert "--no-such-flag" in line


class FakeApp:
    """Stands in for exporter.app, which main() imports only when it gets that far."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Config]] = []
        self.module = types.ModuleType("exporter.app")
        self.module.run = lambda config: self._record("run", config, 0)  # type: ignore[attr-defined]
        self.module.check_config = lambda config: self._record("check_config", config, 1)  # type: ignore[attr-defined]

    def _record(self, name: str, config: Config, status: int) -> int:
        self.calls.append((name, config))
        return status


@pytest.fixture
def app(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeApp]:
    fake = FakeApp()
    monkeypatch.setitem(sys.modules, "exporter.app", fake.module)
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield fake
    root.handlers[:] = handlers  # main() set up logging; leave the next test as it found it
    root.setLevel(level)


def test_main_runs_with_the_loaded_config(app: FakeApp, tmp_path: Path) -> None:
    path = tmp_path / "netobs.yaml"
    path.write_text("Common:\n  FlushOutL4Interval: 5\n", encoding="utf-8")
    argv = [
        "--config.file",
        str(path),
        "--config.set",
        "Telemetry.Records=stdout",
        "--web.listen-address",
        "127.0.0.1:9999",
        "--web.telemetry-path",
        "/m",
        "--log.format",
        "json",
    ]
    assert main(argv, environ={"NETOBS_COMMON_SAMPLING": "50"}) == 0
    [(name, config)] = app.calls
    assert name == "run"
    assert config.common.flush_out_l4_interval == 5.0
    assert config.common.sampling == 50.0
    assert config.telemetry.records == "stdout"
    assert (config.web.host, config.web.port, config.web.telemetry_path) == ("127.0.0.1", 9999, "/m")


def test_main_check_config_returns_its_status(app: FakeApp) -> None:
    assert main(["--check-config"], environ={}) == 1
    assert [name for name, _ in app.calls] == ["check_config"]


def test_config_file_flag_beats_environment(app: FakeApp, tmp_path: Path) -> None:
    path = tmp_path / "netobs.yaml"
    path.write_text("Netflow:\n  MaxFlows: 10\n", encoding="utf-8")
    environ = {"NETOBS_CONFIG_FILE": str(tmp_path / "missing.yaml")}
    assert main(["--config.file", str(path)], environ=environ) == 0
    assert app.calls[0][1].netflow.max_flows == 10


def test_main_config_error_never_reaches_the_app(app: FakeApp, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--config.set", "Common.Sampling=abc"], environ={}) == 2
    assert app.calls == []
    err = capsys.readouterr().err
    assert err == (
        "config: Common.Sampling (from --config.set): expected a number from 0 to 100, got 'abc'\n"
    )


def test_logfmt_lines(app: FakeApp, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--log.level", "debug"], environ={}) == 0
    err = capsys.readouterr().err
    assert err.startswith("ts=")
    assert ' level=debug logger=exporter.cli msg="configuration loaded" file=' in err
