{{/* Labels shared by every object; the kustomize base carries the first two as well. */}}
{{- define "netcheck.labels" -}}
app.kubernetes.io/name: netcheck
app.kubernetes.io/part-of: netcheck
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "netcheck.slackSecret" -}}
{{- default "netcheck-slack" .Values.slack.existingSecret -}}
{{- end -}}

{{- define "netcheck.sshSecret" -}}
{{- default "netcheck-ssh" .Values.ssh.existingSecret -}}
{{- end -}}
