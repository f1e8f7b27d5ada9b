"""Children die with their parent; temp dirs of dead runs are swept, live ones never.

Real processes (a small Python parent, `sleep`), no servers: the kernel's
PR_SET_PDEATHSIG and /proc are what is under test.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil  # type: ignore[import-untyped]
import pytest

from fleetcast.devtools import scratch
from tests.integration.runner_support import alive

pytestmark = pytest.mark.integration

PREFIX = "fleetcast-test-scratch-"
GONE_WITHIN_S = 10.0


def gone(pid: int) -> bool:
    try:
        return not alive(psutil.Process(pid))
    except psutil.NoSuchProcess:
        return True


def wait_gone(pid: int) -> None:
    deadline = time.monotonic() + GONE_WITHIN_S
    while not gone(pid):
        assert time.monotonic() < deadline, f"pid {pid} still running"
        time.sleep(0.02)


def python(code: str, tmp_path: Path) -> subprocess.Popen[str]:
    """A Python child with TMPDIR in ``tmp_path``; what it prints is line-buffered."""
    return subprocess.Popen(
        [sys.executable, "-u", "-c", textwrap.dedent(code)],
        env={**os.environ, "TMPDIR": str(tmp_path)},
        stdout=subprocess.PIPE,
        text=True,
    )


def parent_of_a_sleeper(tmp_path: Path, preexec: str) -> subprocess.Popen[str]:
    """A Python parent that starts `sleep 600` with ``preexec`` and prints its pid."""
    return python(
        f"""
        import subprocess, time
        from fleetcast.devtools import lifetime
        child = subprocess.Popen(["sleep", "600"], preexec_fn={preexec})
        print(child.pid)
        time.sleep(600)
        """,
        tmp_path,
    )


def sigkill_the_parent(parent: subprocess.Popen[str]) -> int:
    """SIGKILL the parent (no handler, no cleanup); its child's pid."""
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    assert not gone(child)
    parent.kill()
    parent.wait(10)
    return child


def test_a_child_dies_with_its_sigkilled_parent(tmp_path: Path) -> None:
    with parent_of_a_sleeper(tmp_path, "lifetime.die_with_parent()") as parent:
        wait_gone(sigkill_the_parent(parent))  # only the kernel could stop it


def test_without_it_the_child_outlives_the_parent(tmp_path: Path) -> None:
    """The control: what `make run` did before (proves the test above can fail)."""
    with parent_of_a_sleeper(tmp_path, "None") as parent:
        child = sigkill_the_parent(parent)
        try:
            time.sleep(0.5)
            assert not gone(child)
        finally:
            os.kill(child, signal.SIGKILL)


def dir_of_a_dead_process(tmp_path: Path) -> tuple[Path, int]:
    """A marked dir in ``tmp_path`` whose owner has exited, and that owner's pid."""
    made = python(
        f"from fleetcast.devtools import scratch; print(scratch.make({PREFIX!r}))", tmp_path
    )
    out, _ = made.communicate(timeout=30)
    return Path(out.strip()), made.pid


def test_sweep_removes_dirs_whose_owner_and_users_are_gone(tmp_path: Path) -> None:
    stale, _ = dir_of_a_dead_process(tmp_path)
    (stale / "logs").mkdir()
    live = tmp_path / "live"
    live.mkdir()
    ours = Path(scratch.make(PREFIX))
    try:
        moved = ours.rename(live / ours.name)  # a dir of this (live) process
        assert stale.parent == tmp_path
        assert scratch.sweep([PREFIX], root=tmp_path) == [stale]
        assert not stale.exists()
        assert scratch.sweep([PREFIX], root=live) == []
        assert moved.exists()
    finally:
        for leftover in live.glob(f"{PREFIX}*"):
            (leftover / scratch.MARKER).unlink()
            leftover.rmdir()


def test_sweep_keeps_a_dir_while_a_server_started_in_it_runs(tmp_path: Path) -> None:
    orphaned, _ = dir_of_a_dead_process(tmp_path)
    server = subprocess.Popen(["sleep", "600"])
    try:
        scratch.add_user(orphaned, server.pid)
        assert scratch.sweep([PREFIX], root=tmp_path) == []  # its owner is dead, it is not
        server.kill()
        server.wait(10)
        assert scratch.sweep([PREFIX], root=tmp_path) == [orphaned]
    finally:
        server.kill()
        server.wait(10)


def test_sweep_never_touches_unmarked_dirs_or_follows_links(tmp_path: Path) -> None:
    unmarked = tmp_path / f"{PREFIX}unmarked"
    unmarked.mkdir()
    stale, _ = dir_of_a_dead_process(tmp_path)
    real = stale.rename(tmp_path / "real")  # stale, but only reachable through a link
    (tmp_path / f"{PREFIX}link").symlink_to(real)
    assert scratch.sweep([PREFIX], root=tmp_path) == []
    assert unmarked.exists()
    assert real.exists()


def test_owned_by_finds_what_a_killed_process_left(tmp_path: Path) -> None:
    left, owner = dir_of_a_dead_process(tmp_path)
    assert scratch.owned_by(owner, [PREFIX], root=tmp_path) == [left]
    assert scratch.owned_by(os.getpid(), [PREFIX], root=tmp_path) == []
