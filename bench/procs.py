"""Processes the benchmark starts, and what it reads of them from /proc.

CPU is read from ``/proc/<pid>/stat`` (utime + stime of every thread of the
process, so Node's GC and libuv threads are included) and memory from
``/proc/<pid>/status`` (VmRSS): the server's own accounting, never wall time.
Servers are pinned with ``taskset`` to their own core so the load generator
cannot steal their CPU, nor they its.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True, slots=True)
class CpuPlan:
    """Which cores the server under test gets and which the rest (load, Redis, Kafka) gets.

    ``None`` means unpinned (a one-core machine: figures still come out, but
    the load generator then competes with the server and the report says so).
    """

    server: tuple[int, ...] | None
    rest: tuple[int, ...] | None

    @classmethod
    def detect(cls) -> CpuPlan:
        cores = sorted(os.sched_getaffinity(0))
        if len(cores) < 2 or shutil.which("taskset") is None:
            return cls(None, None)
        return cls((cores[0],), tuple(cores[1:]))

    @property
    def every(self) -> tuple[int, ...] | None:
        """All cores of the plan: for a server that uses every core (Centrifugo)."""
        if self.server is None:
            return None
        return (*self.server, *(self.rest or ()))

    def describe(self) -> str:
        if self.server is None:
            return "unpinned (fewer than 2 cores or no taskset): load and server share CPUs"
        return (
            f"server on core {_cores(self.server)}; "
            f"load generator, publisher, Redis, Kafka on {_cores(self.rest)}"
        )


def _cores(cores: Sequence[int] | None) -> str:
    return ",".join(map(str, cores or ()))


def pinned(argv: Sequence[str], cpus: Sequence[int] | None) -> list[str]:
    """``argv`` run under ``taskset -c`` when cores are given."""
    if not cpus:
        return list(argv)
    return ["taskset", "-c", _cores(cpus), *argv]


def pin_self(cpus: Sequence[int] | None) -> None:
    """Move this (controller) process onto ``cpus``, off the server's core."""
    if cpus:
        os.sched_setaffinity(0, set(cpus))


def renice_self(nice: int) -> int:
    """Set this process's niceness (children inherit it); returns what it could set.

    With autogroup scheduling (``kernel.sched_autogroup_enabled``) niceness
    only weighs against processes of the same session; the session's own
    weight is its autogroup's nice. So this sets both, and every
    :class:`Proc` (started in a session of its own) gets the same autogroup nice.
    """
    if nice:
        try:
            os.setpriority(os.PRIO_PROCESS, 0, nice)
        except PermissionError:
            print(f"bench: cannot set nice {nice} (needs CAP_SYS_NICE); running at 0", flush=True)
            return os.getpriority(os.PRIO_PROCESS, 0)
        _PRIORITY["nice"] = nice
        set_autogroup_nice(os.getpid(), nice)
    return os.getpriority(os.PRIO_PROCESS, 0)


_PRIORITY = {"nice": 0}


def set_autogroup_nice(pid: int, nice: int) -> None:
    """Weight of ``pid``'s session against other sessions (no-op without autogroups)."""
    with contextlib.suppress(OSError):
        Path(f"/proc/{pid}/autogroup").write_text(str(nice))


def raise_fd_limit() -> int:
    """Soft fd limit up to the hard one; children inherit it (servers need 10k+ sockets)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def cpu_seconds(pid: int) -> float:
    """utime + stime of a live process, all threads, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    # after the ")" field 3 (state) is index 0, so utime (14) and stime (15) are 11 and 12
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def runqueue_wait_seconds(pid: int) -> float:
    """Time the process's main thread spent runnable but waiting for a CPU (schedstat).

    Its growth over a phase is the direct measure of CPU contention: an event
    loop that waits here is late although it has work to do.
    """
    try:
        return int(Path(f"/proc/{pid}/schedstat").read_text().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return 0.0


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise ValueError(f"no VmRSS for pid {pid}")


def machine_busy_seconds() -> float:
    """CPU seconds all cores spent not idle since boot (``/proc/stat``)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields[:8]) - idle) / CLOCK_TICKS


@dataclass(frozen=True, slots=True)
class CpuSample:
    """CPU seconds of some processes, and of the whole machine, at one instant."""

    at: float
    seconds: dict[int, float]
    machine: float
    waited: dict[int, float]

    @classmethod
    def take(cls, pids: Sequence[int]) -> CpuSample:
        found = {pid: cpu_seconds(pid) for pid in pids}
        found[os.getpid()] = cpu_seconds(os.getpid())
        waited = {pid: runqueue_wait_seconds(pid) for pid in pids}
        return cls(time.monotonic(), found, machine_busy_seconds(), waited)

    def since(self, earlier: CpuSample, pid: int) -> float:
        return self.seconds[pid] - earlier.seconds[pid]

    def waited_pct(self, earlier: CpuSample, pid: int) -> float:
        """Share of the interval ``pid`` was runnable but had no CPU, in percent."""
        elapsed = self.at - earlier.at
        return 100 * (self.waited[pid] - earlier.waited[pid]) / elapsed if elapsed > 0 else 0.0

    def others_cores(self, earlier: CpuSample) -> float:
        """Cores busy with anything but the sampled processes (and this one) meanwhile.

        On a shared machine this is the noise: other work competing for the
        server's and the load generator's cores.
        """
        ours = sum(self.since(earlier, pid) for pid in self.seconds)
        elapsed = self.at - earlier.at
        return (self.machine - earlier.machine - ours) / elapsed if elapsed > 0 else 0.0


_LIVE: set[Proc] = set()


def stop_all() -> None:
    """Stop every :class:`Proc` still running: the last line of defence of an interrupted run."""
    for proc in list(_LIVE):
        proc.stop()


class Proc:
    """A child process with its output in a log file; :meth:`stop` ends it for sure."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        log: Path,
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.log = log
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("ab") as out:
            self.popen = subprocess.Popen(
                list(argv),
                env={**os.environ, **(env or {})},
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=cwd,
                start_new_session=True,
            )
        _LIVE.add(self)
        if _PRIORITY["nice"]:
            set_autogroup_nice(self.popen.pid, _PRIORITY["nice"])

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, timeout: float = 10.0) -> None:
        _LIVE.discard(self)
        if self.popen.poll() is not None:
            return
        self.popen.send_signal(signal.SIGTERM)
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(timeout)


async def wait_port(proc: Proc, port: int, within_s: float = 30.0) -> None:
    """Until ``127.0.0.1:port`` accepts; raises with the log's tail if the process died."""
    end = time.monotonic() + within_s
    while time.monotonic() < end:
        if not proc.alive():
            raise RuntimeError(f"{proc.name} exited ({proc.popen.returncode}):\n{proc.tail()}")
        with contextlib.suppress(OSError):
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            await writer.wait_closed()
            return
        await asyncio.sleep(0.05)
    raise RuntimeError(
        f"{proc.name} did not listen on {port} within {within_s:.0f}s:\n{proc.tail()}"
    )
