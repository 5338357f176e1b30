"""The alert and recording rules: promtool checks them and runs the unit tests of alerts/tests/, which
must make every alert fire once and stay quiet once and check every recording rule's values; every
alert links to its runbook in docs/alerts.md."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import helm_python as helm
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "alerts" / "netobs-rules.yaml"
TESTS = sorted((REPO / "alerts" / "tests").glob("*.test.yaml"))
RUNBOOKS = REPO / "docs" / "alerts.md"


def promtool(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    if shutil.which("promtool") is None:
        pytest.fail("promtool is missing: run make setup-test (Debian package prometheus)")
    return subprocess.run(["promtool", *args], capture_output=True, text=True, cwd=cwd)


def rules() -> list[dict[str, Any]]:
    """Alert and recording rules."""
    return [rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]]


def alerts() -> list[dict[str, Any]]:
    return [rule for rule in rules() if "alert" in rule]


def alert_names() -> list[str]:
    return [rule["alert"] for rule in alerts()]


def record_names() -> list[str]:
    return [rule["record"] for rule in rules() if "record" in rule]


def unit_test_cases() -> list[dict[str, Any]]:
    return [case for test in TESTS for case in yaml.safe_load(test.read_text())["tests"]]


def github_anchors(markdown: str) -> set[str]:
    """The anchors GitHub gives the headings: lower case, punctuation other than - and _ dropped,
    spaces turned to -, and -1, -2... after a repeated one."""
    anchors: set[str] = set()
    seen: dict[str, int] = {}
    fenced = False
    for line in markdown.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        heading = re.match(r"#{1,6} +(.*?)[ #]*$", line)
        if fenced or heading is None:
            continue
        slug = re.sub(r"[^\w\- ]", "", heading.group(1).lower()).replace(" ", "-")
        anchors.add(f"{slug}-{seen[slug]}" if slug in seen else slug)
        seen[slug] = seen.get(slug, 0) + 1
    return anchors


def test_promtool_check_rules() -> None:
    done = promtool("check", "rules", str(RULES))
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(rules())} rules found" in done.stdout


def test_promtool_unit_tests_pass_as_shipped() -> None:
    """Exactly what a user runs: `promtool test rules tests/*.yaml` in alerts/, annotations and all."""
    done = promtool("test", "rules", *[f"tests/{t.name}" for t in TESTS], cwd=RULES.parent)
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_firing_alert_states_its_annotations() -> None:
    for case in unit_test_cases():
        for check in case.get("alert_rule_test", []):
            for alert in check["exp_alerts"]:
                assert set(alert.get("exp_annotations", {})) == {"summary", "description", "runbook_url"}, \
                    check["alertname"]


def test_every_alert_is_tested_firing_and_quiet() -> None:
    firing, quiet = set(), set()
    for case in unit_test_cases():
        for check in case.get("alert_rule_test", []):
            (firing if check["exp_alerts"] else quiet).add(check["alertname"])
    names = set(alert_names())
    assert names - firing == set(), "never seen firing"
    assert names - quiet == set(), "never seen quiet"
    assert (firing | quiet) - names == set(), "tests of alerts that do not exist"


def test_every_alert_has_its_chart_values() -> None:
    values = yaml.safe_load((REPO / "chart" / "values.yaml").read_text())
    assert sorted(values["prometheusRule"]["alerts"]) == sorted(alert_names())


def test_every_recording_rule_is_tested_with_values() -> None:
    """Each record is an expression of a promtool test that expects samples of it, with their values."""
    checked = {re.split(r"[{(\s]", check["expr"])[0] for case in unit_test_cases()
               for check in case.get("promql_expr_test", []) if check["exp_samples"]}
    assert record_names() and set(record_names()) - checked == set()


def test_recording_rules_follow_the_naming_convention() -> None:
    """level:metric:operations (Prometheus's recording rule practice), the rate's range in the name."""
    for name in record_names():
        level, metric, operations = name.split(":")
        assert level == "workload_pair" and metric.startswith("netobs_") and operations == "rate5m", name
        assert not metric.endswith("_total"), name


def test_recording_rules_are_optional() -> None:
    values = {"prometheusRule": {"enabled": True, "recordingRules": {"workloadPairs": {"enabled": False}}}}
    rendered = helm.Chart.load(str(REPO / "chart")).render(values, name="netobs", namespace="monitoring")
    groups = yaml.safe_load(rendered["netobs-exporter/templates/prometheusrule.yaml"])["spec"]["groups"]
    assert [r for g in groups for r in g["rules"] if "record" in r] == []
    assert len([r for g in groups for r in g["rules"]]) == len(alert_names())


def test_every_alert_explains_itself() -> None:
    for rule in alerts():
        annotations = rule["annotations"]
        assert annotations["summary"] and len(annotations["description"]) > 200, rule["alert"]
        assert rule["labels"]["severity"] in {"info", "warning", "critical"}, rule["alert"]


def test_every_alert_links_its_runbook() -> None:
    """runbook_url is docs/alerts.md on GitHub, at a heading that is there."""
    anchors = github_anchors(RUNBOOKS.read_text())
    pages = set()
    for rule in alerts():
        page, _, anchor = rule["annotations"]["runbook_url"].partition("#")
        pages.add(page)
        assert page.startswith("https://github.com/") and page.endswith("/docs/alerts.md"), rule["alert"]
        assert anchor in anchors, f"{rule['alert']}: no heading #{anchor} in docs/alerts.md"
    assert len(pages) == 1


def test_github_anchors() -> None:
    text = "# Alerts\n## NetobsEventsLost\n```\n# not a heading\n```\n## What to do\n### What to do\n## `up` == 0?\n"
    assert github_anchors(text) == {"alerts", "netobseventslost", "what-to-do", "what-to-do-1", "up--0"}


def test_the_cluster_label_and_the_routine_threshold_are_values() -> None:
    values = {"prometheusRule": {"enabled": True, "clusterLabel": "k8s_cluster_name",
                                 "alerts": {"NetobsEventsLost": {"enabled": True, "severity": "warning", "for": "15m",
                                                                 "threshold": 0, "routineThreshold": 3}}}}
    rendered = helm.Chart.load(str(REPO / "chart")).render(values, name="netobs", namespace="monitoring")
    rules = {r.get("alert", r.get("record")): r["expr"] for g in yaml.safe_load(
        rendered["netobs-exporter/templates/prometheusrule.yaml"])["spec"]["groups"] for r in g["rules"]}
    grouped = [expr for expr in rules.values() if " by (" in expr]
    assert any(name.startswith("workload_pair:") for name in rules)
    assert grouped and all("k8s_cluster_name" in expr and "(cluster," not in expr for expr in grouped)
    assert rules["NetobsEventsLost"].endswith("> 3")
