"""What `make run` started, and how all of it is stopped, whatever happens.

Every child is started from the main thread with :func:`lifetime.die_with_parent`
and in a session of its own (a signal to the runner's process group reaches
the runner only; the runner stops the children in order). The stop is bounded:
the services get SIGTERM together and ``stop_grace_s`` to exit, then SIGKILL;
then Kafka and Redis, which they needed until then. ``pids.json`` in the run
dir names every process while they run, for tests and for a human with ``ps``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Final, TextIO

import orjson

from fleetcast.devtools import kafka, lifetime
from fleetcast.devtools.redis import RedisServer

__all__ = ["PIDS_FILE", "Child", "Console", "Stack"]

PIDS_FILE: Final = "pids.json"


class Console:
    """The runner's messages: on its terminal while it has one, always in ``runner.log``.

    A closed terminal (SIGHUP) makes every write fail with EIO, a closed pipe
    with EPIPE; the runner then goes on with the log only, never raising. The
    banner (a token, maybe the dev secret) goes to the terminal only.
    """

    def __init__(self, log_path: Path, out: TextIO | None = None) -> None:
        self.out: TextIO | None = out or sys.stdout
        self._log = log_path.open("w", encoding="utf-8")

    def say(self, text: str) -> None:
        line = f"run: {text}"
        self._log.write(f"{line}\n")
        self._log.flush()
        self.show(line)

    def show(self, text: str) -> None:
        """On the terminal only."""
        if self.out is None:
            return
        try:
            self.out.write(f"{text}\n")
            self.out.flush()
        except OSError:
            if self.out is sys.stdout:
                _silence_stdout()
            self.out = None

    def close(self) -> None:
        self._log.close()


def _silence_stdout() -> None:
    """Python flushes stdout again at exit: point fd 1 at /dev/null so that flush works."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    finally:
        os.close(devnull)


@dataclass
class Child:
    """One service process and the log it writes."""

    name: str
    process: subprocess.Popen[bytes]
    log_path: Path
    log_file: IO[bytes]

    @property
    def running(self) -> bool:
        return self.process.poll() is None

    def terminate(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            if self.running:
                self.process.send_signal(signal.SIGTERM)

    def wait_or_kill(self, deadline: float) -> bool:
        """Wait until ``deadline`` (monotonic), then SIGKILL; True if it had to be killed."""
        try:
            self.process.wait(max(0.0, deadline - time.monotonic()))
            killed = False
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            killed = True
        self.log_file.close()
        return killed

    def tail(self, lines: int = 20) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


class Stack:
    """The processes of one run: services in :attr:`children`, plus Kafka and Redis."""

    def __init__(self, run_dir: Path, console: Console, stop_grace_s: float) -> None:
        self.run_dir = run_dir
        self.console = console
        self.stop_grace_s = stop_grace_s
        self.children: list[Child] = []
        self.redis: RedisServer | None = None
        self.kafka: kafka.KafkaBroker | None = None

    def spawn(self, name: str, args: list[str], env: dict[str, str]) -> Child:
        log_path = self.run_dir / f"{name}.log"
        preexec = lifetime.die_with_parent()
        with lifetime.critical():  # started and kept, or neither
            log_file = log_path.open("wb")
            process = subprocess.Popen(
                args,
                env={**os.environ, **env},
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=preexec,
            )
            child = Child(name, process, log_path, log_file)
            self.children.append(child)
        self.write_pids()
        return child

    def pids(self) -> dict[str, int]:
        """Every process of this run by name, the runner's own included."""
        found = {"runner": os.getpid()}
        if self.redis is not None and self.redis.pid is not None:
            found["redis"] = self.redis.pid
        if self.kafka is not None and self.kafka.process is not None:
            found["kafka"] = self.kafka.process.pid
        found.update((child.name, child.process.pid) for child in self.children)
        return found

    def write_pids(self) -> None:
        path = self.run_dir / PIDS_FILE
        partial = path.with_suffix(".partial")
        partial.write_bytes(orjson.dumps(self.pids(), option=orjson.OPT_INDENT_2))
        partial.replace(path)

    def dead(self) -> str | None:
        """The name of a process that exited on its own, if any."""
        if self.redis is not None and not self.redis.running:
            return "redis"
        if self.kafka is not None and not self.kafka.running:
            return "kafka"
        return next((c.name for c in self.children if not c.running), None)

    def stop(self) -> None:
        """Stop everything; each step runs even if an earlier one failed."""
        self._step("services", self._stop_children)
        if self.kafka is not None:
            self.console.say("stopping kafka")
            self._step("kafka", self.kafka.close)
        if self.redis is not None:
            self.console.say("stopping redis")
            self._step("redis", self.redis.cleanup)
        (self.run_dir / PIDS_FILE).unlink(missing_ok=True)

    def _stop_children(self) -> None:
        newest_first = list(reversed(self.children))
        if newest_first:
            self.console.say(f"stopping {', '.join(c.name for c in newest_first)}")
        for child in newest_first:
            child.terminate()
        deadline = time.monotonic() + self.stop_grace_s
        for child in newest_first:
            if child.wait_or_kill(deadline):
                self.console.say(f"{child.name} ignored SIGTERM for {self.stop_grace_s:g}s: killed")

    def _step(self, what: str, stop: Callable[[], None]) -> None:
        try:
            stop()
        except Exception as exc:  # report and go on: the next step must still run
            self.console.say(f"stopping {what} failed: {exc!r}")
