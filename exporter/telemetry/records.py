"""iLogtail-style records: one JSON object per line, to stdout or appended to a file."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from typing import IO, Any


class RecordsWriter:
    def __init__(self, target: str) -> None:
        self._out: IO[str] = sys.stdout if target == "stdout" else open(target, "a", encoding="utf-8")  # noqa: SIM115

    def write(self, records: Iterable[dict[str, Any]]) -> None:
        lines = [json.dumps(r, separators=(",", ":"), ensure_ascii=False) + "\n" for r in records]
        if lines:
            self._out.writelines(lines)
            self._out.flush()

    def close(self) -> None:
        if self._out is not sys.stdout:
            self._out.close()
