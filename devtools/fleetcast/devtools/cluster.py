"""A real Kubernetes control plane on loopback, for the operator and e2e tests.

etcd, kube-apiserver, kube-controller-manager, kube-scheduler and either a kwok
controller or a real node run as plain processes from the binaries
`tools/k8s/build.sh` builds from the Go module proxy. kwok plays the kubelet of
two fake nodes, so a Deployment's pods are scheduled, reported Running and
Ready, and `readyReplicas` is real controller output; with ``real_node`` a
kubelet with containerd (see `node`) runs the pods' containers instead, and the
API server listens on the host end of that node's link rather than loopback.

The processes are started here rather than through `kwokctl create cluster
--runtime binary`: kwokctl turns admission off and gives every component the
admin certificate, while the tests need a normal cluster (default admission,
Node+RBAC authorization, one RBAC identity per component). Starting the five
processes directly also means one owner that tears everything down, a log per
component in the work folder, and a start that waits on exactly what tests need.

Use `running(Binaries.locate())` as a context manager, or the CLI behind
`make cluster-up` / `make cluster-down`:

    python -m fleetcast.devtools.cluster up --dir .run/cluster [--kwok]
    python -m fleetcast.devtools.cluster down --dir .run/cluster
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import yaml

from fleetcast.devtools import cluster_access, node, node_config, node_host, pki, processes
from fleetcast.devtools import cluster_flags as flags

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[3]
BUILD_SCRIPT = REPO / "tools" / "k8s" / "build.sh"
START_TIMEOUT = 90.0
STATE_FILE = "state.json"
START_ATTEMPTS = 3
#: What Go servers log when their listen address is taken.
PORT_TAKEN = "address already in use"


ClusterError = cluster_access.ClusterError


@dataclass(frozen=True)
class Binaries:
    """The folder of built binaries (see tools/k8s/build.sh) and kwok's stage files."""

    bin_dir: Path

    @classmethod
    def locate(cls) -> Binaries:
        """The built binaries for the pinned versions; fails (never builds) when missing."""
        out = subprocess.run([str(BUILD_SCRIPT), "--check"], capture_output=True, text=True)
        if out.returncode != 0:
            raise ClusterError(out.stderr.strip() or f"{BUILD_SCRIPT} --check failed")
        return cls(Path(out.stdout.strip()))

    def path(self, name: str) -> str:
        return str(self.bin_dir / name)

    @property
    def stages_dir(self) -> Path:
        return self.bin_dir.parent / "share" / "kwok-stages"


@dataclass
class LocalCluster:
    """The running processes and the client-side view of them."""

    work: Path
    access: cluster_access.ClusterAccess
    ports: flags.Ports
    processes: list[processes.Process] = field(default_factory=list)
    owns_work: bool = True
    #: The real node's slot and folder, when the cluster has one (instead of kwok).
    node: node_host.NodeRecord | None = None
    #: Seconds from the start of `start` until each readiness step passed.
    timings: dict[str, float] = field(default_factory=dict)
    began: float = field(default_factory=time.monotonic)

    def stop(self) -> None:
        """Stop every process (TERM, then KILL after a grace period), the node's
        containers with them, and remove the folder."""
        processes.terminate([p.popen.pid for p in self.processes])
        for proc in self.processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.popen.wait(timeout=1)
        if self.node is not None:
            node_host.teardown(self.node)
        if self.owns_work:
            shutil.rmtree(self.work, ignore_errors=True)

    def rss_bytes(self) -> dict[str, int]:
        """Resident memory of each component (for docs/testing-cluster.md)."""
        return {
            p.name: processes.rss(p.popen.pid) for p in self.processes if p.popen.poll() is None
        }


