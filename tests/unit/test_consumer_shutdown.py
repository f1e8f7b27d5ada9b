"""Bounded stop steps, start-up that gives way to SIGTERM, and the hard deadline."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time

import pytest

from fleetcast.consumer import shutdown


async def test_a_step_that_hangs_is_abandoned_at_its_timeout() -> None:
    cancelled = asyncio.Event()

    async def hangs() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    started = time.monotonic()
    assert await shutdown.step("hangs", hangs(), 0.05) is False
    assert time.monotonic() - started < 0.05 + shutdown.UNWIND_S + 0.5
    assert cancelled.is_set()


async def test_a_step_that_leaks_its_own_cancellation_ends_that_step_only() -> None:
    """aiokafka's consumer.stop() lets a CancelledError of its fetcher escape."""

    async def leaks() -> None:
        raise asyncio.CancelledError

    assert await shutdown.step("leaks", leaks(), 1.0) is False
    assert await shutdown.step("fails", asyncio.sleep(0, result=None), 1.0) is True


async def test_a_step_that_fails_is_logged_not_raised() -> None:
    async def fails() -> None:
        raise OSError("redis is gone")

    assert await shutdown.step("fails", fails(), 1.0) is False


async def test_start_up_gives_way_to_stopping() -> None:
    stopping = asyncio.Event()
    started = asyncio.Event()

    async def connect() -> int:
        started.set()
        await asyncio.Event().wait()  # a broker that accepts and never answers
        return 1

    waiting = asyncio.create_task(shutdown.until_stopped(connect(), stopping))
    await started.wait()
    stopping.set()
    assert await asyncio.wait_for(waiting, 2) == (False, None)


async def test_start_up_returns_its_result_or_raises() -> None:
    stopping = asyncio.Event()
    assert await shutdown.until_stopped(asyncio.sleep(0, result=7), stopping) == (True, 7)

    async def refused() -> None:
        raise ConnectionRefusedError

    with pytest.raises(ConnectionRefusedError):
        await shutdown.until_stopped(refused(), stopping)


def test_a_step_budget_is_its_bound_within_what_the_deadline_leaves() -> None:
    deadline = shutdown.HardDeadline(10.0)
    assert deadline.budget(5.0) == 5.0  # not armed: no deadline
    deadline.arm()
    try:
        assert 4.9 < deadline.budget(5.0) <= 5.0
        assert 8.0 < deadline.budget(60.0) <= 10.0 - shutdown.RESERVE_S
    finally:
        deadline.disarm()


def test_the_hard_deadline_ends_a_process_whose_loop_is_stuck() -> None:
    script = (
        "import time\n"
        "from fleetcast.consumer import shutdown\n"
        "shutdown.HardDeadline(0.3).arm()\n"
        "time.sleep(30)\n"  # the loop stuck: nothing cooperative would ever run
    )
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=20)
    assert done.returncode == shutdown.DEADLINE_EXIT_STATUS
    assert time.monotonic() - started < 15
    assert b"shutdown deadline passed" in done.stdout + done.stderr
