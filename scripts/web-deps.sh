#!/usr/bin/env bash
# Put the browser console's one third-party file in place: the Socket.IO client
# bundle, fetched from the npm registry at a pinned version and checked against
# the registry's sha512 integrity, cached in $FLEETCAST_CACHE/web and copied to
# gateway/fleetcast/gateway/static/vendor/ (git-ignored). A second run with the
# cache warm copies one file, or nothing when it is already there.
#
# The browser itself is Debian's chromium (scripts/system-deps.sh); the test
# drives it with the PyPI playwright package, which downloads no browser.
set -euo pipefail
cd "$(dirname "$0")/.."

SIO_VERSION=4.8.4
SIO_INTEGRITY="sha512-7wjKAvVXYOJsbmUgkWbnhPD4bFpkqrUR0++XOjpGFmqDqsqV1CI93VTraeExLxpjxEqrWgFoSRZu1ihjLWfkAA=="

cache="${FLEETCAST_CACHE:-$HOME/.cache/fleetcast}/web/socket.io-client-$SIO_VERSION"
bundle="$cache/socket.io.min.js"
vendor="gateway/fleetcast/gateway/static/vendor"

if [[ ! -f "$bundle" ]]; then
  command -v npm >/dev/null || { echo "web-deps: npm not found (apt-get install npm)" >&2; exit 1; }
  echo "web-deps: fetching socket.io-client $SIO_VERSION from the npm registry" >&2
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  (cd "$tmp" && npm pack --silent "socket.io-client@$SIO_VERSION" >/dev/null)
  tarball="$tmp/socket.io-client-$SIO_VERSION.tgz"
  got="sha512-$(openssl dgst -sha512 -binary "$tarball" | base64 -w0)"
  if [[ "$got" != "$SIO_INTEGRITY" ]]; then
    echo "web-deps: integrity mismatch for socket.io-client $SIO_VERSION: $got" >&2
    exit 1
  fi
  tar -xzf "$tarball" -C "$tmp" package/dist/socket.io.min.js package/LICENSE
  mkdir -p "$cache"
  cp "$tmp/package/LICENSE" "$cache/LICENSE"
  cp "$tmp/package/dist/socket.io.min.js" "$bundle.partial"
  mv "$bundle.partial" "$bundle"
fi

mkdir -p "$vendor"
if ! cmp -s "$bundle" "$vendor/socket.io.min.js"; then
  cp "$bundle" "$vendor/socket.io.min.js"
  cp "$cache/LICENSE" "$vendor/socket.io-client.LICENSE"
fi
