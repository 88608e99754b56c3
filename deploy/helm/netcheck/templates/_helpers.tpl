{{/*
Names follow the usual chart conventions: `name` is the chart name (or nameOverride), `fullname`
is "<release>-<name>" unless the release name already contains it (so `helm install netcheck`
names everything "netcheck", exactly like the kustomize base), or fullnameOverride.
*/}}
{{- define "netcheck.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "netcheck.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Selects this release's bot pods (Deployment, Service, PodDisruptionBudget). */}}
{{- define "netcheck.selectorLabels" -}}
app.kubernetes.io/name: {{ include "netcheck.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: bot
{{- end -}}

{{/* Labels shared by every object; the kustomize base carries name, instance and part-of as well. */}}
{{- define "netcheck.labels" -}}
app.kubernetes.io/name: {{ include "netcheck.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/part-of: netcheck
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "netcheck.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag -}}
{{- if .Values.image.digest -}}
{{- printf "%s:%s@%s" .Values.image.repository $tag .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository $tag -}}
{{- end -}}
{{- end -}}

{{- define "netcheck.leaseName" -}}
{{- printf "%s-leader" (include "netcheck.fullname" .) -}}
{{- end -}}

{{- define "netcheck.slackSecret" -}}
{{- default (printf "%s-slack" (include "netcheck.fullname" .)) .Values.slack.existingSecret -}}
{{- end -}}

{{- define "netcheck.sshSecret" -}}
{{- default (printf "%s-ssh" (include "netcheck.fullname" .)) .Values.ssh.existingSecret -}}
{{- end -}}

{{/*
config.yaml: the chart's values for the documented keys, then `config:` merged over them, so any
configuration key (docs/configuration.md) can be set. Own-namespace keys are left out on
purpose: the bot takes them from POD_NAMESPACE (the release namespace).
*/}}
{{- define "netcheck.config" -}}
{{- $slack := dict
      "approvers" .Values.slack.approvers
      "approver_group" .Values.slack.approverGroup
      "allow_self_approval" .Values.slack.allowSelfApproval
      "proposal_ttl_minutes" (int .Values.slack.proposalTtlMinutes)
      "allowed_channels" .Values.slack.allowedChannels -}}
{{- with .Values.slack.joinChannel }}
{{- $_ := set $slack "join_channel" . -}}
{{- end }}
{{- $config := dict
      "ssh" (dict
        "user" .Values.ssh.user
        "private_key" "/etc/netcheck/ssh/id_ed25519"
        "known_hosts" "/etc/netcheck/ssh/known_hosts"
        "sudo" .Values.ssh.sudo)
      "debug_pod" (dict "image" .Values.debugPod.image)
      "slack" $slack
      "ops" (dict "health_port" (int .Values.healthPort) "lease_name" (include "netcheck.leaseName" .)) -}}
{{- if .Values.logLevel }}
{{- $_ := set $config "log_level" .Values.logLevel -}}
{{- end }}
{{- if ne .Values.nodeAccess "ssh" }}
{{- $_ := set $config "node_access" .Values.nodeAccess -}}
{{- $_ := set $config "host_pod" (dict "namespace" .Values.hostPodNamespace) -}}
{{- end }}
{{- toYaml (mergeOverwrite $config (deepCopy .Values.config)) -}}
{{- end -}}
