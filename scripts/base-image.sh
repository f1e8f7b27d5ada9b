#!/usr/bin/env bash
# The Debian root filesystem every image here is built on, made from Debian's
# packages (debootstrap, minbase variant) instead of pulled from a registry, and
# cached as a tarball outside the clone. Prints the tarball's path.
#
#   scripts/base-image.sh        make it once (about 30 s), then only print the path
#
# `docker import` turns it into the image fleetcast-base/debian:<suite> (images.sh).
# The tarball is kept until deleted; delete it to pick up Debian's point releases
# (security updates come with every image build: the Dockerfiles run apt-get).
set -euo pipefail
suite="${DEBIAN_SUITE:-bookworm}"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
cache="${FLEETCAST_CACHE:-$HOME/.cache/fleetcast}/images"
tarball="$cache/debian-$suite-minbase.tar"

if [[ -f "$tarball" ]]; then echo "$tarball"; exit 0; fi
command -v debootstrap >/dev/null || "$(dirname "$0")/system-deps.sh" debootstrap
sudo=""
[[ $(id -u) -eq 0 ]] || sudo="sudo"  # debootstrap makes device nodes and chroots

mkdir -p "$cache"
exec 9>"$cache/.base.lock"
flock 9
if [[ -f "$tarball" ]]; then echo "$tarball"; exit 0; fi
root="$(mktemp -d "$cache/rootfs.XXXXXX")"
trap '$sudo rm -rf "$root" "$tarball.partial"' EXIT
echo "base-image: debootstrap --variant=minbase $suite (about 30 s)" >&2
$sudo debootstrap --variant=minbase "$suite" "$root" "$mirror" >"$cache/debootstrap.log" 2>&1 || {
  tail -n 20 "$cache/debootstrap.log" >&2; exit 1; }
printf 'deb %s %s main\ndeb %s %s-updates main\ndeb %s %s-security main\n' \
  "$mirror" "$suite" "$mirror" "$suite" "${mirror%/debian}/debian-security" "$suite" |
  $sudo tee "$root/etc/apt/sources.list" >/dev/null
# No package cache, lists or logs in the image: the Dockerfiles update and clean.
$sudo sh -c "rm -rf '$root'/var/cache/apt/archives/*.deb '$root'/var/lib/apt/lists/* '$root'/var/log/*.log"
$sudo tar --numeric-owner -C "$root" -cf "$tarball.partial" .
$sudo chown "$(id -u):$(id -g)" "$tarball.partial"
mv "$tarball.partial" "$tarball"
echo "$tarball"
