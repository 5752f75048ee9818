{{/* Chart name, truncated to the 63 characters of a DNS label. */}}
{{- define "slm-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Fully qualified name: the release name when it already contains the chart name, otherwise
"<release>-<chart>". Child names add suffixes such as "-framework", so stay at 52 characters.
*/}}
{{- define "slm-operator.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 52 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "slm-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels on every object of the chart. */}}
{{- define "slm-operator.labels" -}}
helm.sh/chart: {{ include "slm-operator.chart" . }}
{{ include "slm-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: slm-operator
{{- end }}

{{/* Labels that select the operator pod (immutable once installed: keep them minimal). */}}
{{- define "slm-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "slm-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{- define "slm-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "slm-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The operator image. The tag defaults to the chart's appVersion (never "latest"); a digest,
when given, replaces the tag (repository@sha256:..., the form the operator accepts for images). The gateway sidecar of every model uses the same image.
*/}}
{{- define "slm-operator.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* The namespaces the operator watches; empty means every namespace. */}}
{{- define "slm-operator.watchNamespaces" -}}
{{- $out := list }}
{{- range .Values.watchNamespaces }}
{{- $out = append $out (tpl . $) }}
{{- end }}
{{- $out | uniq | toJson }}
{{- end }}

{{/*
The operator configuration (docs/configuration.md): one YAML document with tiers, catalog, images,
defaults and registries. Tier presets come first so that values.tiers can still override any tier.
*/}}
{{- define "slm-operator.config" -}}
{{- $tiers := dict }}
{{- if ne .Values.tierPreset "gfd" }}
{{- $preset := .Files.Get (printf "files/presets/%s.yaml" .Values.tierPreset) | fromYaml }}
{{- if not $preset }}
{{- fail (printf "tierPreset %q has no file files/presets/%s.yaml" .Values.tierPreset .Values.tierPreset) }}
{{- end }}
{{- $tiers = $preset.tiers }}
{{- end }}
{{- $tiers = mergeOverwrite (deepCopy $tiers) (deepCopy .Values.tiers) }}
{{- $images := deepCopy .Values.images }}
{{- if not $images.gateway }}
{{- $_ := set $images "gateway" (include "slm-operator.image" .) }}
{{- end }}
{{- $config := dict "images" $images }}
{{- if $tiers }}{{ $_ := set $config "tiers" $tiers }}{{ end }}
{{- if .Values.catalog }}{{ $_ := set $config "catalog" .Values.catalog }}{{ end }}
{{- if .Values.defaults }}{{ $_ := set $config "defaults" .Values.defaults }}{{ end }}
{{- if .Values.registries }}{{ $_ := set $config "registries" .Values.registries }}{{ end }}
{{- toYaml $config }}
{{- end }}
