#!/usr/bin/env bash
# Build the container images: fleetcast (one image, three entry points: see
# Dockerfile), the e2e suite's Redis and Kafka, and the real test node's pause
# image; then save each into $FLEETCAST_CACHE/images/export for the test node.
#
#   scripts/images.sh                        all of them (names: tools/images/images.env)
#   IMAGE=ghcr.io/me/fleetcast:1.2 scripts/images.sh   another tag for fleetcast
#   PYTHON_IMAGE=python:3.11.14-slim-bookworm ...       another base (default: Debian's
#                                            python3 on the debootstrap-made base)
#   ONLY=fleetcast scripts/images.sh         fleetcast alone (skaffold's custom build)
#   PUSH=1 ...                               also push fleetcast (skaffold: PUSH_IMAGE=true)
#
# No image is pulled from a registry: the base is made from Debian's packages
# (scripts/base-image.sh), Python wheels are downloaded on this host from the
# package index (hash-checked against uv.lock), Kafka's jars come from Maven via
# tools/kafka/fetch.sh. A Docker engine is started when none answers, and stopped
# again at the end if this script started it (scripts/docker-engine.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=../tools/images/images.env
source tools/images/images.env
cache="${FLEETCAST_CACHE:-$HOME/.cache/fleetcast}"
export_dir="$cache/images/export"
image="${IMAGE:-$FLEETCAST_IMAGE}"
only="${ONLY:-all}"
uv_version="$(sed -n 's/^UV_VERSION=\(.*\)$/\1/p' scripts/bootstrap.sh)"
uv="$cache/uv-$uv_version/bin/uv"
pip="$cache/uv-$uv_version/bin/pip"
log() { echo "images: $*" >&2; }
started=$SECONDS

command -v docker >/dev/null || scripts/system-deps.sh docker

# One build at a time on this machine: the engine `down` may stop is ours alone.
mkdir -p "$cache/docker" "$export_dir"
exec 9>"$cache/docker/.lock"
flock 9
scratch="$(mktemp -d)"
stop_engine=0
cleanup() { rm -rf "$scratch"; if ((stop_engine)); then scripts/docker-engine.sh down; fi; }
trap cleanup EXIT
engine="$(scripts/docker-engine.sh up)" || { log "no Docker engine to build with"; exit 1; }
if [[ "$engine" == started ]]; then
  log "started a Docker engine; it is stopped again when this build ends"
  stop_engine=1
fi
[[ -x "$uv" && -x "$pip" ]] || scripts/bootstrap.sh

build() { # build TAG CONTEXT [docker build args...]
  local tag="$1" context="$2"
  shift 2
  local out
  log "building $tag"
  # Quiet on success (the client's deprecation notice for the classic builder is
  # noise); everything the build printed on failure.
  if ! out="$(docker build --quiet --tag "$tag" "$@" "$context" 2>&1 >/dev/null)"; then
    echo "$out" >&2
    return 1
  fi
}

# --- the base: Debian's python3 on a debootstrap-made Debian, unless named
if [[ -z "${PYTHON_IMAGE:-}" ]]; then
  if ! docker image inspect "$DEBIAN_BASE_IMAGE" >/dev/null 2>&1; then
    log "importing the Debian base as $DEBIAN_BASE_IMAGE"
    docker import "$(scripts/base-image.sh)" "$DEBIAN_BASE_IMAGE" >/dev/null
  fi
  build "$PYTHON_BASE_IMAGE" tools/images/python --build-arg "DEBIAN_IMAGE=$DEBIAN_BASE_IMAGE"
  PYTHON_IMAGE="$PYTHON_BASE_IMAGE"
fi

# --- the wheels: downloaded once into the cache, copied into the build context
wheels=.artifacts/wheels
wheel_cache="$cache/wheels"
rm -rf "$wheels"
mkdir -p "$wheels/tools" "$wheels/deps" "$wheels/project" "$wheel_cache"
"$uv" export --quiet --frozen --no-dev --no-emit-project --no-header \
  --format requirements-txt --output-file "$wheels/deps/requirements.txt"
