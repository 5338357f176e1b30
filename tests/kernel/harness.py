"""A real exporter process for tests, and a way to read what it exports."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

REPO_ROOT = Path(__file__).resolve().parents[2]
Labels = dict[str, str]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Exporter:
    """`python -m exporter` with the given --config.set items, on a free loopback port."""

    def __init__(self, *settings: str, extra_args: Sequence[str] = (), env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/metrics"
        args = [sys.executable, "-m", "exporter", f"--web.listen-address=127.0.0.1:{self.port}", *extra_args]
        for item in settings:
            args += ["--config.set", item]
        self.log_path = Path(f"/tmp/netobs-test-exporter-{self.port}.log")
        self._log = open(self.log_path, "w")  # noqa: SIM115
        self.proc = subprocess.Popen(args, cwd=REPO_ROOT, stdout=self._log, stderr=subprocess.STDOUT,
                                     env={**os.environ, **(env or {})})
        self._wait_ready()

    def _wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"exporter exited with {self.proc.returncode}:\n{self.log()}")
            try:
                if "netobs_program_attached" in self.scrape_text():
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"exporter not ready after {timeout}s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text()

    def scrape_text(self, accept: str = "") -> str:
        request = urllib.request.Request(self.url, headers={"Accept": accept} if accept else {})
        with urllib.request.urlopen(request, timeout=10) as response:
            return str(response.read().decode())

    def samples(self, name: str, **labels: str) -> list[tuple[Labels, float]]:
        """Samples of `name` (as exposed, e.g. netflow_bytes_total) whose labels include `labels` (a label
        given as "" matches a series without it, as in PromQL)."""
        out = []
        for family in text_string_to_metric_families(self.scrape_text()):
            for sample in family.samples:
                if sample.name == name and all(sample.labels.get(k, "") == v for k, v in labels.items()):
                    out.append((dict(sample.labels), float(sample.value)))
        return out

    def value(self, name: str, **labels: str) -> float:
        return sum(v for _, v in self.samples(name, **labels))

    def wait_for(self, name: str, expected: float, timeout: float = 10, **labels: str) -> float:
        """The value once it equals `expected` (or the last value seen after `timeout`)."""
        return wait_until(lambda: self.value(name, **labels), lambda v: v == expected, timeout)

    def kernel_map(self, name: str) -> list[dict]:
        """The entries of this exporter's BPF map `name`, as bpftool formats them with the object's BTF
        (each with "key" and "value"). The map is told apart from other processes' by the exporter's
        own file descriptors."""
        held = set()
        for info in Path(f"/proc/{self.proc.pid}/fdinfo").iterdir():
            with contextlib.suppress(OSError):
                held |= {int(line.split()[1]) for line in info.read_text().splitlines()
                         if line.startswith("map_id:")}
        maps = json.loads(subprocess.run(["bpftool", "-j", "map", "show"], check=True, capture_output=True,
                                         text=True).stdout)
        ids = [m["id"] for m in maps if m.get("name") == name and m["id"] in held]
        assert len(ids) == 1, (name, ids)
        dump = json.loads(subprocess.run(["bpftool", "-j", "map", "dump", "id", str(ids[0])], check=True,
                                         capture_output=True, text=True).stdout)
        return [entry["formatted"] for entry in dump]

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode


def wait_until(read: Callable[[], float], ok: Callable[[float], bool], timeout: float = 10) -> float:
    deadline = time.monotonic() + timeout
    value = read()
    while not ok(value) and time.monotonic() < deadline:
        time.sleep(0.25)
        value = read()
    return value


PEER = Path(__file__).with_name("peer.py")


class Peer:
    """A tests/kernel/peer.py process, optionally inside a network namespace."""

    def __init__(self, command: str, *args: str, netns: str | None = None, cgroup: str | None = None) -> None:
        import queue
        import threading

        argv = [sys.executable, str(PEER), command, *args]
        if netns:
            argv = ["ip", "netns", "exec", netns, *argv]
        if cgroup:  # a cgroup directory: the peer runs in it from its first instruction
            argv = ["sh", "-c", 'echo $$ > "$0/cgroup.procs" && exec "$@"', cgroup, *argv]
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        # A thread reads the lines: select() on the pipe would miss a line that readline()
        # already pulled into its buffer along with the one before.
        self._lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self.ready = self.line()
        self.pid = str(self.ready["pid"])

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for text in self.proc.stdout:
            self._lines.put(text)
        self._lines.put("")

    def line(self, timeout: float = 60) -> dict:
        import json
        import queue

        try:
            text = self._lines.get(timeout=timeout)
        except queue.Empty:
            self.proc.kill()
            raise TimeoutError(f"peer {self.proc.args} said nothing for {timeout}s") from None
        if not text:
            raise RuntimeError(f"peer {self.proc.args} exited with {self.proc.wait()}")
        return dict(json.loads(text))

    def send_line(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write("\n")
        self.proc.stdin.flush()

    def finish(self, timeout: float = 60) -> dict:
        result = self.line(timeout)
        self.proc.wait(timeout)
        return result


# Series carry process.pid only when asked (Attributes.Process); tests that tell processes apart by pid ask.
WITH_PID = "Attributes.Process=[process.pid, process.executable.name]"
