{{/* Chart name, at most 63 characters. */}}
{{- define "tickgate.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Resource name: the release name, with the chart name appended unless already included. */}}
{{- define "tickgate.fullname" -}}
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

{{/* Labels that select this release's pods. */}}
{{- define "tickgate.selectorLabels" -}}
app.kubernetes.io/name: {{ include "tickgate.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* Labels of the `helm test` pod, which the NetworkPolicy lets reach the metrics port. */}}
{{- define "tickgate.testSelectorLabels" -}}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: test
{{- end -}}

{{/* Labels on every resource. */}}
{{- define "tickgate.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "tickgate.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* The pods' ServiceAccount: serviceAccount.name, else the full name when the chart creates it, else the namespace's default. */}}
{{- define "tickgate.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "tickgate.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/*
Port number of /metrics, /healthz and /readyz: config.metrics.port when set
(a separate plain-HTTP port that stays up while the gateway drains), else
config.port. dig, because a user may delete config.metrics with a null.
*/}}
{{- define "tickgate.metricsPort" -}}
{{- dig "metrics" "port" 0 .Values.config | int | default .Values.config.port -}}
{{- end -}}

{{/* Name of the container port that serves the probes and /metrics: "metrics" when config.metrics.port is set, else the main port "ws". */}}
{{- define "tickgate.metricsPortName" -}}
{{- if dig "metrics" "port" 0 .Values.config | int -}}metrics{{- else -}}ws{{- end -}}
{{- end -}}

{{/* Does the main port speak TLS (wss://)? "true" or empty. */}}
{{- define "tickgate.tls" -}}
{{- if or .Values.tls.existingSecret (dig "tls" "certFile" "" .Values.config) -}}true{{- end -}}
{{- end -}}

{{/* Scheme of the probes and the scrape: the metrics port is always plain HTTP; the main port is HTTPS with TLS. */}}
{{- define "tickgate.metricsScheme" -}}
{{- if and (eq (include "tickgate.metricsPortName" .) "ws") (include "tickgate.tls" .) -}}HTTPS{{- else -}}HTTP{{- end -}}
{{- end -}}

{{/* Where the TLS Secret's files and the token-verification key appear in the pod (one projected volume at /etc/tickgate). */}}
{{- define "tickgate.tlsCertFile" -}}/etc/tickgate/tls/tls.crt{{- end -}}
{{- define "tickgate.tlsKeyFile" -}}/etc/tickgate/tls/tls.key{{- end -}}
{{- define "tickgate.publicKeysFile" -}}
{{- if eq .Values.auth.publicKeys.format "pem" -}}/etc/tickgate/auth/public-key.pem{{- else -}}/etc/tickgate/auth/jwks.json{{- end -}}
{{- end -}}

{{/*
Checks values the Kubernetes API would not: refuses secret values in
`config`, which is rendered into a ConfigMap that anyone allowed to read
ConfigMaps in the namespace can read.
*/}}
{{- define "tickgate.validate" -}}
{{- if not (has .Values.podAntiAffinity (list "soft" "hard" "")) -}}
{{- fail (printf "podAntiAffinity: expected soft, hard or an empty string, got %q" .Values.podAntiAffinity) -}}
{{- end -}}
{{- if dig "auth" "jwt" "secret" "" .Values.config -}}
{{- fail "config.auth.jwt.secret would be stored in a ConfigMap: put it in a Secret and set auth.existingSecret instead" -}}
{{- end -}}
{{- if dig "nats" "pass" "" .Values.config -}}
{{- fail "config.nats.pass would be stored in a ConfigMap: pass TICKGATE_NATS_PASS from a Secret with extraEnv instead" -}}
{{- end -}}
{{- if dig "nats" "token" "" .Values.config -}}
{{- fail "config.nats.token would be stored in a ConfigMap: pass TICKGATE_NATS_TOKEN from a Secret with extraEnv instead" -}}
{{- end -}}
{{- if dig "tls" "passphrase" "" .Values.config -}}
{{- fail "config.tls.passphrase would be stored in a ConfigMap: pass TICKGATE_TLS_PASSPHRASE from a Secret with extraEnv instead" -}}
{{- end -}}
{{- with .Values.auth.publicKeys -}}
{{- if and .existingSecret .existingConfigMap -}}
{{- fail "auth.publicKeys: set existingSecret or existingConfigMap, not both" -}}
{{- end -}}
{{- if not (has .format (list "jwks" "pem")) -}}
{{- fail (printf "auth.publicKeys.format: expected jwks or pem, got %q" .format) -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
The gateway's JSON config: `config` as given, plus the paths of the files
this chart mounts (never their contents). Secret values reach the pod only
as environment variables from Secrets.
*/}}
{{- define "tickgate.configJson" -}}
{{- $config := deepCopy .Values.config -}}
{{- if .Values.tls.existingSecret -}}
{{- $tls := get $config "tls" | default dict -}}
{{- $_ := set $tls "certFile" (include "tickgate.tlsCertFile" .) -}}
{{- $_ := set $tls "keyFile" (include "tickgate.tlsKeyFile" .) -}}
{{- $_ := set $config "tls" $tls -}}
{{- end -}}
{{- if or .Values.auth.publicKeys.existingSecret .Values.auth.publicKeys.existingConfigMap -}}
{{- $auth := get $config "auth" | default dict -}}
{{- $jwt := get $auth "jwt" | default dict -}}
{{- $key := ternary "publicKeyFile" "jwksFile" (eq .Values.auth.publicKeys.format "pem") -}}
{{- $_ := set $jwt $key (include "tickgate.publicKeysFile" .) -}}
{{- $_ := set $auth "jwt" $jwt -}}
{{- $_ := set $config "auth" $auth -}}
{{- end -}}
{{- toJson $config -}}
{{- end -}}

{{/*
terminationGracePeriodSeconds, checked against the drain: the pod needs
preStopSleepSeconds + (drain.delayMs + drain.timeoutMs) / 1000, rounded up,
plus 5 s to drain NATS and exit, before the kubelet sends SIGKILL. The
fallbacks are the gateway's own defaults for keys left out of `config`.
*/}}
{{- define "tickgate.terminationGracePeriodSeconds" -}}
{{- $delayMs := dig "drain" "delayMs" 0 .Values.config | int -}}
{{- $timeoutMs := dig "drain" "timeoutMs" 10000 .Values.config | int -}}
{{- $min := add (div (add $delayMs $timeoutMs 999) 1000) (int .Values.preStopSleepSeconds) 5 -}}
{{- $grace := int .Values.terminationGracePeriodSeconds -}}
{{- if lt $grace (int $min) -}}
{{- fail (printf "terminationGracePeriodSeconds is %d but the drain needs at least %d: preStopSleepSeconds (%d) + config.drain.delayMs (%d ms) + config.drain.timeoutMs (%d ms) + 5 s to drain NATS" $grace (int $min) (int .Values.preStopSleepSeconds) $delayMs $timeoutMs) -}}
{{- end -}}
{{- $grace -}}
{{- end -}}
