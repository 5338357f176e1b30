"""The Grafana dashboards, written as Python so that every panel is built the same way.

`make ship-files` writes dashboards/<name>.json (and the chart's copies) from this file; the tests
check them against Grafana's schema, parse every PromQL expression, and run every query against a
real Prometheus. Metric and label names are those of docs/metrics.md; the Kubernetes labels
(k8s_*) are absent on a plain host, which every matcher allows (the "All" value is `.*`).
"""

from __future__ import annotations

import json
from typing import Any

Json = dict[str, Any]

DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
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


def timeseries(title: str, unit: str, *targets: Json, description: str = "", width: int = 12,
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


def stat(title: str, unit: str, *targets: Json, description: str = "", width: int = 6) -> Json:
    return {
        "type": "stat", "title": title, "description": description, "datasource": DATASOURCE,
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                    "colorMode": "value", "graphMode": "area", "textMode": "auto"},
        "targets": list(targets), "_width": width,
    }


def table(title: str, unit: str, expr: str, description: str = "", width: int = 12) -> Json:
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
    """Panels are laid out left to right, 8 high; a row starts a new line."""
    x = y = 0
    for i, panel in enumerate(panels, start=1):
        panel["id"] = i
        if panel["type"] == "row":
            y += 0 if x == 0 else 8
            x = 0
            panel["gridPos"] = {"x": 0, "y": y, "w": 24, "h": 1}
            y += 1
            continue
        width = panel.pop("_width")
        if x + width > 24:
            x, y = 0, y + 8
        panel["gridPos"] = {"x": x, "y": y, "w": width, "h": 8}
        for j, t in enumerate(panel["targets"]):
            t["refId"] = chr(ord("A") + j)
        x += width
    return {
        "uid": uid, "title": title, "description": description, "tags": ["netobs", "ebpf", "network"],
        "editable": True, "graphTooltip": 1, "schemaVersion": 39, "version": 1, "refresh": "30s",
        "time": {"from": "now-1h", "to": "now"}, "timezone": "browser", "fiscalYearStartMonth": 0,
        "links": [{"title": "netobs dashboards", "type": "dashboards", "tags": ["netobs"], "asDropdown": True,
                   "includeVars": True, "keepTime": True, "icon": "external link", "targetBlank": False,
                   "tooltip": "", "url": ""}],
        "annotations": {"list": []},
        "templating": {"list": variables}, "panels": panels,
    }


# ---- the dashboards --------------------------------------------------------------------------

def network() -> Json:
    w = WORKLOAD
    tcp_sent = f'{w},network_transport="tcp",network_io_direction="transmit"'
    outgoing = f'{w},netflow_direction="outgoing"'
    by_workload = f"k8s_namespace_name, {WORKLOAD_LABEL}, process_executable_name"
    workload_legend = f"{{{{k8s_namespace_name}}}}/{{{{{WORKLOAD_LABEL}}}}} {{{{process_executable_name}}}}"
    panels = [
        row("Traffic"),
        timeseries("Sent by namespace", "Bps", target(sum_rate("k8s_namespace_name", "netflow_bytes_total",
                   f'{w},network_io_direction="transmit"'), "{{k8s_namespace_name}}"), stack=True,
                   description="Payload bytes written to sockets, per second (no headers)."),
        timeseries("Received by namespace", "Bps", target(sum_rate("k8s_namespace_name", "netflow_bytes_total",
                   f'{w},network_io_direction="receive"'), "{{k8s_namespace_name}}"), stack=True,
                   description="Payload bytes read from sockets, per second."),
        timeseries("Traffic by workload", "Bps", target(sum_rate(by_workload, "netflow_bytes_total", w),
                   workload_legend), description="Bytes sent and received, per workload and process."),
        table("Top destinations", "bytes", f"topk(20, sum by (destination_address, destination_domain, "
              f"destination_port) (increase(netflow_bytes_total{{{w}}}[$__range])))",
              description="Bytes exchanged with each remote endpoint over the dashboard's time range."),
        row("TCP health"),
        timeseries("Retransmit ratio", "percentunit", target(
            f"sum by ({by_workload}) ({rate('netflow_tcp_retransmits_total', w)}) / "
            f"sum by ({by_workload}) ({rate('netflow_packets_total', tcp_sent)})", workload_legend),
            description="Retransmitted TCP segments as a share of segments sent."),
        timeseries("RTT percentiles", "s", *quantiles("netflow_tcp_rtt_seconds", w),
                   description="Smoothed round-trip time of active connections, from the RTT histogram."),
        timeseries("RTT by destination (worst connection)", "s", target(
            f"max by (destination_address) (netflow_tcp_srtt_seconds{{{w}}})", "{{destination_address}}"),
            description="The largest smoothed RTT among the flows to each remote address (the RTT histogram is "
                        "per workload by default: Netflow.RttHistogram)."),
        timeseries("Retransmits by destination", "cps", target(sum_rate(
            "destination_address", "netflow_tcp_retransmits_total", w), "{{destination_address}}"),
            description="Retransmitted segments per second per remote address."),
        row("Connections"),
        timeseries("Connections opened and closed", "cps",
                   target(sum_rate("netflow_direction", "netflow_tcp_established_total", w),
                          "opened {{netflow_direction}}"),
                   target(sum_rate("netflow_direction", "netflow_tcp_closed_total", w),
                          "closed {{netflow_direction}}"),
                   description="TCP connections established (connected or accepted) and closed per second."),
        timeseries("Connection failures by reason", "cps", target(sum_rate(
            "error_type, destination_address, destination_port", "netflow_tcp_failed_total", w),
            "{{error_type}} {{destination_address}}:{{destination_port}}"),
            description="Outgoing connection attempts that failed, by errno (ECONNREFUSED, ETIMEDOUT...)."),
        timeseries("Active connections", "short", target(f"sum by ({by_workload}) (netflow_tcp_active{{{w}}})",
                   workload_legend), description="TCP connections open now."),
        stat("Active connections (total)", "short", target(f"sum(netflow_tcp_active{{{w}}})")),
        stat("Connection failure ratio", "percentunit", target(
            f"sum({rate('netflow_tcp_failed_total', w)}) / (sum({rate('netflow_tcp_failed_total', w)}) + "
            f"sum({rate('netflow_tcp_established_total', outgoing)}))")),
    ]
    return dashboard("netobs-network", "netobs / Network overview",
                     "Traffic, TCP health and connections per namespace, workload and destination.",
                     workload_variables(), panels)


