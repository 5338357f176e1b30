"""The service map: its queries, run by promtool on the series of alerts/tests/workload-pairs.test.yaml,
give the node graph's nodes and edges and the table's pairs exactly; they name pairs as the recording
rules do; the panel gives Grafana's node graph the fields it reads."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from dashboards import pairs
from tests.ship.promql import substitute

REPO = Path(__file__).resolve().parents[2]
BOARD = REPO / "dashboards" / "netobs-service-map.json"
RULES = REPO / "alerts" / "netobs-rules.yaml"
SERIES = REPO / "alerts" / "tests" / "workload-pairs.test.yaml"
# As Grafana would send them with every variable at "All", over the window of the recording rules.
ALL = {"job": "netobs-exporter", "__range": "5m", "__rate_interval": "5m"}
CHECKOUT, PAYMENTS, REDIS = "prod/shop/checkout", "prod/pay/payments", "prod/shop/redis"
REPORT, NODE1, DEBUG, TOOLBOX = "prod/ops/report", "prod//node-1", "prod/ops/debug", "prod/ops/toolbox"
# An expression and the samples it must give: (labels, value).
Check = tuple[str, list[tuple[dict[str, str], float]]]


def board() -> dict[str, Any]:
    return dict(json.loads(BOARD.read_text()))


def panel(title: str) -> dict[str, Any]:
    (found,) = [p for p in board()["panels"] if p["title"] == title and p["type"] != "row"]
    return dict(found)


def queries(title: str) -> dict[str, str]:
    return {t["refId"]: t["expr"] for t in panel(title)["targets"]}


def selector(labels: dict[str, str]) -> str:
    return "{" + ",".join(f'{k}="{v}"' for k, v in labels.items() if v) + "}"


def node(node_id: str, subtitle: str) -> dict[str, str]:
    return {"id": node_id, "title": node_id.rsplit("/", 1)[1], "subtitle": subtitle}


def edge(source: str, target: str) -> dict[str, str]:
    return {"id": f"{source} -> {target}", "source": source, "target": target}


def pair(client: tuple[str, str, str], server: tuple[str, str, str]) -> dict[str, str]:
    return {"cluster": "prod", "client_namespace": client[0], "client_workload_kind": client[1],
            "client_workload": client[2], "server_namespace": server[0], "server_workload_kind": server[1],
            "server_workload": server[2]}


def promtool_test(tmp_path: Path, checks: list[Check]) -> str:
    """promtool's failures, empty when every expression gives exactly the samples expected."""
    if shutil.which("promtool") is None:
        pytest.fail("promtool is missing: run make setup-test (Debian package prometheus)")
    (case, *_) = yaml.safe_load(SERIES.read_text())["tests"]
    (tmp_path / "none.yaml").write_text("groups: []\n")
    test = {"rule_files": ["none.yaml"], "evaluation_interval": "1m", "tests": [{
        "interval": case["interval"], "input_series": case["input_series"],
        "promql_expr_test": [{"expr": expr, "eval_time": "30m",
                              "exp_samples": [{"labels": selector(labels), "value": value} for labels, value in want]}
                             for expr, want in checks]}]}
    (tmp_path / "map.test.yaml").write_text(yaml.safe_dump(test, width=1000))
    done = subprocess.run(["promtool", "test", "rules", "map.test.yaml"], capture_output=True, text=True,
                          cwd=tmp_path)
    return "" if done.returncode == 0 else done.stdout + done.stderr


def test_the_node_graph_draws_the_pairs(tmp_path: Path) -> None:
    q = {ref: substitute(expr, ALL) for ref, expr in queries("Service map").items()}
    checks: list[Check] = [
        # A: every end of a pair, kB/s it exchanged (payments also through the Service of its name).
        (q["A"], [(node(CHECKOUT, "shop"), 5.832), (node(PAYMENTS, "pay"), 5.632), (node(REDIS, "shop"), 0.2),
                  (node(REPORT, "ops"), 0.01), (node(NODE1, "node"), 0.01), (node(DEBUG, "ops"), 0.001),
                  (node(TOOLBOX, "ops"), 0.001)]),
        # B: requests served (HTTP through the Service, gRPC straight to the pods); C: their errors.
        (q["B"], [(node(PAYMENTS, "pay"), 25), (node(REDIS, "shop"), 20)]),
        (q["C"], [(node(PAYMENTS, "pay"), 0.12), (node(REDIS, "shop"), 0.1)]),
        # D: kB/s; E: requests/s; F: errors in %; G: p95 in ms, of the slowest protocol.
        (q["D"], [(edge(CHECKOUT, PAYMENTS), 5.632), (edge(CHECKOUT, REDIS), 0.2), (edge(REPORT, NODE1), 0.01),
                  (edge(DEBUG, TOOLBOX), 0.001)]),
        (q["E"], [(edge(CHECKOUT, PAYMENTS), 25), (edge(CHECKOUT, REDIS), 20)]),
        (q["F"], [(edge(CHECKOUT, PAYMENTS), 12), (edge(CHECKOUT, REDIS), 10)]),
        (q["G"], [(edge(CHECKOUT, PAYMENTS), 937.5), (edge(CHECKOUT, REDIS), 875)]),
    ]
    assert promtool_test(tmp_path, checks) == ""


