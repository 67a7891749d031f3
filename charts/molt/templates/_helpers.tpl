{{/* The chart name. */}}
{{- define "molt.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end }}

{{/* Object names: the release name, with the chart name added unless it already contains it. */}}
{{- define "molt.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end }}

{{- define "molt.selectorLabels" -}}
app.kubernetes.io/name: {{ include "molt.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "molt.labels" -}}
{{ include "molt.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end }}

{{- define "molt.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "molt.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end }}

{{- define "molt.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end }}

{{/* `molt run` arguments; config/manager/deployment.yaml has the same for the defaults. */}}
{{- define "molt.args" -}}
- run
{{- if .Values.leaderElection.enabled }}
- --leader-elect
- {{ printf "--leader-election-name=%s" .Values.leaderElection.leaseName | quote }}
- {{ printf "--leader-election-lease-duration=%d" (int .Values.leaderElection.leaseDuration) | quote }}
- {{ printf "--leader-election-renew-grace=%d" (int .Values.leaderElection.renewGrace) | quote }}
{{- end }}
- {{ printf "--log-format=%s" .Values.logFormat | quote }}
- {{ printf "--log=%s" .Values.logLevel | quote }}
- {{ printf "--concurrency=%d" (int .Values.concurrency) | quote }}
{{- with .Values.planSelector }}
- {{ printf "--plan-selector=%s" . | quote }}
{{- end }}
{{- range .Values.extraArgs }}
- {{ . | quote }}
{{- end }}
{{- end }}
