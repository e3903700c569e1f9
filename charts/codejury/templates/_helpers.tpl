{{/* Names: <release>-codejury-<component>, cut to 63 characters. */}}
{{- define "codejury.fullname" -}}
{{- if contains "codejury" .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-codejury" .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "codejury.name" -}}
{{- printf "%s-%s" (include "codejury.fullname" .root) .component | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "codejury.selectorLabels" -}}
app.kubernetes.io/name: codejury
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "codejury.labels" -}}
{{ include "codejury.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version }}
{{- end -}}

{{- define "codejury.image" -}}
{{- $image := index .root.Values.images .image -}}
{{- printf "%s:%s" $image.repository (default .root.Chart.AppVersion $image.tag) -}}
{{- end -}}

{{- define "codejury.settingsName" -}}
{{- printf "%s-settings" (include "codejury.fullname" .) -}}
{{- end -}}

{{- define "codejury.claimName" -}}
{{- default (printf "%s-runs" (include "codejury.fullname" .)) .Values.storage.existingClaim -}}
{{- end -}}

{{- define "codejury.serviceAccount" -}}
{{- printf "%s-%s" (include "codejury.fullname" .root) .component | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
What every CodeJury pod shares. enableServiceLinks: false, because Kubernetes would
inject <SERVICE>_SERVICE_HOST variables, and a Service named codejury-... gives names
starting CODEJURY_ that the settings loader refuses as unknown settings.
*/}}
{{- define "codejury.podCommon" -}}
enableServiceLinks: false
automountServiceAccountToken: {{ default false .token }}
{{- if .root.Values.hostNetwork }}
hostNetwork: true
dnsPolicy: ClusterFirstWithHostNet
{{- end }}
{{- with .root.Values.imagePullSecrets }}
imagePullSecrets:
{{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.nodeSelector }}
nodeSelector:
{{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.tolerations }}
tolerations:
{{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* Settings and the user's Secret as environment variables. */}}
{{- define "codejury.envFrom" -}}
envFrom:
  - configMapRef:
      name: {{ include "codejury.settingsName" .root }}
{{- if .root.Values.existingSecret }}
  - secretRef:
      name: {{ .root.Values.existingSecret }}
{{- end }}
{{- end -}}

{{/* A restricted container: non-root, no privilege escalation, nothing added. */}}
{{- define "codejury.restricted" -}}
securityContext:
  runAsNonRoot: true
  runAsUser: 10001
  runAsGroup: 10001
  allowPrivilegeEscalation: false
  readOnlyRootFilesystem: true
  capabilities:
    drop: [ALL]
  seccompProfile:
    type: RuntimeDefault
{{- end -}}

{{/* grpc.health.v1 probes on port .port; .startupSeconds for slow starts. */}}
{{- define "codejury.grpcProbes" -}}
startupProbe:
  grpc:
    port: {{ .port }}
  periodSeconds: 5
  failureThreshold: {{ div (default 120 .startupSeconds) 5 }}
readinessProbe:
  grpc:
    port: {{ .port }}
  periodSeconds: 5
  failureThreshold: 2
livenessProbe:
  grpc:
    port: {{ .port }}
  periodSeconds: 10
  timeoutSeconds: 5
  failureThreshold: 6
{{- end -}}

{{/* The run-directory volume: the claim, or a host directory (local profile). */}}
{{- define "codejury.runsVolume" -}}
- name: runs
{{- if .Values.storage.hostPath }}
  hostPath:
    path: {{ .Values.storage.hostPath }}
    type: DirectoryOrCreate
{{- else }}
  persistentVolumeClaim:
    claimName: {{ include "codejury.claimName" . }}
{{- end }}
{{- end -}}

{{/* The address of the reranker's v2 gRPC endpoint. */}}
{{- define "codejury.rerankerEndpoint" -}}
{{- if .Values.reranking.endpoint -}}
{{- .Values.reranking.endpoint -}}
{{- else -}}
{{- printf "%s-predictor.%s.svc.cluster.local:80" .Values.reranker.inferenceService .Release.Namespace -}}
{{- end -}}
{{- end -}}

{{/* Every Kafka topic the code uses (codejury.bus.topics; a test keeps them equal). */}}
{{- define "codejury.topics" -}}
- codejury.solve.requested
- codejury.candidates.generated
- codejury.candidates.executed
- codejury.solve.completed
- codejury.feedback
{{- end -}}

{{/* Registers the first reranker version on the run directory; kept when it exists. */}}
{{- define "codejury.rerankerInitArgs" -}}
{{- toJson (list "reranker" "init" "--version" .Values.reranker.stableVersion "--backbone" "minilm" "--mark-stable" "--exist-ok") -}}
{{- end -}}

{{- /* The container port the metrics endpoint listens on (monitoring.enabled). */ -}}
{{- define "codejury.metricsPort" -}}
{{- if .Values.monitoring.enabled }}
- name: metrics
  containerPort: {{ .Values.monitoring.port }}
  protocol: TCP
{{- end }}
{{- end -}}
