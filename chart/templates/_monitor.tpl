{{/* What the ServiceMonitor's endpoint and the PodMonitor's podMetricsEndpoint say alike: how to
scrape the metrics port. Called with (list $ .Values.serviceMonitor) or the podMonitor's values. */}}
{{- define "netobs.scrapeEndpoint" -}}
{{- $root := index . 0 }}
{{- $monitor := index . 1 -}}
port: metrics
path: {{ $root.Values.metrics.path }}
scheme: {{ $monitor.scheme }}
{{- with $monitor.tlsConfig }}
tlsConfig:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $monitor.basicAuth }}
basicAuth:
  {{- toYaml . | nindent 2 }}
{{- end }}
interval: {{ $monitor.interval }}
scrapeTimeout: {{ $monitor.scrapeTimeout }}
relabelings:
  - sourceLabels: [__meta_kubernetes_pod_node_name]
    targetLabel: node
  {{- with $monitor.relabelings }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- with $monitor.metricRelabelings }}
metricRelabelings:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/* A ServiceMonitor and a PodMonitor together would scrape every pod twice: each series twice, and
every sum in the alert rules and dashboards doubled. */}}
{{- define "netobs.oneMonitor" -}}
{{- if and .Values.serviceMonitor.enabled .Values.podMonitor.enabled }}
{{- fail "serviceMonitor.enabled and podMonitor.enabled: choose one, both would scrape every pod twice" }}
{{- end }}
{{- end }}
