"""The Grafana dashboards: Grafana's published schema (npm @grafana/schema, tsc --strict), every
PromQL expression parsed by Prometheus's grammar, and the conventions every panel keeps."""

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
# Metrics that are not the exporter's: Prometheus makes them when it scrapes.
SCRAPE_METRICS = {"up", "scrape_duration_seconds"}
# Instruments being added by other issues (databases: issue 5) and not yet in docs/metrics.md.
def load(path: Path) -> dict[str, Any]:
    return dict(json.loads(path.read_text()))


def queries(board: dict[str, Any]) -> list[tuple[str, str]]:
    """(where, expression) of every panel target and every variable's selector."""
    out = [(p["title"], t["expr"]) for p in board["panels"] if p["type"] != "row" for t in p["targets"]]
    for v in board["templating"]["list"]:
        if v["type"] == "query":
            selector = re.fullmatch(r"label_values\((.*), *[\w${}]+\)", v["query"]["query"])
            assert selector, v["name"]
            out.append((f"variable {v['name']}", selector.group(1)))
    return out


def test_there_are_four_dashboards() -> None:
    assert [p.stem for p in BOARDS] == ["netobs-dns", "netobs-health", "netobs-l7", "netobs-network"]


def test_dashboards_type_check_against_grafanas_schema(tmp_path: Path) -> None:
    if not TSC.exists():
        pytest.fail("TypeScript is missing: run make setup-test (npm ci in tests/ship)")
    for path in BOARDS:
        name = path.stem.replace("-", "_")
        (tmp_path / f"{name}.ts").write_text(
            "import type { Dashboard } from '@grafana/schema';\n"
            f"export const {name}: Dashboard = {path.read_text()};\n")
    config = {**TSCONFIG, "include": ["*.ts"],
              "compilerOptions": {**TSCONFIG["compilerOptions"], "typeRoots": [str(SHIP / "node_modules")],
                                  "baseUrl": ".", "paths": {"*": [str(SHIP / "node_modules" / "*")]}}}
    (tmp_path / "tsconfig.json").write_text(json.dumps(config))
    done = subprocess.run(["node", str(TSC), "-p", str(tmp_path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_wrong_field_fails_the_type_check(tmp_path: Path) -> None:
    """The check above can fail: a misspelt panel field is refused."""
    (tmp_path / "bad.ts").write_text("import type { Dashboard } from '@grafana/schema';\n"
                                     "export const bad: Dashboard = {schemaVersion: 39, panels: [{type: 'stat', "
                                     "gridpos: {x: 0, y: 0, w: 1, h: 1}}]};\n")
    config = {**TSCONFIG, "include": ["*.ts"],
              "compilerOptions": {**TSCONFIG["compilerOptions"], "baseUrl": ".",
                                  "paths": {"*": [str(SHIP / "node_modules" / "*")]}}}
    (tmp_path / "tsconfig.json").write_text(json.dumps(config))
    done = subprocess.run(["node", str(TSC), "-p", str(tmp_path)], capture_output=True, text=True)
    assert done.returncode != 0 and "gridpos" in done.stdout


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


def test_panels_keep_the_conventions() -> None:
    for path in BOARDS:
        board = load(path)
        names = [v["name"] for v in board["templating"]["list"]]
        assert names[:2] == ["datasource", "job"], path.name
        panels = [p for p in board["panels"] if p["type"] != "row"]
        assert len({p["id"] for p in board["panels"]}) == len(board["panels"])
        for p in panels:
            where = f"{path.name}: {p['title']}"
            assert p["datasource"]["uid"] == "${datasource}", where
            assert p["fieldConfig"]["defaults"]["unit"], where
            assert all(t["datasource"]["uid"] == "${datasource}" for t in p["targets"]), where
            assert p["gridPos"]["x"] + p["gridPos"]["w"] <= 24, where
            for t in p["targets"]:
                # Every selector goes through the job variable, so other programs' series stay out.
                assert 'job=~"$job"' in t["expr"], where