def _write_credentials(
    work: Path, address: str, port: int
) -> tuple[pki.KeyPair, pki.CertificateAuthority]:
    """CA, serving and client certificates, SA keys, and one kubeconfig per identity.

    Returns the admin client pair (group system:masters) and the CA (a real
    node's certificates come from it too).
    """
    server = f"https://{address}:{port}"
    pki_dir = work / "pki"
    pki_dir.mkdir()
    ca = pki.CertificateAuthority.create(pki_dir)
    server_ips = tuple(dict.fromkeys((flags.LOOPBACK, address, "10.96.0.1")))
    ca.issue(pki_dir, "apiserver", common_name="kube-apiserver", server_ips=server_ips)
    # Towards kubelets the API server is a client (kubeadm gives it system:masters).
    ca.issue(
        pki_dir,
        "apiserver-kubelet-client",
        common_name=node_config.APISERVER_KUBELET_CLIENT,
        groups=("system:masters",),
    )
    for name in ("controller-manager", "scheduler"):
        ca.issue(pki_dir, f"{name}-serving", common_name=f"kube-{name}", server_ips=("127.0.0.1",))
    pki.service_account_keys(pki_dir)
    front_proxy = pki.CertificateAuthority.create(pki_dir, "front-proxy-ca")
    front_proxy.issue(pki_dir, "front-proxy-client", common_name=flags.FRONT_PROXY_CLIENT)
    pairs = {}
    identities = {
        "admin": ("fleetcast-admin", ("system:masters",)),
        "controller-manager": ("system:kube-controller-manager", ()),
        "scheduler": ("system:kube-scheduler", ()),
    }
    for name, (user, groups) in identities.items():
        pairs[name] = ca.issue(pki_dir, name, common_name=user, groups=groups)
        config = pki.kubeconfig(server, ca.pair.cert_pem(), user=name, client=pairs[name])
        path = work / f"{name}.kubeconfig"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        path.chmod(0o600)
    return pairs["admin"], ca


def _write_kwok_config(binaries: Binaries, work: Path) -> None:
    stages = sorted(binaries.stages_dir.glob("*.yaml"))
    if not stages:
        raise ClusterError(
            f"no kwok stage files in {binaries.stages_dir}; rerun tools/k8s/build.sh"
        )
    (work / "kwok.yaml").write_text("\n---\n".join(s.read_text() for s in stages))


def start(
    binaries: Binaries, work: Path | None = None, *, detach: bool = False, real_node: bool = False
) -> LocalCluster:
    """Start the control plane and return once pods can be scheduled and become Ready.

    ``work`` (default: a new temp folder, removed on stop) receives kubeconfigs,
    certificates, etcd data and logs. ``detach`` lets the processes outlive this
    one (`cluster up`); `stop_recorded` stops them later from the pids in ``work``.
    ``real_node`` joins a real node (`node`) instead of kwok's two fake ones.

    On any failure every process already started is stopped before the error
    propagates, so a failed start leaves nothing behind. Ports are picked free
    just before use, but another program may take one before the component binds
    it; such a start is retried with new ports.
    """
    for attempt in range(1, START_ATTEMPTS + 1):
        folder = Path(tempfile.mkdtemp(prefix="fleetcast-k8s-")) if work is None else work
        shutil.rmtree(folder / "logs", ignore_errors=True)  # a fresh start in a reused folder
        cluster = _new_cluster(binaries, folder, owns_work=work is None)
        try:
            if real_node:
                node.preflight()
                cluster.node = node_host.allocate(folder / "node")
            _start_processes(cluster, binaries, detach=detach)
        except ClusterError as err:
            cluster.stop()
            if PORT_TAKEN not in str(err) or attempt == START_ATTEMPTS:
                raise
            log.warning("a port was taken before its component bound it; retrying")
        except BaseException:
            cluster.stop()
            raise
        else:
            return cluster
    raise AssertionError("unreachable")


def _new_cluster(binaries: Binaries, work: Path, *, owns_work: bool) -> LocalCluster:
    for stale in ("etcd", "pki"):
        shutil.rmtree(work / stale, ignore_errors=True)
    (work / "logs").mkdir(parents=True, exist_ok=True)
    access = cluster_access.ClusterAccess(work / "admin.kubeconfig", binaries.bin_dir, work)
    return LocalCluster(work, access, ports=flags.Ports.pick(), owns_work=owns_work)


def _start_processes(cluster: LocalCluster, binaries: Binaries, *, detach: bool) -> None:
    work, ports, real = cluster.work, cluster.ports, cluster.node
    address = flags.LOOPBACK if real is None else real.net.host_ip
    admin, ca = _write_credentials(work, address, ports.apiserver)
    (work / flags.AUDIT_POLICY_FILE).write_text(yaml.safe_dump(flags.AUDIT_POLICY))

    def spawn(*components: tuple[str, list[str]]) -> None:
        for name, argv in components:
            cluster.processes.append(processes.spawn(name, argv, work, detach=detach))
        _record(cluster)

    def own(name: str, args: list[str]) -> tuple[str, list[str]]:
        return name, [binaries.path(name), *args]

    spawn(
        own("etcd", flags.etcd_args(ports, work / "etcd")),
        own("kube-apiserver", flags.apiserver_args(ports, work / "pki", address=address)),
    )
    ca_file = work / "pki" / "ca.crt"
    api = cluster_access.AdminApi.on_port(ports.apiserver, ca_file, admin, host=address)
    _wait(cluster, "kube-apiserver /readyz", lambda: api.get("/readyz")[0] == 200)
    spawn(
        own("kube-controller-manager", flags.controller_manager_args(ports, work)),
        own("kube-scheduler", flags.scheduler_args(ports, work)),
    )
    if real is None:
        _write_kwok_config(binaries, work)
        spawn(own("kwok", flags.kwok_args(work)))
        for name in flags.NODE_NAMES:
            api.ensure("/api/v1/nodes", flags.fake_node(name))
        _wait(cluster, "nodes Ready", lambda: _nodes_ready(api))
    else:
        steps = node.Steps(
            spawn=lambda name, argv: spawn((name, argv)), wait=partial(_wait, cluster)
        )
        server = f"https://{address}:{ports.apiserver}"
        node.start(real, binaries.bin_dir, work, ca, server, api, steps)
        cluster.timings.update(steps.timings)
    _wait(cluster, "default ServiceAccount", lambda: api.exists(cluster_access.DEFAULT_SA_PATH))
    scheduler = cluster_access.AdminApi.on_port(ports.scheduler, ca_file, admin)
    _wait(cluster, "kube-scheduler /healthz", lambda: scheduler.exists("/healthz"))


