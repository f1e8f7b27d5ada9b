"""What the real test node takes from the machine, and how it is given back.

A node holds a slot (its network namespace, named for the slot, whose creation is
the lock), cgroups under ``/fleetcast-node-<slot>``, mounts under its folder, and
processes: its components and containerd's shims, whose command lines name the
folder. `teardown` gives all of that back from a `NodeRecord` alone, so it works
for a live node, from `cluster down`'s record, and for a slot whose run died.
The kubelet also sets a few kernel sysctls machine-wide (as on any node); the
values from before the first node are put back when the last one stops.
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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fleetcast.devtools import node_config as config
from fleetcast.devtools.cluster_access import ClusterError

log = logging.getLogger(__name__)

CGROUP_FS = Path("/sys/fs/cgroup")
#: Records which slot belongs to which work folder (for `down` and stale slots).
OWNERS = Path("/run/fleetcast")
#: What the kubelet sets machine-wide at start (protectKernelDefaults off); the values
#: before the first node started are put back when the last node of the machine stops.
KUBELET_SYSCTLS = (
    "vm/overcommit_memory",
    "vm/panic_on_oom",
    "kernel/panic",
    "kernel/panic_on_oops",
    "kernel/keys/root_maxkeys",
    "kernel/keys/root_maxbytes",
)
SYSCTLS_BEFORE = OWNERS / "sysctls-before.json"
KILL_TIMEOUT = 15.0
MNT_DETACH = 2
_LIBC = ctypes.CDLL(None, use_errno=True)


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


def run(argv: list[str], *, check: bool = True) -> subprocess.CompletedProcess[str]:
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
        if run(["ip", "netns", "add", net.netns], check=False).returncode != 0:
            if not _reap_if_stale(slot):
                continue
            if run(["ip", "netns", "add", net.netns], check=False).returncode != 0:
                continue
        record = NodeRecord(slot, base)
        owner_file(slot).write_text(json.dumps(record.as_json()))
        try:
            run(["ip", "link", "del", net.host_if], check=False)  # left by a dead run
            for argv in config.setup_commands(net):
                run(argv)
        except BaseException:
            teardown(record)
            raise
        return record
    raise ClusterError(f"all {config.SLOTS} node slots are taken (ip netns list)")


def owner_file(slot: int) -> Path:
    return OWNERS / f"{config.NETNS_PREFIX}{slot}.json"


def _reap_if_stale(slot: int) -> bool:
    """Tear down a slot whose node no longer runs; True if it is free now."""
    try:
        record = NodeRecord.from_json(json.loads(owner_file(slot).read_text()))
    except (OSError, ValueError, KeyError):
        return False  # not ours, or being set up right now
    if node_pids(record):
        return False
    log.warning("reaping node slot %d of a run that is gone (%s)", slot, record.base)
    teardown(record)
    return True


def node_pids(record: NodeRecord) -> list[int]:
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


def make_cgroup_root(root: str) -> None:
    """The kubelet's --cgroup-root in every v1 hierarchy (cpuset needs its cpus/mems)."""
    for hierarchy in hierarchies():
        path = hierarchy / root.lstrip("/")
        path.mkdir(exist_ok=True)
        for name in ("cpuset.cpus", "cpuset.mems"):
            if (hierarchy / name).exists() and not (path / name).read_text().strip():
                (path / name).write_text((hierarchy / name).read_text())


def hierarchies() -> list[Path]:
    if (CGROUP_FS / "cgroup.controllers").exists():
        return [CGROUP_FS]  # cgroup v2: one tree
    return [
        p for p in CGROUP_FS.iterdir() if p.is_dir() and not p.is_symlink() and p.name != "unified"
    ]


def teardown(record: NodeRecord) -> None:
    """Remove everything the node made; safe to call again, or on a half-made node."""
    net, dirs = record.net, record.dirs
    _kill_until_empty(lambda: _cgroup_pids(net.cgroup_root), "containers")
    _kill_until_empty(lambda: node_pids(record), "node components and containerd shims")
    _detach_mounts(dirs.base)
    _remove_cgroups(net.cgroup_root)
    run(["ip", "netns", "del", net.netns], check=False)
    run(["ip", "link", "del", net.host_if], check=False)
    with contextlib.suppress(OSError):
        owner_file(record.slot).unlink()
    _restore_sysctls_if_last()
    shutil.rmtree(dirs.base, ignore_errors=True)


def remember_sysctls() -> None:
    """Keep the machine's values of what the kubelet will change, once per machine."""
    if SYSCTLS_BEFORE.exists():
        return  # another node runs (or ran) first: its record holds the originals
    values = {name: (Path("/proc/sys") / name).read_text().strip() for name in KUBELET_SYSCTLS}
    SYSCTLS_BEFORE.write_text(json.dumps(values))


def _restore_sysctls_if_last() -> None:
    if not SYSCTLS_BEFORE.exists() or any(OWNERS.glob(f"{config.NETNS_PREFIX}*.json")):
        return
    for name, value in json.loads(SYSCTLS_BEFORE.read_text()).items():
        with contextlib.suppress(OSError):
            (Path("/proc/sys") / name).write_text(value)
    SYSCTLS_BEFORE.unlink(missing_ok=True)


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
    for hierarchy in hierarchies():
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
    for hierarchy in hierarchies():
        top = hierarchy / root.lstrip("/")
        if not top.exists():
            continue
        for path in sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
            with contextlib.suppress(OSError):
                path.rmdir()
        with contextlib.suppress(OSError):
            top.rmdir()
