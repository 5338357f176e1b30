"""The alert rules: promtool checks them and runs the unit tests of alerts/tests/, which must make
every alert fire once and stay quiet once."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "alerts" / "netobs-rules.yaml"
TESTS = sorted((REPO / "alerts" / "tests").glob("*.test.yaml"))


def promtool(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    if shutil.which("promtool") is None:
        pytest.fail("promtool is missing: run make setup-test (Debian package prometheus)")
    return subprocess.run(["promtool", *args], capture_output=True, text=True, cwd=cwd)


def alert_names() -> list[str]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule["alert"] for group in groups for rule in group["rules"]]


def test_promtool_check_rules() -> None:
    done = promtool("check", "rules", str(RULES))
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(alert_names())} rules found" in done.stdout


def test_promtool_unit_tests_pass_as_shipped() -> None:
    """Exactly what a user runs: `promtool test rules tests/*.yaml` in alerts/, annotations and all."""
    done = promtool("test", "rules", *[f"tests/{t.name}" for t in TESTS], cwd=RULES.parent)
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_firing_alert_states_its_annotations() -> None:
    for test in TESTS:
        for case in yaml.safe_load(test.read_text())["tests"]:
            for check in case["alert_rule_test"]:
                for alert in check["exp_alerts"]:
                    assert set(alert.get("exp_annotations", {})) == {"summary", "description"}, check["alertname"]


def test_every_alert_is_tested_firing_and_quiet() -> None:
    firing, quiet = set(), set()
    for test in TESTS:
        for case in yaml.safe_load(test.read_text())["tests"]:
            for check in case["alert_rule_test"]:
                (firing if check["exp_alerts"] else quiet).add(check["alertname"])
    names = set(alert_names())
    assert names - firing == set(), "never seen firing"
    assert names - quiet == set(), "never seen quiet"
    assert (firing | quiet) - names == set(), "tests of alerts that do not exist"


def test_every_alert_has_its_chart_values() -> None:
    values = yaml.safe_load((REPO / "chart" / "values.yaml").read_text())
    assert sorted(values["prometheusRule"]["alerts"]) == sorted(alert_names())


def test_every_alert_explains_itself() -> None:
    for group in yaml.safe_load(RULES.read_text())["groups"]:
        for rule in group["rules"]:
            annotations = rule["annotations"]
            assert annotations["summary"] and len(annotations["description"]) > 200, rule["alert"]
            assert rule["labels"]["severity"] in {"info", "warning", "critical"}, rule["alert"]
