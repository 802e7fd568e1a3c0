{{/* Chart name, truncated to the 63 characters Kubernetes allows. */}}
{{- define "airflow-mlops.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Fully qualified release-scoped name. */}}
{{- define "airflow-mlops.fullname" -}}
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

{{/* Standard labels; pass (dict "ctx" $ "component" "mlflow"). */}}
{{- define "airflow-mlops.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .ctx.Chart.Name .ctx.Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "airflow-mlops.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
app.kubernetes.io/component: {{ .component }}
app.kubernetes.io/part-of: airflow-mlops
{{- end -}}

{{/* Selector labels; pass (dict "ctx" $ "component" "mlflow"). */}}
{{- define "airflow-mlops.selectorLabels" -}}
app.kubernetes.io/name: {{ include "airflow-mlops.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* An image reference; refuses an empty tag and `latest`. Pass an image values block. */}}
{{- define "airflow-mlops.image" -}}
{{- if or (not .tag) (eq (toString .tag) "latest") -}}
{{- fail (printf "image %s needs a pinned tag (got %q): `latest` is not allowed" .repository (toString .tag)) -}}
{{- end -}}
{{- printf "%s:%s" .repository (toString .tag) -}}
{{- end -}}

{{/* Pod security context passing the "restricted" Pod Security Standard. Pass the uid. */}}
{{- define "airflow-mlops.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ . }}
runAsGroup: {{ . }}
fsGroup: {{ . }}
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* Container security context passing the "restricted" Pod Security Standard. */}}
{{- define "airflow-mlops.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "airflow-mlops.mlflow.fullname" -}}{{ include "airflow-mlops.fullname" . }}-mlflow{{- end -}}
{{- define "airflow-mlops.modelserver.fullname" -}}{{ include "airflow-mlops.fullname" . }}-modelserver{{- end -}}
{{- define "airflow-mlops.postgresql.fullname" -}}{{ include "airflow-mlops.fullname" . }}-postgresql{{- end -}}
{{- define "airflow-mlops.mlflow.url" -}}http://{{ include "airflow-mlops.mlflow.fullname" . }}.{{ .Release.Namespace }}.svc:{{ .Values.mlflow.service.port }}{{- end -}}
{{- define "airflow-mlops.training.namespace" -}}{{ default .Release.Namespace .Values.training.namespace }}{{- end -}}
