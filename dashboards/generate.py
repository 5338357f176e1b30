"""The Grafana dashboards, written as Python so that every panel is built the same way.

`make ship-files` writes dashboards/<name>.json (and the chart's copies) from this file; the tests
check them against Grafana's schema, parse every PromQL expression, and run every query against a
real Prometheus. Metric and label names are those of docs/metrics.md; the Kubernetes labels
(k8s_*) are absent on a plain host, which every matcher allows (the "All" value is `.*`). The
panels' builders are in panels.py, the service map in service_map.py.
"""

from __future__ import annotations

import json

from dashboards.panels import (
    NEUTRAL,
    NODE,
    WORKLOAD,
    WORKLOAD_LABEL,
    Json,
    custom_variable,
    dashboard,
    job_and_cluster,
    quantiles,
    query_variable,
    rate,
    ratio,
    row,
    stat,
    sum_rate,
    table,
    target,
    thresholds,
    timeseries,
    workload_variables,
)
from dashboards.service_map import service_map

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
                   description="Payload bytes per second that processes wrote to their TCP and UDP sockets "
                               "(`netflow_bytes_total`, transmit), by namespace: no headers, retransmitted data "
                               "counted once. Host processes have no namespace (the empty series)."),
        timeseries("Received by namespace", "Bps", target(sum_rate("k8s_namespace_name", "netflow_bytes_total",
                   f'{w},network_io_direction="receive"'), "{{k8s_namespace_name}}"), stack=True,
                   description="Payload bytes per second that processes read from their sockets "
                               "(`netflow_bytes_total`, receive), by namespace. Host processes have no namespace."),
        timeseries("Traffic by workload", "Bps", target(sum_rate(by_workload, "netflow_bytes_total", w),
                   workload_legend),
                   description="Bytes per second sent and received together, per namespace, workload and process. "
                               "A step that no deployment or change of load explains is worth a look in Top "
                               "destinations."),
        table("Top destinations", "bytes", f"topk(20, sum by (destination_address, destination_domain, "
              f"destination_port) (increase(netflow_bytes_total{{{w}}}[$__range])))",
              description="The 20 remote endpoints that exchanged the most bytes, both directions, over the "
                          "dashboard's time range. `destination_domain` is the name whose DNS answer gave the "
                          "address, when the exporter saw that lookup. For incoming flows the destination is the "
                          "client, its port folded to `*`."),
        row("TCP health"),
        timeseries("Retransmit ratio", "percentunit", target(
            f"sum by ({by_workload}) ({rate('netflow_tcp_retransmits_total', w)}) / "
            f"sum by ({by_workload}) ({rate('netflow_packets_total', tcp_sent)})", workload_legend),
            description="TCP segments retransmitted as a share of the segments sent, per workload and process. "
                        "Near 0 on a healthy network; from about 1 % throughput and latency suffer. The "
                        "NetobsTCPRetransmitRatioHigh alert fires at 5 % toward one destination (chart default)."),
        timeseries("RTT percentiles", "s", *quantiles("netflow_tcp_rtt_seconds", w),
                   description="p50, p90 and p99 of the kernel's smoothed TCP round-trip time "
                               "(`netflow_tcp_rtt_seconds`), sampled at most once per Netflow.RttSampleInterval "
                               "(1 s) per active connection; idle connections give no samples. Within a data centre "
                               "expect well under a millisecond. A p99 that rises with retransmits means queues or "
                               "losses on the path."),
        timeseries("RTT by destination (worst connection)", "s", target(
            f"max by (destination_address) (netflow_tcp_srtt_seconds{{{w}}})", "{{destination_address}}"),
            description="The largest smoothed RTT toward each remote address (`netflow_tcp_srtt_seconds`: per "
                        "flow, that of its connection read last). It finds the destination behind a rise of the RTT "
                        "percentiles, whose histogram has no addresses by default (Netflow.RttHistogram: "
                        "workload)."),
        timeseries("Retransmits by destination", "cps", target(sum_rate(
            "destination_address", "netflow_tcp_retransmits_total", w), "{{destination_address}}"),
            description="TCP segments retransmitted per second toward each remote address. One address standing "
                        "out points at that peer or the path to it; all of them together at this node or its "
                        "network."),
        row("Connections"),
        timeseries("Connections opened and closed", "cps",
                   target(sum_rate("netflow_direction", "netflow_tcp_established_total", w),
                          "opened {{netflow_direction}}"),
                   target(sum_rate("netflow_direction", "netflow_tcp_closed_total", w),
                          "closed {{netflow_direction}}"),
                   description="TCP connections established (connected or accepted) and closed per second, by "
                               "direction. The two track each other; opened above closed for long means connections "
                               "pile up (Active connections), and hundreds per second from one client mean no "
                               "keep-alive or pooling. Connections open before the exporter started count only when "
                               "they close."),
        timeseries("Connection failures by reason", "cps", target(sum_rate(
            "error_type, destination_address, destination_port", "netflow_tcp_failed_total", w),
            "{{error_type}} {{destination_address}}:{{destination_port}}"),
            description="Outgoing connection attempts per second that failed before being established, by errno "
                        "and destination. ECONNREFUSED: nothing listens there (service down, wrong port). "
                        "ETIMEDOUT, EHOSTUNREACH: the SYN is dropped (firewall, NetworkPolicy, routing). _OTHER: "
                        "the client gave up first. Normally empty."),
        timeseries("Active connections", "short", target(f"sum by ({by_workload}) (netflow_tcp_active{{{w}}})",
                   workload_legend),
                   description="TCP connections open now (`netflow_tcp_active`), per workload and process. A line "
                               "that only grows is a connection leak."),
        stat("Active connections (total)", "short", target(f"sum(netflow_tcp_active{{{w}}})"), colors=NEUTRAL,
             description="TCP connections open now in the selection. A level to compare over time: it is "
                         "neither good nor bad by itself."),
        stat("Connection failure ratio", "percentunit", target(
            f"sum({rate('netflow_tcp_failed_total', w)}) / (sum({rate('netflow_tcp_failed_total', w)}) + "
            f"sum({rate('netflow_tcp_established_total', outgoing)}))"),
            colors=thresholds("green", (0.01, "orange"), (0.1, "red")),
            description="Failed outgoing TCP connection attempts as a share of all attempts (failed plus "
                        "established outgoing). Orange from 1 %: attempts fail steadily; red from 10 %, where "
                        "NetobsTCPConnectFailuresHigh fires for one destination (chart default). Connection "
                        "failures by reason says where."),
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
            sum_rate("dns_response_code", "dns_lookups_total", w), "{{dns_response_code}}"), stack=True,
            description="DNS lookups per second (`dns_lookups_total`) by response code, on the chosen side. "
                        "NOERROR should make most of them. NXDOMAIN is often search-path expansion (ndots); "
                        "SERVFAIL, REFUSED and TIMEOUT are failures: see the Errors row."),
        timeseries("Lookups by process", "reqps", target(
            sum_rate("k8s_namespace_name, process_executable_name", "dns_lookups_total", w),
            "{{k8s_namespace_name}} {{process_executable_name}}"),
            description="DNS lookups per second by namespace and process: who asks (outgoing) or who answers "
                        "(incoming). A process with hundreds per second usually resolves the same names again "
                        "without caching them."),
        table("Top names", "short", f"topk(20, sum by (dns_question_name, dns_question_type) "
              f"(increase(dns_lookups_total{{{w}}}[$__range])))",
              description="The 20 names and record types looked up most over the time range. A name asked "
                          "thousands of times is a candidate for caching. `~other` stands for the names of a "
                          "process beyond Dns.MaxNamesPerProcess."),
        table("Top NXDOMAIN names", "short", f"topk(20, sum by (dns_question_name, process_executable_name) "
              f"(increase(dns_lookups_total{{{w},dns_response_code=\"NXDOMAIN\"}}[$__range])))",
              description="The names answered NXDOMAIN (no such name) most often over the time range, by process. "
                          "A name with a search domain appended (`api.example.com.default.svc.cluster.local`) is "
                          "a search-path expansion (ndots): harmless, but a load on the DNS servers. A name the "
                          "application needs is a misconfiguration."),
        row("Latency"),
        timeseries("Latency percentiles", "s", *quantiles("dns_lookup_duration_seconds", answered),
                   description="p50, p90 and p99 of the time from query to answer as the process saw it "
                               "(`dns_lookup_duration_seconds`), timeouts left out. A node-local cache answers in "
                               "well under a millisecond, tens of milliseconds mean trips upstream, hundreds an "
                               "overloaded server. NetobsDNSLatencyHigh fires at a p99 of 0.5 s (chart default)."),
        timeseries("Latency p99 by server", "s", *quantiles("dns_lookup_duration_seconds", answered,
                   "server_address", (0.99,)),
                   description="p99 of the lookup time per DNS server address, timeouts left out: which server "
                               "is slow. On the incoming side the address is the server's own (0.0.0.0 or :: when "
                               "it listens on every address)."),
        row("Errors"),
        timeseries("NXDOMAIN ratio", "percentunit", target(ratio(
            "k8s_namespace_name", "dns_lookups_total", w, 'dns_response_code="NXDOMAIN"'), "{{k8s_namespace_name}}"),
            description="Share of lookups answered NXDOMAIN, per namespace. In Kubernetes, over 50 % is common "
                        "with the default ndots:5 and short names: load on the DNS servers rather than errors, "
                        "unless a name the application needs is among the Top NXDOMAIN names."),
        timeseries("Error ratio (SERVFAIL, REFUSED...)", "percentunit", target(ratio(
            "k8s_namespace_name", "dns_lookups_total", w, 'dns_response_code!~"NOERROR|NXDOMAIN|TIMEOUT"'),
            "{{k8s_namespace_name}}"),
            description="Share of lookups answered with an error code other than NXDOMAIN, per namespace. "
                        "SERVFAIL: the server could not resolve the name (upstream or DNSSEC failure); REFUSED: "
                        "it does not serve this client or zone. Normally 0; NetobsDNSErrorRatioHigh fires at 5 % "
                        "(chart default)."),
        timeseries("Timeouts", "reqps", target(sum_rate(
            "server_address, process_executable_name", "dns_lookups_total", f'{w},dns_response_code="TIMEOUT"'),
            "{{process_executable_name}} → {{server_address}}"),
            description="Queries per second that got no answer within Dns.Timeout (5 s by default), by process "
                        "and server. Each one stalls its application until the resolver retries. Normally empty."),
    ]
    variables = [*workload_variables(), custom_variable("direction", "Side", ["outgoing", "incoming"])]
    return dashboard("netobs-dns", "netobs / DNS",
                     "DNS lookups seen in the kernel: rate by response code, latency, top names, NXDOMAIN and "
                     "timeouts. Side: outgoing = the processes that ask, incoming = local DNS servers.",
                     variables, panels)