def dns() -> Json:
    w = f'{WORKLOAD},dnsflow_direction=~"$direction"'
    answered = f'{w},dns_response_code!="TIMEOUT"'
    panels = [
        row("Lookups"),
        timeseries("Lookups by response code", "reqps", target(
            sum_rate("dns_response_code", "dns_lookups_total", w), "{{dns_response_code}}"), stack=True),
        timeseries("Lookups by process", "reqps", target(
            sum_rate("k8s_namespace_name, process_executable_name", "dns_lookups_total", w),
            "{{k8s_namespace_name}} {{process_executable_name}}")),
        table("Top names", "short", f"topk(20, sum by (dns_question_name, dns_question_type) "
              f"(increase(dns_lookups_total{{{w}}}[$__range])))",
              description="The names looked up most over the time range."),
        table("Top NXDOMAIN names", "short", f"topk(20, sum by (dns_question_name, process_executable_name) "
              f"(increase(dns_lookups_total{{{w},dns_response_code=\"NXDOMAIN\"}}[$__range])))",
              description="Names that do not exist; search-path expansions (ndots) show up here."),
        row("Latency"),
        timeseries("Latency percentiles", "s", *quantiles("dns_lookup_duration_seconds", answered),
                   description="Time from query to answer, timeouts left out."),
        timeseries("Latency p99 by server", "s", *quantiles("dns_lookup_duration_seconds", answered,
                   "server_address", (0.99,))),
        row("Errors"),
        timeseries("NXDOMAIN ratio", "percentunit", target(ratio(
            "k8s_namespace_name", "dns_lookups_total", w, 'dns_response_code="NXDOMAIN"'), "{{k8s_namespace_name}}")),
        timeseries("Error ratio (SERVFAIL, REFUSED...)", "percentunit", target(ratio(
            "k8s_namespace_name", "dns_lookups_total", w, 'dns_response_code!~"NOERROR|NXDOMAIN|TIMEOUT"'),
            "{{k8s_namespace_name}}")),
        timeseries("Timeouts", "reqps", target(sum_rate(
            "server_address, process_executable_name", "dns_lookups_total", f'{w},dns_response_code="TIMEOUT"'),
            "{{process_executable_name}} → {{server_address}}"),
            description="Queries that got no answer within Dns.Timeout."),
    ]
    variables = [*workload_variables(), custom_variable("direction", "Side", ["outgoing", "incoming"])]
    return dashboard("netobs-dns", "netobs / DNS",
                     "DNS lookups seen in the kernel: rate by response code, latency, top names, NXDOMAIN and "
                     "timeouts. Side: outgoing = the processes that ask, incoming = local DNS servers.",
                     variables, panels)


