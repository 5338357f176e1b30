"""The Grafana dashboards: Grafana's published schema (npm @grafana/schema, tsc --strict), every
PromQL expression parsed by Prometheus's grammar (npm @prometheus-io/lezer-promql), and the
conventions every panel keeps."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.ship.promql import parse_errors, substitute

REPO = Path(__file__).resolve().parents[2]
SHIP = Path(__file__).resolve().parent
BOARDS = sorted((REPO / "dashboards").glob("*.json"))
TSC = SHIP / "node_modules" / "typescript" / "bin" / "tsc"
TSCONFIG = {"compilerOptions": {"strict": True, "noEmit": True, "target": "es2022", "module": "esnext",
                                "moduleResolution": "bundler", "skipLibCheck": True, "types": []}}
# JSON spells Grafana's string enums (ThresholdsMode, FieldColorModeId...) as their values, which
# TypeScript does not take for the enum types: AsJson reads each enum as the union of its values.
TS_PRELUDE = """import type { Dashboard } from '@grafana/schema';
type AsJson<T> = 0 extends 1 & T ? T : T extends string ? `${T}`
  : T extends object ? { [K in keyof T]: AsJson<T[K]> } : T;
"""
# Every series selector goes through these, so other jobs' and clusters' series stay out; the
# variables that choose the job and the cluster come before them.
SCOPE = ('job=~"$job"', 'cluster=~"$cluster"')
UNSCOPED_VARIABLES = {"variable job", "variable cluster"}
# Prints, for each PromQL expression read on stdin, its series selectors and their label matchers.
SELECTORS_JS = """
import { parser } from "@prometheus-io/lezer-promql";
let input = "";
for await (const chunk of process.stdin) input += chunk;
const out = JSON.parse(input).map((expr) => {
  const found = [];
  parser.parse(expr).iterate({
    enter(ref) {
      if (ref.name !== "VectorSelector") return;
      const matchers = [];
      for (let m = ref.node.getChild("LabelMatchers")?.firstChild; m; m = m.nextSibling) {
        if (m.name === "UnquotedLabelMatcher") matchers.push(expr.slice(m.from, m.to));
      }
      found.push([expr.slice(ref.from, ref.to), matchers]);
    },
  });
  return found;
});
process.stdout.write(JSON.stringify(out));
"""
# Metrics that are not the exporter's: Prometheus makes them when it scrapes.
SCRAPE_METRICS = {"up", "scrape_duration_seconds"}
# Instruments being added by other issues (databases: issue 5) and not yet in docs/metrics.md.
def load(path: Path) -> dict[str, Any]:
    return dict(json.loads(path.read_text()))


def panels(board: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in board["panels"] if p["type"] != "row"]


def queries(board: dict[str, Any]) -> list[tuple[str, str]]:
    """(where, expression) of every panel target and every variable's selector."""
    out = [(p["title"], t["expr"]) for p in panels(board) for t in p["targets"]]
    for v in board["templating"]["list"]:
        if v["type"] == "query":
            selector = re.fullmatch(r"label_values\((.*), *[\w${}]+\)", v["query"]["query"])
            assert selector, v["name"]
            out.append((f"variable {v['name']}", selector.group(1)))
    return out


def test_there_are_five_dashboards() -> None:
    assert [p.stem for p in BOARDS] == ["netobs-dns", "netobs-health", "netobs-l7", "netobs-network",
                                        "netobs-service-map"]


