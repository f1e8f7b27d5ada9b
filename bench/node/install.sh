#!/usr/bin/env bash
# Install the Node.js reference server's pinned packages (package-lock.json)
# into bench/node/node_modules (git-ignored). Skips the work when the lock
# file has not changed since the last install.
set -euo pipefail
cd "$(dirname "$0")"
command -v npm >/dev/null || { echo "bench/node/install.sh: npm not found (apt-get install nodejs npm)" >&2; exit 1; }
stamp=node_modules/.fleetcast-lock.sha256
want=$(sha256sum package-lock.json | cut -d' ' -f1)
if [[ -f $stamp && "$(cat "$stamp")" == "$want" ]]; then
  exit 0
fi
export npm_config_cache="${FLEETCAST_CACHE:-$HOME/.cache/fleetcast}/npm"
npm ci --no-audit --no-fund --loglevel=error >&2
echo "$want" >"$stamp"
