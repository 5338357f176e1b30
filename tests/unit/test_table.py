"""The series table: rows that come out the same add up, counters stay monotonic, levels coarsen,
the limit holds, and versions say what changed."""

from __future__ import annotations

from exporter.series.flows import FlowFigures, FlowKey
from exporter.series.instruments import ALL, with_bounds
from exporter.series.rows import AttributedRow, HistogramValue, Owner, Process, Row
from exporter.telemetry.naming import Kind, Point
from exporter.telemetry.naming.flows import FLOWS
from exporter.telemetry.table import Plan, Series, SeriesTable

CURL = Process({"process.pid": 20, "process.executable.name": "curl"})
CURL2 = Process({"process.pid": 21, "process.executable.name": "curl"})
NAME = frozenset({"process.executable.name"})
INSTRUMENTS = with_bounds(ALL, "netflow.tcp.rtt", (0.001,))


def plan(level: str = "flow", rtt: str | None = "flow", max_series: int = 100,
         tags: tuple[tuple[str, str | int], ...] = ()) -> Plan:
    def level_of(kind: Kind, point: Point) -> str | None:
        return rtt if point.instrument == "netflow.tcp.rtt" else level

    return Plan(INSTRUMENTS, level_of, lambda _: NAME, tags, max_series)


def flow(local_port: int = 0, remote: int = 9, port: int = 80, sent: int = 0, srtt: float | None = None,
         rtt: HistogramValue | None = None, pid: int = 20, active: int = 0) -> Row:
    key = FlowKey(2, 6, bytes([10, 0, 0, 1]) + bytes(12), local_port, bytes([10, 0, 0, remote]) + bytes(12), port, 2)
    figures = FlowFigures(sent, 0, 0, 0, 0, 0, 0, active, srtt, srtt, rtt)
    return Row(key, Owner(pid, "curl"), figures)


def collect(table: SeriesTable, *rows: AttributedRow) -> None:
    table.update("netflow", list(rows), 1_000)
    table.limits.settle()
    table.commit(1_000)


def series(table: SeriesTable, instrument: str) -> dict[tuple[tuple[str, str | int], ...], object]:
    """attributes -> value of each exported series of an instrument (its point-level attributes added)."""
    out = {}
    for view, js in table.contributions(instrument):
        for s in view.exported():
            for j in js:
                if s.exported(j):
                    out[s.attributes + view.points[j].extra] = s.values[j]
    return out


def sent(table: SeriesTable) -> list[object]:
    return [v for attrs, v in series(table, "netflow.bytes").items() if ("network.io.direction", "transmit") in attrs]


def test_rows_alike_but_for_what_is_not_kept_add_up_and_gauges_take_the_largest() -> None:
    table = SeriesTable(plan())
    h1, h2 = HistogramValue((1, 0), 0.0005, 1), HistogramValue((0, 2), 3.0, 2)
    collect(table, AttributedRow(flow(sent=10, srtt=0.1, rtt=h1, active=1), CURL),
            AttributedRow(flow(sent=5, srtt=0.3, rtt=h2, pid=21, active=2), CURL2))
    assert sent(table) == [15]
    assert list(series(table, "netflow.tcp.srtt").values()) == [0.3]
    assert list(series(table, "netflow.tcp.active").values()) == [3]
    assert list(series(table, "netflow.tcp.rtt").values()) == [HistogramValue((1, 2), 3.0005, 3)]


def test_a_counter_keeps_what_a_departed_row_counted_while_its_series_lives() -> None:
    table = SeriesTable(plan())
    a, b = AttributedRow(flow(sent=10), CURL), AttributedRow(flow(sent=5, pid=21), CURL2)
    collect(table, a, b)
    collect(table, AttributedRow(flow(sent=7, pid=21), CURL2))  # a's flow expired
    assert sent(table) == [17]
    collect(table)
    assert sent(table) == []
    collect(table, AttributedRow(flow(sent=1, pid=21), CURL2))  # a new series starts afresh
    assert sent(table) == [1]


def test_a_new_process_object_with_the_same_attributes_counts_once() -> None:
    table = SeriesTable(plan())
    collect(table, AttributedRow(flow(sent=10), CURL), AttributedRow(flow(sent=5, pid=21), CURL2))
    renewed = Process(dict(CURL.attributes))  # the metadata was looked up again: nothing changed
    collect(table, AttributedRow(flow(sent=11), renewed), AttributedRow(flow(sent=5, pid=21), CURL2))
    assert sent(table) == [16]


def test_levels_drop_the_source_then_the_port_then_the_peer() -> None:
    rows = [AttributedRow(flow(local_port=p, remote=r, port=q, sent=1), CURL)
            for p in (0, 5000) for r in (9, 10) for q in (80, 443)]
    counts = {}
    for level in ("flow", "peer", "peer_address", "workload"):
        table = SeriesTable(plan(level))
        collect(table, *rows)
        counts[level] = sorted(v for v in sent(table))
    assert counts == {"flow": [1] * 8, "peer": [2] * 4, "peer_address": [4] * 2, "workload": [8]}
    table = SeriesTable(plan("workload"))
    collect(table, *rows)
    (attrs,) = series(table, "netflow.bytes").keys() - {k for k in series(table, "netflow.bytes")
                                                        if ("network.io.direction", "receive") in k}
    assert {k for k, _ in attrs} == {"network.transport", "network.type", "netflow.direction",
                                     "process.executable.name", "network.io.direction"}