def test_dashboards_type_check_against_grafanas_schema(tmp_path: Path) -> None:
    if not TSC.exists():
        pytest.fail("TypeScript is missing: run make setup-test (npm ci in tests/ship)")
    for path in BOARDS:
        name = path.stem.replace("-", "_")
        (tmp_path / f"{name}.ts").write_text(
            f"{TS_PRELUDE}export const {name}: AsJson<Dashboard> = {path.read_text()};\n")
    config = {**TSCONFIG, "include": ["*.ts"],
              "compilerOptions": {**TSCONFIG["compilerOptions"], "typeRoots": [str(SHIP / "node_modules")],
                                  "baseUrl": ".", "paths": {"*": [str(SHIP / "node_modules" / "*")]}}}
    (tmp_path / "tsconfig.json").write_text(json.dumps(config))
    done = subprocess.run(["node", str(TSC), "-p", str(tmp_path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_wrong_field_fails_the_type_check(tmp_path: Path) -> None:
    """The check above can fail: a misspelt panel field, and a value that is none of an enum's, are refused."""
    (tmp_path / "bad.ts").write_text(f"{TS_PRELUDE}export const bad: AsJson<Dashboard> = {{schemaVersion: 39, "
                                     "panels: [{type: 'stat', gridpos: {x: 0, y: 0, w: 1, h: 1}}, {type: 'stat', "
                                     "fieldConfig: {defaults: {thresholds: {mode: 'absolut', steps: []}}, "
                                     "overrides: []}}]};\n")
    config = {**TSCONFIG, "include": ["*.ts"],
              "compilerOptions": {**TSCONFIG["compilerOptions"], "baseUrl": ".",
                                  "paths": {"*": [str(SHIP / "node_modules" / "*")]}}}
    (tmp_path / "tsconfig.json").write_text(json.dumps(config))
    done = subprocess.run(["node", str(TSC), "-p", str(tmp_path)], capture_output=True, text=True)
    assert done.returncode != 0 and "gridpos" in done.stdout and '"absolut"' in done.stdout


def test_every_expression_parses() -> None:
    found = [(path.name, where, expr) for path in BOARDS for where, expr in queries(load(path))]
    errors = parse_errors([substitute(expr) for _, _, expr in found])
    bad = [(f, w, e) for (f, w, _), e in zip(found, errors, strict=True) if e is not None]
    assert bad == []
    assert len(found) > 60


def test_metric_names_are_the_exporters() -> None:
    documented = (REPO / "docs" / "metrics.md").read_text()
    for path in BOARDS:
        for where, expr in queries(load(path)):
            for name in re.findall(r"([a-z_]+)\{", substitute(expr)):
                base = re.sub(r"_(bucket|count|sum)$", "", name)
                known = base in SCRAPE_METRICS or f"`{name}`" in documented \
                    or f"`{base}_bucket`" in documented
                assert known, f"{path.name}, {where}: {name} is not in docs/metrics.md"


def test_every_selector_goes_through_job_and_cluster() -> None:
    found = [(path.name, where, expr) for path in BOARDS for where, expr in queries(load(path))
             if where not in UNSCOPED_VARIABLES]
    # The other variables are replaced, as Prometheus would get them, so that the grammar can parse them.
    keep = {"job": "$job", "cluster": "$cluster"}
    done = subprocess.run(["node", "--input-type=module", "-e", SELECTORS_JS], capture_output=True, text=True,
                          input=json.dumps([substitute(expr, keep) for _, _, expr in found]), cwd=SHIP, check=True)
    selectors = json.loads(done.stdout)
    assert all(selectors), "a query without a series selector"
    unscoped = [(f, w, selector) for (f, w, _), each in zip(found, selectors, strict=True)
                for selector, matchers in each if not set(SCOPE) <= set(matchers)]
    assert unscoped == []


def test_every_panel_has_a_description() -> None:
    for path in BOARDS:
        for p in panels(load(path)):
            assert p.get("description", "").strip(), f"{path.name}: {p['title']}"


def test_stats_have_their_own_thresholds() -> None:
    """Grafana's default, red from 80, would judge every stat: each stat says what its colors mean."""
    stats = [(path.name, p) for path in BOARDS for p in panels(load(path)) if p["type"] == "stat"]
    assert len(stats) >= 6
    for name, p in stats:
        where = f"{name}: {p['title']}"
        defaults = p["fieldConfig"]["defaults"]
        assert defaults.get("thresholds", {}).get("mode") == "absolute", where
        base, *steps = defaults["thresholds"]["steps"]
        assert base["value"] is None and base["color"], where
        values = [s["value"] for s in steps]
        assert values == sorted(set(values)), where
        if defaults["unit"] == "percentunit":
            assert all(0 < v <= 1 for v in values), f"{where}: a ratio's thresholds are fractions"


def test_every_dashboard_shows_grafanas_annotations_and_alerts() -> None:
    for path in BOARDS:
        builtin = [a for a in load(path)["annotations"]["list"] if a.get("builtIn") == 1]
        assert [(a["name"], a["datasource"]["type"], a["enable"]) for a in builtin] == [
            ("Annotations & Alerts", "grafana", True)], path.name


def test_panels_keep_the_conventions() -> None:
    for path in BOARDS:
        board = load(path)
        names = [v["name"] for v in board["templating"]["list"]]
        assert names[:2] == ["datasource", "job"], path.name
        assert len({p["id"] for p in board["panels"]}) == len(board["panels"])
        for p in panels(board):
            where = f"{path.name}: {p['title']}"
            assert p["datasource"]["uid"] == "${datasource}", where
            # A node graph writes its units after the numbers, as its options say (service_map.py).
            assert p["fieldConfig"]["defaults"].get("unit") or p["type"] == "nodeGraph", where
            assert all(t["datasource"]["uid"] == "${datasource}" for t in p["targets"]), where
            assert p["gridPos"]["x"] + p["gridPos"]["w"] <= 24, where
            for t in p["targets"]:
                # Every selector goes through the job variable, so other programs' series stay out.
                assert 'job=~"$job"' in t["expr"], where
