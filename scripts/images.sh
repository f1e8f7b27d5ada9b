#!/usr/bin/env bash
# Build the fleetcast container image (one image, three entry points: see
# Dockerfile). Needs a running Docker engine; says so plainly when there is none.
#   IMAGE=fleetcast:dev scripts/images.sh           the default tag
#   IMAGE=ghcr.io/me/fleetcast:1.2 scripts/images.sh
#   PUSH=1 ... also pushes it
set -euo pipefail
cd "$(dirname "$0")/.."

image="${IMAGE:-fleetcast:dev}"

if ! command -v docker >/dev/null 2>&1; then
  echo "images: no 'docker' command on PATH; building images needs a Docker engine (install Docker, or run on a machine that has one)." >&2
  exit 1
fi
if ! docker info >/dev/null 2>&1; then
  echo "images: the docker client cannot reach a Docker engine ('docker info' failed: is the daemon running, and may this user use its socket?)." >&2
  exit 1
fi

# The console's socket.io-client bundle is fetched from npm into the gateway's
# static folder (git-ignored); the image serves it, so fetch it first.
scripts/web-deps.sh

version="$(sed -n 's/^version = "\(.*\)"$/\1/p' pyproject.toml | head -n1)"
revision="$(git rev-parse HEAD 2>/dev/null || echo unknown)"
created="$(date -u +%Y-%m-%dT%H:%M:%SZ)"

echo "images: building $image (fleetcast $version, $revision)" >&2
DOCKER_BUILDKIT=1 docker build \
  --build-arg "VERSION=$version" \
  --build-arg "REVISION=$revision" \
  --build-arg "CREATED=$created" \
  --tag "$image" \
  .

if [[ "${PUSH:-0}" == 1 ]]; then
  docker push "$image"
fi
echo "images: built $image; it runs fleetcast-gateway by default, or fleetcast-consumer / fleetcast-operator as its command" >&2