def red_rows(title: str, metric: str, by: str, legend: str, unit: str, selector: str) -> list[Json]:
    """Rate, errors and duration of one histogram of operations (HTTP requests, database operations)."""
    count = f"{metric}_count"
    return [
        row(title),
        timeseries(f"{title}: rate", unit, target(sum_rate(by, count, selector), legend), width=8),
        timeseries(f"{title}: error ratio", "percentunit",
                   target(ratio(by, count, selector, 'error_type!=""'), legend), width=8),
        timeseries(f"{title}: duration", "s", *quantiles(metric, selector), width=8),
    ]


def l7() -> Json:
    w = WORKLOAD
    db = f'{w},db_system_name=~"$db_system"'
    panels = [
        *red_rows("HTTP server", "http_server_request_duration_seconds", "process_executable_name, server_port",
                  "{{process_executable_name}} :{{server_port}}", "reqps", w),
        table("HTTP server: requests by route and status", "short",
              "topk(20, sum by (process_executable_name, http_request_method, http_route, http_response_status_code) "
              f"(increase(http_server_request_duration_seconds_count{{{w}}}[$__range])))", width=24),
        *red_rows("HTTP client", "http_client_request_duration_seconds", "server_address, server_port",
                  "{{server_address}}:{{server_port}}", "reqps", w),
        *red_rows("Database client", "db_client_operation_duration_seconds", "db_system_name, db_operation_name",
                  "{{db_system_name}} {{db_operation_name}}", "ops", db),
        table("Database client: errors by type", "short", "sum by (db_system_name, server_address, error_type) "
              f"(increase(db_client_operation_duration_seconds_count{{{db},error_type!=\"\"}}[$__range]))", width=24),
        *red_rows("Database server", "db_server_operation_duration_seconds", "db_system_name, db_operation_name",
                  "{{db_system_name}} {{db_operation_name}}", "ops", db),
    ]
    systems = 'label_values(db_client_operation_duration_seconds_count{job=~"$job"}, db_system_name)'
    variables = [*workload_variables(), query_variable("db_system", "Database", systems)]
    return dashboard("netobs-l7", "netobs / L7 RED",
                     "Rate, errors and duration of HTTP requests and database operations, client and server side.",
                     variables, panels)


def health() -> Json:
    n = NODE
    panels = [
        row("Exporters"),
        stat("Exporters up", "short", target('sum(up{job=~"$job",instance=~"$instance"})')),
        stat("Programs not attached", "short", target(f"count(netobs_program_attached{{{n}}} == 0) or vector(0)")),
        stat("Series limit", "short", target(f"max(netobs_series_limit{{{n}}})")),
        stat("Scrape duration", "s", target(f"max(scrape_duration_seconds{{{n}}})")),
        table("Programs", "short", f"netobs_program_attached{{{n}}}",
              description="1 = attached, 0 = not attached (the exporter's log says why)."),
        timeseries("Collection duration", "s", target(f"max by (instance, collector) "
                   f"(netobs_collector_duration_seconds{{{n}}})", "{{instance}} {{collector}}"),
                   description="How long each collector's last read of its kernel tables took."),
        row("Losses and series"),
        timeseries("Events lost", "cps", target(sum_rate("instance, collector, reason", "netobs_events_lost_total", n),
                   "{{instance}} {{collector}} {{reason}}"),
                   description="Updates the kernel side could not record (docs/metrics.md lists the reasons)."),
        timeseries("Series per instrument", "short", target(f"max by (instrument) (netobs_series{{{n}}})",
                   "{{instrument}}"), target(f"max(netobs_series_limit{{{n}}})", "limit")),
        timeseries("Series dropped", "cps", target(sum_rate("instance, instrument", "netobs_series_dropped_total", n),
                   "{{instance}} {{instrument}}"), description="Series left out at the limit, per collection."),
        timeseries("Collector success", "short", target(f"min by (collector) (netobs_collector_success{{{n}}})",
                   "{{collector}}")),
    ]
    variables = [*job_and_cluster(), query_variable(
        "instance", "Instance", 'label_values(netobs_series_limit{job=~"$job",cluster=~"$cluster"}, instance)')]
    return dashboard("netobs-health", "netobs / Exporter health",
                     "Programs attached, collection duration, lost events and series of every exporter.",
                     variables, panels)


DASHBOARDS = {"netobs-network": network, "netobs-dns": dns, "netobs-l7": l7, "netobs-health": health}


def dashboard_json(name: str) -> str:
    return json.dumps(DASHBOARDS[name](), indent=2, ensure_ascii=False) + "\n"


def panel_targets(board: Json) -> list[tuple[str, str]]:
    """(panel title, expression) of every query of a dashboard, rows left out."""
    return [(p["title"], t["expr"]) for p in board["panels"] if p["type"] != "row" for t in p["targets"]]
