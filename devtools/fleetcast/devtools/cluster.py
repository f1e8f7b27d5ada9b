"""A real Kubernetes control plane on loopback, for the operator and e2e tests.

etcd, kube-apiserver, kube-controller-manager, kube-scheduler and a kwok
controller run as plain processes from the binaries `tools/k8s/build.sh` builds
from the Go module proxy (no Docker, no kubelet). kwok plays the kubelet of two
fake nodes, so a Deployment's pods are scheduled, reported Running and Ready,
and `readyReplicas` is real controller output.

The processes are started here rather than through `kwokctl create cluster
--runtime binary`: kwokctl turns admission off and gives every component the
admin certificate, while the tests need a normal cluster (default admission,
Node+RBAC authorization, one RBAC identity per component). Starting the five
processes directly also means one owner that tears everything down, a log per
component in the work folder, and a start that waits on exactly what tests need.

Use `running(Binaries.locate())` as a context manager, or the CLI behind
`make cluster-up` / `make cluster-down`:

    python -m fleetcast.devtools.cluster up --dir .run/cluster
    python -m fleetcast.devtools.cluster down --dir .run/cluster
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from fleetcast.devtools import cluster_access, pki
from fleetcast.devtools import cluster_flags as flags

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[3]
BUILD_SCRIPT = REPO / "tools" / "k8s" / "build.sh"
START_TIMEOUT = 90.0
STOP_TIMEOUT = 10.0
STATE_FILE = "state.json"
START_ATTEMPTS = 3
#: What Go servers log when their listen address is taken.
PORT_TAKEN = "address already in use"
PR_SET_PDEATHSIG = 1  # from <sys/prctl.h>
#: The C library's symbols, loaded here: a forked child should only call into it.
_LIBC = ctypes.CDLL(None, use_errno=True)


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
class Process:
    """One component process, its log in the work folder."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def tail(self, lines: int = 25) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def check_alive(self) -> None:
        code = self.popen.poll()
        if code is not None:
            raise ClusterError(f"{self.name} exited with {code}; log tail:\n{self.tail()}")


def _spawn(binaries: Binaries, name: str, args: list[str], work: Path, *, detach: bool) -> Process:
    """Start one component; unless ``detach``, it is killed if this process dies."""
    log_path = work / "logs" / f"{name}.log"
    with log_path.open("wb") as out:
        popen = subprocess.Popen(
            [binaries.path(name), *args],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=work,
            start_new_session=True,  # its own process group, stopped as one
            preexec_fn=None if detach else _die_with_parent,
        )
    return Process(name, popen, log_path)


def _die_with_parent() -> None:
    """In the child before exec: SIGKILL when the parent dies (a killed pytest leaks nothing)."""
    _LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


@dataclass
class LocalCluster:
    """The running processes and the client-side view of them."""

    work: Path
    access: cluster_access.ClusterAccess
    ports: flags.Ports
    processes: list[Process] = field(default_factory=list)
    owns_work: bool = True
    #: Seconds from the start of `start` until each readiness step passed.
    timings: dict[str, float] = field(default_factory=dict)
    began: float = field(default_factory=time.monotonic)

    def stop(self) -> None:
        """Stop every process (TERM, then KILL after a grace period) and remove the folder."""
        _terminate([p.popen.pid for p in self.processes])
        for proc in self.processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.popen.wait(timeout=1)
        if self.owns_work:
            shutil.rmtree(self.work, ignore_errors=True)

    def rss_bytes(self) -> dict[str, int]:
        """Resident memory of each component (for docs/testing-cluster.md)."""
        return {p.name: _rss(p.popen.pid) for p in self.processes if p.popen.poll() is None}


def _rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def _terminate(pids: list[int]) -> None:
    """Stop processes in the reverse of their start order, each TERM then KILL.

    Clients go before the API server and the API server before etcd: an API
    server whose etcd is already gone hangs in its graceful shutdown.
    """
    for pid in reversed(pids):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(0.05)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)


