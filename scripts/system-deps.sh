#!/usr/bin/env bash
# Install the Debian packages fleetcast's tests, images and `make run` need, once.
#   system-deps.sh              everything `make test` needs
#   system-deps.sh GROUP...     only those groups:
#     redis        redis-server (`make run`, integration tests)
#     browser      chromium (the console's browser test)
#     docker       Debian's Docker engine (`make images`; scripts/docker-engine.sh starts it)
#     debootstrap  the base image's root filesystem (scripts/base-image.sh)
#     node         the real test node: containerd (CRI), runc, CNI plugins, iptables
set -euo pipefail

declare -A groups=(
  [redis]="redis-server"
  [browser]="chromium"
  [docker]="docker.io"
  [debootstrap]="debootstrap debian-archive-keyring"
  [node]="containerd runc containernetworking-plugins iptables conntrack iproute2"
)
chosen=("$@")
[[ ${#chosen[@]} -eq 0 ]] && chosen=(redis browser docker debootstrap node)

want=()
for group in "${chosen[@]}"; do
  [[ -n "${groups[$group]:-}" ]] || { echo "system-deps: unknown group $group" >&2; exit 2; }
  read -r -a pkgs <<<"${groups[$group]}"
  want+=("${pkgs[@]}")
done

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