def red_rows(title: str, metric: str, by: str, legend: str, unit: str, selector: str, *,
             rate_text: str, errors_text: str, duration_text: str) -> list[Json]:
    """Rate, errors and duration of one histogram of operations (HTTP requests, database operations)."""
    count = f"{metric}_count"
    return [
        row(title),
        timeseries(f"{title}: rate", unit, target(sum_rate(by, count, selector), legend), width=8,
                   description=rate_text),
        timeseries(f"{title}: error ratio", "percentunit",
                   target(ratio(by, count, selector, 'error_type!=""'), legend), width=8, description=errors_text),
        timeseries(f"{title}: duration", "s", *quantiles(metric, selector), width=8, description=duration_text),
    ]


# HTTP/2 and gRPC latency: the median and the tail.
TAIL = (0.5, 0.95, 0.99)


def http2_rows(selector: str) -> list[Json]:
    """HTTP/1.x against HTTP/2 on the HTTP instruments, and HTTP/2's own duration, server and client."""
    h2 = f'{selector},network_protocol_version="2"'
    by_version = "HTTP/{{network_protocol_version}}"
    return [
        row("HTTP/2"),
        timeseries("HTTP server: requests by version", "reqps", target(sum_rate(
            "network_protocol_version", "http_server_request_duration_seconds_count", selector), by_version),
            stack=True,
            description="Requests per second answered by local servers, by HTTP version "
                        "(`network_protocol_version`: `1.0`, `1.1`, `2`), stacked: each band is that version's "
                        "share of the traffic. `HTTP/` alone is an HTTP/1.x request line longer than "
                        "L7.CaptureBytes, whose version was not seen."),
        timeseries("HTTP client: requests by version", "reqps", target(sum_rate(
            "network_protocol_version", "http_client_request_duration_seconds_count", selector), by_version),
            stack=True,
            description="Requests per second that local processes sent, by HTTP version, stacked. HTTP/2 is "
                        "seen over TLS (ALPN `h2`, read through L7.Tls) and in clear on connections that start "
                        "with the HTTP/2 preface (prior knowledge); docs/grpc.md says what is not covered."),
        timeseries("HTTP/2 server: duration", "s", *quantiles("http_server_request_duration_seconds", h2, qs=TAIL),
                   description="p50, p95 and p99 of HTTP/2 requests answered by local servers, per stream: from "
                               "reading the request's first frame to writing the frame that ends the response "
                               "(END_STREAM). The streams of one connection are each timed on their own."),
        timeseries("HTTP/2 client: duration", "s", *quantiles("http_client_request_duration_seconds", h2, qs=TAIL),
                   description="p50, p95 and p99 of HTTP/2 requests sent by local processes, per stream: from "
                               "writing the request's first frame to reading the frame that ends the response. "
                               "Much above the server side's duration means the network or a proxy in between."),
    ]


