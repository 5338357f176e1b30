"""iLogtail-style records: one JSON object per line, to stdout or appended to a file.

Each record says what one row (a flow, a DNS series, a request series of one process) counted
since the previous record of that row, in the fields of iLogtail's `statistics` or `protocols`
records (their kinds say which, exporter/telemetry/naming/). Rows that counted nothing in the
interval make no record. Values are strings, as iLogtail writes them."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterable, Sequence
from typing import IO, Any

from exporter.series.rows import AttributedRow
from exporter.telemetry.naming import kind_of
from exporter.telemetry.naming.kinds import ilogtail_record


class RecordDeltas:
    """What each row counted since the last call, for the kinds that have records."""

    def __init__(self) -> None:
        self._last: dict[tuple[Any, Any], tuple[int, ...]] = {}

    def records(self, rows: Sequence[AttributedRow], now: str | None = None) -> list[dict[str, str]]:
        now = now if now is not None else str(int(time.time()))
        out = []
        seen = set()
        for attributed in rows:
            row = attributed.row
            record_format = kind_of(row.key).record
            if record_format is None:
                continue
            part = (row.key, row.owner)
            seen.add(part)
            totals = record_format.totals(row.figures)
            before = self._last.get(part)
            self._last[part] = totals
            deltas = totals if before is None else tuple(a - b for a, b in zip(totals, before, strict=True))
            if record_format.wanted(deltas):
                kind, fields = record_format.record(row.key, deltas)
                out.append(ilogtail_record(kind, fields, row.owner, attributed.process, now))
        self._last = {part: totals for part, totals in self._last.items() if part in seen}
        return out


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