echo "uv==$uv_version" >"$wheels/tools/requirements.txt"
fetch_wheels() { # fetch_wheels REQUIREMENTS DEST: from the cache, else the index
  local offline=(--no-index --find-links "$wheel_cache")
  "$pip" download --quiet --no-deps --only-binary=:all: "${offline[@]}" -r "$1" -d "$2" 2>/dev/null && return
  "$pip" download --quiet --no-deps --only-binary=:all: -r "$1" -d "$wheel_cache"
  "$pip" download --quiet --no-deps --only-binary=:all: "${offline[@]}" -r "$1" -d "$2"
}
fetch_wheels "$wheels/deps/requirements.txt" "$wheels/deps"
fetch_wheels "$wheels/tools/requirements.txt" "$wheels/tools"
# The console's socket.io-client bundle (git-ignored) goes into the wheel.
scripts/web-deps.sh
"$uv" build --quiet --wheel --out-dir "$wheels/project" >/dev/null 2>&1 ||
  "$uv" build --wheel --out-dir "$wheels/project"

version="$(sed -n 's/^version = "\(.*\)"$/\1/p' pyproject.toml | head -n1)"
revision="$(git rev-parse HEAD 2>/dev/null || echo unknown)"
build "$image" . \
  --build-arg "PYTHON_IMAGE=$PYTHON_IMAGE" \
  --build-arg "VERSION=$version" \
  --build-arg "REVISION=$revision" \
  --build-arg "CREATED=$(git log -1 --format=%cI 2>/dev/null || echo 1970-01-01T00:00:00Z)"
if [[ "${PUSH:-0}" == 1 || "${PUSH_IMAGE:-false}" == true ]]; then docker push "$image"; fi

saved=("$image")
if [[ "$only" == all ]]; then
  # --- the e2e suite's backing services
  build "$E2E_REDIS_IMAGE" tools/images/redis --build-arg "DEBIAN_IMAGE=$DEBIAN_BASE_IMAGE"
  kafka_context="$scratch/kafka"
  mkdir -p "$kafka_context"
  cp -r "$(tools/kafka/fetch.sh)" "$kafka_context/libs"
  rm -f "$kafka_context/libs/.complete"
  cp tools/images/kafka/Dockerfile tools/images/kafka/kafka-start tools/kafka/log4j2.yaml "$kafka_context/"
  build "$E2E_KAFKA_IMAGE" "$kafka_context" --build-arg "DEBIAN_IMAGE=$DEBIAN_BASE_IMAGE"
  saved+=("$E2E_REDIS_IMAGE" "$E2E_KAFKA_IMAGE")
  # --- the pause image, from the binary tools/k8s/build.sh compiled
  if k8s_bin="$(tools/k8s/build.sh --check 2>/dev/null)"; then
    pause_context="$scratch/pause"
    mkdir -p "$pause_context"
    cp "$k8s_bin/pause" tools/images/pause/Dockerfile "$pause_context/"
    build "$PAUSE_IMAGE" "$pause_context"
    saved+=("$PAUSE_IMAGE")
  else
    log "no pause image: the Kubernetes test binaries are not built (make deps builds them)"
  fi
fi

# --- saved for the real test node (ctr images import), when changed
for ref in "${saved[@]}"; do
  file="$export_dir/$(echo "$ref" | tr '/:' '__').tar"
  id="$(docker image inspect --format '{{.Id}}' "$ref")"
  if [[ ! -f "$file" || "$(cat "$file.id" 2>/dev/null)" != "$id" ]]; then
    log "saving $ref"
    docker save --output "$file.partial" "$ref"
    mv "$file.partial" "$file"
    echo "$id" >"$file.id"
  fi
done
log "built ${saved[*]} in $((SECONDS - started)) s; fleetcast runs fleetcast-gateway by default, or fleetcast-consumer / fleetcast-operator as its command"
