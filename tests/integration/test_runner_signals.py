"""`make run` stops every child whatever stops it, leaves no temp dir, and starts again.

Each case starts a run on free ports, waits for its banner, takes its
processes from pids.json (checked against the runner's real children), stops
it the way a user or a machine would, and asserts: every process gone within
STOPPED_WITHIN_S, the four ports free, the runner's temp dirs gone (after a
SIGKILL: swept by the next run), and a second run on the same ports starts and
stops cleanly. The time from the signal to the last exit is printed (`-s`).
A port something else holds is refused before anything starts.
"""

from __future__ import annotations

import asyncio
import signal
import socket
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.integration.runner_support import (
    ROOT,
    SERVICES,
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
    token_of,
)

pytestmark = pytest.mark.integration

#: How the second signal of "twice" follows the first: inside the cleanup.
SECOND_SIGNAL_AFTER_S = 0.3


async def stopped(
    case: str, run_dir: Path, stop: Callable[[], None], names: frozenset[str] = SERVICES
) -> list[Path]:
    """Take the run's processes and temp dirs, ``stop`` it, wait until all are gone.

    Prints the time from the signal to the last exit; returns the temp dirs.
    """
    procs = processes(run_dir, names)
    dirs = scratch_dirs(procs["runner"].pid)
    assert len(dirs) == 2, dirs  # Kafka's data, Redis's dir
    started = time.monotonic()
    stop()
    await gone_within(procs, STOPPED_WITHIN_S)
    took = time.monotonic() - started
    print(f"\nrunner stop [{case}]: every process gone {took:.2f}s after the signal")
    return dirs


async def second_run_starts_and_stops(tmp_path: Path, ports: Ports) -> Run:
    """The same ports again: must start (ports free, no leftovers) and stop cleanly."""
    run = Run.runner(tmp_path, ports, name="second").start()
    with killed_on_failure(run):
        await run.banner()
        dirs = await stopped("second run, SIGTERM", run.run_dir, at(run, signal.SIGTERM))
        assert run.wait() == 0, run.output()
    assert not [d for d in dirs if d.exists()]
    assert ports.busy() == []
    return run


def at(run: Run, sig: signal.Signals, twice: bool = False) -> Callable[[], None]:
    """Send ``sig`` to the run's own process (again inside its cleanup if ``twice``)."""

    def send() -> None:
        run.process_signal(sig)
        if twice:
            time.sleep(SECOND_SIGNAL_AFTER_S)
            run.process_signal(sig)

    return send


@pytest.mark.parametrize(
    ("case", "sig", "twice"),
    [
        ("SIGINT", signal.SIGINT, False),
        ("SIGTERM", signal.SIGTERM, False),
        ("SIGTERM twice", signal.SIGTERM, True),
        ("SIGHUP", signal.SIGHUP, False),
    ],
    ids=["sigint", "sigterm", "sigterm-twice", "sighup"],
)
async def test_a_signal_to_the_runner_stops_everything(
    tmp_path: Path, case: str, sig: signal.Signals, twice: bool
) -> None:
    ports = Ports.free()
    run = Run.runner(tmp_path, ports).start()
    with killed_on_failure(run):
        banner = await run.banner()
        dirs = await stopped(case, run.run_dir, at(run, sig, twice))
        assert run.wait() == 0, run.output()
    assert f"{sig.name}: stopping everything" in run.output()
    assert token_of(banner) not in (run.run_dir / "runner.log").read_text()  # terminal only
    assert ports.busy() == []
    assert not [d for d in dirs if d.exists()]
    assert not (run.run_dir / "pids.json").exists()
    await second_run_starts_and_stops(tmp_path, ports)


async def test_sigkill_of_the_runner_takes_every_child_with_it(tmp_path: Path) -> None:
    ports = Ports.free()
    run = Run.runner(tmp_path, ports).start()
    with killed_on_failure(run):
        await run.banner()
        # No handler runs: only the kernel can stop the children now.
        dirs = await stopped("SIGKILL", run.run_dir, at(run, signal.SIGKILL))
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
        started = frozenset({"redis", "kafka"})
        dirs = await stopped(
            "SIGTERM while Kafka starts", run.run_dir, at(run, signal.SIGTERM), started
        )
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
        dirs = await stopped(case, run.run_dir, lambda: run.signal_group(sig))
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
        # SIGHUP to the shell, which sends it to its jobs; writes to the terminal fail.
        dirs = await stopped("terminal closed (SIGHUP)", run_dir, terminal.close)
        await asyncio.to_thread(terminal.shell.wait, STOPPED_WITHIN_S)
    finally:
        terminal.kill()
    runner_log = (run_dir / "runner.log").read_text()
    assert "SIGHUP: stopping everything" in runner_log
    assert "stopped in" in runner_log
    assert ports.busy() == []
    assert not [d for d in dirs if d.exists()]
    await second_run_starts_and_stops(tmp_path, ports)


async def test_a_busy_port_is_refused_before_anything_starts(tmp_path: Path) -> None:
    """What a leftover of an old run (or anything else on the port) gets: a clear refusal."""
    ports = Ports.free()
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", ports.kafka))
        squatter.listen()
        run = Run.runner(tmp_path, ports).start()
        with killed_on_failure(run):
            status = await asyncio.to_thread(run.wait, 60)
    assert status == 1, run.output()
    assert f"port(s) in use: FLEETCAST_KAFKA_PORT={ports.kafka}" in run.output()
    assert "starting" not in run.output()  # nothing was started
    assert scratch_dirs(run.pid) == []
