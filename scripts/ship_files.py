"""Writes the files that are derived from others, or checks that they are up to date (--check).

- alerts/netobs-rules.yaml: the chart's alert and recording rules rendered with its default values, for
  Prometheus without the Operator (the chart's templates are the single source of the rules);
- dashboards/*.json: built by dashboards/generate.py;
- chart/files/dashboards/*.json: copies of those, which the chart turns into ConfigMaps (a chart
  cannot read files outside its directory).

Run with the project's venv: `make ship-files`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from dashboards.generate import DASHBOARDS, dashboard_json  # noqa: E402

CHART = REPO / "chart"
RULES = REPO / "alerts" / "netobs-rules.yaml"
RULES_HEADER = """\
# netobs-exporter alert and recording rules for Prometheus (rule_files). Generated from the Helm
# chart's templates with its default values by `make ship-files`: change chart/templates/_rules.tpl
# or chart/values.yaml, not this file. Thresholds and durations are the chart's
# prometheusRule.alerts; the selector job="netobs-exporter" must match your scrape job.
"""


class _Literal(str):
    """Written as a YAML block: | keeps the lines (expressions), > folds them (descriptions)."""

    style = "|"


class _Folded(_Literal):
    style = ">"


def _block(dumper: yaml.SafeDumper, text: _Literal) -> yaml.ScalarNode:
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style=text.style)


yaml.SafeDumper.add_representer(_Literal, _block)
yaml.SafeDumper.add_representer(_Folded, _block)


def render_chart(values: dict[str, Any] | None = None) -> dict[str, str]:
    import helm_python as helm

    chart = helm.Chart.load(str(CHART))
    return dict(chart.render(values or {}, name="netobs", namespace="monitoring"))


def rules_text() -> str:
    rendered = render_chart({"prometheusRule": {"enabled": True}})
    rule = yaml.safe_load(rendered["netobs-exporter/templates/prometheusrule.yaml"])
    for group in rule["spec"]["groups"]:
        for r in group["rules"]:
            if "\n" in r["expr"]:
                r["expr"] = _Literal(r["expr"])
            if "annotations" in r:
                r["annotations"]["description"] = _Folded(r["annotations"]["description"])
    body = yaml.safe_dump({"groups": rule["spec"]["groups"]}, sort_keys=False, width=110, allow_unicode=True)
    return RULES_HEADER + body


def wanted_files() -> dict[Path, str]:
    files = {RULES: rules_text()}
    for name in DASHBOARDS:
        text = dashboard_json(name)
        files[REPO / "dashboards" / f"{name}.json"] = text
        files[CHART / "files" / "dashboards" / f"{name}.json"] = text
    return files


def stale_files() -> list[Path]:
    return [p for p, text in wanted_files().items() if not p.exists() or p.read_text() != text]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report files that are out of date")
    args = parser.parse_args()
    if args.check:
        stale = stale_files()
        for path in stale:
            print(f"out of date: {path.relative_to(REPO)} (run make ship-files)")
        return 1 if stale else 0
    for path, text in wanted_files().items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
