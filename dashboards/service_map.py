"""The service map: who talks to whom, as Grafana's node graph, a table of pairs and their rates over
time, all from the client's series with peer attributes (dashboards/pairs.py).

Grafana's node graph reads two data frames: nodes (fields id, title, subtitle, mainstat,
secondarystat, color, detail__*) and edges (id, source, target, mainstat, secondarystat, detail__*),
told apart by the edges' `source` field, and draws only the first of each. It finds fields by their
name, while the organize transformation only changes what a field displays as. So: instant queries
in table format, whose labels (id, title, source...) become fields of those names; one merge of
the node queries and one of the edge queries (each transformation filtered by query); then each
value field ("Value #A"...) copied under a role's name by "Add field from calculation" (times 1, with
the role as its alias: the new field's name).
"""

from __future__ import annotations

from dashboards import pairs
from dashboards.panels import (
    DATASOURCE,
    NEUTRAL,
    RATE,
    Json,
    dashboard,
    row,
    stat,
    target,
    thresholds,
    timeseries,
    workload_variables,
)

# The map's rates are averages over the dashboard's time range.
RANGE = "$__range"
PAIR_LEGEND = "{{client_namespace}}/{{client_workload}} → {{server_namespace}}/{{server_workload}}"
ERROR_COLORS = thresholds("green", (0.01, "orange"), (0.05, "red"))


def node_labels(expr: str, side: str) -> str:
    """A node per name in a namespace (a Service and the workload of the same name are one node):
    id, title (the name) and subtitle (the namespace, or "node")."""
    return (f'label_replace(label_replace(label_replace(label_join(\n{expr},\n'
            f'"id", "/", "cluster", "{side}_namespace", "{side}_workload"), '
            f'"title", "$1", "{side}_workload", "(.*)"), "subtitle", "$1", "{side}_namespace", "(.*)"), '
            f'"subtitle", "node", "{side}_workload_kind", "Node")')


def nodes(expr: str) -> str:
    """Both ends of every pair of `expr`, added up per node."""
    return f"sum by (id, title, subtitle) (\n{node_labels(expr, 'client')}\nor\n{node_labels(expr, 'server')}\n)"


def served(expr: str) -> str:
    """`expr` per server node."""
    return f"sum by (id, title, subtitle) (\n{node_labels(expr, 'server')}\n)"


def edge_labels(expr: str) -> str:
    return (f'label_join(label_join(label_join(\n{expr},\n'
            '"source", "/", "cluster", "client_namespace", "client_workload"), '
            '"target", "/", "cluster", "server_namespace", "server_workload"), "id", " -> ", "source", "target")')


def edges(expr: str, how: str = "sum") -> str:
    return f"{how} by (id, source, target) (\n{edge_labels(expr)}\n)"


def node_graph() -> Json:
    traffic, requests, errors = pairs.bytes_(RANGE), pairs.requests(RANGE), pairs.errors(RANGE)
    known = f"{traffic} or {requests} * 0"  # every pair: a node of an edge must be a node
    served_ratio = f"({served(errors)} or {served(requests)} * 0) / {served(requests)}"
    latency = f"histogram_quantile(0.95, {pairs.pairs(pairs.l7('_bucket', RANGE), ', protocol, le')})"
    targets = [
        target(f"{nodes(known)} / 1000", instant=True),  # A: node secondarystat, kB/s
        target(served(requests), instant=True),  # B: node mainstat
        target(served_ratio, instant=True),  # C: node color
        target(f"{edges(traffic)} / 1000", instant=True),  # D: edge mainstat, kB/s
        target(edges(requests), instant=True),  # E: edge secondarystat
        target(f"round(100 * ({edges(errors)} or {edges(requests)} * 0) / {edges(requests)}, 0.01)",
               instant=True),  # F
        target(f"round(1000 * {edges(latency, 'max')}, 0.1)", instant=True),  # G
    ]
    roles = {"A": "secondarystat", "B": "mainstat", "C": "color", "D": "mainstat", "E": "secondarystat",
             "F": "detail__error_percent", "G": "detail__p95_ms"}
    named = [{"id": "calculateField", "options": {
        "mode": "binary", "binary": {"left": f"Value #{ref}", "operator": "*", "right": "1"},
        "alias": role, "replaceFields": False, "timeSeries": False}} for ref, role in roles.items()]
    return {
        "type": "nodeGraph", "title": "Service map", "datasource": DATASOURCE,
        "description": "Workloads (nodes) and who calls whom (arrows from client to server), averaged over the "
                       "dashboard's time range, from the clients' own series: netflow's outgoing flows and the "
                       "HTTP, gRPC and database client series whose peer is a pod, Service or node of the "
                       "cluster (Kubernetes.Peers.Enabled). A node is a name in a namespace: a Service and the "
                       "workload of the same name are one node; a client that reaches a Service through its "
                       "ClusterIP names the Service, one that connects to pods names their workload. Inside a "
                       "node: requests per second it served, then kB/s it exchanged; its circle turns orange when "
                       "1 % of the requests it served failed, red from 5 %. On an edge: "
                       "kB/s both ways and requests per second; click it for the error percentage and the p95 "
                       "in ms. Clients the exporter does not see (host processes, other clusters) are not "
                       "drawn.",
        "fieldConfig": {"defaults": {}, "overrides": [
            {"matcher": {"id": "byName", "options": "color"},
             "properties": [{"id": "color", "value": {"mode": "thresholds"}},
                            {"id": "thresholds", "value": thresholds("text", (0.01, "orange"), (0.05, "red"))}]},
            {"matcher": {"id": "byName", "options": "detail__error_percent"},
             "properties": [{"id": "displayName", "value": "Errors (%)"}]},
            {"matcher": {"id": "byName", "options": "detail__p95_ms"},
             "properties": [{"id": "displayName", "value": "p95 (ms)"}]},
        ]},
        "options": {"nodes": {"mainStatUnit": "req/s", "secondaryStatUnit": "kB/s"},
                    "edges": {"mainStatUnit": "kB/s", "secondaryStatUnit": "req/s"}},
        "targets": targets,
        "transformations": [
            {"id": "merge", "options": {}, "filter": {"id": "byRefId", "options": "/^(?:A|B|C)$/"}},
            {"id": "merge", "options": {}, "filter": {"id": "byRefId", "options": "/^(?:D|E|F|G)$/"}},
            *named,
        ],
        "_width": 24, "_height": 16,
    }


