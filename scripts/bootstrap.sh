#!/usr/bin/env bash
# Build .venv from uv.lock. uv itself is installed once into the cache from
# PyPI at a pinned version, so a fresh machine needs nothing but python3.11.
set -euo pipefail
cd "$(dirname "$0")/.."

UV_VERSION=0.13.8
cache="${FLEETCAST_CACHE:-$HOME/.cache/fleetcast}"
uv="$cache/uv-$UV_VERSION/bin/uv"
python="$(command -v python3.11 || command -v python3)"

if [[ ! -x "$uv" ]]; then
  echo "bootstrap: installing uv $UV_VERSION into $cache" >&2
  "$python" -m venv "$cache/uv-$UV_VERSION"
  "$cache/uv-$UV_VERSION/bin/pip" install --quiet "uv==$UV_VERSION"
fi
export UV_PYTHON_DOWNLOADS=never
"$uv" sync --frozen --python "$python" --quiet
echo "bootstrap: .venv ready ($(.venv/bin/python --version))" >&2
