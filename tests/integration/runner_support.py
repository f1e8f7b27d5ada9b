"""Drive `make run` (or its runner module) as a user would, and check what it leaves.

A run starts in a session of its own on free ports (the FLEETCAST_* overrides,
so it never meets a developer's own `make run` or another test's). Its
processes come from ``pids.json`` in its run dir, checked against the runner's
real children; "gone" means exited or a zombie (a zombie holds no port, no
file). Temp dirs are the ones marked as the runner's (fleetcast.devtools.scratch).
Everything here is bounded in time and kills what it started if a check fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import re
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import orjson
import psutil  # type: ignore[import-untyped]

from fleetcast.devtools import kafka, redis, scratch
from fleetcast.devtools.ports import free_ports
from tests.integration.clients_support import OFFLINE_TILES

ROOT: Final = Path(__file__).resolve().parents[2]
BANNER_END: Final = "Ctrl-C stops everything"
START_TIMEOUT_S: Final = 180.0
#: Signal -> every process gone. The runner's worst case is its stop grace (15 s)
#: plus Kafka's controlled shutdown; a stop that hangs fails here.
STOPPED_WITHIN_S: Final = 45.0
SERVICES: Final = frozenset({"redis", "kafka", "consumer", "gateway", "demo"})
SCRATCH_PREFIXES: Final = (kafka.DIR_PREFIX, redis.DIR_PREFIX)


@dataclass(frozen=True)
class Ports:
    web: int
    consumer: int
    kafka: int
    redis: int

    @classmethod
    def free(cls) -> Ports:
        return cls(*free_ports(4))

    def env(self) -> dict[str, str]:
        return {
            "FLEETCAST_PORT": str(self.web),
            "FLEETCAST_CONSUMER_PORT": str(self.consumer),
            "FLEETCAST_KAFKA_PORT": str(self.kafka),
            "FLEETCAST_REDIS_PORT": str(self.redis),
        }

    def busy(self) -> list[int]:
        return [port for port in (self.web, self.consumer, self.kafka, self.redis) if bound(port)]


def bound(port: int) -> bool:
    """True when something holds 127.0.0.1:``port`` (as the servers bind it)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return True
            raise
    return False


def run_env(ports: Ports, run_dir: Path, **extra: str) -> dict[str, str]:
    """This process's environment without FLEETCAST_* settings, plus the run's."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLEETCAST_")}
    env["FLEETCAST_CACHE"] = os.environ.get(
        "FLEETCAST_CACHE", str(Path.home() / ".cache" / "fleetcast")
    )
    env |= ports.env() | {"FLEETCAST_RUN_DIR": str(run_dir), "FLEETCAST_DEMO_RATE": "20"}
    # The console's map tiles from a loopback port nothing listens on, never the internet.
    env["FLEETCAST_MAP_TILE_URL"] = OFFLINE_TILES
    return env | extra


class Run:
    """One run in a session of its own: ``argv`` is the runner module or `make run`."""

    def __init__(self, argv: list[str], env: Mapping[str, str], log: Path, cwd: Path) -> None:
        self.argv = argv
        self.env = dict(env)
        self.log = log
        self.cwd = cwd
        self.run_dir = Path(self.env["FLEETCAST_RUN_DIR"])
        self.process: subprocess.Popen[bytes] | None = None

    @classmethod
    def runner(cls, tmp: Path, ports: Ports, name: str = "run", **extra: str) -> Run:
        env = run_env(ports, tmp / name, **extra)
        argv = [sys.executable, "-m", "fleetcast.devtools.run"]
        return cls(argv, env, tmp / f"{name}.out", ROOT)

    @classmethod
    def make(cls, tmp: Path, ports: Ports, cwd: Path = ROOT, run_dir: Path | None = None) -> Run:
        env = run_env(ports, run_dir or tmp / "make")
        return cls(["make", "run"], env, tmp / "make.out", cwd)

    def start(self) -> Run:
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                self.argv,
                cwd=self.cwd,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, as in a terminal
            )
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def exited(self) -> bool:
        return self.process is not None and self.process.poll() is not None

    async def banner(self) -> str:
        """Until the banner is out (fails with the output if the run ends first)."""
        deadline = time.monotonic() + START_TIMEOUT_S
        while BANNER_END not in (text := self.output()):
            assert not self.exited(), f"the run ended before its banner:\n{text}"
            assert time.monotonic() < deadline, f"no banner in {START_TIMEOUT_S:.0f}s:\n{text}"
            await asyncio.sleep(0.2)
        return text

    def process_signal(self, sig: signal.Signals) -> None:
        """To the process started (the runner, or make) only."""
        os.kill(self.pid, sig)

    def signal_group(self, sig: signal.Signals) -> None:
        """To its whole process group, as a terminal's Ctrl-C or `kill -TERM -<pgid>`."""
        os.killpg(self.pid, sig)

    def wait(self, timeout: float = STOPPED_WITHIN_S) -> int:
        assert self.process is not None
        return self.process.wait(timeout)

    def kill(self) -> None:
        """Last resort after a failed check: the whole session, whatever is left of it."""
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGKILL)
            self.process.wait(10)


