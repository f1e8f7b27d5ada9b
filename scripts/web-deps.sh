#!/usr/bin/env bash
# Put the browser console's third-party files in place: the Socket.IO client
# bundle and Leaflet (the map: its script and stylesheet; the console draws
# circle markers, so no marker images), each fetched from the npm registry at a
# pinned version and checked against the registry's sha512 integrity, cached in
# $FLEETCAST_CACHE/web and copied to gateway/fleetcast/gateway/static/vendor/
# (git-ignored). A second run with the cache warm copies a few files, or
# nothing when they are already there.
#
# The browser itself is Debian's chromium (scripts/system-deps.sh); the test
# drives it with the PyPI playwright package, which downloads no browser.
set -euo pipefail
cd "$(dirname "$0")/.."

SIO_VERSION=4.8.4
SIO_INTEGRITY="sha512-7wjKAvVXYOJsbmUgkWbnhPD4bFpkqrUR0++XOjpGFmqDqsqV1CI93VTraeExLxpjxEqrWgFoSRZu1ihjLWfkAA=="
LEAFLET_VERSION=1.9.4
LEAFLET_INTEGRITY="sha512-nxS1ynzJOmOlHp+iL3FyWqK89GtNL8U8rvlMOsQdTTssxZwCXh8N2NB3GDQOL+YR3XnWyZAxwQixURb+FA74PA=="

web="${FLEETCAST_CACHE:-$HOME/.cache/fleetcast}/web"
vendor="gateway/fleetcast/gateway/static/vendor"
tmps=()
trap 'rm -rf "${tmps[@]}"' EXIT

# fetch NAME VERSION INTEGRITY FILE...: the package's FILEs (paths inside its
# tarball) and LICENSE into $web/NAME-VERSION, once; later runs find them there.
fetch() {
  local name=$1 version=$2 integrity=$3
  shift 3
  local cache="$web/$name-$version"
  [[ -f "$cache/.complete" ]] && return 0
  command -v npm >/dev/null || { echo "web-deps: npm not found (apt-get install npm)" >&2; exit 1; }
  echo "web-deps: fetching $name $version from the npm registry" >&2
  local tmp
  tmp="$(mktemp -d)"
  tmps+=("$tmp")
  (cd "$tmp" && npm pack --silent "$name@$version" >/dev/null)
  local tarball="$tmp/$name-$version.tgz"
  local got
  got="sha512-$(openssl dgst -sha512 -binary "$tarball" | base64 -w0)"
  if [[ "$got" != "$integrity" ]]; then
    echo "web-deps: integrity mismatch for $name $version: $got" >&2
    exit 1
  fi
  tar -xzf "$tarball" -C "$tmp" package/LICENSE "${@/#/package/}"
  mkdir -p "$cache"
  for file in LICENSE "$@"; do cp "$tmp/package/$file" "$cache/$(basename "$file")"; done
  touch "$cache/.complete"
}

# place NAME-VERSION FILE AS: copy a cached file into vendor/ when it differs.
place() {
  local from="$web/$1/$2" to="$vendor/$3"
  cmp -s "$from" "$to" || cp "$from" "$to"
}

# The Socket.IO cache of earlier versions of this script has the bundle but no
# .complete marker: adopt it rather than fetch again.
sio_cache="$web/socket.io-client-$SIO_VERSION"
if [[ -f "$sio_cache/socket.io.min.js" && -f "$sio_cache/LICENSE" ]]; then touch "$sio_cache/.complete"; fi

fetch socket.io-client "$SIO_VERSION" "$SIO_INTEGRITY" dist/socket.io.min.js
fetch leaflet "$LEAFLET_VERSION" "$LEAFLET_INTEGRITY" dist/leaflet.js dist/leaflet.css

mkdir -p "$vendor"
place "socket.io-client-$SIO_VERSION" socket.io.min.js socket.io.min.js
place "socket.io-client-$SIO_VERSION" LICENSE socket.io-client.LICENSE
place "leaflet-$LEAFLET_VERSION" leaflet.js leaflet.js
place "leaflet-$LEAFLET_VERSION" leaflet.css leaflet.css
place "leaflet-$LEAFLET_VERSION" LICENSE leaflet.LICENSE
