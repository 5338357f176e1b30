{{/*
One recording rule per workload pair, seen from the client: `inner` (a rate of the client's own
series, whose peer is in the cluster) summed by the local workload labels and the peer labels, then
renamed into the pair's labels by "netobs.workloadPair.steps", then summed by the pair. `by` adds
labels kept on both sums (", le"). In `record` and `inner`: $SEL, and $SEL alone, $RANGE, $CLUSTER
and $PEERED (the matchers of a pod's series with a peer), as in "netobs.rule".
*/}}
{{- define "netobs.record" -}}
{{- $p := .root.Values.prometheusRule }}
{{- $s := $p.selector | default "" }}
{{- $cluster := $p.clusterLabel | default "cluster" }}
{{- $steps := include "netobs.workloadPair.steps" . }}
{{- $pair := "client_namespace, client_workload_kind, client_workload, server_namespace, server_workload_kind, server_workload" }}
{{- $sides := "k8s_namespace_name, k8s_pod_name, k8s_replicaset_name, k8s_job_name, k8s_daemonset_name, k8s_statefulset_name, k8s_cronjob_name, k8s_deployment_name, netobs_peer_k8s_namespace_name, netobs_peer_k8s_node_name, netobs_peer_k8s_pod_name, netobs_peer_k8s_service_name, netobs_peer_k8s_workload_kind, netobs_peer_k8s_workload_name" }}
{{- $by := .by | default "" }}
{{- $expr := printf "sum by ($CLUSTER, %s%s) (\n  %s\n    sum by ($CLUSTER, %s%s) (%s\n    )%s\n)"
    $pair $by
    (repeat (len (splitList "\n" $steps)) "label_replace(")
    $sides $by (.inner | nindent 6)
    ($steps | nindent 2) }}
{{- $expr = $expr
    | replace "$PEERED" `k8s_pod_name!="",netobs_peer_kind!=""`
    | replace "$SEL," (ternary (printf "%s," $s) "" (ne $s ""))
    | replace "$SEL" $s
    | replace "$CLUSTER" $cluster }}
- record: {{ .record | replace "$RANGE" $p.rateInterval }}
  expr: |-
    {{- $expr | replace "$RANGE" $p.rateInterval | nindent 4 }}
{{- end }}

{{/*
How a series names its pair, each step a label_replace over the one before it, so that a later step
wins: the client is the local pod's owner workload (Deployment before CronJob, StatefulSet,
DaemonSet, Job, ReplicaSet, as the peers name theirs), else the pod; the server is the peer's owner
workload, else the Service the client asked for, else the pod, else the node. dashboards/pairs.py
writes the same steps for the dashboards' queries (tests/ship/test_service_map.py compares them).
*/}}
{{- define "netobs.workloadPair.steps" -}}
, "client_namespace", "$1", "k8s_namespace_name", "(.*)")
, "client_workload", "$1", "k8s_pod_name", "(.+)")
, "client_workload_kind", "Pod", "k8s_pod_name", ".+")
, "client_workload", "$1", "k8s_replicaset_name", "(.+)")
, "client_workload_kind", "ReplicaSet", "k8s_replicaset_name", ".+")
, "client_workload", "$1", "k8s_job_name", "(.+)")
, "client_workload_kind", "Job", "k8s_job_name", ".+")
, "client_workload", "$1", "k8s_daemonset_name", "(.+)")
, "client_workload_kind", "DaemonSet", "k8s_daemonset_name", ".+")
, "client_workload", "$1", "k8s_statefulset_name", "(.+)")
, "client_workload_kind", "StatefulSet", "k8s_statefulset_name", ".+")
, "client_workload", "$1", "k8s_cronjob_name", "(.+)")
, "client_workload_kind", "CronJob", "k8s_cronjob_name", ".+")
, "client_workload", "$1", "k8s_deployment_name", "(.+)")
, "client_workload_kind", "Deployment", "k8s_deployment_name", ".+")
, "server_namespace", "$1", "netobs_peer_k8s_namespace_name", "(.*)")
, "server_workload", "$1", "netobs_peer_k8s_node_name", "(.+)")
, "server_workload_kind", "Node", "netobs_peer_k8s_node_name", ".+")
, "server_workload", "$1", "netobs_peer_k8s_pod_name", "(.+)")
, "server_workload_kind", "Pod", "netobs_peer_k8s_pod_name", ".+")
, "server_workload", "$1", "netobs_peer_k8s_service_name", "(.+)")
, "server_workload_kind", "Service", "netobs_peer_k8s_service_name", ".+")
, "server_workload", "$1", "netobs_peer_k8s_workload_name", "(.+)")
, "server_workload_kind", "$1", "netobs_peer_k8s_workload_kind", "(.+)")
{{- end }}

{{/* The client-side L7 series of every protocol, each with a `protocol` label: http, the RPC system
(grpc) or the database system (postgresql, redis...). `suffix` is _count or _bucket, `matchers`
extra matchers with their leading comma. */}}
{{- define "netobs.l7ClientRates" -}}
label_replace(rate(http_client_request_duration_seconds{{ .suffix }}{$SEL,$PEERED{{ .matchers }}}[$RANGE]), "protocol", "http", "protocol", "")
or
label_replace(rate(rpc_client_call_duration_seconds{{ .suffix }}{$SEL,$PEERED{{ .matchers }}}[$RANGE]), "protocol", "$1", "rpc_system", "(.*)")
or
label_replace(rate(db_client_operation_duration_seconds{{ .suffix }}{$SEL,$PEERED{{ .matchers }}}[$RANGE]), "protocol", "$1", "db_system_name", "(.*)")
{{- end }}
