#!/usr/bin/env bash
# skaffold's custom build of the fleetcast artifact: scripts/images.sh for that one
# image. skaffold sets IMAGE (the tag it chose) and PUSH_IMAGE (true for the
# `cluster` profile); images.sh prepares the wheels the Dockerfile installs from.
set -euo pipefail
cd "$(dirname "$0")/.."
ONLY=fleetcast exec scripts/images.sh
