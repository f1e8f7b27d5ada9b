#!/usr/bin/env bash
# Start or stop a local control plane (etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler) with a real node (containerd, kubelet, kube-proxy, CoreDNS; needs
# root and `make images`), or kwok's two fake nodes with NODES=kwok, for
# `make cluster-up/down`.
#
#   tools/k8s/cluster.sh up     build the binaries if needed, start, print `export ...` lines
#   NODES=kwok tools/k8s/cluster.sh up    the same with kwok instead of a real node
#   tools/k8s/cluster.sh down   stop it (containers too) and remove its folder
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
        kwok=()
        [[ "${NODES:-real}" == kwok ]] && kwok=(--kwok)
        exec "$python" -m fleetcast.devtools.cluster up --dir "$dir" "${kwok[@]}"
        ;;
    down)
        exec "$python" -m fleetcast.devtools.cluster down --dir "$dir"
        ;;
    *)
        echo "usage: $0 up|down" >&2
        exit 2
        ;;
esac
