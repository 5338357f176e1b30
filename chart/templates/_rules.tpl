{{/* The alert groups, then the recording rules: the PrometheusRule's spec, and alerts/netobs-rules.yaml
with the defaults. */}}
{{- define "netobs.rules.groups" -}}
groups:
  - name: netobs.network
    rules:
      {{- include "netobs.rule" (dict "root" . "name" "NetobsTCPRetransmitRatioHigh"
        "expr" `(
  sum by ($GROUP, destination_address) (rate(netflow_tcp_retransmits_total{$SEL}[$RANGE]))
/
  sum by ($GROUP, destination_address) (rate(netflow_packets_total{$SEL,network_transport="tcp",network_io_direction="transmit"}[$RANGE]))
) > $T
and
sum by ($GROUP, destination_address) (rate(netflow_packets_total{$SEL,network_transport="tcp",network_io_direction="transmit"}[$RANGE])) > $MIN`
        "summary" `TCP retransmits to {{ $labels.destination_address }} are {{ $value | humanizePercentage }} of the segments sent`
        "description" `{{ $labels.process_executable_name }} ({{ $labels.k8s_namespace_name }}/{{ $labels.k8s_pod_name }} on {{ $labels.instance }}) retransmits {{ $value | humanizePercentage }} of its TCP segments to {{ $labels.destination_address }}. Retransmits mean lost packets or a peer that stopped acknowledging: expect higher latency and lower throughput. Check: the same destination from other nodes (a remote problem) or other destinations from this node (a local one, e.g. a saturated NIC or a conntrack table that is full: dmesg, nstat TcpExtTCPLostRetransmit), interface drops (ip -s link), and the RTT panels of the network overview dashboard.`
      ) | nindent 6 }}
      {{- include "netobs.rule" (dict "root" . "name" "NetobsTCPConnectFailuresHigh"
        "expr" `(
  sum by ($GROUP, destination_address, destination_port) (rate(netflow_tcp_failed_total{$SEL}[$RANGE]))
/ (
  sum by ($GROUP, destination_address, destination_port) (rate(netflow_tcp_failed_total{$SEL}[$RANGE]))
+
  sum by ($GROUP, destination_address, destination_port) (rate(netflow_tcp_established_total{$SEL,netflow_direction="outgoing"}[$RANGE]))
)) > $T
and
sum by ($GROUP, destination_address, destination_port) (rate(netflow_tcp_failed_total{$SEL}[$RANGE])) > $MIN`
        "summary" `{{ $value | humanizePercentage }} of TCP connections to {{ $labels.destination_address }}:{{ $labels.destination_port }} fail`
        "description" `{{ $labels.process_executable_name }} ({{ $labels.k8s_namespace_name }}/{{ $labels.k8s_pod_name }} on {{ $labels.instance }}) fails {{ $value | humanizePercentage }} of its connection attempts to {{ $labels.destination_address }}:{{ $labels.destination_port }}. The reason is the error_type label of netflow_tcp_failed_total: ECONNREFUSED (nothing listens: the service is down or the port is wrong), ETIMEDOUT or EHOSTUNREACH (a firewall, a NetworkPolicy or routing drops the SYN), _OTHER (the client gave up first, e.g. its own connect timeout). Check the destination's endpoints (kubectl get endpoints) and network policies.`
      ) | nindent 6 }}
  - name: netobs.dns
    rules:
      {{- include "netobs.rule" (dict "root" . "name" "NetobsDNSErrorRatioHigh"
        "expr" `(
  sum by ($GROUP, server_address) (rate(dns_lookups_total{$SEL,dnsflow_direction="outgoing",dns_response_code!~"NOERROR|NXDOMAIN|TIMEOUT"}[$RANGE]))
/
  sum by ($GROUP, server_address) (rate(dns_lookups_total{$SEL,dnsflow_direction="outgoing"}[$RANGE]))
) > $T
and
sum by ($GROUP, server_address) (rate(dns_lookups_total{$SEL,dnsflow_direction="outgoing"}[$RANGE])) > $MIN`
        "summary" `{{ $value | humanizePercentage }} of DNS lookups to {{ $labels.server_address }} end in a server error`
        "description" `Lookups of {{ $labels.process_executable_name }} ({{ $labels.k8s_namespace_name }}/{{ $labels.k8s_pod_name }} on {{ $labels.instance }}) to the DNS server {{ $labels.server_address }} get SERVFAIL, REFUSED or another error code {{ $value | humanizePercentage }} of the time. SERVFAIL usually means the server could not reach an upstream or DNSSEC validation failed; REFUSED that the server does not serve this client or zone. Check the server's logs (CoreDNS: kubectl -n kube-system logs -l k8s-app=kube-dns), its upstreams, and the response codes by name on the DNS dashboard.`
      ) | nindent 6 }}
      {{- include "netobs.rule" (dict "root" . "name" "NetobsDNSNXDomainRatioHigh"
        "expr" `(
  sum by ($GROUP, server_address) (rate(dns_lookups_total{$SEL,dnsflow_direction="outgoing",dns_response_code="NXDOMAIN"}[$RANGE]))
/
  sum by ($GROUP, server_address) (rate(dns_lookups_total{$SEL,dnsflow_direction="outgoing"}[$RANGE]))
) > $T
and
sum by ($GROUP, server_address) (rate(dns_lookups_total{$SEL,dnsflow_direction="outgoing"}[$RANGE])) > $MIN`
        "summary" `{{ $value | humanizePercentage }} of DNS lookups to {{ $labels.server_address }} are NXDOMAIN`
        "description" `{{ $value | humanizePercentage }} of the lookups of {{ $labels.process_executable_name }} ({{ $labels.k8s_namespace_name }}/{{ $labels.k8s_pod_name }} on {{ $labels.instance }}) ask for names that do not exist. In Kubernetes most are the search-path expansions of a name with fewer dots than ndots (5 by default): harmless but a load on the DNS servers; use fully qualified names (a trailing dot) or lower ndots in the pod's dnsConfig. A name the application really needs that gives NXDOMAIN is a misconfiguration: find it in "Top NXDOMAIN names" on the DNS dashboard.`
      ) | nindent 6 }}
      {{- include "netobs.rule" (dict "root" . "name" "NetobsDNSTimeoutRatioHigh"
        "expr" `(
  sum by ($GROUP, server_address) (rate(dns_lookups_total{$SEL,dnsflow_direction="outgoing",dns_response_code="TIMEOUT"}[$RANGE]))
/
  sum by ($GROUP, server_address) (rate(dns_lookups_total{$SEL,dnsflow_direction="outgoing"}[$RANGE]))
) > $T
and
sum by ($GROUP, server_address) (rate(dns_lookups_total{$SEL,dnsflow_direction="outgoing"}[$RANGE])) > $MIN`
        "summary" `{{ $value | humanizePercentage }} of DNS lookups to {{ $labels.server_address }} time out`
        "description" `{{ $value | humanizePercentage }} of the lookups of {{ $labels.process_executable_name }} ({{ $labels.k8s_namespace_name }}/{{ $labels.k8s_pod_name }} on {{ $labels.instance }}) to {{ $labels.server_address }} got no answer within Dns.Timeout. Every one of them stalls the application for seconds (resolvers retry after 5 s by default). Common causes: the conntrack race of UDP lookups sent in parallel on one socket (A and AAAA; use single-request-reopen or NodeLocal DNSCache), an overloaded or unreachable DNS server, or a NetworkPolicy that drops port 53.`
      ) | nindent 6 }}
      {{- include "netobs.rule" (dict "root" . "name" "NetobsDNSLatencyHigh"
        "expr" `histogram_quantile($Q,
  sum by ($GROUP, server_address, le) (rate(dns_lookup_duration_seconds_bucket{$SEL,dnsflow_direction="outgoing",dns_response_code!="TIMEOUT"}[$RANGE]))
) > $T
and
sum by ($GROUP, server_address) (rate(dns_lookups_total{$SEL,dnsflow_direction="outgoing"}[$RANGE])) > $MIN`
        "summary" `DNS lookups to {{ $labels.server_address }} are slow: {{ $value | humanizeDuration }} at the chosen percentile`
        "description" `Answered lookups of {{ $labels.process_executable_name }} ({{ $labels.k8s_namespace_name }}/{{ $labels.k8s_pod_name }} on {{ $labels.instance }}) to {{ $labels.server_address }} take {{ $value | humanizeDuration }} (timeouts are not counted here). A cache answers in well under a millisecond; tens of milliseconds mean the server goes upstream for most names (short TTLs, or names that are never cached such as NXDOMAIN search-path expansions), hundreds an overloaded server or a slow upstream. Check the DNS dashboard's latency by server and the server's own metrics.`
      ) | nindent 6 }}
  - name: netobs.l7
    rules:
      {{- include "netobs.rule" (dict "root" . "name" "NetobsHTTPServerErrorRatioHigh"
        "expr" `(
  sum by ($GROUP, server_port) (rate(http_server_request_duration_seconds_count{$SEL,error_type=~"5..|no_response"}[$RANGE]))
/
  sum by ($GROUP, server_port) (rate(http_server_request_duration_seconds_count{$SEL}[$RANGE]))
) > $T
and
sum by ($GROUP, server_port) (rate(http_server_request_duration_seconds_count{$SEL}[$RANGE])) > $MIN`
        "summary" `{{ $labels.process_executable_name }} answers {{ $value | humanizePercentage }} of HTTP requests on port {{ $labels.server_port }} with 5xx or not at all`
        "description" `The HTTP server {{ $labels.process_executable_name }} ({{ $labels.k8s_namespace_name }}/{{ $labels.k8s_pod_name }} on {{ $labels.instance }}, port {{ $labels.server_port }}) answers {{ $value | humanizePercentage }} of its requests with a 5xx status, or closes the connection without an answer (error_type="no_response"). Users see errors now. Check the L7 dashboard for the routes and status codes concerned, the application's logs, and its own dependencies (the database panels, connection failures on the network overview).`
      ) | nindent 6 }}
      {{- include "netobs.rule" (dict "root" . "name" "NetobsHTTPClientErrorRatioHigh"
        "expr" `(
  sum by ($GROUP, server_address, server_port) (rate(http_client_request_duration_seconds_count{$SEL,error_type=~"5..|no_response"}[$RANGE]))
/
  sum by ($GROUP, server_address, server_port) (rate(http_client_request_duration_seconds_count{$SEL}[$RANGE]))
) > $T
and
sum by ($GROUP, server_address, server_port) (rate(http_client_request_duration_seconds_count{$SEL}[$RANGE])) > $MIN`
        "summary" `{{ $value | humanizePercentage }} of HTTP requests to {{ $labels.server_address }}:{{ $labels.server_port }} get 5xx or no answer`
        "description" `{{ $labels.process_executable_name }} ({{ $labels.k8s_namespace_name }}/{{ $labels.k8s_pod_name }} on {{ $labels.instance }}) gets a 5xx status or no response for {{ $value | humanizePercentage }} of its plain-text HTTP requests to {{ $labels.server_address }}:{{ $labels.server_port }}. This is the view from the client: it also covers servers outside the cluster and proxies in between. Check whether the server side shows the same errors (NetobsHTTPServerErrorRatioHigh), and the client's timeouts if the errors are no_response.`
      ) | nindent 6 }}
      {{- include "netobs.rule" (dict "root" . "name" "NetobsHTTPServerLatencyHigh"
        "expr" `histogram_quantile($Q,
  sum by ($GROUP, server_port, le) (rate(http_server_request_duration_seconds_bucket{$SEL}[$RANGE]))
) > $T
and
sum by ($GROUP, server_port) (rate(http_server_request_duration_seconds_count{$SEL}[$RANGE])) > $MIN`
        "summary" `{{ $labels.process_executable_name }} takes {{ $value | humanizeDuration }} to answer HTTP requests on port {{ $labels.server_port }}`
        "description" `The HTTP server {{ $labels.process_executable_name }} ({{ $labels.k8s_namespace_name }}/{{ $labels.k8s_pod_name }} on {{ $labels.instance }}, port {{ $labels.server_port }}) needs {{ $value | humanizeDuration }} at the configured percentile, from reading a request to writing the end of its response. Check the L7 dashboard for the slow routes, the latency of the databases it calls, CPU throttling of its pod, and the TCP retransmits and RTT of its clients.`
      ) | nindent 6 }}
      {{- include "netobs.rule" (dict "root" . "name" "NetobsGRPCServerErrorRatioHigh"
        "expr" `(
  sum by ($GROUP, rpc_service) (rate(rpc_server_call_duration_seconds_count{$SEL,rpc_system="grpc",error_type!=""}[$RANGE]))
/
  sum by ($GROUP, rpc_service) (rate(rpc_server_call_duration_seconds_count{$SEL,rpc_system="grpc"}[$RANGE]))
) > $T
and
sum by ($GROUP, rpc_service) (rate(rpc_server_call_duration_seconds_count{$SEL,rpc_system="grpc"}[$RANGE])) > $MIN`
        "summary" `{{ $labels.process_executable_name }} answers {{ $value | humanizePercentage }} of gRPC calls to {{ $labels.rpc_service }} with a server error or no status`
        "description" `The gRPC server {{ $labels.process_executable_name }} ({{ $labels.k8s_namespace_name }}/{{ $labels.k8s_pod_name }} on {{ $labels.instance }}) ends {{ $value | humanizePercentage }} of the calls to {{ $labels.rpc_service }} with a status that is the server's failure (UNKNOWN, DEADLINE_EXCEEDED, UNIMPLEMENTED, INTERNAL, UNAVAILABLE, DATA_LOSS) or without a status (error_type="no_response": the stream was reset or the connection closed first). Codes that answer the caller's mistakes (NOT_FOUND, INVALID_ARGUMENT...) do not count. Callers see errors now. Check the L7 dashboard's gRPC server panels for the methods and status codes concerned, the application's logs, and the backends it calls itself (UNAVAILABLE and DEADLINE_EXCEEDED often come from there).`
      ) | nindent 6 }}
      {{- include "netobs.rule" (dict "root" . "name" "NetobsDatabaseErrorRatioHigh"
        "expr" `(
  sum by ($GROUP, db_system_name, server_address, server_port) (rate(db_client_operation_duration_seconds_count{$SEL,error_type!=""}[$RANGE]))
/
  sum by ($GROUP, db_system_name, server_address, server_port) (rate(db_client_operation_duration_seconds_count{$SEL}[$RANGE]))
) > $T
and
sum by ($GROUP, db_system_name, server_address, server_port) (rate(db_client_operation_duration_seconds_count{$SEL}[$RANGE])) > $MIN`
        "summary" `{{ $value | humanizePercentage }} of {{ $labels.db_system_name }} operations to {{ $labels.server_address }}:{{ $labels.server_port }} fail`
        "description" `{{ $labels.process_executable_name }} ({{ $labels.k8s_namespace_name }}/{{ $labels.k8s_pod_name }} on {{ $labels.instance }}) gets an error for {{ $value | humanizePercentage }} of its {{ $labels.db_system_name }} operations to {{ $labels.server_address }}:{{ $labels.server_port }}. The error_type label says which: a Redis error prefix (ERR, WRONGTYPE, OOM...), a PostgreSQL SQLSTATE (e.g. 40001 serialization failure, 53300 too many connections) or a MySQL error code (e.g. 1213 deadlock, 1040 too many connections). Check the L7 dashboard's database panels by operation and error, then the server's logs.`
      ) | nindent 6 }}
      {{- include "netobs.rule" (dict "root" . "name" "NetobsDatabaseLatencyHigh"
        "expr" `histogram_quantile($Q,
  sum by ($GROUP, db_system_name, server_address, server_port, le) (rate(db_client_operation_duration_seconds_bucket{$SEL}[$RANGE]))
) > $T
and
sum by ($GROUP, db_system_name, server_address, server_port) (rate(db_client_operation_duration_seconds_count{$SEL}[$RANGE])) > $MIN`
        "summary" `{{ $labels.db_system_name }} operations to {{ $labels.server_address }}:{{ $labels.server_port }} take {{ $value | humanizeDuration }}`
        "description" `{{ $labels.process_executable_name }} ({{ $labels.k8s_namespace_name }}/{{ $labels.k8s_pod_name }} on {{ $labels.instance }}) waits {{ $value | humanizeDuration }} at the configured percentile for its {{ $labels.db_system_name }} operations to {{ $labels.server_address }}:{{ $labels.server_port }}, from sending a command to reading its reply. Check which operations are slow on the L7 dashboard (db_operation_name), the server's slow log and load, lock waits, and the network between the two (retransmits and RTT on the network overview).`
      ) | nindent 6 }}
  - name: netobs.exporter
    rules:
      {{- include "netobs.rule" (dict "root" . "name" "NetobsExporterDown"
        "expr" `up{$SEL} == 0`
        "summary" `netobs-exporter on {{ $labels.instance }} cannot be scraped`
        "description" `Prometheus has not been able to scrape the exporter at {{ $labels.instance }}: that node's network, DNS and L7 metrics are missing. Check the DaemonSet's pod on the node (kubectl get pods -o wide, kubectl logs): a start-up failure names the configuration key or the BPF program at fault; CrashLoopBackOff with "Operation not permitted" means missing capabilities or a seccomp profile that refuses bpf() (docs/install.md).`
      ) | nindent 6 }}
      {{- include "netobs.rule" (dict "root" . "name" "NetobsExporterAbsent"
        "expr" `absent(up{$SEL})`
        "summary" `Prometheus has no netobs-exporter target to scrape`
        "description" `No up series matches the rules' selector: Prometheus has not discovered a single exporter, so no node has network, DNS or L7 metrics, and NetobsExporterDown cannot fire. Usual causes: the DaemonSet is gone or schedules no pod (nodeSelector, taints, a Pod Security level that refuses it), the ServiceMonitor is not selected by this Prometheus (its labels, e.g. release: kube-prometheus-stack) or its namespace is not watched, or the scrape job has another name than the selector expects (prometheusRule.selector). Check kubectl get daemonset,pods -l app.kubernetes.io/name=netobs-exporter -A and the Targets page of Prometheus.`
      ) | nindent 6 }}
      {{- include "netobs.rule" (dict "root" . "name" "NetobsProgramNotAttached"
        "expr" `netobs_program_attached{$SEL} == 0`
        "summary" `BPF program {{ $labels.program }} ({{ $labels.collector }}) is not attached on {{ $labels.instance }}`
        "description" `The {{ $labels.collector }} collector could not attach {{ $labels.program }} on {{ $labels.instance }}, so part of its data is missing. The exporter's log says why at start-up; netobs-exporter --check-config on the node prints the table of programs. Usual causes: a kernel without the tracepoint (the socket tracepoints need Linux 6.3), a missing capability (the uprobes of the bash audit and TLS need CAP_SYS_ADMIN), or a lockdown mode that forbids BPF.`
      ) | nindent 6 }}
      {{- include "netobs.rule" (dict "root" . "name" "NetobsCollectorFailing"
        "expr" `netobs_collector_success{$SEL} == 0`
        "summary" `The {{ $labels.collector }} collector fails to read its kernel tables on {{ $labels.instance }}`
        "description" `The last read of the {{ $labels.collector }} collector's kernel tables failed on {{ $labels.instance }}: its series are missing from every collection. The exporter logs the error of each failed read; restart the pod if it persists and report the error.`
      ) | nindent 6 }}
      {{- include "netobs.rule" (dict "root" . "name" "NetobsEventsLost"
        "expr" `sum by ($CLUSTER, instance, collector, reason) (rate(netobs_events_lost_total{$SEL,reason!~"malformed|unmatched|unparsed|tcp_desync|header_unknown|statement_unknown|tls_socket_unknown"}[$RANGE])) > $T
or
sum by ($CLUSTER, instance, collector, reason) (rate(netobs_events_lost_total{$SEL,reason=~"malformed|unmatched|unparsed|tcp_desync|header_unknown"}[$RANGE])) > $ROUTINE`
        "summary" `The {{ $labels.collector }} collector loses events on {{ $labels.instance }} ({{ $labels.reason }})`
        "description" `The kernel side of {{ $labels.collector }} on {{ $labels.instance }} could not record {{ $value | humanize }} updates per second (reason {{ $labels.reason }}), so its counts are low. A full table calls for a larger one in the chart's config: flow_table_full (netflow) Netflow.MaxFlows, series_full Dns.MaxSeries (dns) or L7.MaxSeries (l7), conns_full L7.MaxConnections, pending_full Dns.MaxPending; failed_table_full and pipeline_full are fixed limits. ring_full means user space does not keep up; no_socket_state and read_failed that the kernel refused memory or a read. malformed, unmatched, unparsed, tcp_desync and header_unknown are traffic the parsers could not use, routine at a low rate: they alert only above a rate of their own (routineThreshold, 1/s by default). statement_unknown and tls_socket_unknown never alert (the operation is counted without its name; TLS plaintext whose connection was not seen has nothing to fix).`
      ) | nindent 6 }}
      {{- include "netobs.rule" (dict "root" . "name" "NetobsSeriesNearLimit"
        "expr" `max by ($CLUSTER, instance, instrument) (netobs_series{$SEL})
  / on ($CLUSTER, instance) group_left
max by ($CLUSTER, instance) (netobs_series_limit{$SEL})
> $T`
        "summary" `{{ $labels.instrument }} on {{ $labels.instance }} is at {{ $value | humanizePercentage }} of its series limit`
        "description" `The instrument {{ $labels.instrument }} exports {{ $value | humanizePercentage }} of Telemetry.MaxSeriesPerInstrument series on {{ $labels.instance }}. At the limit, new series are dropped (netobs_series_dropped_total) and their traffic disappears from the metrics. Find what makes the series (many peers, many DNS names or HTTP routes per process), filter it out (Common.Exclude*), shorten Netflow.SeriesExpiry, or raise the limit if Prometheus can take it.`
      ) | nindent 6 }}
  {{- if .Values.prometheusRule.recordingRules.workloadPairs.enabled }}
  - name: netobs.workload_pairs
    rules:
      {{- include "netobs.record" (dict "root" . "record" "workload_pair:netobs_netflow_bytes:rate$RANGE"
        "by" ", network_io_direction"
        "inner" `rate(netflow_bytes_total{$SEL,netflow_direction="outgoing",$PEERED}[$RANGE])`) | nindent 6 }}
      {{- include "netobs.record" (dict "root" . "record" "workload_pair:netobs_netflow_tcp_established:rate$RANGE"
        "inner" `rate(netflow_tcp_established_total{$SEL,netflow_direction="outgoing",$PEERED}[$RANGE])`) | nindent 6 }}
      {{- include "netobs.record" (dict "root" . "record" "workload_pair:netobs_l7_requests:rate$RANGE"
        "by" ", protocol" "inner" (include "netobs.l7ClientRates" (dict "suffix" "_count"))) | nindent 6 }}
      {{- include "netobs.record" (dict "root" . "record" "workload_pair:netobs_l7_errors:rate$RANGE"
        "by" ", protocol" "inner" (include "netobs.l7ClientRates" (dict "suffix" "_count" "matchers" `,error_type!=""`))) | nindent 6 }}
      {{- include "netobs.record" (dict "root" . "record" "workload_pair:netobs_l7_duration_seconds_bucket:rate$RANGE"
        "by" ", protocol, le" "inner" (include "netobs.l7ClientRates" (dict "suffix" "_bucket"))) | nindent 6 }}
  {{- end }}
{{- end }}