def grpc_rows(side: str, metric: str, selector: str, *, calls_text: str, errors_text: str,
              duration_text: str) -> list[Json]:
    """Calls, error ratio, duration and status codes of one side's gRPC calls."""
    grpc = f'{selector},rpc_system="grpc"'
    count = f"{metric}_count"
    title = f"gRPC {side}"
    return [
        row(title),
        timeseries(f"{title}: calls", "reqps", target(sum_rate("rpc_service, rpc_method", count, grpc),
                   "{{rpc_service}}/{{rpc_method}}"), description=calls_text),
        timeseries(f"{title}: error ratio", "percentunit",
                   target(ratio("rpc_service", count, grpc, 'error_type!=""'), "{{rpc_service}}"),
                   description=errors_text),
        timeseries(f"{title}: duration", "s", *quantiles(metric, grpc, "rpc_service, rpc_method", TAIL),
                   description=duration_text),
        timeseries(f"{title}: calls by status", "reqps", target(sum_rate("rpc_grpc_status_code", count, grpc),
                   "{{rpc_grpc_status_code}}"), stack=True,
                   description="Calls per second by `rpc_grpc_status_code` from the trailers (or a Trailers-Only "
                               "response): 0 OK, 1 CANCELLED, 2 UNKNOWN, 3 INVALID_ARGUMENT, 4 DEADLINE_EXCEEDED, "
                               "5 NOT_FOUND, 6 ALREADY_EXISTS, 7 PERMISSION_DENIED, 8 RESOURCE_EXHAUSTED, "
                               "9 FAILED_PRECONDITION, 10 ABORTED, 11 OUT_OF_RANGE, 12 UNIMPLEMENTED, 13 INTERNAL, "
                               "14 UNAVAILABLE, 15 DATA_LOSS, 16 UNAUTHENTICATED. No code: the call ended without "
                               "a status (`error_type=\"no_response\"`), or its status was in a header block the "
                               "exporter could not decode (docs/grpc.md)."),
    ]


