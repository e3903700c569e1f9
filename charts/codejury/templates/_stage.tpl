{{/*
A gRPC stage: Deployment + Service. Arguments (dict): root, component, values (the
component's values), args (the codejury command), port, startupSeconds, runs (mount the
run directory), gpu (dict or nil), env (list or nil), exposeProbe (with TLS, the Service
also carries the plain-text health port: the Solve front door's health checks go there).
*/}}
{{- define "codejury.grpcStage" -}}
{{- $root := .root -}}
{{- $name := include "codejury.name" . -}}
{{- $tls := $root.Values.tls -}}
{{- if and $tls.enabled (not $tls.secretName) -}}
{{- fail "tls.enabled needs tls.secretName: a kubernetes.io/tls Secret with tls.crt, tls.key and ca.crt" -}}
{{- end -}}
{{- $probePort := ternary (add .port $tls.probePortOffset) .port $tls.enabled -}}
{{- $env := default list .env -}}
{{- if $tls.enabled -}}
{{- $env = concat $env (list
      (dict "name" "CODEJURY_TLS__CERT_FILE" "value" "/etc/codejury/tls/tls.crt")
      (dict "name" "CODEJURY_TLS__KEY_FILE" "value" "/etc/codejury/tls/tls.key")
      (dict "name" "CODEJURY_TLS__CA_FILE" "value" "/etc/codejury/tls/ca.crt")
      (dict "name" "CODEJURY_TLS__CLIENT_AUTH" "value" (toString $tls.clientAuth))
      (dict "name" "CODEJURY_TLS__PROBE_PORT" "value" (toString $probePort))) -}}
{{- end -}}
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
            {{- if $tls.enabled }}
            - name: probe  # grpc.health.v1 alone, plain text: kubelet's probes
              containerPort: {{ $probePort }}
              protocol: TCP
            {{- end }}
            {{- include "codejury.metricsPort" $root | nindent 12 }}
          {{- include "codejury.envFrom" . | nindent 10 }}
          {{- with $env }}
          env:
            {{- toYaml . | nindent 12 }}
          {{- end }}
          {{- include "codejury.grpcProbes" (dict "port" $probePort "startupSeconds" .startupSeconds) | nindent 10 }}
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
            {{- if $tls.enabled }}
            - name: tls
              mountPath: /etc/codejury/tls
              readOnly: true
            {{- end }}
      volumes:
        - name: tmp
          emptyDir: {}
        {{- if $tls.enabled }}
        - name: tls
          secret:
            secretName: {{ $tls.secretName }}
        {{- end }}
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
    {{- if and $tls.enabled .exposeProbe }}
    - name: probe  # grpc.health.v1 alone, plain text: pipeline.stage_health checks it
      port: {{ $probePort }}
      targetPort: probe
      protocol: TCP
      appProtocol: grpc
    {{- end }}
{{- end -}}
