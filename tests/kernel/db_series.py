"""The database series a test reads: operations counted per label values, and waiting for a run's
operations to show up as increments over what was counted before it."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

from tests.kernel.harness import Exporter

Key = tuple[str, ...]


def db_counts(exp: Exporter, name: str, system: str, comm: str, port: int,
              keys: tuple[str, ...] = ("db_operation_name", "error_type")) -> dict[Key, float]:
    """Operations of one process with one server, summed per the values of `keys`."""
    out: dict[Key, float] = {}
    for labels, value in exp.samples(name, process_executable_name=comm, server_port=str(port),
                                     db_system_name=system):
        key = tuple(labels.get(k, "") for k in keys)
        out[key] = out.get(key, 0) + value
    return out


def wait_deltas(read: Callable[[], Mapping[Key, float]], before: Mapping[Key, float],
                want: Mapping[Key, int], timeout: float = 15) -> dict[Key, float]:
    """What each key of `want` gained since `before`, once it is `want` or when time is up."""
    deadline = time.monotonic() + timeout
    while True:
        now = read()
        got = {k: now.get(k, 0) - before.get(k, 0) for k in want}
        if got == want or time.monotonic() > deadline:
            return got
        time.sleep(0.3)