def l7() -> Json:
    w = WORKLOAD
    db = f'{w},db_system_name=~"$db_system"'
    panels = [
        *red_rows("HTTP server", "http_server_request_duration_seconds", "process_executable_name, server_port",
                  "{{process_executable_name}} :{{server_port}}", "reqps", w,
                  rate_text="HTTP/1.x and HTTP/2 requests per second answered by each local server process and "
                            "port (`http_server_request_duration_seconds_count`), in clear and, through L7.Tls, "
                            "over TLS. By default, clients on the node itself (Common.DropLocalConnections) are "
                            "not seen. A drop from the usual level means fewer clients or a server that stopped "
                            "answering.",
                  errors_text="Share of requests answered with a 5xx status or not at all (`error_type`: the "
                              "status, or `no_response` when the connection closed first); 4xx are the client's "
                              "mistakes and do not count. Normally near 0; NetobsHTTPServerErrorRatioHigh fires at "
                              "5 % (chart default).",
                  duration_text="p50, p90 and p99 of the time from reading a request's first bytes to writing the "
                                "response's last byte: the server's own time, without the network or the wait "
                                "before it reads. Under 5 ms, the first bucket, percentiles are interpolated: a "
                                "fast server reads as 2.5 to 5 ms. NetobsHTTPServerLatencyHigh fires at a p99 of "
                                "1 s (chart default)."),
        table("HTTP server: requests by route and status", "short",
              "topk(20, sum by (process_executable_name, http_request_method, http_route, http_response_status_code) "
              f"(increase(http_server_request_duration_seconds_count{{{w}}}[$__range])))", width=24,
              description="The 20 busiest method, route and status combinations over the time range. Routes are "
                          "paths with ids folded to `{id}`; `~other` stands for the routes of a process beyond "
                          "L7.MaxRoutesPerProcess. Look here for the routes behind the 5xx of the error ratio; an "
                          "empty status is a request with no response."),
        *red_rows("HTTP client", "http_client_request_duration_seconds", "server_address, server_port",
                  "{{server_address}}:{{server_port}}", "reqps", w,
                  rate_text="HTTP/1.x and HTTP/2 requests per second that local processes sent, by server (the "
                            "Host header or HTTP/2's `:authority`, else its IP address) and port "
                            "(`http_client_request_duration_seconds_count`), in clear and, through L7.Tls, over "
                            "TLS.",
                  errors_text="Share of requests that got a 4xx or 5xx status or no response (the connection "
                              "closed first: a client timeout, a reset). Unlike the server side, 4xx count: a "
                              "steady share of 404 can be the client's normal. A load generator that stops with "
                              "requests in flight leaves a few `no_response`.",
                  duration_text="p50, p90 and p99 of the time from writing the request's first bytes to reading "
                                "the response's last byte: the server's time plus the network and the transfer "
                                "of both bodies, without the DNS lookup and the TCP connect. Much above the "
                                "server side's duration means the network or a proxy in between."),
        *http2_rows(w),
        *grpc_rows("server", "rpc_server_call_duration_seconds", w,
                   calls_text="gRPC calls per second answered by local servers, by service and method "
                              "(`rpc_server_call_duration_seconds_count`; `rpc_service` and `rpc_method` from the "
                              "request's `:path`, e.g. `helloworld.Greeter` and `SayHello`). A streaming call counts "
                              "once, when it ends. When the path was in a header block the exporter could not "
                              "decode, the call is counted without its service and method (docs/grpc.md).",
                   errors_text="Share of calls, per service, that the server ended with a status that is its own "
                               "failure (2 UNKNOWN, 4 DEADLINE_EXCEEDED, 12 UNIMPLEMENTED, 13 INTERNAL, "
                               "14 UNAVAILABLE, 15 DATA_LOSS) or without a status (`no_response`): the calls with "
                               "an `error_type`. Other codes (NOT_FOUND, INVALID_ARGUMENT...) answer the caller's "
                               "mistakes and do not count. Normally near 0; NetobsGRPCServerErrorRatioHigh fires "
                               "at 5 % (chart default).",
                   duration_text="p50, p95 and p99 per service and method, from reading the request's first frame "
                                 "to writing the end of the response (END_STREAM, with the trailers): the server's "
                                 "own time. A streaming call lasts as long as its stream, so read streaming "
                                 "methods apart from unary ones."),
        *grpc_rows("client", "rpc_client_call_duration_seconds", w,
                   calls_text="gRPC calls per second that local processes made, by service and method "
                              "(`rpc_client_call_duration_seconds_count`). A streaming call counts once, when it "
                              "ends. Calls over TLS are seen through L7.Tls.",
                   errors_text="Share of calls, per service, that ended with any status but 0 OK, or without one "
                               "(`no_response`: the stream was reset or the connection closed first). Unlike the "
                               "server side, every code counts: a steady share of NOT_FOUND can be the client's "
                               "normal. Calls by status says which codes.",
                   duration_text="p50, p95 and p99 per service and method, from writing the request's first frame "
                                 "to reading the end of the response (END_STREAM): the server's time plus the "
                                 "network. Much above the server side's duration means the network or a proxy in "
                                 "between. A streaming call lasts as long as its stream."),
        *red_rows("Database client", "db_client_operation_duration_seconds", "db_system_name, db_operation_name",
                  "{{db_system_name}} {{db_operation_name}}", "ops", db,
                  rate_text="Redis, PostgreSQL, MySQL and memcached operations per second that local processes "
                            "sent, by system and operation (`GET`, `SELECT`...; "
                            "`db_client_operation_duration_seconds_count`). TLS connections are not seen; "
                            "memcached only when listed in Common.IncludeProtocols.",
                  errors_text="Share of operations answered with an error (a Redis error reply, a PostgreSQL "
                              "SQLSTATE, a MySQL error number, memcached ERROR, CLIENT_ERROR or SERVER_ERROR) or "
                              "not at all (`no_response`). A memcached MISS is not an error. Normally near 0; "
                              "Database client: errors by type says which.",
                  duration_text="p50, p90 and p99 of the time from writing a request to reading the end of its "
                                "response, as the client saw it: the server's time plus the network. Redis and "
                                "memcached answer in well under a millisecond. NetobsDatabaseLatencyHigh fires "
                                "at a p99 of 0.5 s per server (chart default)."),
        table("Database client: errors by type", "short", "sum by (db_system_name, server_address, error_type) "
              f"(increase(db_client_operation_duration_seconds_count{{{db},error_type!=\"\"}}[$__range]))", width=24,
              description="Operations that failed over the time range, per system, server and `error_type`: a "
                          "Redis error prefix (ERR, WRONGTYPE), a PostgreSQL SQLSTATE (22012 division by zero, "
                          "42P01 undefined table), a MySQL error number (1146 no such table), or `no_response`. "
                          "Empty is good."),
        *red_rows("Database server", "db_server_operation_duration_seconds", "db_system_name, db_operation_name",
                  "{{db_system_name}} {{db_operation_name}}", "ops", db,
                  rate_text="Operations per second that local servers (redis-server, postgres, mariadbd, "
                            "memcached) answered, by system and operation "
                            "(`db_server_operation_duration_seconds_count`), whoever their clients are.",
                  errors_text="Share of operations the server answered with an error, or did not answer before "
                              "the connection closed (`no_response`). Errors seen by the clients but not here "
                              "come from the network or a proxy in between.",
                  duration_text="p50, p90 and p99 of the time from reading a request to writing the end of its "
                                "response: the server's own time, without the network. A client duration well "
                                "above it means the time goes to the network or the client's own queue."),
    ]
    systems = ('label_values(db_client_operation_duration_seconds_count{job=~"$job",cluster=~"$cluster"}, '
               'db_system_name)')
    variables = [*workload_variables(), query_variable("db_system", "Database", systems)]
    return dashboard("netobs-l7", "netobs / L7 RED",
                     "Rate, errors and duration of HTTP requests (HTTP/1.x and HTTP/2), gRPC calls and database "
                     "operations, client and server side.",
                     variables, panels)


