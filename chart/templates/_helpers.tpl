{{/* Names and labels shared by every template. */}}

{{- define "netobs.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "netobs.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else if contains (include "netobs.name" .) .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name (include "netobs.name" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{- define "netobs.selectorLabels" -}}
app.kubernetes.io/name: {{ include "netobs.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* The labels of every object: the chart's own, then commonLabels (a key the chart sets keeps the
chart's value, so a selector never changes). */}}
{{- define "netobs.labels" -}}
{{- $own := include "netobs.selectorLabels" . | fromYaml }}
{{- $_ := set $own "helm.sh/chart" (printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_") }}
{{- $_ = set $own "app.kubernetes.io/version" .Chart.AppVersion }}
{{- $_ = set $own "app.kubernetes.io/managed-by" .Release.Service }}
{{- toYaml (merge $own (.Values.commonLabels | default dict)) }}
{{- end }}

{{/* The labels of an object that has a labels value of its own (`labels`, e.g. a ServiceMonitor's,
which Prometheus selects it by): those win over the chart's. Called with (list $ labels). */}}
{{- define "netobs.labelsWith" -}}
{{- $root := index . 0 }}
{{- toYaml (merge (dict) (index . 1 | default dict) (include "netobs.labels" $root | fromYaml)) }}
{{- end }}

{{- define "netobs.serviceAccountName" -}}
{{- if .Values.kubernetes.serviceAccount.create }}
{{- default (include "netobs.fullname" .) .Values.kubernetes.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.kubernetes.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Whether the bash audit is on: the exporter's default is true. */}}
{{- define "netobs.bashEnabled" -}}
{{- $bash := (.Values.config | default dict).Bash | default dict }}
{{- if hasKey $bash "Enabled" }}{{ $bash.Enabled }}{{ else }}true{{ end }}
{{- end }}

{{/* Whether TLS is read through uprobes: the exporter's default is true. */}}
{{- define "netobs.tlsEnabled" -}}
{{- $l7 := (.Values.config | default dict).L7 | default dict }}
{{- $tls := $l7.Tls | default dict }}
{{- if hasKey $tls "Enabled" }}{{ $tls.Enabled }}{{ else }}true{{ end }}
{{- end }}

{{/* Whether the cluster-wide watch of peers is on: the exporter's default is false. */}}
{{- define "netobs.peersEnabled" -}}
{{- $k8s := (.Values.config | default dict).Kubernetes | default dict }}
{{- $peers := $k8s.Peers | default dict }}
{{- if hasKey $peers "Enabled" }}{{ $peers.Enabled }}{{ else }}false{{ end }}
{{- end }}

{{/* The capabilities the exporter needs (docs/install.md says which feature needs which). */}}
{{- define "netobs.capabilities" -}}
{{- $caps := list "BPF" "PERFMON" "NET_ADMIN" "SYS_PTRACE" "DAC_READ_SEARCH" }}
{{- if or (eq (include "netobs.bashEnabled" .) "true") (eq (include "netobs.tlsEnabled" .) "true") }}
{{- $caps = append $caps "SYS_ADMIN" }}
{{- end }}
{{- range .Values.securityContext.extraCapabilities }}
{{- $caps = append $caps . }}
{{- end }}
{{- toYaml (uniq $caps) }}
{{- end }}

{{/* OTEL_RESOURCE_ATTRIBUTES: the node, then the user's attributes. */}}
{{- define "netobs.resourceAttributes" -}}
{{- $attrs := list "k8s.node.name=$(NODE_NAME)" }}
{{- range $key, $value := .Values.otlp.resourceAttributes }}
{{- $attrs = append $attrs (printf "%s=%s" $key $value) }}
{{- end }}
{{- join "," $attrs }}
{{- end }}

{{/* How the kubelet probes the exporter: probes.type, or by default http, and tcp with a web config,
since the exporter asks for its password and client certificate on every path, health checks
included, and the kubelet has neither. */}}
{{- define "netobs.probeType" -}}
{{- if .Values.probes.type }}{{ .Values.probes.type }}
{{- else if .Values.metrics.webConfig.secretName }}tcp
{{- else }}http
{{- end }}
{{- end }}

{{/* One probe's action, called with (list type path). */}}
{{- define "netobs.probe" -}}
{{- $type := index . 0 }}
{{- if eq $type "tcp" -}}
tcpSocket:
  port: metrics
{{- else -}}
httpGet:
  path: {{ index . 1 }}
  port: metrics
  scheme: {{ upper $type }}
{{- end }}
{{- end }}
