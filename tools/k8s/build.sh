#!/usr/bin/env bash
# Build the test control plane from the Go module proxy and print its bin dir.
#
#   tools/k8s/build.sh          build if needed (quiet no-op when cached), print the bin dir
#   tools/k8s/build.sh --check  print the bin dir if it is built, else fail (never builds)
#
# Output: $FLEETCAST_CACHE/k8s/<key>/bin with kube-apiserver, kube-controller-manager,
# kube-scheduler, kubectl, etcd, and the real test node's kubelet and kube-proxy (this
# folder's wrapper module), coredns (the coredns/ module: only the plugins cluster DNS
# needs), pause (upstream's build/pause/linux/pause.c from the pinned k8s.io/kubernetes
# module, compiled static with the machine's gcc), kwok, kwokctl and helm (`go
# install`, their go.mod files carry no replace), and <key>/share/kwok-stages
# (kwok's default node and pod Stage files, copied from the pinned kwok module).
# <key> hashes the pinned inputs (versions.env, go.mod, go.sum, the mains, the Go
# version and the link flags), so a change to any of them builds a new folder and a
# run with nothing changed only hashes a few files. Go's own caches (GOMODCACHE,
# GOCACHE) stay where `go env` puts them, so a rebuild reuses compiled packages.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=versions.env
source "$here/versions.env"
mode="${1:-build}"
cache="${FLEETCAST_CACHE:-$HOME/.cache/fleetcast}/k8s"

export CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS="-trimpath -buildvcs=false"
command -v go >/dev/null || { echo "build.sh: go not found (Go >= 1.26 needed)" >&2; exit 1; }

k8s_minor="${KUBERNETES_VERSION#v1.}"; k8s_minor="${k8s_minor%%.*}"
k8s_ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    k8s_ldflags+=" -X $pkg.gitVersion=${KUBERNETES_VERSION} -X $pkg.gitMajor=1"
    k8s_ldflags+=" -X $pkg.gitMinor=${k8s_minor} -X $pkg.gitTreeState=clean"
done
kwok_ldflags="-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=${KWOK_VERSION#v}"
kwok_ldflags+=" -X sigs.k8s.io/kwok/pkg/consts.KubeVersion=${KUBERNETES_VERSION#v}"
helm_ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=${HELM_VERSION}"
helm_ldflags+=" -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
for pkg in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
    helm_ldflags+=" -X $pkg.k8sVersionMajor=1 -X $pkg.k8sVersionMinor=${k8s_minor}"
done

pause_cflags="-Os -Wall -Werror -static -DVERSION=${KUBERNETES_VERSION}-fleetcast"

key="$(
    cd "$here"
    { cat versions.env go.mod go.sum cmd/*/main.go coredns/go.mod coredns/go.sum coredns/main.go
      go env GOVERSION GOOS GOARCH; echo "$GOFLAGS|$k8s_ldflags|$kwok_ldflags|$helm_ldflags"
      echo "$pause_cflags"; } | sha256sum | cut -c1-12
)"
out="$cache/$key"

if [[ -f "$out/.complete" ]]; then echo "$out/bin"; exit 0; fi
if [[ "$mode" == "--check" ]]; then
    echo "build.sh: the Kubernetes test binaries are not built ($out); run tools/k8s/build.sh" >&2
    exit 1
fi

mkdir -p "$cache"
exec 9>"$cache/.lock"
flock 9 # another build of the same key may be running (several make test at once)
if [[ -f "$out/.complete" ]]; then echo "$out/bin"; exit 0; fi

tmp="$out.partial"
rm -rf "$tmp"
mkdir -p "$tmp/bin" "$tmp/share/kwok-stages"
log() { echo "build.sh: $*" >&2; }
started=$SECONDS

log "Kubernetes ${KUBERNETES_VERSION} + etcd ${ETCD_VERSION} -> $out (cold: ~30 min on 2 cores)"
(cd "$here" && nice -n 10 go build -mod=readonly -ldflags "$k8s_ldflags" -o "$tmp/bin/" \
    ./cmd/kube-apiserver ./cmd/kube-controller-manager ./cmd/kube-scheduler ./cmd/kubectl ./cmd/etcd \
    ./cmd/kubelet ./cmd/kube-proxy)

log "coredns ${COREDNS_VERSION} (cluster DNS of the real node)"
(cd "$here/coredns" && nice -n 10 go build -mod=readonly -ldflags "-s -w" -o "$tmp/bin/coredns" .)

# The pod sandbox's process, from the same release's source (never pulled).
log "pause (k8s.io/kubernetes ${KUBERNETES_VERSION} build/pause/linux/pause.c)"
command -v gcc >/dev/null || { echo "build.sh: gcc not found (needed for the pause binary)" >&2; exit 1; }
k8s_dir="$(go mod download -json "k8s.io/kubernetes@${KUBERNETES_VERSION}" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
# shellcheck disable=SC2086 # the flags are words
gcc $pause_cflags -o "$tmp/bin/pause" "$k8s_dir/build/pause/linux/pause.c"

log "kwok, kwokctl ${KWOK_VERSION}"
GOBIN="$tmp/bin" nice -n 10 go install -ldflags "$kwok_ldflags" \
    "sigs.k8s.io/kwok/cmd/kwok@${KWOK_VERSION}" "sigs.k8s.io/kwok/cmd/kwokctl@${KWOK_VERSION}"

log "helm ${HELM_VERSION}"
GOBIN="$tmp/bin" nice -n 10 go install -ldflags "$helm_ldflags" "helm.sh/helm/v3/cmd/helm@${HELM_VERSION}"

# kwok refuses to run without Stage objects; these are the ones kwokctl feeds it by
# default (node-initialize, heartbeat with lease, pod ready/complete/delete).
kwok_dir="$(go mod download -json "sigs.k8s.io/kwok@${KWOK_VERSION}" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
for f in node/fast/node-initialize.yaml node/heartbeat-with-lease/node-heartbeat-with-lease.yaml \
         pod/fast/pod-ready.yaml pod/fast/pod-complete.yaml pod/fast/pod-delete.yaml; do
    install -m 0644 "$kwok_dir/kustomize/stage/$f" "$tmp/share/kwok-stages/"
done

"$tmp/bin/kube-apiserver" --version >&2
rm -rf "$out"
mv "$tmp" "$out"
touch "$out/.complete"
log "built in $((SECONDS - started)) s"
echo "$out/bin"
