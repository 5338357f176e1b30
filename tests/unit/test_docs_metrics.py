"""docs/metrics.md names everything we export, under the names a user actually sees.

The Prometheus names are not derived by hand: a fake collector's points go through the real
pipeline (KernelMetrics, the self-metrics, the OpenTelemetry Prometheus reader), and every name
and label of the resulting scrape must appear in the document."""

from __future__ import annotations

import socket
from collections.abc import Mapping
from pathlib import Path

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from exporter.bpf import AttachResult
from exporter.collectors.base import Collector
from exporter.collectors.netflow import flow_attributes, ilogtail_statistics
from exporter.collectors.netflow_maps import DIRECTION_OUTGOING, LOST_REASONS, FlowKey
from exporter.telemetry import self_metrics
from exporter.telemetry.instruments import ALL
from exporter.telemetry.kernel_metrics import KernelMetrics
from exporter.telemetry.pipeline import build_resource
from exporter.telemetry.points import HistogramValue, Snapshot
from exporter.telemetry.readers import PrometheusReader

DOC = (Path(__file__).resolve().parents[2] / "docs" / "metrics.md").read_text(encoding="utf-8")


def tcp_flow() -> FlowKey:
    key = FlowKey(family=socket.AF_INET, protocol=6, pid=42, direction=DIRECTION_OUTGOING,
                  local_port=0, remote_port=443)
    key.local_addr[:4] = bytes([10, 0, 0, 1])
    key.remote_addr[:4] = bytes([192, 0, 2, 7])
    return key


class OnePointEach(Collector):
    """One series for every instrument of the table, with the attributes netflow gives it."""

    name = "netflow"

    def __init__(self) -> None:
        super().__init__()
        self.attach_results = [AttachResult("netflow_send", "tp_btf/sock_send_length", True, None)]

    def snapshot(self) -> Snapshot:
        attrs = flow_attributes(tcp_flow(), b"curl")
        snap: Snapshot = {}
        for name, instrument in ALL.items():
            point_attrs = attrs
            if name in ("netflow.bytes", "netflow.packets"):
                point_attrs = (*attrs, ("network.io.direction", "transmit"))
            if name == "netflow.tcp.failed":
                point_attrs = (*attrs, ("error.type", "ECONNREFUSED"))
            value = (HistogramValue((0,) * (len(instrument.bounds) + 1), 0.0, 0)
                     if instrument.kind == "histogram" else 0.0)
            snap[name] = {point_attrs: value}
        return snap

    def lost(self) -> Mapping[str, int]:
        return dict.fromkeys(LOST_REASONS, 0)


@pytest.fixture(scope="module")
def scrape() -> tuple[str, set[str]]:
    """The Prometheus text of a scrape, and the OpenTelemetry names of the self-metrics."""
    collector = OnePointEach()
    kernel = KernelMetrics([collector], {}, max_series=10)
    registry = CollectorRegistry(auto_describe=False)
    memory = InMemoryMetricReader()
    provider = MeterProvider(resource=build_resource(),
                             metric_readers=[PrometheusReader(kernel, registry), memory])
    self_metrics.register(provider.get_meter("test"), [collector], kernel)
    generate_latest(registry)  # the self-metrics describe the previous collection
    kernel.min_interval = 0.0
    text = generate_latest(registry).decode()
    data = memory.get_metrics_data()
    provider.shutdown()
    assert data is not None
    names = {m.name for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics}
    return text, names


def exposed(text: str) -> tuple[set[str], set[str]]:
    names, labels = set(), set()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            names.add(sample.name)
            labels |= sample.labels.keys() - {"le"}
    return names, labels


def missing(words: set[str]) -> list[str]:
    return sorted(w for w in words if f"`{w}`" not in DOC)


def test_every_instrument_is_documented_under_its_opentelemetry_name() -> None:
    assert missing(set(ALL)) == []


def test_every_self_metric_is_documented_under_its_opentelemetry_name(scrape: tuple[str, set[str]]) -> None:
    _, names = scrape
    assert {"netobs.series", "netobs.events.lost"} <= names
    assert missing(names) == []


def test_every_prometheus_name_is_documented(scrape: tuple[str, set[str]]) -> None:
    names, _ = exposed(scrape[0])
    assert {"netflow_bytes_total", "netflow_tcp_rtt_seconds_bucket", "netflow_tcp_active",
            "netobs_series_dropped_total", "target_info"} <= names
    assert missing(names) == []


def test_every_attribute_and_label_is_documented(scrape: tuple[str, set[str]]) -> None:
    _, labels = exposed(scrape[0])
    attributes = {k for k, _ in flow_attributes(tcp_flow(), b"curl")} | {"network.io.direction", "error.type"}
    assert {a.replace(".", "_") for a in attributes} <= labels
    assert missing(attributes | labels) == []


def test_every_field_of_the_records_is_documented() -> None:
    record = ilogtail_statistics(tcp_flow(), "curl", [1, 2, 3, 4], "0")
    assert missing(set(record)) == []


def test_every_lost_reason_is_documented() -> None:
    assert missing(set(LOST_REASONS)) == []
