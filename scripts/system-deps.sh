#!/usr/bin/env bash
# Install the Debian packages fleetcast's tests and `make run` need, once.
#   system-deps.sh            everything `make test` needs
#   system-deps.sh redis      only what `make run` needs
set -euo pipefail

want=(redis-server)
[[ "${1:-all}" == all ]] && want+=(chromium)

missing=()
for pkg in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

sudo=""
[[ $(id -u) -ne 0 ]] && sudo="sudo"
echo "system-deps: installing ${missing[*]}" >&2
$sudo apt-get -o DPkg::Lock::Timeout=300 update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
