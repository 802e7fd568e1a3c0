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

{{/* Where the model server mounts its capture PVC (the Bento writes under it). */}}
{{- define "airflow-mlops.modelserver.capture.mountPath" -}}/var/lib/mlops/capture{{- end -}}

{{/* "true" when capture writes to a PVC: capture on, no object-store uri, persistence on. */}}
{{- define "airflow-mlops.modelserver.capture.onVolume" -}}
{{- $c := .Values.modelserver.capture -}}
{{- if and $c.enabled (not $c.uri) $c.persistence.enabled }}true{{ end -}}
{{- end -}}

{{/* The claim the model server writes capture to: the existing one, or the one this chart creates. */}}
{{- define "airflow-mlops.modelserver.capture.claimName" -}}
{{- default (printf "%s-capture" (include "airflow-mlops.modelserver.fullname" .)) .Values.modelserver.capture.persistence.existingClaim -}}
{{- end -}}

{{/* MLOPS_CAPTURE_URI; refuses a capture with nowhere to write, a local path and a column both dropped and hashed. */}}
{{- define "airflow-mlops.modelserver.capture.uri" -}}
{{- $c := .Values.modelserver.capture -}}
{{- $both := list -}}
{{- range $c.dropColumns }}{{ if has . $c.hashColumns }}{{ $both = append $both . }}{{ end }}{{ end -}}
{{- if $both -}}
{{- fail (printf "modelserver.capture: columns %v are in both dropColumns and hashColumns; pick one (the Bento refuses to start otherwise)" $both) -}}
{{- end -}}
{{- if $c.uri -}}
{{- if or (not (contains "://" $c.uri)) (hasPrefix "file:" $c.uri) -}}
{{- fail (printf "modelserver.capture.uri %q is a local path: the model server's filesystem is read-only and Airflow cannot read it; use an object-store URI (s3://bucket/capture) or set uri empty and use modelserver.capture.persistence" $c.uri) -}}
{{- end -}}
{{- $c.uri -}}
{{- else if $c.persistence.enabled -}}
{{- include "airflow-mlops.modelserver.capture.mountPath" . -}}
{{- else -}}
{{- fail "modelserver.capture is enabled but has nowhere to write: set modelserver.capture.uri to an object store (s3://bucket/capture), or modelserver.capture.persistence.enabled=true for a PVC, or modelserver.capture.enabled=false" -}}
{{- end -}}
{{- end -}}

{{/* The model server's MLOPS_CAPTURE_* environment; off leaves only MLOPS_CAPTURE_ENABLED=false. */}}
{{- define "airflow-mlops.modelserver.capture.env" -}}
{{- $c := .Values.modelserver.capture -}}
- {name: MLOPS_CAPTURE_ENABLED, value: {{ $c.enabled | toString | quote }}}
{{- if $c.enabled }}
- {name: MLOPS_CAPTURE_URI, value: {{ include "airflow-mlops.modelserver.capture.uri" . | quote }}}
- {name: MLOPS_CAPTURE_SAMPLE_RATE, value: {{ $c.sampleRate | toString | quote }}}
{{- /* Only when listed: an empty variable keeps the Bento's packaged columns, which may hold PII. */}}
{{- with $c.dropColumns }}
- {name: MLOPS_CAPTURE_DROP_COLUMNS, value: {{ join "," . | quote }}}
{{- end }}
{{- with $c.hashColumns }}
- {name: MLOPS_CAPTURE_HASH_COLUMNS, value: {{ join "," . | quote }}}
{{- end }}
- {name: MLOPS_CAPTURE_FLUSH_ROWS, value: {{ int64 $c.flushRows | quote }}}
- {name: MLOPS_CAPTURE_FLUSH_INTERVAL_S, value: {{ $c.flushIntervalSeconds | toString | quote }}}
- {name: MLOPS_CAPTURE_MAX_BUFFER_ROWS, value: {{ int64 $c.maxBufferRows | quote }}}
{{- with $c.hashSaltSecret.name }}
- name: MLOPS_CAPTURE_HASH_SALT
  valueFrom:
    secretKeyRef: {name: {{ . | quote }}, key: {{ $c.hashSaltSecret.key | quote }}}
{{- end }}
{{- end }}
{{- end -}}

{{/* The shadow's settings: MLOPS_SHADOW_* overrides what the Bento was packaged with. */}}
{{- define "airflow-mlops.modelserver.shadow.env" -}}
{{- $s := .Values.modelserver.shadow -}}
- {name: MLOPS_SHADOW_ENABLED, value: {{ $s.enabled | toString | quote }}}
{{- if not (kindIs "invalid" $s.maxQueueRows) }}
- {name: MLOPS_SHADOW_MAX_QUEUE_ROWS, value: {{ int64 $s.maxQueueRows | quote }}}
{{- end }}
{{- if not (kindIs "invalid" $s.canaryShare) }}
- {name: MLOPS_CANARY_SHARE, value: {{ $s.canaryShare | toString | quote }}}
{{- end }}
{{- end -}}
