"""A real Kubernetes node for the test control plane: pods whose containers run.

containerd (Debian's, with its CRI plugin), the kubelet, kube-proxy and CoreDNS
run in a network namespace of their own (see `node_config`), as root, with every
file under the cluster's work folder: containerd's root and state, the
kubelet's root, pod logs, CNI state. Images are imported into containerd from
the tarballs `make images` saved, never pulled (the sandbox image too: the
pause binary tools/k8s/build.sh compiled).

Teardown does what a node's end would: processes stop (TERM, then KILL), every
process left in the node's cgroups (the containers) is killed, then the
containerd shims of this node; mounts under the node's folder are detached,
its cgroups removed and its network namespace deleted, which takes the veth,
the bridge, the pods' interfaces and every iptables rule of the node with it.
`teardown` needs only the recorded names, so `cluster down` (another process)
and a later start that finds a dead run's slot can both do it.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import os
import shutil
import signal
import subprocess
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from fleetcast.devtools import images, pki
from fleetcast.devtools import node_config as config
from fleetcast.devtools.cluster_access import AdminApi, ClusterError

log = logging.getLogger(__name__)

CGROUP_FS = Path("/sys/fs/cgroup")
CONTAINERD = "containerd"
#: Records which slot belongs to which work folder (for `down` and stale slots).
OWNERS = Path("/run/fleetcast")
READY_TIMEOUT = 120.0
KILL_TIMEOUT = 15.0
MNT_DETACH = 2
_LIBC = ctypes.CDLL(None, use_errno=True)
#: Debian packages the node runs (scripts/system-deps.sh node installs them).
REQUIRED = {
    "containerd": "containerd",
    "runc": "runc",
    "ctr": "containerd",
    "iptables": "iptables",
    "nsenter": "util-linux",
    "ip": "iproute2",
}


@dataclass(frozen=True)
class NodeRecord:
    """What teardown needs: the slot, the node's folder (recorded in state.json)."""

    slot: int
    base: Path

    @property
    def net(self) -> config.NodeNetwork:
        return config.NodeNetwork(self.slot)

    @property
    def dirs(self) -> config.NodeDirs:
        return config.NodeDirs(self.base)

    def as_json(self) -> dict[str, Any]:
        return {"slot": self.slot, "base": str(self.base)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> NodeRecord:
        return cls(int(data["slot"]), Path(data["base"]))


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


def _run(argv: list[str], *, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if check and done.returncode != 0:
        raise ClusterError(f"{' '.join(argv)} exited with {done.returncode}: {done.stderr.strip()}")
    return done


def allocate(base: Path) -> NodeRecord:
    """Take a free slot (creating its network namespace is the lock) and link it up.

    A slot whose recorded owner is gone (a killed run) is torn down and reused.
    """
    OWNERS.mkdir(parents=True, exist_ok=True)
    for slot in range(config.SLOTS):
        net = config.NodeNetwork(slot)
        if _run(["ip", "netns", "add", net.netns], check=False).returncode != 0:
            if not _reap_if_stale(slot):
                continue
            if _run(["ip", "netns", "add", net.netns], check=False).returncode != 0:
                continue
        record = NodeRecord(slot, base)
        _owner_file(slot).write_text(json.dumps(record.as_json()))
        try:
            _run(["ip", "link", "del", net.host_if], check=False)  # left by a dead run
            for argv in config.setup_commands(net):
                _run(argv)
        except BaseException:
            teardown(record)
            raise
        return record
    raise ClusterError(f"all {config.SLOTS} node slots are taken (ip netns list)")


def _owner_file(slot: int) -> Path:
    return OWNERS / f"{config.NETNS_PREFIX}{slot}.json"


def _reap_if_stale(slot: int) -> bool:
    """Tear down a slot whose node no longer runs; True if it is free now."""
    try:
        record = NodeRecord.from_json(json.loads(_owner_file(slot).read_text()))
    except (OSError, ValueError, KeyError):
        return False  # not ours, or being set up right now
    if _node_pids(record):
        return False
    log.warning("reaping node slot %d of a run that is gone (%s)", slot, record.base)
    teardown(record)
    return True


def _node_pids(record: NodeRecord) -> list[int]:
    """Running processes whose command line names the node's folder: the node's
    components and containerd's shims (``-address <folder>/containerd/...``)."""
    marker = (str(record.base) + "/").encode()
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if marker in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
    return found


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
    _make_cgroup_root(net.cgroup_root)


def _make_cgroup_root(root: str) -> None:
    """The kubelet's --cgroup-root in every v1 hierarchy (cpuset needs its cpus/mems)."""
    for hierarchy in _hierarchies():
        path = hierarchy / root.lstrip("/")
        path.mkdir(exist_ok=True)
        for name in ("cpuset.cpus", "cpuset.mems"):
            if (hierarchy / name).exists() and not (path / name).read_text().strip():
                (path / name).write_text((hierarchy / name).read_text())


def _hierarchies() -> list[Path]:
    if (CGROUP_FS / "cgroup.controllers").exists():
        return [CGROUP_FS]  # cgroup v2: one tree
    return [
        p for p in CGROUP_FS.iterdir() if p.is_dir() and not p.is_symlink() and p.name != "unified"
    ]


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
        _run(_ctr(record, "images", "import", "--no-unpack=false", str(tarball)))
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


def teardown(record: NodeRecord) -> None:
    """Remove everything the node made; safe to call again, or on a half-made node."""
    net, dirs = record.net, record.dirs
    _kill_until_empty(lambda: _cgroup_pids(net.cgroup_root), "containers")
    _kill_until_empty(lambda: _node_pids(record), "node components and containerd shims")
    _detach_mounts(dirs.base)
    _remove_cgroups(net.cgroup_root)
    _run(["ip", "netns", "del", net.netns], check=False)
    _run(["ip", "link", "del", net.host_if], check=False)
    with contextlib.suppress(OSError):
        _owner_file(record.slot).unlink()
    shutil.rmtree(dirs.base, ignore_errors=True)


def _kill_until_empty(find: Callable[[], list[int]], what: str) -> None:
    deadline = time.monotonic() + KILL_TIMEOUT
    while pids := [pid for pid in find() if pid != os.getpid()]:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if time.monotonic() > deadline:
            log.error("%s still running after SIGKILL: %s", what, pids)
            return
        time.sleep(0.1)


def _cgroup_pids(root: str) -> list[int]:
    found: set[int] = set()
    for hierarchy in _hierarchies():
        top = hierarchy / root.lstrip("/")
        for procs in top.rglob("cgroup.procs") if top.exists() else ():
            with contextlib.suppress(OSError):
                found.update(int(line) for line in procs.read_text().split())
    return sorted(found)


def _detach_mounts(base: Path) -> None:
    """Lazily unmount everything mounted under ``base`` (volumes, rootfs, shm, netns)."""
    prefix = str(base.resolve()) + "/"
    points = []
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            point = line.split()[4].replace("\\040", " ")
            if point.startswith(prefix):
                points.append(point)
    for point in sorted(set(points), key=len, reverse=True):
        _LIBC.umount2(point.encode(), MNT_DETACH)


def _remove_cgroups(root: str) -> None:
    for hierarchy in _hierarchies():
        top = hierarchy / root.lstrip("/")
        if not top.exists():
            continue
        for path in sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
            with contextlib.suppress(OSError):
                path.rmdir()
        with contextlib.suppress(OSError):
            top.rmdir()
