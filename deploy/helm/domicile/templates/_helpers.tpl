{{/* Chart name. */}}
{{- define "domicile.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: the release name, prefixed with the chart name unless it already holds it. */}}
{{- define "domicile.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* The region, required. */}}
{{- define "domicile.region" -}}
{{- required "region is required: the regions.id of the config this release serves" .Values.region }}
{{- end }}

{{- define "domicile.selectorLabels" -}}
app.kubernetes.io/name: {{ include "domicile.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "domicile.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "domicile.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: gateway
domicile/region: {{ include "domicile.region" . | quote }}
{{- end }}

{{- define "domicile.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "domicile.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Name of the ConfigMap or Secret holding the config file. */}}
{{- define "domicile.configName" -}}
{{- if .Values.config.existingSecret }}
{{- .Values.config.existingSecret }}
{{- else }}
{{- printf "%s-config" (include "domicile.fullname" .) }}
{{- end }}
{{- end }}

{{/*
The pod template shared by the Deployment (no persistence) and the StatefulSet (persistence).
*/}}
{{- define "domicile.podTemplate" -}}
metadata:
  labels:
    {{- include "domicile.labels" . | nindent 4 }}
    {{- with .Values.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  annotations:
    {{- if not .Values.config.existingSecret }}
    checksum/config: {{ .Values.config.toml | sha256sum }}
    {{- end }}
    {{- if .Values.metrics.podAnnotations }}
    prometheus.io/scrape: "true"
    prometheus.io/port: {{ .Values.ports.admin | quote }}
    prometheus.io/path: /metrics
    {{- end }}
    {{- with .Values.podAnnotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  serviceAccountName: {{ include "domicile.serviceAccountName" . }}
  automountServiceAccountToken: false
  {{- with .Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.priorityClassName }}
  priorityClassName: {{ . }}
  {{- end }}
  terminationGracePeriodSeconds: {{ .Values.terminationGracePeriodSeconds }}
  securityContext:
    {{- toYaml .Values.podSecurityContext | nindent 4 }}
  containers:
    - name: domicile
      image: "{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}"
      imagePullPolicy: {{ .Values.image.pullPolicy }}
      args:
        - serve
        - --config
        - /etc/domicile/{{ if .Values.config.existingSecret }}{{ .Values.config.existingSecretKey }}{{ else }}domicile.toml{{ end }}
        - --listen
        - "{{ .Values.bindAddress }}:{{ .Values.ports.http }}"
      ports:
        - name: http
          containerPort: {{ .Values.ports.http }}
          protocol: TCP
        - name: admin
          containerPort: {{ .Values.ports.admin }}
          protocol: TCP
      {{- with .Values.env }}
      env:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      livenessProbe:
        httpGet:
          path: /healthz
          port: admin
        periodSeconds: {{ .Values.probes.liveness.periodSeconds }}
        timeoutSeconds: {{ .Values.probes.liveness.timeoutSeconds }}
        failureThreshold: {{ .Values.probes.liveness.failureThreshold }}
      readinessProbe:
        httpGet:
          {{- if .Values.probes.readinessToken }}
          path: /readyz
          port: admin
          httpHeaders:
            - name: Authorization
              value: "Bearer {{ .Values.probes.readinessToken }}"
          {{- else }}
          path: /healthz
          port: admin
          {{- end }}
        periodSeconds: {{ .Values.probes.readiness.periodSeconds }}
        timeoutSeconds: {{ .Values.probes.readiness.timeoutSeconds }}
        failureThreshold: {{ .Values.probes.readiness.failureThreshold }}
      {{- if gt (int .Values.preStopSleepSeconds) 0 }}
      lifecycle:
        preStop:
          exec:
            command: ["sleep", "{{ .Values.preStopSleepSeconds }}"]
      {{- end }}
      resources:
        {{- toYaml .Values.resources | nindent 8 }}
      securityContext:
        {{- toYaml .Values.securityContext | nindent 8 }}
      volumeMounts:
        - name: config
          mountPath: /etc/domicile
          readOnly: true
        - name: traces
          mountPath: {{ .Values.trace.mountPath }}
        {{- if .Values.geoip.volume }}
        - name: geoip
          mountPath: {{ .Values.geoip.mountPath }}
          readOnly: true
        {{- end }}
  volumes:
    - name: config
      {{- if .Values.config.existingSecret }}
      secret:
        secretName: {{ .Values.config.existingSecret }}
      {{- else }}
      configMap:
        name: {{ include "domicile.configName" . }}
      {{- end }}
    {{- if not .Values.trace.persistence.enabled }}
    - name: traces
      emptyDir:
        sizeLimit: {{ .Values.trace.emptyDirSizeLimit }}
    {{- end }}
    {{- if .Values.geoip.volume }}
    - name: geoip
      {{- toYaml .Values.geoip.volume | nindent 6 }}
    {{- end }}
  {{- with .Values.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.topologySpreadConstraints }}
  topologySpreadConstraints:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}
