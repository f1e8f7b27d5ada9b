"""A real Kubernetes node for the test control plane: pods whose containers run.

containerd (Debian's, with its CRI plugin), the kubelet, kube-proxy and CoreDNS
run in a network namespace of their own (see `node_config`), as root, with every
file under the cluster's work folder: containerd's root and state, the
kubelet's root, pod logs, CNI state. Images are imported into containerd from
the tarballs `make images` saved, never pulled (the sandbox image too: the
pause binary tools/k8s/build.sh compiled).

The slot, cgroups, mounts and teardown are `node_host`'s: what a node takes from
the machine and gives back.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from fleetcast.devtools import images, node_host, pki
from fleetcast.devtools import node_config as config
from fleetcast.devtools.cluster_access import AdminApi, ClusterError
from fleetcast.devtools.node_host import NodeRecord

log = logging.getLogger(__name__)

CONTAINERD = "containerd"
READY_TIMEOUT = 120.0
#: Debian packages the node runs (scripts/system-deps.sh node installs them).
REQUIRED = {
    "containerd": "containerd",
    "runc": "runc",
    "ctr": "containerd",
    "iptables": "iptables",
    "nsenter": "util-linux",
    "ip": "iproute2",
}


def preflight() -> None:
    """Fail with what to install when this machine cannot run the node."""
    if os.geteuid() != 0:
        raise ClusterError("the real test node needs root (network namespace, cgroups, mounts)")
    missing = sorted({pkg for tool, pkg in REQUIRED.items() if shutil.which(tool) is None})
    if not (config.CNI_BIN_DIR / "bridge").exists():
        missing.append("containernetworking-plugins")
    if missing:
        raise ClusterError(f"missing {' '.join(missing)}: run scripts/system-deps.sh node")
    images.require_exported()


def write_files(record: NodeRecord, work: Path, ca: pki.CertificateAuthority, server: str) -> None:
    """Certificates, kubeconfigs and the configuration of every node component."""
    net, dirs, pki_dir = record.net, record.dirs, work / "pki"
    for path in (dirs.cni_conf, dirs.cni_ipam, dirs.kubelet_root, dirs.pod_logs):
        path.mkdir(parents=True, exist_ok=True)
    ca.issue(pki_dir, "kubelet-serving", common_name=config.NODE_NAME, server_ips=(net.node_ip,))
    identities = {
        "kubelet": (config.KUBELET_USER, config.KUBELET_GROUPS),
        "kube-proxy": (config.KUBE_PROXY_USER, ()),
        "coredns": (config.COREDNS_USER, ()),
    }
    for name, (user, groups) in identities.items():
        pair = ca.issue(pki_dir, name, common_name=user, groups=groups)
        kubeconfig = pki.kubeconfig(server, ca.pair.cert_pem(), user=name, client=pair)
        path = work / f"{name}.kubeconfig"
        path.write_text(yaml.safe_dump(kubeconfig, sort_keys=False))
        path.chmod(0o600)
    refs = images.references()
    (dirs.base / "containerd.toml").write_text(config.containerd_config(dirs, refs.pause))
    (dirs.cni_conf / "10-fleetcast.conflist").write_text(config.cni_conflist(dirs))
    kubelet = config.kubelet_config(net, dirs, pki_dir)
    (dirs.base / "kubelet.yaml").write_text(yaml.safe_dump(kubelet, sort_keys=False))
    proxy = config.kube_proxy_config(net, work)
    (dirs.base / "kube-proxy.yaml").write_text(yaml.safe_dump(proxy, sort_keys=False))
    (dirs.base / "Corefile").write_text(config.corefile(net, work))
    node_host.make_cgroup_root(net.cgroup_root)


def in_netns(record: NodeRecord, argv: list[str]) -> list[str]:
    """``argv`` run in the node's network namespace only (the mount namespace is shared,
    so kubelet's volume mounts are what containerd's containers see)."""
    return ["nsenter", f"--net={record.net.netns_path}", "--", *argv]


def containerd_argv(record: NodeRecord) -> list[str]:
    return in_netns(record, [CONTAINERD, f"--config={record.dirs.base / 'containerd.toml'}"])


def containerd_answers(record: NodeRecord) -> bool:
    return subprocess.run(_ctr(record, "version"), capture_output=True, check=False).returncode == 0


def _ctr(record: NodeRecord, *args: str) -> list[str]:
    return ["ctr", f"--address={record.dirs.containerd_socket}", "--namespace=k8s.io", *args]


def import_images(record: NodeRecord) -> dict[str, float]:
    """Load every exported image into containerd (what `kind load` does on kind)."""
    took = {}
    for ref, tarball in images.exported().items():
        started = time.monotonic()
        node_host.run(_ctr(record, "images", "import", "--no-unpack=false", str(tarball)))
        took[ref] = round(time.monotonic() - started, 1)
    return took


def kubelet_argv(record: NodeRecord, binaries: Path, work: Path) -> list[str]:
    args = config.kubelet_args(record.net, record.dirs, work)
    return in_netns(record, [str(binaries / "kubelet"), *args])


def kube_proxy_argv(record: NodeRecord, binaries: Path) -> list[str]:
    return in_netns(
        record, [str(binaries / "kube-proxy"), f"--config={record.dirs.base / 'kube-proxy.yaml'}"]
    )


def coredns_argv(record: NodeRecord, binaries: Path) -> list[str]:
    return in_netns(
        record, [str(binaries / "coredns"), "-conf", str(record.dirs.base / "Corefile")]
    )


def seed_rbac(api: AdminApi) -> None:
    for obj in config.coredns_rbac():
        kind = "clusterroles" if obj["kind"] == "ClusterRole" else "clusterrolebindings"
        api.ensure(f"/apis/rbac.authorization.k8s.io/v1/{kind}", obj)


def node_ready(api: AdminApi) -> bool:
    status, body = api.get(f"/api/v1/nodes/{config.NODE_NAME}")
    if status != 200:
        return False
    conditions = body.get("status", {}).get("conditions", [])
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def http_ok(url: str) -> Callable[[], bool]:
    def probe() -> bool:
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:  # noqa: S310 - our http URL
                return bool(answer.status == 200)
        except OSError:
            return False

    return probe


@dataclass
class Steps:
    """How `start` adds processes to the cluster's list and waits (the cluster's
    `_wait` checks every process is alive and keeps the timings)."""

    spawn: Callable[[str, list[str]], None]
    wait: Callable[[str, Callable[[], bool]], None]
    #: Durations of steps that are not waits, in seconds.
    timings: dict[str, float] = field(default_factory=dict)


def start(
    record: NodeRecord,
    bin_dir: Path,
    work: Path,
    ca: pki.CertificateAuthority,
    server: str,
    api: AdminApi,
    steps: Steps,
) -> None:
    """containerd, the images, kubelet, kube-proxy, CoreDNS; returns once all serve."""
    net = record.net
    node_host.remember_sysctls()
    write_files(record, work, ca, server)
    steps.spawn(CONTAINERD, containerd_argv(record))
    steps.wait("containerd answers", lambda: containerd_answers(record))
    started = time.monotonic()
    import_images(record)
    steps.timings["images imported (duration)"] = round(time.monotonic() - started, 2)
    seed_rbac(api)
    steps.spawn("kubelet", kubelet_argv(record, bin_dir, work))
    steps.spawn("kube-proxy", kube_proxy_argv(record, bin_dir))
    steps.spawn("coredns", coredns_argv(record, bin_dir))
    steps.wait("node Ready", lambda: node_ready(api))
    proxy = f"http://{net.node_ip}:{config.KUBE_PROXY_HEALTH_PORT}/healthz"
    steps.wait("kube-proxy /healthz", http_ok(proxy))
    steps.wait("coredns /ready", http_ok(f"http://{net.node_ip}:{config.COREDNS_READY_PORT}/ready"))