def _nodes_ready(api: cluster_access.AdminApi) -> bool:
    status, body = api.get("/api/v1/nodes")
    if status != 200:
        return False
    ready = {
        item["metadata"]["name"]
        for item in body.get("items", [])
        for cond in item.get("status", {}).get("conditions", [])
        if cond["type"] == "Ready" and cond["status"] == "True"
    }
    return ready >= set(flags.NODE_NAMES)


def _wait(cluster: LocalCluster, what: str, ready: cluster_access.Probe) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        for proc in cluster.processes:
            proc.check_alive()
        if ready():
            cluster.timings[what] = round(time.monotonic() - cluster.began, 2)
            log.info("%s after %.1f s", what, cluster.timings[what])
            return
        if time.monotonic() > deadline:
            tails = "\n".join(f"--- {p.name}\n{p.tail(10)}" for p in cluster.processes)
            raise ClusterError(f"timed out after {START_TIMEOUT:.0f} s waiting for {what}\n{tails}")
        time.sleep(0.1)


def _record(cluster: LocalCluster) -> None:
    """Write the pids so `cluster down` (another process) can stop what `up` started."""
    pids = {p.name: p.popen.pid for p in cluster.processes}
    state: dict[str, object] = {"pids": pids, "kubeconfig": str(cluster.access.kubeconfig)}
    if cluster.node is not None:
        state["node"] = cluster.node.as_json()
    (cluster.work / STATE_FILE).write_text(json.dumps(state, indent=2))


def stop_recorded(work: Path) -> None:
    """Stop the processes a `cluster up` recorded in ``work`` and remove the folder.

    A pid is signalled only if its command line still names ``work``, so a pid
    the kernel has since given to another program is left alone. A real node
    is torn down from its recorded slot, containers and all.
    """
    state_file = work / STATE_FILE
    if not state_file.exists():
        return
    state = json.loads(state_file.read_text())
    pids = [int(pid) for pid in state["pids"].values()]
    processes.terminate([pid for pid in pids if processes.started_in(pid, work)])
    if "node" in state:
        node_host.teardown(node_host.NodeRecord.from_json(state["node"]))
    shutil.rmtree(work, ignore_errors=True)


@contextlib.contextmanager
def running(binaries: Binaries) -> Iterator[LocalCluster]:
    """A control plane for the duration of the block, torn down even after a failure."""
    cluster = start(binaries)
    try:
        yield cluster
    finally:
        cluster.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fleetcast.devtools.cluster")
    parser.add_argument("command", choices=["up", "down"])
    parser.add_argument("--dir", type=Path, required=True, help="work folder (kubeconfig, logs)")
    parser.add_argument("--kwok", action="store_true", help="two kwok nodes, not a real one")
    args = parser.parse_args(argv)
    work: Path = args.dir.resolve()
    if args.command == "down":
        stop_recorded(work)
        print(f"stopped the cluster in {work}", file=sys.stderr)
        return 0
    stop_recorded(work)  # `up` twice restarts rather than leaking the first cluster
    began = time.monotonic()
    cluster = start(Binaries.locate(), work, detach=True, real_node=not args.kwok)
    took = time.monotonic() - began
    steps = ", ".join(f"{what} {at:.1f} s" for what, at in cluster.timings.items())
    print(f"cluster ready in {took:.1f} s ({steps}); logs in {work / 'logs'}", file=sys.stderr)
    print(f"export KUBECONFIG={cluster.access.kubeconfig}")
    print(f"export PATH={cluster.access.bin_dir}:$PATH")
    return 0


if __name__ == "__main__":
    sys.exit(main())