def health() -> Json:
    n = NODE
    # The fullest instrument of each exporter, as a share of that exporter's limit.
    limit_used = (f"max(netobs_series{{{n}}} / on (cluster, job, instance) group_left "
                  f"max by (cluster, job, instance) (netobs_series_limit{{{n}}}))")
    panels = [
        row("Exporters"),
        stat("Exporters up", "short", target(f"sum(up{{{n}}})", "up"),
             target(f"count(up{{{n}}} == 0) or vector(0)", "down"),
             colors=thresholds("green", (1, "red")),
             overrides=[{"matcher": {"id": "byFrameRefID", "options": "A"},
                         "properties": [{"id": "color", "value": {"mode": "fixed", "fixedColor": "text"}}]}],
             description="Targets of the job that Prometheus scraped (up) and failed to scrape (down, red from 1: "
                         "that node's metrics are missing). A node with no exporter pod is no target and shows in "
                         "neither: compare up with the number of nodes."),
        stat("Programs not attached", "short", target(f"count(netobs_program_attached{{{n}}} == 0) or vector(0)"),
             colors=thresholds("green", (1, "orange")),
             description="BPF programs that could not be attached, on all selected exporters. 0 is normal. From 1 "
                         "(orange), part of a collector's data is missing: the Programs table says which, the "
                         "exporter's log why (a kernel without the tracepoint, a missing capability)."),
        stat("Series limit used", "percentunit", target(limit_used),
             colors=thresholds("green", (0.8, "orange"), (1, "red")),
             description="The fullest instrument's series (`netobs_series`) as a share of the limit "
                         "(`netobs_series_limit`, Telemetry.MaxSeriesPerInstrument), on the fullest exporter. Orange "
                         "from 80 %, where NetobsSeriesNearLimit fires (chart default); red at 100 %: new series "
                         "are dropped (Series dropped)."),
        stat("Scrape duration", "s", target(f"max(scrape_duration_seconds{{{n}}})"),
             colors=thresholds("green", (1, "orange"), (5, "red")),
             description="The longest time Prometheus took to scrape one exporter. Tens of milliseconds are normal; "
                         "it grows with the number of series (docs/benchmarks.md). Orange from 1 s; red from 5 s, "
                         "half the chart's scrapeTimeout: past the timeout the scrape fails and `up` is 0."),
        table("Programs", "short", f"netobs_program_attached{{{n}}}",
              description="Every BPF program of every exporter: 1 = attached, 0 = not attached (the exporter's log "
                          "says why; `--check-config` on the node prints the same table)."),
        timeseries("Collection duration", "s", target(f"max by (instance, collector) "
                   f"(netobs_collector_duration_seconds{{{n}}})", "{{instance}} {{collector}}"),
                   description="How long each collector's last read of its kernel tables took "
                               "(`netobs_collector_duration_seconds`), attribution and rendering not included. It "
                               "grows with the number of flows and series; Scrape duration shows the whole."),
        row("Losses and series"),
        timeseries("Events lost", "cps", target(sum_rate("instance, collector, reason", "netobs_events_lost_total", n),
                   "{{instance}} {{collector}} {{reason}}"),
                   description="Updates per second that the kernel side could not record, by collector and reason "
                               "(docs/metrics.md lists them). A full table (flow_table_full, series_full, "
                               "conns_full, pending_full) means low counts: enlarge that table. unmatched, "
                               "malformed and unparsed come with ordinary traffic in small numbers."),
        timeseries("Series per instrument", "short", target(f"max by (instrument) (netobs_series{{{n}}})",
                   "{{instrument}}"), target(f"max(netobs_series_limit{{{n}}})", "limit"),
                   description="Series each instrument exports (`netobs_series`, on the exporter with the most) "
                               "and the limit. An instrument that reaches the limit drops new series: find what "
                               "makes them (many peers, DNS names, HTTP routes), filter it out, or raise the limit."),
        timeseries("Series dropped", "cps", target(sum_rate("instance, instrument", "netobs_series_dropped_total", n),
                   "{{instance}} {{instrument}}"),
                   description="Series waiting at the limit, added up at each collection "
                               "(`netobs_series_dropped_total`), per second. Above 0, whole series are missing "
                               "from the metrics, while every value exported stays exact."),
        timeseries("Collector success", "short", target(f"min by (collector) (netobs_collector_success{{{n}}})",
                   "{{collector}}"),
                   description="1 when each collector's last read of its kernel tables succeeded, 0 when it failed "
                               "and its series are missing (the lowest over the exporters). Should stay at 1."),
    ]
    variables = [*job_and_cluster(), query_variable(
        "instance", "Instance", 'label_values(netobs_series_limit{job=~"$job",cluster=~"$cluster"}, instance)')]
    return dashboard("netobs-health", "netobs / Exporter health",
                     "Programs attached, collection duration, lost events and series of every exporter.",
                     variables, panels)


DASHBOARDS = {"netobs-network": network, "netobs-dns": dns, "netobs-l7": l7, "netobs-health": health,
              "netobs-service-map": service_map}


def dashboard_json(name: str) -> str:
    return json.dumps(DASHBOARDS[name](), indent=2, ensure_ascii=False) + "\n"


def panel_targets(board: Json) -> list[tuple[str, str]]:
    """(panel title, expression) of every query of a dashboard, rows left out."""
    return [(p["title"], t["expr"]) for p in board["panels"] if p["type"] != "row" for t in p["targets"]]