def pairs_table() -> Json:
    columns = {"Value #A": ("Bytes/s", "Bps"), "Value #B": ("Connections/s", "cps"),
               "Value #C": ("Requests/s", "reqps"), "Value #D": ("Error ratio", "percentunit"),
               "Value #E": ("p95", "s")}
    labels = {"client_namespace": "Client namespace", "client_workload_kind": "Client kind",
              "client_workload": "Client", "server_namespace": "Server namespace",
              "server_workload_kind": "Server kind", "server_workload": "Server"}
    return {
        "type": "table", "title": "Workload pairs", "datasource": DATASOURCE,
        "description": "Every pair of the map with its kinds, averaged over the time range: bytes per second "
                       "both ways and TCP connections opened per second (netflow, as the client counted them), "
                       "requests per second of every L7 protocol, the share of them with an error_type (a 4xx "
                       "or 5xx status, a gRPC status other than OK, a database error, no response) and their "
                       "p95 (of the slowest protocol of the pair). The server's kind is Service when the "
                       "client went through a ClusterIP. The recording rules workload_pair:* "
                       "(docs/alerts.md) hold the same figures per pair and protocol.",
        "fieldConfig": {"defaults": {"unit": "short"}, "overrides": [
            {"matcher": {"id": "byName", "options": name}, "properties": [{"id": "unit", "value": unit}]}
            for name, unit in columns.values()]},
        "options": {"showHeader": True, "sortBy": [{"displayName": "Bytes/s", "desc": True}]},
        "targets": [target(expr, instant=True) for expr in (
            pairs.bytes_(RANGE), pairs.connections(RANGE), pairs.requests(RANGE), pairs.error_ratio(RANGE),
            pairs.p95(RANGE))],
        "transformations": [
            {"id": "merge", "options": {}},
            {"id": "organize", "options": {
                "excludeByName": {"Time": True, "cluster": True},
                "indexByName": {name: i for i, name in enumerate([*labels, *columns])},
                "renameByName": {**labels, **{value: name for value, (name, _) in columns.items()}}}},
        ],
        "_width": 24, "_height": 10,
    }


def service_map() -> Json:
    everything, failed = pairs.l7("_count", RATE), pairs.l7("_count", RATE, ',error_type!=""')
    stats = [
        stat("Pairs with traffic", "short", target(f"count({pairs.bytes_(RATE)} or {pairs.requests(RATE)})"),
             colors=NEUTRAL,
             description="Pairs of workloads (client → server) with traffic in the last rate interval: the "
                         "edges of the map. A count to compare over time."),
        stat("Traffic between workloads", "Bps", target(f"sum({pairs.netflow('netflow_bytes_total', RATE)})"),
             colors=NEUTRAL,
             description="Bytes per second, both ways, on the connections that clients in pods opened to pods, "
                         "Services and nodes of the cluster (netflow's outgoing flows with a peer). Neither good "
                         "nor bad by itself."),
        stat("Requests between workloads", "reqps", target(f"sum({everything})"), colors=NEUTRAL,
             description="HTTP requests, gRPC calls and database operations per second that clients in pods "
                         "sent to pods, Services and nodes of the cluster."),
        stat("Error ratio between workloads", "percentunit", target(
            f"(sum({failed}) or sum({everything}) * 0)\n/\n"
            f"sum({everything})"),
            colors=ERROR_COLORS,
            description="Share of those requests with an error_type, as the clients saw them: a 4xx or 5xx "
                        "status, a gRPC status other than OK, a database error, or no response. Orange from "
                        "1 %, red from 5 %; the map's red nodes and the table say where."),
    ]
    for panel in stats:
        panel["_height"] = 4
    panels = [
        row("Map"),
        *stats,
        node_graph(),
        pairs_table(),
        row("Pairs over time"),
        timeseries("Requests by pair", "reqps", target(pairs.requests(RATE), PAIR_LEGEND),
                   description="Requests per second of every L7 protocol from each client workload to each "
                               "server, over time: the map's edges, with their history."),
        timeseries("Error ratio by pair", "percentunit", target(pairs.error_ratio(RATE), PAIR_LEGEND),
                   description="Share of each pair's requests with an error_type. Unlike a server's own error "
                               "ratio, 4xx and every gRPC status but OK count: the client's view. Normally near 0."),
        timeseries("p95 by pair", "s", target(pairs.p95(RATE), PAIR_LEGEND),
                   description="p95 of each pair's requests as the client timed them (the server's time plus "
                               "the network), of the pair's slowest protocol."),
        timeseries("Bytes by pair", "Bps", target(pairs.bytes_(RATE), PAIR_LEGEND),
                   description="Bytes per second on each pair's connections, both ways, as the client counted "
                               "them (netflow's outgoing flows)."),
    ]
    return dashboard("netobs-service-map", "netobs / Service map",
                     "Who talks to whom in the cluster: workloads and the pairs between them, from the peer "
                     "attributes of the clients' series (Kubernetes.Peers.Enabled).",
                     [v for v in workload_variables() if v["name"] != "pod"], panels)