def test_the_table_has_the_recorded_figures(tmp_path: Path) -> None:
    """Those of the recording rules, per pair with its kinds (the rules keep the protocol apart)."""
    q = {ref: substitute(expr, ALL) for ref, expr in queries("Workload pairs").items()}
    checkout = ("shop", "Deployment", "checkout")
    to_service, to_pods = pair(checkout, ("pay", "Service", "payments")), pair(checkout, ("pay", "Deployment",
                                                                                           "payments"))
    to_redis = pair(checkout, ("shop", "StatefulSet", "redis"))
    checks: list[Check] = [
        (q["A"], [(to_service, 5632), (to_redis, 200), (pair(("ops", "CronJob", "report"), ("", "Node", "node-1")), 10),
                  (pair(("ops", "Pod", "debug"), ("ops", "Pod", "toolbox")), 1)]),
        (q["B"], [(to_service, 0.75)]),
        (q["C"], [(to_service, 20), (to_pods, 5), (to_redis, 20)]),
        (q["D"], [(to_service, 0.1), (to_pods, 0.2), (to_redis, 0.1)]),
        (q["E"], [(to_service, 0.9375), (to_pods, 0.46875), (to_redis, 0.875)]),
    ]
    assert promtool_test(tmp_path, checks) == ""


@pytest.mark.parametrize(("values", "edges"), [
    ({"namespace": "pay"}, [edge(CHECKOUT, PAYMENTS)]),
    ({"namespace": "shop"}, [edge(CHECKOUT, PAYMENTS), edge(CHECKOUT, REDIS)]),
    ({"workload_kind": "statefulset", "workload": "redis"}, [edge(CHECKOUT, REDIS)]),
    ({"workload_kind": "cronjob", "workload": "report"}, [edge(REPORT, NODE1)]),
])
def test_the_variables_select_pairs_by_either_end(tmp_path: Path, values: dict[str, str],
                                                  edges: list[dict[str, str]]) -> None:
    bytes_ = {edge(CHECKOUT, PAYMENTS)["id"]: 5.632, edge(CHECKOUT, REDIS)["id"]: 0.2,
              edge(REPORT, NODE1)["id"]: 0.01}
    expr = substitute(queries("Service map")["D"], {**ALL, **values})
    assert promtool_test(tmp_path, [(expr, [(e, bytes_[e["id"]]) for e in edges])]) == ""


def test_rules_and_dashboards_make_pairs_alike() -> None:
    """The chart's recording rules and dashboards/pairs.py relabel in the same steps, from the same labels."""
    records = [r["expr"] for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"] if "record" in r]
    assert records
    for expr in records:
        assert [line.strip() for line in expr.splitlines() if line.strip().startswith(', "')] == pairs.step_lines()
        assert f"sum by ({pairs.PAIR}" in expr and f"sum by ({pairs.SIDES}" in expr


def test_the_node_graph_gets_the_fields_it_reads() -> None:
    """A merge of the node queries and one of the edge queries, filtered by query; every value field
    copied under a role's name (the node graph finds fields by name); nodes carry id, title,
    subtitle, edges id, source, target (labels that become fields of those names)."""
    p = panel("Service map")
    refs = {t["refId"]: t["expr"] for t in p["targets"]}
    merges = [t for t in p["transformations"] if t["id"] == "merge"]
    filters = [re.fullmatch(r"/\^\(\?:([A-Z|]+)\)\$/", m["filter"]["options"]) for m in merges]
    node_refs, edge_refs = [f.group(1).split("|") for f in filters if f]
    assert len(merges) == 2 and sorted(node_refs + edge_refs) == sorted(refs)
    assert all("sum by (id, title, subtitle)" in refs[r] for r in node_refs)
    assert all("by (id, source, target)" in refs[r] for r in edge_refs)
    roles = {t["options"]["binary"]["left"].removeprefix("Value #"): t["options"]["alias"]
             for t in p["transformations"] if t["id"] == "calculateField"}
    assert set(roles) == set(refs)
    assert all(t["options"]["timeSeries"] is False for t in p["transformations"] if t["id"] == "calculateField")
    assert {roles[r] for r in node_refs} == {"mainstat", "secondarystat", "color"}
    assert {roles[r] for r in edge_refs} >= {"mainstat", "secondarystat"}
    assert all(roles[r].startswith("detail__") for r in edge_refs if roles[r] not in ("mainstat", "secondarystat"))
