"""atheris target: iLogtail records (exporter/telemetry/records.py) of flows with any figures, from
processes with any names and attributes.

Each record is a map of strings that makes one JSON line; nothing raises."""

import json
import sys

import atheris

with atheris.instrument_imports():
    from exporter.series.flows import FlowFigures, FlowKey
    from exporter.series.peers import Remote
    from exporter.series.rows import AttributedRow, HistogramValue, Owner, Process, Row
    from exporter.telemetry.records import RecordDeltas

FAMILIES = [2, 10, 1, 0, 44]
PROTOCOLS = [6, 17, 0, 132]


def text(fdp: atheris.FuzzedDataProvider) -> str:
    return fdp.ConsumeUnicodeNoSurrogates(fdp.ConsumeIntInRange(0, 24))


def row(fdp: atheris.FuzzedDataProvider) -> AttributedRow:
    key = FlowKey(fdp.PickValueInList(FAMILIES), fdp.PickValueInList(PROTOCOLS), fdp.ConsumeBytes(16).ljust(16, b"\0"),
                  fdp.ConsumeIntInRange(0, 65535), fdp.ConsumeBytes(16).ljust(16, b"\0"),
                  fdp.ConsumeIntInRange(0, 65535), fdp.ConsumeIntInRange(0, 3))
    n = [fdp.ConsumeIntInRange(0, 2**64 - 1) for _ in range(8)]
    rtt = HistogramValue(tuple(fdp.ConsumeIntInRange(0, 9) for _ in range(19)), fdp.ConsumeRegularFloat(),
                         fdp.ConsumeIntInRange(0, 2**32)) if fdp.ConsumeBool() else None
    figures = FlowFigures(*n, fdp.ConsumeRegularFloat(), fdp.ConsumeRegularFloat(), rtt)
    owner = Owner(fdp.ConsumeIntInRange(0, 2**32 - 1), text(fdp), fdp.ConsumeIntInRange(0, 2**40),
                  fdp.ConsumeIntInRange(0, 2**64 - 1))
    attributes = {text(fdp): text(fdp) for _ in range(fdp.ConsumeIntInRange(0, 4))}
    records = {text(fdp): text(fdp) for _ in range(fdp.ConsumeIntInRange(0, 3))}
    return AttributedRow(Row(key, owner, figures), Process(attributes, records, text(fdp)),
                         Remote(text(fdp) if fdp.ConsumeBool() else None))


def test_one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    rows = [row(fdp) for _ in range(fdp.ConsumeIntInRange(1, 3))]
    deltas = RecordDeltas()
    for _ in range(2):
        for record in deltas.records(rows, now="0"):
            assert all(isinstance(k, str) and isinstance(v, str) for k, v in record.items()), record
            line = json.dumps(record, separators=(",", ":"), ensure_ascii=False)
            assert "\n" not in line and json.loads(line) == record


if __name__ == "__main__":
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
