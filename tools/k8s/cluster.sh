#!/usr/bin/env bash
# Start or stop a local control plane (etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler, kwok with two fake nodes) on 127.0.0.1, for `make cluster-up/down`.
#
#   tools/k8s/cluster.sh up     build the binaries if needed, start, print `export ...` lines
#   tools/k8s/cluster.sh down   stop it and remove its folder
#
# The cluster lives in $FLEETCAST_CLUSTER_DIR (default .run/cluster): admin.kubeconfig,
# logs/, pki/ and the pids `down` stops. `eval "$(make -s cluster-up)"` points kubectl at it.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
dir="${FLEETCAST_CLUSTER_DIR:-$repo/.run/cluster}"
python="$repo/.venv/bin/python"
[[ -x "$python" ]] || { echo "cluster.sh: no .venv; run make install" >&2; exit 1; }

case "${1:-}" in
    up)
        "$here/build.sh" >/dev/null
        exec "$python" -m fleetcast.devtools.cluster up --dir "$dir"
        ;;
    down)
        exec "$python" -m fleetcast.devtools.cluster down --dir "$dir"
        ;;
    *)
        echo "usage: $0 up|down" >&2
        exit 2
        ;;
esac