def pids(run_dir: Path) -> dict[str, int]:
    """pids.json as it is now ({} before the runner wrote it)."""
    with contextlib.suppress(FileNotFoundError):
        found: dict[str, int] = orjson.loads((run_dir / "pids.json").read_bytes())
        return found
    return {}


def processes(run_dir: Path, names: frozenset[str] = SERVICES) -> dict[str, psutil.Process]:
    """The run's processes by name, from pids.json, checked against the runner's children."""
    listed = pids(run_dir)
    found = {name: psutil.Process(pid) for name, pid in listed.items()}
    assert set(found) == {"runner", *names}, listed
    children = {child.pid for child in found["runner"].children()}
    assert children == {p.pid for name, p in found.items() if name != "runner"}, listed
    return found


def alive(process: psutil.Process) -> bool:
    """Running, or a zombie leader whose other threads still hold its files and ports.

    A SIGKILLed JVM's main thread turns zombie before its other threads are
    gone; its sockets close only with the last one.
    """
    try:
        if not process.is_running():
            return False
        if process.status() != psutil.STATUS_ZOMBIE:
            return True
        return len(os.listdir(f"/proc/{process.pid}/task")) > 1
    except (psutil.NoSuchProcess, FileNotFoundError):
        return False


async def gone_within(procs: Mapping[str, psutil.Process], within_s: float) -> float:
    """Seconds until every process has exited; fails naming the survivors."""
    started = time.monotonic()
    while left := sorted(name for name, process in procs.items() if alive(process)):
        if time.monotonic() - started > within_s:
            for process in procs.values():  # leave nothing behind, then fail
                with contextlib.suppress(psutil.NoSuchProcess):
                    process.kill()
            raise AssertionError(f"still running after {within_s:.0f}s: {left}")
        await asyncio.sleep(0.02)
    return time.monotonic() - started


def scratch_dirs(runner_pid: int) -> list[Path]:
    return scratch.owned_by(runner_pid, SCRATCH_PREFIXES)


def token_of(banner: str) -> str:
    found = re.search(r"^\s*(ey[\w-]+\.[\w-]+\.[\w-]+)\s*$", banner, re.MULTILINE)
    assert found, banner
    return found.group(1)


def console_url_of(banner: str) -> str:
    found = re.search(r"console\s+(http://\S+/\?token=\S+)", banner)
    assert found, banner
    return found.group(1)


@contextlib.contextmanager
def killed_on_failure(*runs: Run) -> Iterator[None]:
    """Whatever a check says, no run outlives the test."""
    try:
        yield
    finally:
        for run in runs:
            run.kill()


class Terminal:
    """A pseudo-terminal with an interactive bash on it: closing it is a real hangup."""

    def __init__(self, env: Mapping[str, str], cwd: Path) -> None:
        self.master, slave = os.openpty()
        self.text = ""
        shell_env = {**env, "PS1": "$ ", "TERM": "dumb"}
        self.shell = subprocess.Popen(
            ["setsid", "--ctty", "bash", "--norc", "--noprofile", "-i"],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            cwd=cwd,
            env=shell_env,
        )
        os.close(slave)

    def type(self, line: str) -> None:
        os.write(self.master, f"{line}\n".encode())

    def read(self) -> str:
        """What the terminal showed so far (reads what is there, never blocks)."""
        while select.select([self.master], [], [], 0)[0]:
            try:
                chunk = os.read(self.master, 65536)
            except OSError:  # EIO: everyone closed the other side
                break
            if not chunk:
                break
            self.text += chunk.decode(errors="replace").replace("\r\n", "\n")
        return self.text

    async def wait_for(self, text: str, within_s: float = START_TIMEOUT_S) -> str:
        deadline = time.monotonic() + within_s
        while text not in self.read():
            assert self.shell.poll() is None, f"the shell exited:\n{self.text}"
            assert time.monotonic() < deadline, f"no {text!r} in {within_s:.0f}s:\n{self.text}"
            await asyncio.sleep(0.2)
        return self.text

    def close(self) -> None:
        """The window closed: the shell gets SIGHUP and passes it to its jobs."""
        if self.master >= 0:
            os.close(self.master)
            self.master = -1

    def kill(self) -> None:
        """Last resort after a failed check: every process of the terminal's session."""
        self.close()
        for process in psutil.process_iter():
            with contextlib.suppress(psutil.Error, ProcessLookupError):
                if os.getsid(process.pid) == self.shell.pid:
                    process.kill()
        self.shell.wait(10)
