"""docs/metrics.md names everything we export, under the names a user actually sees.

The Prometheus names are not derived by hand: fixed rows of every kind go through the real pipeline
(the series table and the Prometheus renderer), and every name and label of the resulting scrape must
appear in the document; so must every instrument's Prometheus name as the renderer makes it."""

from __future__ import annotations

from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from exporter.collectors.bash_maps import LOST_REASONS as BASH_LOST
from exporter.collectors.dns_lookups import Skipped
from exporter.collectors.dns_maps import LOST_REASONS as DNS_LOST
from exporter.collectors.l7_maps import LOST_REASONS as L7_LOST
from exporter.collectors.netflow_maps import LOST_REASONS
from exporter.series.attributes import PEER_NAMES
from exporter.series.instruments import ALL
from exporter.series.peers import Remote
from exporter.series.rows import Owner
from exporter.telemetry.naming.flows import LEVELS, Statistics, flow_attributes
from exporter.telemetry.naming.kinds import ilogtail_record
from exporter.telemetry.prometheus import label_name, metric_name
from tests.unit.series_fixture import CLIENT_FLOW, CURL, WEB_POD, collection, renderer

DOC = (Path(__file__).resolve().parents[2] / "docs" / "metrics.md").read_text(encoding="utf-8")


def scrape() -> str:
    c = collection()
    with c.lock:
        c.fresh()
        return renderer(c).render().decode()


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


def test_every_instrument_is_documented_under_its_prometheus_name() -> None:
    suffix = {"counter": "_total", "histogram": "_bucket"}
    names = {metric_name(i) + suffix.get(i.kind, "") for i in ALL.values()}
    assert {"netflow_bytes_total", "netflow_tcp_rtt_seconds_bucket", "netobs_series_dropped_total"} <= names
    assert missing(names) == []


def test_every_prometheus_name_of_a_scrape_is_documented() -> None:
    names, _ = exposed(scrape())
    assert {"netflow_bytes_total", "netflow_tcp_rtt_seconds_bucket", "netflow_tcp_active",
            "netobs_series_dropped_total", "target_info"} <= names
    assert missing(names) == []


def test_every_attribute_and_label_is_documented() -> None:
    _, labels = exposed(scrape())
    attributes = {k for level in LEVELS for k, _ in flow_attributes(CLIENT_FLOW, level, Remote("example.com", WEB_POD))}
    attributes |= {"network.io.direction", "error.type"}
    assert {a.replace(".", "_") for a in attributes} <= labels
    pod_labels = {label for label in labels if label.startswith("k8s_pod_label_")}  # k8s_pod_label_<key>
    assert pod_labels and missing(attributes | labels - pod_labels) == []


def test_every_peer_attribute_is_documented_with_its_label() -> None:
    _, labels = exposed(scrape())
    assert {label_name(a) for a in PEER_NAMES} <= labels  # the fixture's peers are a pod, a Service and a node
    assert missing({*PEER_NAMES, *map(label_name, PEER_NAMES)}) == []


def test_every_aggregation_level_is_documented() -> None:
    assert missing(set(LEVELS)) == []


def test_every_field_of_the_records_is_documented() -> None:
    kind, fields = Statistics().record(CLIENT_FLOW, (1, 2, 3, 4))
    record = ilogtail_record(kind, fields, Owner(1, "curl"), CURL, "0")
    assert missing(set(record)) == []


def every_lost_reason() -> set[str]:
    return {*LOST_REASONS, *DNS_LOST, *L7_LOST, *BASH_LOST, *Skipped().counts}


def test_every_lost_reason_is_documented() -> None:
    assert missing(every_lost_reason()) == []


def test_the_lost_events_alert_says_what_to_do_for_every_reason() -> None:
    rules = (Path(__file__).resolve().parents[2] / "alerts" / "netobs-rules.yaml").read_text(encoding="utf-8")
    description = rules.split("alert: NetobsEventsLost", 1)[1].split("- alert:", 1)[0]
    assert sorted(r for r in every_lost_reason() if r not in description) == []
