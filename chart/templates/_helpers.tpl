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

{{- define "netobs.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "netobs.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
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

{{/* The capabilities the exporter needs (docs/install.md says which feature needs which). */}}
{{- define "netobs.capabilities" -}}
{{- $caps := list "BPF" "PERFMON" "NET_ADMIN" "SYS_PTRACE" "DAC_READ_SEARCH" }}
{{- if eq (include "netobs.bashEnabled" .) "true" }}
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
