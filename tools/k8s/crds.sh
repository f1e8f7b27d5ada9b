#!/usr/bin/env bash
# Fetch the CRDs of KEDA and prometheus-operator at the pinned versions from the
# Go module proxy and print the folder that holds them.
#
#   tools/k8s/crds.sh          fetch if needed (quiet no-op when cached), print the folder
#   tools/k8s/crds.sh --check  print the folder if it is there, else fail (never fetches)
#
# Output: $FLEETCAST_CACHE/crds/keda-<v>-prometheus-operator-<v>/ with KEDA's
# ScaledObject, TriggerAuthentication (and their cluster/job siblings) and
# prometheus-operator's PodMonitor, ServiceMonitor and PrometheusRule, copied as they are from the
# modules' config/crd/bases and example/prometheus-operator-crd folders. The
# tests install them on the test control plane (tests/harness/cluster.py), so
# the objects the operator and the chart render are checked by the real schemas.
# FILES_REVISION names the set of files, so a cache made with fewer is refetched.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=crd-versions.env
source "$here/crd-versions.env"
mode="${1:-fetch}"
FILES_REVISION=2
out="${FLEETCAST_CACHE:-$HOME/.cache/fleetcast}/crds/keda-${KEDA_VERSION}-prometheus-operator-${PROMETHEUS_OPERATOR_VERSION}-r${FILES_REVISION}"

if [[ -f "$out/.complete" ]]; then echo "$out"; exit 0; fi
if [[ "$mode" == "--check" ]]; then
    echo "crds.sh: the KEDA and prometheus-operator CRDs are not fetched ($out); run tools/k8s/crds.sh" >&2
    exit 1
fi
command -v go >/dev/null || { echo "crds.sh: go not found" >&2; exit 1; }
export GOTOOLCHAIN=local GOFLAGS=-mod=mod

module_dir() { # module_dir MODULE@VERSION: where `go mod download` put it
    go mod download -json "$1" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p'
}

tmp="$out.partial"
rm -rf "$tmp"
mkdir -p "$tmp"
keda="$(module_dir "github.com/kedacore/keda/v2@${KEDA_VERSION}")"
for f in keda.sh_scaledobjects keda.sh_triggerauthentications keda.sh_clustertriggerauthentications keda.sh_scaledjobs; do
    install -m 0644 "$keda/config/crd/bases/$f.yaml" "$tmp/"
done
prom="$(module_dir "github.com/prometheus-operator/prometheus-operator@${PROMETHEUS_OPERATOR_VERSION}")"
for f in monitoring.coreos.com_podmonitors monitoring.coreos.com_servicemonitors monitoring.coreos.com_prometheusrules; do
    install -m 0644 "$prom/example/prometheus-operator-crd/$f.yaml" "$tmp/"
done
rm -rf "$out"
mv "$tmp" "$out"
touch "$out/.complete"
echo "crds.sh: KEDA ${KEDA_VERSION}, prometheus-operator ${PROMETHEUS_OPERATOR_VERSION} -> $out" >&2
echo "$out"
