"""Errors of the metadata sources, counted by source (netobs.enrich.errors) and logged sparingly."""

from __future__ import annotations

import logging
import threading
import time

log = logging.getLogger(__name__)
LOG_INTERVAL = 60.0  # seconds between two log lines of one source


class SourceErrors:
    """Thread-safe counts of errors per source (`docker`, `kubernetes`, `proc`, `cgroup`)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}
        self._logged: dict[str, float] = {}

    def count(self, source: str, message: str) -> None:
        """One error; its message is logged at most once a minute per source (the first one at once)."""
        now = time.monotonic()
        with self._lock:
            self._counts[source] = self._counts.get(source, 0) + 1
            quiet = now - self._logged.get(source, -LOG_INTERVAL) < LOG_INTERVAL
            if not quiet:
                self._logged[source] = now
        if not quiet:
            log.warning("%s: %s", source, message)

    def counts(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)
