#!/usr/bin/env bash
# Build the observability test tools from the Go module proxy and print their bin dir.
#
#   tools/observe/build.sh          build if needed (quiet no-op when cached), print the bin dir
#   tools/observe/build.sh --check  print the bin dir if it is built, else fail (never builds)
#
# Output: $FLEETCAST_CACHE/observe/<key>/bin with jaeger (all-in-one: OTLP receiver,
# memory store, query API; the trace test's backend) and promtool (checks and unit
# tests of the chart's alert rules). <key> hashes versions.env and the Go version, as
# tools/k8s/build.sh does; Go's own caches stay where `go env` puts them.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=versions.env
source "$here/versions.env"
mode="${1:-build}"
cache="${FLEETCAST_CACHE:-$HOME/.cache/fleetcast}/observe"

export CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS="-trimpath -buildvcs=false"
command -v go >/dev/null || { echo "observe/build.sh: go not found" >&2; exit 1; }

key="$( { cat "$here/versions.env"; go env GOVERSION GOOS GOARCH; echo "$GOFLAGS"; } \
    | sha256sum | cut -c1-12)"
out="$cache/$key"

if [[ -f "$out/.complete" ]]; then echo "$out/bin"; exit 0; fi
if [[ "$mode" == "--check" ]]; then
    echo "observe/build.sh: jaeger and promtool are not built ($out); run tools/observe/build.sh" >&2
    exit 1
fi

mkdir -p "$cache"
exec 9>"$cache/.lock"
flock 9 # another build of the same key may be running
if [[ -f "$out/.complete" ]]; then echo "$out/bin"; exit 0; fi

tmp="$out.partial"
rm -rf "$tmp"
mkdir -p "$tmp/bin"
log() { echo "observe/build.sh: $*" >&2; }
started=$SECONDS

log "promtool (prometheus ${PROMETHEUS_VERSION})"
GOBIN="$tmp/bin" nice -n 10 go install -ldflags "-s -w" \
    "github.com/prometheus/prometheus/cmd/promtool@${PROMETHEUS_VERSION}"

# Jaeger's go.mod has a replace directive, which `go install pkg@version` refuses:
# built inside the downloaded (checksummed, read-only) module instead, with its own
# go.mod and go.sum, exactly as its release is.
log "jaeger ${JAEGER_VERSION} (cold: ~10 min on 2 cores)"
jaeger_dir="$(go mod download -json "github.com/jaegertracing/jaeger@${JAEGER_VERSION}" \
    | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
(cd "$jaeger_dir" && nice -n 10 go build -mod=readonly -ldflags "-s -w" -o "$tmp/bin/jaeger" ./cmd/jaeger)

"$tmp/bin/promtool" --version >&2
rm -rf "$out"
mv "$tmp" "$out"
touch "$out/.complete"
log "built in $((SECONDS - started)) s"
echo "$out/bin"
