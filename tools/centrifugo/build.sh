#!/usr/bin/env bash
# Build Centrifugo (the bench's Go peer) from the Go module proxy and print its path.
#
#   tools/centrifugo/build.sh          build if needed (quiet no-op when cached), print the binary
#   tools/centrifugo/build.sh --check  print the binary if it is built, else fail (never builds)
#
# Output: $FLEETCAST_CACHE/centrifugo-<version>/bin/centrifugo, built with
# `go install github.com/centrifugal/centrifugo/v6@<version>` (its go.mod carries no
# replace, so `go install` at a version is how its users build it from source).
# Nothing lands in the clone. Go's module and build caches live under
# $FLEETCAST_CACHE/go so a cold clone on a machine that built it once only checks a
# marker file; a second run takes a few hundredths of a second.
set -euo pipefail
version="${CENTRIFUGO_VERSION:-v6.9.1}"
mode="${1:-build}"
root="${FLEETCAST_CACHE:-$HOME/.cache/fleetcast}"
out="$root/centrifugo-${version#v}"
bin="$out/bin/centrifugo"

if [[ -f "$out/.complete" ]]; then echo "$bin"; exit 0; fi
if [[ "$mode" == "--check" ]]; then
    echo "build.sh: Centrifugo ${version} is not built ($out); run tools/centrifugo/build.sh" >&2
    exit 1
fi
command -v go >/dev/null || { echo "build.sh: go not found (Go >= 1.25 needed)" >&2; exit 1; }

export CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS="-trimpath -buildvcs=false -mod=mod"
export GOMODCACHE="$root/go/mod" GOCACHE="$root/go/build"
mkdir -p "$root"
exec 9>"$out.lock"
flock 9 # a second bench on the same machine waits for this build instead of racing it
if [[ -f "$out/.complete" ]]; then echo "$bin"; exit 0; fi

started=$SECONDS
echo "build.sh: Centrifugo ${version} -> $out (cold: ~2-4 min on 2 cores)" >&2
rm -rf "$out/bin"
mkdir -p "$out/bin"
# The version is what `centrifugo version` prints, the way upstream's release links it.
GOBIN="$out/bin" nice -n 10 go install \
    -ldflags "-s -w -X github.com/centrifugal/centrifugo/v6/internal/build.Version=${version#v}" \
    "github.com/centrifugal/centrifugo/v6@${version}"
"$bin" version >&2
touch "$out/.complete"
echo "build.sh: built in $((SECONDS - started)) s" >&2
echo "$bin"
