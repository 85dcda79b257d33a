{{/* Names, labels and the shared pieces of every Shopgraph pod. */}}

{{- define "shopgraph.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "shopgraph.fullname" -}}
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

{{/* The resource name of one component: fullname-component. */}}
{{- define "shopgraph.component" -}}
{{- printf "%s-%s" (include "shopgraph.fullname" .root) .component | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "shopgraph.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "shopgraph.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: shopgraph
{{- end -}}

{{/* Selector labels of one component ({root, component}). */}}
{{- define "shopgraph.selectorLabels" -}}
app.kubernetes.io/name: {{ include "shopgraph.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "shopgraph.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "shopgraph.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "shopgraph.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* The Secret with JWT and hop keys. */}}
{{- define "shopgraph.authSecretName" -}}
{{- default (printf "%s-auth" (include "shopgraph.fullname" .)) .Values.auth.existingSecret -}}
{{- end -}}

{{/* The Secret with store URLs and Kafka client properties. */}}
{{- define "shopgraph.servicesSecretName" -}}
{{- default (printf "%s-services" (include "shopgraph.fullname" .)) .Values.externalServices.existingSecret -}}
{{- end -}}

{{- define "shopgraph.supergraphConfigMapName" -}}
{{- default (printf "%s-supergraph" (include "shopgraph.fullname" .)) .Values.supergraph.existingConfigMap -}}
{{- end -}}

{{/* The cluster URL of a subgraph ({root, name}). */}}
{{- define "shopgraph.subgraphUrl" -}}
{{- $port := (index .root.Values.subgraphs .name).port -}}
{{- printf "http://%s:%v/graphql" (include "shopgraph.component" (dict "root" .root "component" .name)) $port -}}
{{- end -}}

{{/* Environment every container shares. */}}
{{- define "shopgraph.commonEnv" -}}
- name: LOG_LEVEL
  value: {{ .Values.logLevel | quote }}
- name: LOG_FORMAT
  value: {{ .Values.logFormat | quote }}
{{- if .Values.otlpEndpoint }}
- name: OTEL_EXPORTER_OTLP_ENDPOINT
  value: {{ .Values.otlpEndpoint | quote }}
{{- end }}
{{- end -}}

{{/* Kafka settings of a subgraph. */}}
{{- define "shopgraph.kafkaEnv" -}}
{{- $kafka := .Values.externalServices.kafka -}}
{{- if $kafka.brokers }}
- name: KAFKA_BROKERS
  value: {{ $kafka.brokers | quote }}
- name: KAFKA_TOPIC_PREFIX
  value: {{ $kafka.topicPrefix | quote }}
- name: KAFKA_TOPIC_PARTITIONS
  value: {{ $kafka.topicPartitions | quote }}
- name: KAFKA_REPLICATION_FACTOR
  value: {{ $kafka.replicationFactor | quote }}
- name: KAFKA_CLIENT_PROPERTIES
  valueFrom:
    secretKeyRef:
      name: {{ include "shopgraph.servicesSecretName" . }}
      key: kafka-client-properties
      optional: true
{{- end }}
{{- end -}}

{{/* The database URL of a subgraph's store ({root, name}). */}}
{{- define "shopgraph.databaseEnv" -}}
- name: {{ printf "%s_DATABASE_URL" (upper .name) }}
  valueFrom:
    secretKeyRef:
      name: {{ include "shopgraph.servicesSecretName" .root }}
      key: {{ printf "%s-database-url" .name }}
- name: DATABASE_MAX_CONNECTIONS
  value: {{ .root.Values.externalServices.database.maxConnections | quote }}
{{- end -}}

{{- define "shopgraph.probes" -}}
livenessProbe:
  httpGet:
    path: /health/live
    port: http
  initialDelaySeconds: {{ .Values.probes.liveness.initialDelaySeconds }}
  periodSeconds: {{ .Values.probes.liveness.periodSeconds }}
  timeoutSeconds: {{ .Values.probes.liveness.timeoutSeconds }}
  failureThreshold: {{ .Values.probes.liveness.failureThreshold }}
readinessProbe:
  httpGet:
    path: /health/ready
    port: http
  initialDelaySeconds: {{ .Values.probes.readiness.initialDelaySeconds }}
  periodSeconds: {{ .Values.probes.readiness.periodSeconds }}
  timeoutSeconds: {{ .Values.probes.readiness.timeoutSeconds }}
  failureThreshold: {{ .Values.probes.readiness.failureThreshold }}
{{- end -}}

{{/* Pod-level settings every workload shares. */}}
{{- define "shopgraph.podSpecCommon" -}}
serviceAccountName: {{ include "shopgraph.serviceAccountName" . }}
automountServiceAccountToken: false
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- end -}}
