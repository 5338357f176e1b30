"""Workload pairs in PromQL: which client workload talks to which server, from the client's own
series whose peer is in the cluster (the peer attributes of docs/metrics.md).

The client is the local pod's owner workload, else the pod; the server is the peer's owner workload,
else the Service the client asked for (a ClusterIP), else the pod, else the node. These are the
steps of the chart's recording rules (chart/templates/_record.tpl, "netobs.workloadPair.steps"),
which tests/ship/test_service_map.py compares with these; the dashboards compute the pairs from the
raw series rather than read the recorded ones, so that they work without the rules.
"""

from __future__ import annotations

from dashboards.panels import WORKLOAD_LABEL

# (kind, label) of the local side, the weakest first: a later one that is set wins.
CLIENT_KINDS = (("Pod", "k8s_pod_name"), ("ReplicaSet", "k8s_replicaset_name"), ("Job", "k8s_job_name"),
                ("DaemonSet", "k8s_daemonset_name"), ("StatefulSet", "k8s_statefulset_name"),
                ("CronJob", "k8s_cronjob_name"), ("Deployment", "k8s_deployment_name"))
SERVER_KINDS = (("Node", "netobs_peer_k8s_node_name"), ("Pod", "netobs_peer_k8s_pod_name"),
                ("Service", "netobs_peer_k8s_service_name"))
PAIR = ("cluster, client_namespace, client_workload_kind, client_workload, "
        "server_namespace, server_workload_kind, server_workload")
# The labels the pair is made from.
SIDES = ", ".join(["cluster", "k8s_namespace_name", *(label for _, label in CLIENT_KINDS),
                   "netobs_peer_k8s_namespace_name", *(label for _, label in SERVER_KINDS),
                   "netobs_peer_k8s_workload_kind", "netobs_peer_k8s_workload_name"])
# A pod's series whose peer is a pod, Service or node of the cluster.
PEERED = 'k8s_pod_name!="",netobs_peer_kind!=""'


def steps() -> list[tuple[str, str, str, str]]:
    """(destination, replacement, source, regex) of each label_replace, in the order applied."""
    out = [("client_namespace", "$1", "k8s_namespace_name", "(.*)")]
    for kind, label in CLIENT_KINDS:
        out += [("client_workload", "$1", label, "(.+)"), ("client_workload_kind", kind, label, ".+")]
    out.append(("server_namespace", "$1", "netobs_peer_k8s_namespace_name", "(.*)"))
    for kind, label in SERVER_KINDS:
        out += [("server_workload", "$1", label, "(.+)"), ("server_workload_kind", kind, label, ".+")]
    out += [("server_workload", "$1", "netobs_peer_k8s_workload_name", "(.+)"),
            ("server_workload_kind", "$1", "netobs_peer_k8s_workload_kind", "(.+)")]
    return out


def step_lines() -> list[str]:
    return [", " + ", ".join(f'"{part}"' for part in step) + ")" for step in steps()]


def pairs(inner: str, by: str = "") -> str:
    """`inner` (rates of a client's series with a peer) summed per pair of workloads, with the labels
    of PAIR and `by` (", le")."""
    lines = step_lines()
    return (f"sum by ({PAIR}{by}) (\n  {'label_replace(' * len(lines)}\n"
            f"    sum by ({SIDES}{by}) (\n      {inner}\n    )\n  " + "\n  ".join(lines) + "\n)")


def peered(metric: str, matchers: str, window: str) -> str:
    """Rates of a client's series with a peer, where the client or the server is in the dashboard's
    selection (namespace, workload): series of the selected clients, or of any client toward the
    selected servers (their owner workload; a Service has none)."""
    base = f'job=~"$job",cluster=~"$cluster",{PEERED}{matchers}'
    client = f'{base},k8s_namespace_name=~"$namespace",{WORKLOAD_LABEL}=~"$workload"'
    server = f'{base},netobs_peer_k8s_namespace_name=~"$namespace",netobs_peer_k8s_workload_name=~"$workload"'
    return f"rate({metric}{{{client}}}[{window}]) or rate({metric}{{{server}}}[{window}])"


def netflow(metric: str, window: str) -> str:
    """A netflow counter's rates from the client's side of its connections (outgoing flows)."""
    return peered(metric, ',netflow_direction="outgoing"', window)


def l7(suffix: str, window: str, matchers: str = "") -> str:
    """The client-side rates of every L7 instrument, each with `protocol`: http, the RPC system or
    the database system, as the recording rules name them."""
    return "\n      or\n      ".join([
        f'label_replace({peered("http_client_request_duration_seconds" + suffix, matchers, window)}, '
        '"protocol", "http", "protocol", "")',
        f'label_replace({peered("rpc_client_call_duration_seconds" + suffix, matchers, window)}, '
        '"protocol", "$1", "rpc_system", "(.*)")',
        f'label_replace({peered("db_client_operation_duration_seconds" + suffix, matchers, window)}, '
        '"protocol", "$1", "db_system_name", "(.*)")',
    ])


def bytes_(window: str) -> str:
    """Bytes per second between each pair, both ways, as the client counted them."""
    return pairs(netflow("netflow_bytes_total", window))


def connections(window: str) -> str:
    return pairs(netflow("netflow_tcp_established_total", window))


def requests(window: str) -> str:
    """HTTP requests, gRPC calls and database operations per second, all protocols together."""
    return pairs(l7("_count", window))


def errors(window: str) -> str:
    return pairs(l7("_count", window, ',error_type!=""'))


def error_ratio(window: str) -> str:
    """Share of the requests with an `error_type`: 0, not nothing, where there are none."""
    return f"({errors(window)} or {requests(window)} * 0)\n/\n{requests(window)}"


def p95(window: str) -> str:
    """The p95 of each pair's requests, of its slowest protocol (each has its own buckets)."""
    return (f"max by ({PAIR}) (histogram_quantile(0.95,\n"
            f"{pairs(l7('_bucket', window), ', protocol, le')}\n))")
