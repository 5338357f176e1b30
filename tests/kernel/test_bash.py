"""bash audit against the real kernel: real bash on a pseudo-terminal, typed line by line."""

from __future__ import annotations

import json
import os
import select
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.kernel.harness import Exporter, wait_until
from tests.kernel.otlp_logs_receiver import LogsReceiver

pytestmark = pytest.mark.kernel

BASH = os.path.realpath("/usr/bin/bash")
LIGHT = "Netflow.Enabled=false"
ATTACHED = "netobs_program_attached"
DROPPED = "netobs_bash_records_dropped_total"


class Terminal:
    """An interactive bash on a pseudo-terminal that is its controlling terminal; type() sends one
    line and waits for the next prompt, so bash has read it with readline before we go on."""

    def __init__(self, command: list[str], prompt: str) -> None:
        self.prompt = prompt.encode()
        self._master, slave = os.openpty()
        # setsid -c makes the pty the controlling terminal; it and env exec, so the pid stays bash's.
        self.proc = subprocess.Popen(["setsid", "-c", *command], stdin=slave, stdout=slave, stderr=slave)
        os.close(slave)
        self.pid = self.proc.pid
        self._output = b""
        self._prompts = 0
        self._wait_prompt()

    @classmethod
    def bash(cls, binary: str = BASH, *prefix: str, home: str = "/root") -> Terminal:
        prompt = f"netobs-test-{uuid.uuid4().hex[:8]}$ "
        return cls(["env", "-i", f"HOME={home}", "TERM=dumb", f"PS1={prompt}", *prefix, binary,
                    "--norc", "--noprofile", "-i"], prompt)

    def _read(self, timeout: float) -> bool:
        if not select.select([self._master], [], [], timeout)[0]:
            return False
        try:
            chunk = os.read(self._master, 65536)
        except OSError:  # EIO: bash is gone
            return False
        self._output += chunk
        return bool(chunk)

    def _wait_prompt(self, timeout: float = 15) -> None:
        deadline = time.monotonic() + timeout
        while self._output.count(self.prompt) <= self._prompts:
            if time.monotonic() > deadline or (not self._read(0.2) and self.proc.poll() is not None):
                raise TimeoutError(f"no prompt from bash {self.pid}; it wrote {self._output[-500:]!r}")
        self._prompts += 1

    def type(self, line: str) -> None:
        os.write(self._master, line.encode() + b"\n")
        self._wait_prompt()

    def exit(self) -> None:
        os.write(self._master, b"exit\n")
        try:
            self.proc.wait(timeout=10)
        finally:
            self.close()

    def close(self) -> None:
        """Kills bash if it still runs; safe to call twice."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self._master >= 0:
            os.close(self._master)
            self._master = -1


def stdout_records(exporter: Exporter, pid: int | None = None) -> list[dict[str, Any]]:
    """The bash.command records the exporter printed (its stdout and stderr share the log file)."""
    records = []
    for line in exporter.log().splitlines():
        if line.startswith("{") and '"bash.command"' in line:
            record = json.loads(line)
            if record.get("event_name") == "bash.command" and (
                    pid is None or record["attributes"]["process.pid"] == pid):
                records.append(record)
    return records


def bodies_once(exporter: Exporter, pid: int, last: str, timeout: float = 15) -> list[str]:
    """The commands of `pid`, once the one typed last has arrived."""
    def read() -> list[str]:
        return [r["body"] for r in stdout_records(exporter, pid)]

    deadline = time.monotonic() + timeout
    found = read()
    while last not in found and time.monotonic() < deadline:
        time.sleep(0.2)
        found = read()
    return found


# A uretprobe catches returns of calls made after it is attached: a bash that already waits in
# readline when its binary is found gives up the line it is reading. Tests of binaries found
# while bash runs type this first, and do not count it.
WARM_UP = ":"


def wait_attached(exporter: Exporter, binary: str, timeout: float = 20) -> float:
    program = f"bash_readline:{binary}"
    return wait_until(lambda: exporter.value(ATTACHED, collector="bash", program=program), lambda v: v == 1,
                      timeout)


@pytest.fixture(scope="module")
def exporter(bpf_ready: None) -> Iterator[Exporter]:
    """Default delivery: JSON lines on stdout, so no OTLP settings may leak in from our environment."""
    with pytest.MonkeyPatch.context() as mp:
        for name in list(os.environ):
            if name.startswith("OTEL_"):
                mp.delenv(name)
        e = Exporter(LIGHT)
    yield e
    assert e.stop() == 0


def test_each_typed_command_is_one_record_in_order(exporter: Exporter) -> None:
    marker = f"marker-{uuid.uuid4().hex}"
    assert wait_attached(exporter, BASH) == 1
    terminal = Terminal.bash()
    try:
        for i in range(5):
            terminal.type(f"echo {marker}-{i}")
            if i == 2:
                terminal.type("")  # an empty line
                terminal.type("   ")  # and a blank one
        subprocess.run(["bash", "-c", f"echo {marker}-noninteractive"], check=True, capture_output=True)
        terminal.exit()
    finally:
        terminal.close()

    assert bodies_once(exporter, terminal.pid, "exit") == [f"echo {marker}-{i}" for i in range(5)] + ["exit"]
    for record in stdout_records(exporter, terminal.pid):
        assert record["attributes"] == {
            "process.pid": terminal.pid, "process.executable.name": "bash", "user.id": "0", "user.name": "root",
            "host.name": socket.gethostname(), "bash.command.truncated": False, "netobs.running_mode": "host",
        }
        assert record["severity_text"] == "INFO"
    assert not [r for r in stdout_records(exporter) if "noninteractive" in r["body"]]
    # a scrape within a second of another shows the same collection: wait for the next
    assert wait_until(lambda: exporter.value("netobs_bash_commands_total"), lambda v: v >= 6) >= 6


def test_a_secret_is_redacted_before_it_leaves(exporter: Exporter) -> None:
    secret = uuid.uuid4().hex
    terminal = Terminal.bash()
    try:
        terminal.type(f"echo password={secret}a --password {secret}b; mysql -uroot -p{secret}c 2>/dev/null")
        terminal.type(f"curl -sH 'Authorization: Bearer {secret}d' http://127.0.0.1:9/ || true")
        terminal.exit()
    finally:
        terminal.close()

    assert bodies_once(exporter, terminal.pid, "exit") == [
        "echo password=*** --password ***; mysql -uroot -p*** 2>/dev/null",
        "curl -sH 'Authorization: Bearer ***' http://127.0.0.1:9/ || true",
        "exit",
    ]
    assert secret not in exporter.log()


def test_a_long_command_is_cut_and_marked(bpf_ready: None) -> None:
    e = Exporter(LIGHT, "Bash.MaxCommandLength=20")
    try:
        terminal = Terminal.bash()
        try:
            terminal.type("echo " + "z" * 40)
            terminal.exit()
        finally:
            terminal.close()
        bodies_once(e, terminal.pid, "exit")
        first, last = stdout_records(e, terminal.pid)
        assert (first["body"], first["attributes"]["bash.command.truncated"]) == ("echo " + "z" * 15, True)
        assert (last["body"], last["attributes"]["bash.command.truncated"]) == ("exit", False)
    finally:
        assert e.stop() == 0


def test_another_bash_binary_is_found_while_it_runs(exporter: Exporter, tmp_path: Path) -> None:
    copy = tmp_path / "bash"
    shutil.copy2(BASH, copy)  # another file: a uprobe on /usr/bin/bash does not see it
    terminal = Terminal.bash(str(copy))
    try:
        assert wait_attached(exporter, str(copy)) == 1
        terminal.type(WARM_UP)
        terminal.type("echo from-the-copy")
        terminal.exit()
    finally:
        terminal.close()
    bodies = bodies_once(exporter, terminal.pid, "exit")
    assert [b for b in bodies if b != WARM_UP] == ["echo from-the-copy", "exit"]


def container_root(path: Path) -> Path:
    """A minimal root directory: bash, the libraries it needs, and a passwd file of its own."""
    needed = subprocess.run(["ldd", BASH], capture_output=True, text=True, check=True).stdout
    libraries = [part for line in needed.splitlines() for part in line.split() if part.startswith("/")]
    for source, target in [(BASH, "/bin/bash"), *((lib, lib) for lib in libraries)]:
        (path / target.lstrip("/")).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, path / target.lstrip("/"))  # copies: files of their own, as in an image
    (path / "etc").mkdir()
    (path / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/bash\n"
                                         "containeruser:x:4242:4242::/:/bin/bash\n")
    for directory in [path, *(p for p in path.rglob("*") if p.is_dir())]:
        directory.chmod(0o755)
    return path


def chroot_terminal(root: Path) -> Terminal:
    chroot = shutil.which("chroot")
    assert chroot is not None
    return Terminal.bash("/bin/bash", chroot, "--userspec=4242:4242", str(root), home="/")


def test_a_container_bash_is_traced_and_its_users_resolve_in_its_root(exporter: Exporter, tmp_path: Path) -> None:
    root = container_root(tmp_path / "root")
    terminal = chroot_terminal(root)
    try:
        assert wait_attached(exporter, str(root / "bin" / "bash")) == 1  # a chroot: the path is valid here
        terminal.type(WARM_UP)
        terminal.type("echo inside-the-container")
        terminal.exit()
    finally:
        terminal.close()
    bodies = bodies_once(exporter, terminal.pid, "exit")
    assert [b for b in bodies if b != WARM_UP] == ["echo inside-the-container", "exit"]
    for record in stdout_records(exporter, terminal.pid):
        attributes = record["attributes"]
        assert (attributes["user.id"], attributes.get("user.name")) == ("4242", "containeruser"), record


def test_without_containers_a_container_bash_is_left_alone(bpf_ready: None, tmp_path: Path) -> None:
    e = Exporter(LIGHT, "Bash.Containers=false")
    try:
        copy = tmp_path / "bash"
        shutil.copy2(BASH, copy)
        root = container_root(tmp_path / "root")
        contained = chroot_terminal(root)
        host_copy = Terminal.bash(str(copy))
        try:
            assert wait_attached(e, str(copy)) == 1  # found by a scan that also saw the container's bash
            programs = {labels["program"] for labels, _ in e.samples(ATTACHED, collector="bash")}
            assert not [p for p in programs if str(root) in p], programs
        finally:
            host_copy.close()
            contained.close()
    finally:
        assert e.stop() == 0


def test_records_over_otlp_survive_the_endpoint_going_away(bpf_ready: None) -> None:
    receiver = LogsReceiver()
    env = {"OTEL_EXPORTER_OTLP_LOGS_ENDPOINT": receiver.endpoint, "OTEL_EXPORTER_OTLP_LOGS_PROTOCOL": "grpc",
           "OTEL_EXPORTER_OTLP_LOGS_TIMEOUT": "2"}
    e = Exporter(LIGHT, "Bash.QueueSize=2", env=env)
    marker = f"otlp-{uuid.uuid4().hex}"
    terminal = Terminal.bash()
    try:
        terminal.type(f"echo {marker}-up")
        [record] = receiver.wait_for(lambda r: r.body == f"echo {marker}-up", 1)
        assert record.event_name == "bash.command" and record.scope == "netobs.bash"
        assert record.attributes == {
            "process.pid": terminal.pid, "process.executable.name": "bash", "user.id": "0", "user.name": "root",
            "host.name": socket.gethostname(), "bash.command.truncated": False, "netobs.running_mode": "host",
        }
        assert record.resource["service.name"] == "netobs-exporter" and record.time_unix_nano > 0

        receiver.stop()
        for i in range(6):  # one in the export that fails, two in the queue, three over its size
            terminal.type(f"echo {marker}-down-{i}")
        dropped = wait_until(lambda: e.value(DROPPED), lambda v: v == 6, timeout=30)
        assert dropped == 6, e.log()[-3000:]
        assert e.value(DROPPED, reason="queue_full") > 0 and e.value(DROPPED, reason="export_failed") > 0
        assert e.value("netobs_bash_commands_total") == 7

        receiver.start()
        terminal.type(f"echo {marker}-back")
        assert receiver.wait_for(lambda r: r.body == f"echo {marker}-back", 1, timeout=40)
        terminal.exit()
    finally:
        terminal.close()
        assert e.stop() == 0
        receiver.stop()
    assert not receiver.records(lambda r: "down" in str(r.body))
    assert "Traceback" not in e.log()
