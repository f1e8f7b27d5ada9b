{{/*
Names, labels and the image reference shared by every template.
*/}}

{{/* The chart name, or nameOverride. */}}
{{- define "fleetcast.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
"<release>-<chart>", or fullnameOverride; just the release name when it already
contains the chart name (release "fleetcast" gives "fleetcast", not
"fleetcast-fleetcast").
*/}}
{{- define "fleetcast.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := include "fleetcast.name" . -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Labels on every object the chart renders. */}}
{{- define "fleetcast.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ include "fleetcast.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: fleetcast
{{- end -}}

{{/* Labels that select the operator's pods (never change them: selectors are immutable). */}}
{{- define "fleetcast.operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "fleetcast.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end -}}

{{/* Name of the operator's objects (Deployment, ClusterRole, binding). */}}
{{- define "fleetcast.operator.fullname" -}}
{{- printf "%s-operator" (include "fleetcast.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The ServiceAccount the operator runs as. */}}
{{- define "fleetcast.operator.serviceAccountName" -}}
{{- if .Values.operator.serviceAccount.create -}}
{{- default (include "fleetcast.operator.fullname" .) .Values.operator.serviceAccount.name -}}
{{- else -}}
{{- required "operator.serviceAccount.name is required when operator.serviceAccount.create is false" .Values.operator.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* "repository:tag" or "repository@digest"; the tag defaults to appVersion. */}}
{{- define "fleetcast.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* Name of the FleetBroadcast created from values. */}}
{{- define "fleetcast.fleetBroadcast.name" -}}
{{- default (include "fleetcast.fullname" .) .Values.fleetBroadcast.name -}}
{{- end -}}

{{/*
The operator's RBAC rules: files/operator-rbac-rules.yaml (reconciling, per
watched namespace or cluster-wide) and files/operator-leader-rules.yaml (its
Lease, in the release namespace), YAML lists of PolicyRules kept with the
operator (its tests run the operator under them). operator.rbac.secretNames
narrows the Secret rule to those names.
*/}}
{{- define "fleetcast.operator.rules" -}}
{{- $rules := .Files.Get "files/operator-rbac-rules.yaml" | fromYamlArray -}}
{{- if or (not $rules) (not (kindIs "map" (first $rules))) -}}
{{- fail "files/operator-rbac-rules.yaml is missing or is not a YAML list of PolicyRules" -}}
{{- end -}}
{{- $names := .Values.operator.rbac.secretNames -}}
{{- $out := list -}}
{{- range $rules -}}
{{- if and $names (has "secrets" .resources) -}}
{{- $out = append $out (merge (dict "resourceNames" $names) .) -}}
{{- else -}}
{{- $out = append $out . -}}
{{- end -}}
{{- end -}}
{{- toYaml $out -}}
{{- end -}}

{{- define "fleetcast.operator.leaderRules" -}}
{{- $rules := .Files.Get "files/operator-leader-rules.yaml" | fromYamlArray -}}
{{- if or (not $rules) (not (kindIs "map" (first $rules))) -}}
{{- fail "files/operator-leader-rules.yaml is missing or is not a YAML list of PolicyRules" -}}
{{- end -}}
{{- toYaml $rules -}}
{{- end -}}

{{/*
The operator's settings (its pydantic settings object, prefix FLEETCAST_OPERATOR_;
see operator/fleetcast/operator/settings.py). Every replica of one release shares
the Lease, so only one of them reconciles.
*/}}
{{- define "fleetcast.operator.env" -}}
- name: FLEETCAST_OPERATOR_LOG_LEVEL
  value: {{ .Values.operator.logLevel | quote }}
- name: FLEETCAST_OPERATOR_NAMESPACES
  value: {{ join "," .Values.operator.watchNamespaces | quote }}
- name: FLEETCAST_OPERATOR_LEASE_NAME
  value: {{ include "fleetcast.operator.fullname" . | quote }}
- name: FLEETCAST_OPERATOR_LEASE_NAMESPACE
  valueFrom:
    fieldRef:
      fieldPath: metadata.namespace
- name: FLEETCAST_OPERATOR_IDENTITY
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
- name: FLEETCAST_OPERATOR_HTTP_PORT
  value: {{ .Values.operator.httpPort | quote }}
{{- end -}}