def _alive(pid: int) -> bool:
    """True while the process exists and is not a zombie waiting to be reaped."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _write_credentials(work: Path, server: str) -> pki.KeyPair:
    """CA, serving and client certificates, SA keys, and one kubeconfig per identity.

    Returns the admin client pair (group system:masters).
    """
    pki_dir = work / "pki"
    pki_dir.mkdir()
    ca = pki.CertificateAuthority.create(pki_dir)
    ca.issue(
        pki_dir, "apiserver", common_name="kube-apiserver", server_ips=("127.0.0.1", "10.96.0.1")
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
    return pairs["admin"]


def _write_kwok_config(binaries: Binaries, work: Path) -> None:
    stages = sorted(binaries.stages_dir.glob("*.yaml"))
    if not stages:
        raise ClusterError(
            f"no kwok stage files in {binaries.stages_dir}; rerun tools/k8s/build.sh"
        )
    (work / "kwok.yaml").write_text("\n---\n".join(s.read_text() for s in stages))


def start(binaries: Binaries, work: Path | None = None, *, detach: bool = False) -> LocalCluster:
    """Start the control plane and return once pods can be scheduled and become Ready.

    ``work`` (default: a new temp folder, removed on stop) receives kubeconfigs,
    certificates, etcd data and logs. ``detach`` lets the processes outlive this
    one (`cluster up`); `stop_recorded` stops them later from the pids in ``work``.

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
    work, ports = cluster.work, cluster.ports
    admin = _write_credentials(work, f"https://127.0.0.1:{ports.apiserver}")
    _write_kwok_config(binaries, work)
    (work / flags.AUDIT_POLICY_FILE).write_text(yaml.safe_dump(flags.AUDIT_POLICY))

    def spawn(*components: tuple[str, list[str]]) -> None:
        for name, args in components:
            cluster.processes.append(_spawn(binaries, name, args, work, detach=detach))
        _record(cluster)

    spawn(
        ("etcd", flags.etcd_args(ports, work / "etcd")),
        ("kube-apiserver", flags.apiserver_args(ports, work / "pki")),
    )
    api = cluster_access.AdminApi.on_port(ports.apiserver, work / "pki" / "ca.crt", admin)
    _wait(cluster, "kube-apiserver /readyz", lambda: api.get("/readyz")[0] == 200)
    spawn(
        ("kube-controller-manager", flags.controller_manager_args(ports, work)),
        ("kube-scheduler", flags.scheduler_args(ports, work)),
        ("kwok", flags.kwok_args(work)),
    )
    for name in flags.NODE_NAMES:
        api.ensure("/api/v1/nodes", flags.fake_node(name))
    _wait(cluster, "nodes Ready", lambda: _nodes_ready(api))
    _wait(cluster, "default ServiceAccount", lambda: api.exists(cluster_access.DEFAULT_SA_PATH))
    scheduler = cluster_access.AdminApi.on_port(ports.scheduler, work / "pki" / "ca.crt", admin)
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
    state = {"pids": pids, "kubeconfig": str(cluster.access.kubeconfig)}
    (cluster.work / STATE_FILE).write_text(json.dumps(state, indent=2))


def stop_recorded(work: Path) -> None:
    """Stop the processes a `cluster up` recorded in ``work`` and remove the folder.

    A pid is signalled only if its command line still names ``work``, so a pid
    the kernel has since given to another program is left alone.
    """
    state_file = work / STATE_FILE
    if not state_file.exists():
        return
    pids = [int(pid) for pid in json.loads(state_file.read_text())["pids"].values()]
    _terminate([pid for pid in pids if _started_in(pid, work)])
    shutil.rmtree(work, ignore_errors=True)


def _started_in(pid: int, work: Path) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return str(work).encode() in cmdline


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
    args = parser.parse_args(argv)
    work: Path = args.dir.resolve()
    if args.command == "down":
        stop_recorded(work)
        print(f"stopped the cluster in {work}", file=sys.stderr)
        return 0
    stop_recorded(work)  # `up` twice restarts rather than leaking the first cluster
    began = time.monotonic()
    cluster = start(Binaries.locate(), work, detach=True)
    took = time.monotonic() - began
    steps = ", ".join(f"{what} {at:.1f} s" for what, at in cluster.timings.items())
    print(f"cluster ready in {took:.1f} s ({steps}); logs in {work / 'logs'}", file=sys.stderr)
    print(f"export KUBECONFIG={cluster.access.kubeconfig}")
    print(f"export PATH={cluster.access.bin_dir}:$PATH")
    return 0


if __name__ == "__main__":
    sys.exit(main())