def test_the_rtt_histogram_lives_at_its_own_level_or_nowhere() -> None:
    rows = [AttributedRow(flow(remote=r, port=q, rtt=HistogramValue((1, 0), 0.0001, 1)), CURL)
            for r in (9, 10) for q in (80, 443)]
    table = SeriesTable(plan("flow", "peer_address"))
    collect(table, *rows)
    assert len(series(table, "netflow.bytes")) == 8
    assert sorted(v.count for v in series(table, "netflow.tcp.rtt").values()) == [2, 2]  # type: ignore[attr-defined]
    table = SeriesTable(plan("flow", None))
    collect(table, *rows)
    assert series(table, "netflow.tcp.rtt") == {} and "netflow.tcp.rtt" not in table.instruments()


def test_tags_replace_attributes_of_their_name() -> None:
    table = SeriesTable(plan(tags=(("network.type", "tagged"), ("team", "net"))))
    collect(table, AttributedRow(flow(sent=1), CURL))
    (attrs,) = [a for a in series(table, "netflow.bytes") if ("network.io.direction", "transmit") in a]
    assert dict(attrs)["network.type"] == "tagged" and dict(attrs)["team"] == "net"
    assert sum(1 for k, _ in attrs if k == "network.type") == 1


def test_the_limit_keeps_series_exported_before_and_counts_the_rest_at_each_collection() -> None:
    table = SeriesTable(plan(max_series=3))
    first = [AttributedRow(flow(port=p, sent=1), CURL) for p in (1, 2)]  # 4 netflow.bytes series
    collect(table, *first)
    assert len(series(table, "netflow.bytes")) == 3
    assert table.limits.dropped["netflow.bytes"] == 1
    more = [AttributedRow(flow(port=3, sent=1), CURL)]
    collect(table, *first, *more)
    assert len(series(table, "netflow.bytes")) == 3
    assert table.limits.dropped["netflow.bytes"] == 1 + 3
    collect(table, *more)  # the first flows went: the waiting series take their places
    assert len(series(table, "netflow.bytes")) == 2
    assert table.series_count("netflow.bytes") == 2


def test_self_metrics_are_not_limited() -> None:
    assert "netobs.program.attached" in plan().unlimited


def test_versions_change_only_where_values_changed() -> None:
    table = SeriesTable(plan())
    row = AttributedRow(flow(sent=1), CURL)
    collect(table, row)
    view = table.contributions("netflow.bytes")[0][0]
    block = view.blocks[0]
    (s,) = view.exported()
    before = (dict(block.versions), s.version)
    collect(table, row)
    collect(table, AttributedRow(flow(sent=1), CURL))  # a new row object, the same figures
    assert (dict(block.versions), s.version) == before
    collect(table, AttributedRow(flow(sent=2), CURL))
    assert s.version != before[1]
    changed = {k for k, v in block.versions.items() if before[0].get(k) != v}
    assert changed == {"netflow.bytes"}
    assert isinstance(s, Series)


def test_a_kind_seen_first_gets_its_views_in_table_order() -> None:
    table = SeriesTable(plan())
    collect(table, AttributedRow(flow(sent=1, srtt=0.1, rtt=HistogramValue((1, 0), 0.1, 1)), CURL))
    assert table.instruments()[:2] == ["netflow.bytes", "netflow.packets"]
    assert FLOWS in {v.kind for v in table.views}


def test_a_series_of_many_rows_takes_their_changes_as_adding_them_up_again_would() -> None:
    """At the workload level 40 flows make one series; when a few change, their changes are added to
    its totals instead of adding up all 40 again: the totals are what adding up gives."""
    table = SeriesTable(plan("workload", "workload"))

    def rows(changed: dict[int, int]) -> list[AttributedRow]:
        out = []
        for i in range(40):
            n = 1 + changed.get(i, 0)  # cumulative, as the kernel's figures are
            out.append(AttributedRow(flow(local_port=1000 + i, sent=9 + n, active=1,
                                          rtt=HistogramValue((n, 0), 0.0001 * n, n)), CURL))
        return out

    def rtt() -> HistogramValue:
        (value,) = series(table, "netflow.tcp.rtt").values()
        assert isinstance(value, HistogramValue)
        return value

    collect(table, *rows({}))
    assert sent(table) == [400] and rtt().count == 40
    for changed in ({3: 5}, {3: 7, 9: 2}, {3: 7, 9: 2, 20: 1}):
        collect(table, *rows(changed))
        extra = sum(changed.values())
        assert sent(table) == [400 + extra]
        assert rtt().bucket_counts == (40 + extra, 0) and rtt().count == 40 + extra
        assert abs(rtt().sum - 0.0001 * (40 + extra)) < 1e-15
    assert list(series(table, "netflow.tcp.active").values()) == [40]
