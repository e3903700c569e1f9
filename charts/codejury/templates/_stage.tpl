{{/*
A gRPC stage: Deployment + Service. Arguments (dict): root, component, values (the
component's values), args (the codejury command), port, startupSeconds, runs (mount the
run directory), gpu (dict or nil), env (list or nil).
*/}}
{{- define "codejury.grpcStage" -}}
{{- $root := .root -}}
{{- $name := include "codejury.name" . -}}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ $name }}
  labels:
    {{- include "codejury.labels" . | nindent 4 }}
spec:
  replicas: {{ .values.replicas }}
  selector:
    matchLabels:
      {{- include "codejury.selectorLabels" . | nindent 6 }}
  template:
    metadata:
      labels:
        {{- include "codejury.labels" . | nindent 8 }}
      annotations:
        checksum/settings: {{ include (print $root.Template.BasePath "/settings.yaml") $root | sha256sum }}
    spec:
      {{- include "codejury.podCommon" . | nindent 6 }}
      terminationGracePeriodSeconds: {{ default 30 .grace }}
      {{- with .initArgs }}
      initContainers:
        - name: init
          image: {{ include "codejury.image" (dict "root" $root "image" "runtime") }}
          imagePullPolicy: {{ $root.Values.images.pullPolicy }}
          args: {{ toJson . }}
          {{- include "codejury.envFrom" $ | nindent 10 }}
          resources:
            {{- toYaml $.values.resources | nindent 12 }}
          {{- include "codejury.restricted" $ | nindent 10 }}
          volumeMounts:
            - name: tmp
              mountPath: /tmp
            - name: runs
              mountPath: /var/lib/codejury
      {{- end }}
      containers:
        - name: {{ .component }}
          image: {{ include "codejury.image" (dict "root" $root "image" "runtime") }}
          imagePullPolicy: {{ $root.Values.images.pullPolicy }}
          args: {{ toJson .args }}
          ports:
            - name: grpc
              containerPort: {{ .port }}
              protocol: TCP
            {{- include "codejury.metricsPort" $root | nindent 12 }}
          {{- include "codejury.envFrom" . | nindent 10 }}
          {{- with .env }}
          env:
            {{- toYaml . | nindent 12 }}
          {{- end }}
          {{- include "codejury.grpcProbes" (dict "port" .port "startupSeconds" .startupSeconds) | nindent 10 }}
          resources:
            {{- $resources := deepCopy .values.resources }}
            {{- if and .gpu .gpu.enabled }}
            {{- $limits := default dict $resources.limits }}
            {{- $_ := set $limits .gpu.resourceName .gpu.count }}
            {{- $_ := set $resources "limits" $limits }}
            {{- end }}
            {{- toYaml $resources | nindent 12 }}
          {{- include "codejury.restricted" . | nindent 10 }}
          volumeMounts:
            - name: tmp
              mountPath: /tmp
            - name: runs
              mountPath: /var/lib/codejury
      volumes:
        - name: tmp
          emptyDir: {}
        {{- if .runs }}
        {{- include "codejury.runsVolume" $root | nindent 8 }}
        {{- else }}
        - name: runs  # the run directory's local state only (logs, caches): nothing shared
          emptyDir: {}
        {{- end }}
---
apiVersion: v1
kind: Service
metadata:
  name: {{ $name }}
  labels:
    {{- include "codejury.labels" . | nindent 4 }}
spec:
  type: {{ dig "service" "type" "ClusterIP" .values }}
  selector:
    {{- include "codejury.selectorLabels" . | nindent 4 }}
  ports:
    - name: grpc
      port: {{ .port }}
      targetPort: grpc
      protocol: TCP
      appProtocol: grpc
{{- end -}}
