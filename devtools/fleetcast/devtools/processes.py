"""Child processes of the test cluster: start with a log file, stop by process group.

Shared by the control plane (`cluster`) and the real node (`node`): each
component is a process in a process group of its own, its output in
``<work>/logs/<name>.log``; in tests it also gets `PR_SET_PDEATHSIG`, so a killed
pytest leaks nothing; `cluster up` detaches them and records their pids.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from fleetcast.devtools.cluster_access import ClusterError

STOP_TIMEOUT = 10.0
PR_SET_PDEATHSIG = 1  # from <sys/prctl.h>
#: The C library's symbols, loaded here: a forked child should only call into it.
_LIBC = ctypes.CDLL(None, use_errno=True)


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


def spawn(name: str, argv: list[str], work: Path, *, detach: bool) -> Process:
    """Start one component; unless ``detach``, it is killed if this process dies."""
    log_path = work / "logs" / f"{name}.log"
    with log_path.open("wb") as out:
        popen = subprocess.Popen(
            argv,
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


def terminate(pids: list[int]) -> None:
    """Stop processes in the reverse of their start order, each TERM then KILL.

    Clients go before the API server and the API server before etcd: an API
    server whose etcd is already gone hangs in its graceful shutdown.
    """
    for pid in reversed(pids):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        while time.monotonic() < deadline and alive(pid):
            time.sleep(0.05)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)


def alive(pid: int) -> bool:
    """True while the process exists and is not a zombie waiting to be reaped."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def started_in(pid: int, work: Path) -> bool:
    """True when the process's command line names ``work`` (so it is one of ours)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return str(work).encode() in cmdline


def rss(pid: int) -> int:
    """Resident memory of a process in bytes (0 when gone)."""
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0
