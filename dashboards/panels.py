"""The panels, variables and layout every dashboard is built from (dashboards/generate.py lists the
dashboards). Metric and label names are those of docs/metrics.md; the Kubernetes labels (k8s_*) are
absent on a plain host, which every matcher allows (the "All" value is `.*`).
"""

from __future__ import annotations

from typing import Any

Json = dict[str, Any]

DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
# Grafana's built-in annotation query: annotations made on the dashboard and the state changes of
# Grafana-managed alerts, drawn on every time series.
ALERT_ANNOTATIONS = {"name": "Annotations & Alerts", "builtIn": 1, "type": "dashboard",
                     "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                     "enable": True, "hide": True, "iconColor": "rgba(0, 211, 255, 1)"}
RATE = "$__rate_interval"
# The label selectors every workload query starts with.
WORKLOAD = ('job=~"$job",cluster=~"$cluster",k8s_namespace_name=~"$namespace",'
            'k8s_${workload_kind}_name=~"$workload",k8s_pod_name=~"$pod"')
NODE = 'job=~"$job",cluster=~"$cluster",instance=~"$instance"'
WORKLOAD_LABEL = "k8s_${workload_kind}_name"


def target(expr: str, legend: str = "", *, instant: bool = False) -> Json:
    t: Json = {"datasource": DATASOURCE, "expr": expr, "legendFormat": legend or "__auto"}
    if instant:
        t.update(instant=True, range=False, format="table")
    return t


def timeseries(title: str, unit: str, *targets: Json, description: str, width: int = 12,
               stack: bool = False) -> Json:
    custom: Json = {"fillOpacity": 10, "showPoints": "never"}
    if stack:
        custom["stacking"] = {"mode": "normal", "group": "A"}
    return {
        "type": "timeseries", "title": title, "description": description, "datasource": DATASOURCE,
        "fieldConfig": {"defaults": {"unit": unit, "custom": custom}, "overrides": []},
        "options": {"legend": {"displayMode": "table", "placement": "right", "showLegend": True,
                               "calcs": ["mean", "max"]},
                    "tooltip": {"mode": "multi", "sort": "desc"}},
        "targets": list(targets), "_width": width,
    }


def thresholds(base: str, *steps: tuple[float, str]) -> Json:
    """`base` below the first step, then each (value, color) from its value up."""
    return {"mode": "absolute", "steps": [{"color": base, "value": None},
                                          *({"color": color, "value": value} for value, color in steps)]}


# A stat whose value is neither good nor bad.
NEUTRAL = thresholds("text")


def stat(title: str, unit: str, *targets: Json, description: str, colors: Json, width: int = 6,
         overrides: list[Json] | None = None) -> Json:
    """`colors` are explicit: Grafana's default (red from 80) would judge every stat."""
    return {
        "type": "stat", "title": title, "description": description, "datasource": DATASOURCE,
        "fieldConfig": {"defaults": {"unit": unit, "thresholds": colors, "color": {"mode": "thresholds"}},
                        "overrides": overrides or []},
        "options": {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                    "colorMode": "value", "graphMode": "area", "textMode": "auto"},
        "targets": list(targets), "_width": width,
    }


def table(title: str, unit: str, expr: str, *, description: str, width: int = 12) -> Json:
    return {
        "type": "table", "title": title, "description": description, "datasource": DATASOURCE,
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {"showHeader": True, "sortBy": [{"displayName": "Value", "desc": True}]},
        "targets": [target(expr, instant=True)],
        "transformations": [{"id": "organize", "options": {"excludeByName": {"Time": True}}}],
        "_width": width,
    }


def row(title: str) -> Json:
    return {"type": "row", "title": title, "collapsed": False, "panels": []}


def rate(metric: str, selector: str, window: str = RATE) -> str:
    return f"rate({metric}{{{selector}}}[{window}])"


def sum_rate(by: str, metric: str, selector: str) -> str:
    return f"sum by ({by}) ({rate(metric, selector)})"


def ratio(by: str, metric: str, selector: str, part: str) -> str:
    """Share of `part` (extra matchers) in the rate of `metric`: 0, not nothing, when there is none."""
    whole = sum_rate(by, metric, selector)
    return f"({sum_rate(by, metric, f'{selector},{part}')} or {whole} * 0) / {whole}"


def quantiles(metric: str, selector: str, by: str = "", qs: tuple[float, ...] = (0.5, 0.9, 0.99)) -> list[Json]:
    labels = f"{by}, le" if by else "le"
    prefix = "".join(f"{{{{{label.strip()}}}}} " for label in by.split(",")) if by else ""
    return [target(f"histogram_quantile({q}, sum by ({labels}) ({rate(metric + '_bucket', selector)}))",
                   f"{prefix}p{round(q * 100)}") for q in qs]


# ---- variables -------------------------------------------------------------------------------

def datasource_variable() -> Json:
    return {"name": "datasource", "label": "Data source", "type": "datasource", "query": "prometheus",
            "hide": 0, "refresh": 1, "regex": "", "options": []}


def query_variable(name: str, label: str, query: str, *, all_: bool = True, multi: bool = True) -> Json:
    v: Json = {"name": name, "label": label, "type": "query", "datasource": DATASOURCE,
               "query": {"query": query, "refId": f"{name}-query"},
               "refresh": 2, "sort": 1, "hide": 0, "regex": "", "options": [],
               "includeAll": all_, "multi": multi}
    if all_:
        v["allValue"] = ".*"
    return v


def custom_variable(name: str, label: str, values: list[str]) -> Json:
    return {"name": name, "label": label, "type": "custom", "query": ",".join(values),
            "current": {"text": values[0], "value": values[0]}, "hide": 0, "includeAll": False, "multi": False,
            "options": [{"text": v, "value": v, "selected": i == 0} for i, v in enumerate(values)]}


def job_and_cluster() -> list[Json]:
    return [
        datasource_variable(),
        query_variable("job", "Job", "label_values(netobs_series_limit, job)", all_=False, multi=False),
        query_variable("cluster", "Cluster", 'label_values(netobs_series_limit{job=~"$job"}, cluster)'),
    ]


def workload_variables() -> list[Json]:
    base = 'job=~"$job",cluster=~"$cluster"'
    return [
        *job_and_cluster(),
        query_variable("namespace", "Namespace", f"label_values(netflow_bytes_total{{{base}}}, k8s_namespace_name)"),
        custom_variable("workload_kind", "Workload kind", ["deployment", "statefulset", "daemonset", "job", "cronjob"]),
        query_variable("workload", "Workload", f'label_values(netflow_bytes_total{{{base},'
                       f'k8s_namespace_name=~"$namespace"}}, {WORKLOAD_LABEL})'),
        query_variable("pod", "Pod", f'label_values(netflow_bytes_total{{{base},k8s_namespace_name=~"$namespace",'
                       f'{WORKLOAD_LABEL}=~"$workload"}}, k8s_pod_name)'),
    ]


# ---- layout ----------------------------------------------------------------------------------

def dashboard(uid: str, title: str, description: str, variables: list[Json], panels: list[Json]) -> Json:
    """Panels are laid out left to right, 8 high unless they say otherwise (`_height`); a line is as
    high as its highest panel; a row starts a new line."""
    x = y = line = 0
    for i, panel in enumerate(panels, start=1):
        panel["id"] = i
        if panel["type"] == "row":
            y += 0 if x == 0 else line
            x = line = 0
            panel["gridPos"] = {"x": 0, "y": y, "w": 24, "h": 1}
            y += 1
            continue
        width, height = panel.pop("_width"), panel.pop("_height", 8)
        if x + width > 24:
            x, y, line = 0, y + line, 0
        panel["gridPos"] = {"x": x, "y": y, "w": width, "h": height}
        for j, t in enumerate(panel["targets"]):
            t["refId"] = chr(ord("A") + j)
        x, line = x + width, max(line, height)
    return {
        "uid": uid, "title": title, "description": description, "tags": ["netobs", "ebpf", "network"],
        "editable": True, "graphTooltip": 1, "schemaVersion": 39, "version": 1, "refresh": "30s",
        "time": {"from": "now-1h", "to": "now"}, "timezone": "browser", "fiscalYearStartMonth": 0,
        "links": [{"title": "netobs dashboards", "type": "dashboards", "tags": ["netobs"], "asDropdown": True,
                   "includeVars": True, "keepTime": True, "icon": "external link", "targetBlank": False,
                   "tooltip": "", "url": ""}],
        "annotations": {"list": [ALERT_ANNOTATIONS]},
        "templating": {"list": variables}, "panels": panels,
    }
