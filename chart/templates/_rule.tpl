{{/*
One alert rule from its text. In `expr`: $SEL, (the chart's selector and a comma, or nothing) and
$SEL alone, $RANGE (rateInterval), $GROUP (the labels each alert is per), and the alert's own
values $T (threshold), $MIN (minRate) and $Q (quantile).
*/}}
{{- define "netobs.rule" -}}
{{- $p := .root.Values.prometheusRule }}
{{- $a := index $p.alerts .name }}
{{- if $a.enabled }}
{{- $s := $p.selector | default "" }}
{{- $expr := .expr
    | replace "$SEL," (ternary (printf "%s," $s) "" (ne $s ""))
    | replace "$SEL" $s
    | replace "$RANGE" $p.rateInterval
    | replace "$GROUP" "instance, k8s_namespace_name, k8s_pod_name, process_executable_name"
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
{{- end }}
{{- end }}
