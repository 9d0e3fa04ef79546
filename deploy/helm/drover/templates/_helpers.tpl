{{/* Labels every object of a release carries. */}}
{{- define "drover.labels" -}}
app.kubernetes.io/name: drover
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}

{{/* The image, repository:tag. */}}
{{- define "drover.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag }}
{{- end }}

{{/* The results volume's claim: the user's own, or the chart's. */}}
{{- define "drover.claim" -}}
{{ .Values.storage.existingClaim | default (printf "%s-results" .Release.Name) }}
{{- end }}

{{/* The run's folder name and start time, which every run must be given. */}}
{{- define "drover.runId" -}}
{{ required "run.id is required: a new folder name for every run, e.g. --set run.id=run-$(date -u +%Y%m%dT%H%M%SZ)" .Values.run.id }}
{{- end }}
{{- define "drover.startAt" -}}
{{ required "run.startAt is required: when every worker starts, e.g. --set run.startAt=$(date -u -d '+3 min' +%Y-%m-%dT%H:%M:%SZ)" .Values.run.startAt }}
{{- end }}

{{/* The pod security context: the image's non-root user (65532, distroless's "nonroot"). */}}
{{- define "drover.podSecurity" -}}
securityContext:
  runAsNonRoot: true
  runAsUser: 65532
  runAsGroup: 65532
  fsGroup: 65532
{{- end }}

{{/* The container security context. */}}
{{- define "drover.containerSecurity" -}}
securityContext:
  allowPrivilegeEscalation: false
  readOnlyRootFilesystem: true
  capabilities:
    drop: ["ALL"]
{{- end }}
