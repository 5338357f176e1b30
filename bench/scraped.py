"""The exporter as the benchmarks run it: `python -m exporter` on a free loopback port with settings
of their own, its log in /tmp, ready once /metrics answers, and scraped every second as Prometheus
would (the page fetched, not parsed: parsing is Prometheus' work, on another machine).

    with ScrapedExporter(["Common.DropLocalConnections=false"]) as exp:
        ...  # exp.url, exp.pid
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ScrapedExporter:
    """The exporter with `settings` (KEY=VALUE, each a --config.set) and `env` added to this process's
    environment, for the length of a `with` block."""

    def __init__(self, settings: list[str], env: dict[str, str] | None = None, scrape: bool = True) -> None:
        port = free_port()
        self.url = f"http://127.0.0.1:{port}/metrics"
        self.log_path = f"/tmp/netobs-bench-exporter-{port}.log"
        self._log = open(self.log_path, "w+")  # noqa: SIM115 (closed in __exit__)
        argv = [sys.executable, "-m", "exporter", f"--web.listen-address=127.0.0.1:{port}"]
        for item in settings:
            argv += ["--config.set", item]
        self.process = subprocess.Popen(argv, cwd=REPO_ROOT, stdout=self._log, stderr=subprocess.STDOUT,
                                        env={**os.environ, **(env or {})})
        self.pid = self.process.pid
        self._scrape = scrape
        self._stop = threading.Event()
        self._scraper = threading.Thread(target=self._scrape_every_second)

    def fetch(self) -> str:
        with urllib.request.urlopen(self.url, timeout=10) as r:
            return str(r.read().decode())

    def __enter__(self) -> ScrapedExporter:
        deadline = time.monotonic() + 60
        while True:
            try:
                self.fetch()
                break
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.__exit__()
                    raise SystemExit(f"the exporter did not start: see {self.log_path}") from None
                time.sleep(0.2)
        if self._scrape:
            self._scraper.start()
        return self

    def _scrape_every_second(self) -> None:
        while not self._stop.wait(1.0):
            with urllib.request.urlopen(self.url, timeout=10) as r:
                r.read()

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        if self._scraper.is_alive():
            self._scraper.join()
        self.process.terminate()
        self.process.wait()
        self._log.close()
