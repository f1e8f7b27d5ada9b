"""`make run` stops every child whatever stops it, leaves no temp dir, and starts again.

Each case starts a run on free ports, waits for its banner, takes its
processes from pids.json (checked against the runner's real children), stops
it the way a user or a machine would, and asserts: every process gone within
STOPPED_WITHIN_S, the four ports free, the runner's temp dirs gone (after a
SIGKILL: swept by the next run), and a second run on the same ports starts and
stops cleanly. The time from the signal to the last exit is printed (`-s`).
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.integration.runner_support import (
    ROOT,
    STOPPED_WITHIN_S,
    Ports,
    Run,
    Terminal,
    gone_within,
    killed_on_failure,
    pids,
    processes,
    run_env,
    scratch_dirs,
)

pytestmark = pytest.mark.integration

#: How the second signal of "twice" follows the first: inside the cleanup.
SECOND_SIGNAL_AFTER_S = 0.3


def report(case: str, seconds: float) -> None:
    print(f"\nrunner stop [{case}]: every process gone {seconds:.2f}s after the signal")


async def second_run_starts_and_stops(tmp_path: Path, ports: Ports) -> Run:
    """The same ports again: must start (ports free, no leftovers) and stop cleanly."""
    run = Run.runner(tmp_path, ports, name="second").start()
    with killed_on_failure(run):
        await run.banner()
        procs = processes(run.run_dir)
        dirs = scratch_dirs(run.pid)
        os.kill(run.pid, signal.SIGTERM)
        await gone_within(procs, STOPPED_WITHIN_S)
        assert run.wait() == 0, run.output()
    assert not [d for d in dirs if d.exists()]
    assert ports.busy() == []
    return run


def send(sig: signal.Signals, twice: bool = False) -> Callable[[int], None]:
    def to(pid: int) -> None:
        os.kill(pid, sig)
        if twice:
            time.sleep(SECOND_SIGNAL_AFTER_S)
            os.kill(pid, sig)

    return to


@pytest.mark.parametrize(
    ("case", "stop"),
    [
        ("SIGINT", send(signal.SIGINT)),
        ("SIGTERM", send(signal.SIGTERM)),
        ("SIGTERM twice", send(signal.SIGTERM, twice=True)),
        ("SIGHUP", send(signal.SIGHUP)),
    ],
    ids=["sigint", "sigterm", "sigterm-twice", "sighup"],
)
async def test_a_signal_to_the_runner_stops_everything(
    tmp_path: Path, case: str, stop: Callable[[int], None]
) -> None:
    ports = Ports.free()
    run = Run.runner(tmp_path, ports).start()
    with killed_on_failure(run):
        await run.banner()
        procs = processes(run.run_dir)
        dirs = scratch_dirs(run.pid)
        assert len(dirs) == 2, dirs  # Kafka's data, Redis's dir
        started = time.monotonic()
        stop(run.pid)
        await gone_within(procs, STOPPED_WITHIN_S)
        report(case, time.monotonic() - started)
        assert run.wait() == 0, run.output()
    assert f"{case.split()[0]}: stopping everything" in run.output()
    assert ports.busy() == []
    assert not [d for d in dirs if d.exists()]
    assert not (run.run_dir / "pids.json").exists()
    await second_run_starts_and_stops(tmp_path, ports)


async def test_sigkill_of_the_runner_takes_every_child_with_it(tmp_path: Path) -> None:
    ports = Ports.free()
    run = Run.runner(tmp_path, ports).start()
    with killed_on_failure(run):
        await run.banner()
        procs = processes(run.run_dir)
        dirs = scratch_dirs(run.pid)
        started = time.monotonic()
        os.kill(run.pid, signal.SIGKILL)  # no handler runs: only the kernel can help
        await gone_within(procs, STOPPED_WITHIN_S)
        report("SIGKILL", time.monotonic() - started)
    assert ports.busy() == []
    assert all(d.exists() for d in dirs)  # nobody could delete them...
    second = await second_run_starts_and_stops(tmp_path, ports)
    assert not [d for d in dirs if d.exists()]  # ...until the next run swept them
    assert "removed 2 temp dir(s) of killed runs" in second.output()


async def test_sigterm_while_kafka_starts_stops_what_was_started(tmp_path: Path) -> None:
    ports = Ports.free()
    run = Run.runner(tmp_path, ports).start()
    with killed_on_failure(run):
        deadline = time.monotonic() + 120
        while "kafka" not in pids(run.run_dir):
            assert not run.exited(), run.output()
            assert time.monotonic() < deadline, run.output()
            await asyncio.sleep(0.05)
        procs = processes(run.run_dir, frozenset({"redis", "kafka"}))
        dirs = scratch_dirs(run.pid)
        started = time.monotonic()
        os.kill(run.pid, signal.SIGTERM)
        await gone_within(procs, STOPPED_WITHIN_S)
        report("SIGTERM while Kafka starts", time.monotonic() - started)
        assert run.wait() == 0, run.output()
    assert "fleetcast is running" not in run.output()
    assert ports.busy() == []
    assert not [d for d in dirs if d.exists()]
    await second_run_starts_and_stops(tmp_path, ports)


@pytest.mark.parametrize(
    ("case", "sig"),
    [("Ctrl-C (SIGINT to the group)", signal.SIGINT), ("SIGTERM to the group", signal.SIGTERM)],
    ids=["ctrl-c", "sigterm-group"],
)
async def test_a_signal_to_make_runs_process_group_stops_everything(
    tmp_path: Path, case: str, sig: signal.Signals
) -> None:
    """make and the runner both get it; make forwards SIGTERM, so the runner gets two."""
    ports = Ports.free()
    run = Run.make(tmp_path, ports).start()
    with killed_on_failure(run):
        await run.banner()
        procs = processes(run.run_dir)
        dirs = scratch_dirs(procs["runner"].pid)
        started = time.monotonic()
        run.signal_group(sig)
        await gone_within(procs, STOPPED_WITHIN_S)
        report(case, time.monotonic() - started)
        run.wait()
    runner_log = (run.run_dir / "runner.log").read_text()
    assert "Traceback" not in run.output() + runner_log
    assert "stopped in" in runner_log
    assert ports.busy() == []
    assert not [d for d in dirs if d.exists()]
    await second_run_starts_and_stops(tmp_path, ports)


async def test_closing_the_terminal_of_make_run_stops_everything(tmp_path: Path) -> None:
    """An interactive shell on a pseudo-terminal runs `make run`; the terminal goes away."""
    ports = Ports.free()
    run_dir = tmp_path / "terminal"
    terminal = Terminal(run_env(ports, run_dir), ROOT)
    try:
        terminal.type("make run")
        await terminal.wait_for("Ctrl-C stops everything")
        procs = processes(run_dir)
        dirs = scratch_dirs(procs["runner"].pid)
        started = time.monotonic()
        terminal.close()  # SIGHUP to the shell, which sends it to its jobs; EIO on writes
        await gone_within(procs, STOPPED_WITHIN_S)
        report("terminal closed (SIGHUP)", time.monotonic() - started)
        await asyncio.to_thread(terminal.shell.wait, STOPPED_WITHIN_S)
    finally:
        terminal.kill()
    runner_log = (run_dir / "runner.log").read_text()
    assert "SIGHUP: stopping everything" in runner_log
    assert "stopped in" in runner_log
    assert ports.busy() == []
    assert not [d for d in dirs if d.exists()]
    await second_run_starts_and_stops(tmp_path, ports)
