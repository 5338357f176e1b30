{{/*
One alert rule from its text. In `expr`: $SEL, (the chart's selector and a comma, or nothing) and
$SEL alone, $RANGE (rateInterval), $CLUSTER (the label that tells clusters apart), $GROUP (the
labels each alert is per, the cluster first), and the alert's own values $T (threshold), $MIN
(minRate), $Q (quantile) and $ROUTINE (routineThreshold), from prometheusRule.alerts.<name>.
Every alert links to its section of the runbooks.
*/}}
{{- define "netobs.rule" -}}
{{- $p := .root.Values.prometheusRule }}
{{- $a := index $p.alerts .name }}
{{- if $a.enabled }}
{{- $s := $p.selector | default "" }}
{{- $cluster := $p.clusterLabel | default "cluster" }}
{{- $expr := .expr
    | replace "$SEL," (ternary (printf "%s," $s) "" (ne $s ""))
    | replace "$SEL" $s
    | replace "$RANGE" $p.rateInterval
    | replace "$GROUP" (printf "%s, instance, k8s_namespace_name, k8s_pod_name, process_executable_name" $cluster)
    | replace "$CLUSTER" $cluster
    | replace "$ROUTINE" (toString (default 1 $a.routineThreshold))
    | replace "$T" (toString (default 0 $a.threshold))
    | replace "$MIN" (toString (default 0 $a.minRate))
    | replace "$Q" (toString (default 0.99 $a.quantile)) }}
- alert: {{ .name }}
  expr: |-
    {{- $expr | nindent 4 }}
  for: {{ $a.for }}
  labels:
    severity: {{ $a.severity }}
    {{- with $p.alertLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  annotations:
    summary: {{ .summary | quote }}
    description: {{ .description | quote }}
    runbook_url: {{ printf "%s#%s" (include "netobs.runbooks" .root) (lower .name) | quote }}
{{- end }}
{{- end }}

{{/* The runbooks, one section per alert whose heading is the alert's name: docs/alerts.md, where
prometheusRule.runbooks says it is served. */}}
{{- define "netobs.runbooks" -}}
{{ .Values.prometheusRule.runbooks }}
{{- end }}
