"""The Prometheus exposition, as node_exporter tests it: fixed rows in, a committed text out, diffed;
then checked by promtool and read back by prometheus_client's parsers; gzip and OpenMetrics
negotiation; pages rendered again only where something changed.

To renew the golden files after a deliberate change of the output:

    NETOBS_UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/unit/test_prometheus.py"""

from __future__ import annotations

import gzip
import os
import subprocess
from pathlib import Path

import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families as openmetrics_families
from prometheus_client.parser import text_string_to_metric_families

from exporter.series.rows import HistogramValue
from exporter.telemetry.prometheus import accepts_gzip, go_float, negotiate
from tests.tools import require
from tests.unit import series_fixture
from tests.unit.series_fixture import collection, renderer

GOLDEN = Path(__file__).with_name("fixtures") / "golden"
UPDATE = os.environ.get("NETOBS_UPDATE_GOLDEN") == "1"


def render(openmetrics: bool = False, compress: bool = False, *settings: str) -> bytes:
    c = collection(*settings)
    with c.lock:
        c.fresh()
        return renderer(c).render(openmetrics, compress)


@pytest.mark.parametrize(("name", "openmetrics"), [("scrape.prom", False), ("scrape.openmetrics", True)])
def test_golden_scrape(name: str, openmetrics: bool) -> None:
    text = render(openmetrics).decode()
    path = GOLDEN / name
    if UPDATE:
        path.parent.mkdir(exist_ok=True)
        path.write_text(text)
    assert text == path.read_text(), f"the scrape differs from {path}; see this file's docstring to renew it"


def test_promtool_finds_nothing_to_say() -> None:
    promtool = require("promtool", "prometheus")
    # promtool reads the text format; the OpenMetrics text is checked by prometheus_client's strict parser below
    done = subprocess.run([promtool, "check", "metrics"], input=render(False), capture_output=True)
    assert (done.returncode, done.stdout, done.stderr) == (0, b"", b"")


def samples(text: str, openmetrics: bool) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    parse = openmetrics_families if openmetrics else text_string_to_metric_families
    return {(s.name, tuple(sorted(s.labels.items()))): float(s.value) for f in parse(text) for s in f.samples}


def test_the_parsers_read_back_every_value_the_same_in_both_formats() -> None:
    text = samples(render(False).decode(), False)
    openmetrics = samples(render(True).decode(), True)
    assert text == openmetrics
    curl = (("destination_address", "10.0.0.9"), ("destination_domain", "api.example.com"),
            ("destination_port", "443"), ("netflow_destination_address_type", "private"),
            ("netflow_direction", "outgoing"), ("netflow_source_address_type", "private"),
            ("netobs_running_mode", "host"), ("network_transport", "tcp"), ("network_type", "ipv4"),
            ("process_executable_name", "curl"), ("source_address", "10.0.0.1"), ("source_port", "*"))
    received = tuple(sorted((*curl, ("network_io_direction", "receive"))))
    assert text["netflow_bytes_total", received] == 100204
    fixture = {a.row.key: a for a in series_fixture.rows()}
    rtt = fixture[series_fixture.CLIENT_FLOW].row.figures.rtt  # type: ignore[attr-defined]
    assert isinstance(rtt, HistogramValue)
    rtt_labels = [k for k in text if k[0] == "netflow_tcp_rtt_seconds_count"]
    assert [text[k] for k in rtt_labels] == [rtt.count]
    buckets = sorted((float(dict(k[1])["le"]), v) for k, v in text.items() if k[0] == "netflow_tcp_rtt_seconds_bucket")
    assert [v for _, v in buckets][-1] == rtt.count and buckets[0][0] == 1e-05
    escaped = [k for k in text if ("k8s_pod_label_team", 'pay"ments\\') in k[1]]
    assert escaped


def test_gzip_is_the_same_text() -> None:
    body = render(False, True)
    assert body[:2] == b"\x1f\x8b"
    assert gzip.decompress(body) == render(False)
    assert gzip.decompress(render(True, True)) == render(True)


def test_a_scrape_without_change_renders_nothing_again() -> None:
    c = collection()
    r = renderer(c)
    with c.lock:
        c.fresh()
        first = r.render(False, True)
        c.min_interval = 0.0
        c.fresh()  # the same rows: only the self-metrics' page may change
        pages = {id(p) for view in c.table.views for b in view.blocks for p in b.cache.values()}
        second = r.render(False, True)
        again = {id(p) for view in c.table.views for b in view.blocks for p in b.cache.values()}
    assert gzip.decompress(first) == gzip.decompress(second)
    assert pages == again


def test_rtt_buckets_follow_the_configuration() -> None:
    text = render(False, False, "Netflow.RttBuckets=[0.00002, 0.001]").decode()
    bounds = [line.split('le="')[1].split('"')[0] for line in text.splitlines()
              if line.startswith("netflow_tcp_rtt_seconds_bucket")]
    assert bounds == ["2e-05", "0.001", "+Inf"]


def test_negotiation() -> None:
    prometheus2 = ("application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
                   "text/plain;version=0.0.4;q=0.5,*/*;q=0.1")
    prometheus3_text_first = "text/plain;version=0.0.4;q=0.9,application/openmetrics-text;version=1.0.0;q=0.5"
    assert negotiate(prometheus2) and not negotiate(prometheus3_text_first)
    assert not negotiate("") and not negotiate("*/*") and not negotiate("text/plain")
    assert not negotiate("application/openmetrics-text;q=0")
    assert accepts_gzip("gzip") and accepts_gzip("deflate, gzip;q=0.5") and accepts_gzip("*")
    assert not accepts_gzip("") and not accepts_gzip("gzip;q=0") and not accepts_gzip("identity")


def test_bounds_are_written_as_the_client_libraries_do() -> None:
    assert [go_float(b) for b in (1e-05, 2.5e-05, 0.0001, 0.005, 1.0, 262144.0, 1048576.0, 67108864.0)] == [
        "1e-05", "2.5e-05", "0.0001", "0.005", "1.0", "262144.0", "1.048576e+06", "6.7108864e+07"]
