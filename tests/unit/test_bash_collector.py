"""BashCollector without a kernel: which binaries it attaches to, and what an event becomes."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from exporter.bpf import AttachResult
from exporter.collectors import bash as bash_module
from exporter.collectors.bash import PROGRAM, BashCollector
from exporter.collectors.bash_binaries import Binary, file_key
from exporter.collectors.bash_maps import BashEvent
from exporter.config import load_config
from exporter.enrich.stage import Enrichment
from exporter.enrich.users import User

BASH = Path("/usr/bin/bash")
pytestmark = pytest.mark.skipif(not BASH.exists(), reason="needs /usr/bin/bash")


class FakeObject:
    def __init__(self, attach_ok: bool = True) -> None:
        self.calls: list[tuple[str, str, int, bool]] = []
        self.attach_ok = attach_ok

    def attach_uprobe(self, program: str, binary: str, offset: int, *, retprobe: bool) -> AttachResult:
        self.calls.append((program, binary, offset, retprobe))
        return AttachResult(program, "uretprobe", self.attach_ok, None if self.attach_ok else "Permission denied")


class FakeUsers:
    def lookup(self, pid: int, kernel_uid: int) -> User:
        return User(kernel_uid, {0: "root"}.get(kernel_uid))

    def remember(self, pid: int) -> None:
        pass


class FakeLogs:
    host_name = "node-1"

    def __init__(self) -> None:
        self.emitted: list[tuple[Any, ...]] = []

    def emit(self, *args: Any) -> None:
        self.emitted.append(args)


def collector(*overrides: str, obj: FakeObject | None = None) -> BashCollector:
    c = BashCollector(load_config(None, {}, overrides), users=FakeUsers())  # type: ignore[arg-type]
    c.obj = obj or FakeObject()  # type: ignore[assignment]
    return c


def binary(path: Path) -> Binary:
    return Binary(file_key(path), str(path), str(path))


def test_a_binary_is_attached_once_at_the_offset_of_readline() -> None:
    c = collector()
    c._attach(binary(BASH), now=0)
    c._attach(binary(BASH), now=1000)
    assert c.obj.calls == [(PROGRAM, str(BASH), bash_module.readline_offset(str(BASH)), True)]  # type: ignore[union-attr]
    assert c.attach_results == [AttachResult(f"{PROGRAM}:{BASH}", "uretprobe", True, None)]


def test_a_binary_without_readline_is_reported_once_and_given_up() -> None:
    true = Path(shutil.which("true") or "/bin/true")
    c = collector()
    c._attach(binary(true), now=0)
    c._attach(binary(true), now=10_000)
    assert c.obj.calls == []  # type: ignore[union-attr]
    [result] = c.attach_results
    assert not result.attached and result.error is not None and "no readline" in result.error


def test_a_failed_attach_is_retried_later_and_replaces_its_result(tmp_path: Path) -> None:
    c = collector(obj=FakeObject(attach_ok=False))
    c._attach(binary(BASH), now=0)
    c._attach(binary(BASH), now=1)  # too early: not tried
    assert len(c.obj.calls) == 1  # type: ignore[union-attr]
    c.obj.attach_ok = True  # type: ignore[union-attr]
    assert c._next_try[file_key(BASH)] == bash_module.RETRY_INTERVAL
    c._attach(binary(BASH), now=bash_module.RETRY_INTERVAL)
    assert [r.attached for r in c.attach_results] == [True]


def test_no_more_than_max_binaries(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bash_module, "MAX_BINARIES", 1)
    copy = tmp_path / "bash"
    shutil.copy(BASH, copy)
    c = collector()
    c._attach(binary(BASH), now=0)
    c._attach(binary(copy), now=0)
    assert [r.program for r in c.attach_results] == [f"{PROGRAM}:{BASH}"]


def event(line: bytes, pid: int = 42, uid: int = 0) -> bytes:
    e = BashEvent(ktime_ns=1, pid=pid, uid=uid, len=len(line), comm=b"bash")
    e.line = line
    return bytes(e)


def test_an_event_becomes_a_redacted_record_and_is_counted() -> None:
    c, logs = collector(), FakeLogs()
    c._logs = logs  # type: ignore[assignment]
    c._on_event(event(b"mysql -uroot -pS3cret"))
    c._on_event(event(b"   "))
    c._on_event(event(b"short")[:10])  # not a whole event
    [(scope, name, body, attributes, _time)] = logs.emitted
    assert (scope, name, body) == ("netobs.bash", "bash.command", "mysql -uroot -p***")
    assert attributes["user.name"] == "root" and attributes["host.name"] == "node-1"
    assert c.commands == 1


def fake_proc(root: Path, pid: int, comm: str = "bash", cgroup: str = "0::/user.slice\n") -> None:
    (root / str(pid)).mkdir(parents=True)
    (root / str(pid) / "stat").write_text(f"{pid} ({comm}) S" + " 0" * 18 + " 4242 0 0\n")
    (root / str(pid) / "cmdline").write_bytes(comm.encode() + b"\0")
    (root / str(pid) / "cgroup").write_text(cgroup)


def test_ebpf_pid_limits_the_audit_to_those_processes(tmp_path: Path) -> None:
    c, logs = collector("EBPF.Pid=[7]"), FakeLogs()
    for pid in (7, 42):
        fake_proc(tmp_path, pid)
    c.attribute = Enrichment(c.config, proc=str(tmp_path)).log_attributes  # what exporter/app.py binds
    c._logs = logs  # type: ignore[assignment]
    c._on_event(event(b"ls", pid=42))
    c._on_event(event(b"ls", pid=7))
    assert [args[3]["process.pid"] for args in logs.emitted] == [7]
    assert logs.emitted[0][3]["netobs.running_mode"] == "host"
    assert c.commands == 1

