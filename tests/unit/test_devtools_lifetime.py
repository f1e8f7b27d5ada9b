"""The runner's signal discipline (fleetcast.devtools.lifetime.Interrupts), with real signals.

Each test sends signals to this very process, inside ``installed()``, which
restores pytest's own handlers afterwards.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time

import pytest

from fleetcast.devtools import lifetime


def deliver(sig: signal.Signals) -> None:
    """Send ``sig`` to ourselves and let its Python handler run."""
    os.kill(os.getpid(), sig)
    time.sleep(0.01)  # handlers run between bytecodes of the main thread


def armed_then(interrupts: lifetime.Interrupts, sig: signal.Signals | None) -> None:
    """Inside ``armed()``, deliver ``sig``; must not get past it."""
    with interrupts.armed():
        if sig is not None:
            deliver(sig)
        pytest.fail("not interrupted")


def test_a_stop_signal_raises_once_inside_armed_and_later_ones_are_counted() -> None:
    with lifetime.Interrupts().installed() as interrupts:
        with pytest.raises(lifetime.Interrupted) as raised:
            armed_then(interrupts, signal.SIGTERM)
        assert raised.value.signal_name == "SIGTERM"
        deliver(signal.SIGTERM)  # what make forwards: counted, not raised (cleanup goes on)
        deliver(signal.SIGHUP)
        assert interrupts.received == ["SIGTERM", "SIGTERM", "SIGHUP"]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_each_stop_signal_interrupts(sig: signal.Signals) -> None:
    with (
        lifetime.Interrupts().installed() as interrupts,
        pytest.raises(lifetime.Interrupted, match=sig.name),
    ):
        armed_then(interrupts, sig)


def test_a_signal_outside_armed_is_raised_on_entry() -> None:
    with lifetime.Interrupts().installed() as interrupts:
        deliver(signal.SIGINT)  # before the start: not lost
        with pytest.raises(lifetime.Interrupted, match="SIGINT"):
            armed_then(interrupts, None)


def start_and_keep(interrupts: lifetime.Interrupts, kept: list[str]) -> None:
    with interrupts.armed():
        with lifetime.critical():
            deliver(signal.SIGTERM)
            kept.append("started and kept")
        pytest.fail("the deferred signal was lost")


def test_critical_defers_the_interrupt_to_the_end_of_the_block() -> None:
    kept: list[str] = []
    with lifetime.Interrupts().installed() as interrupts, pytest.raises(lifetime.Interrupted):
        start_and_keep(interrupts, kept)
    assert kept == ["started and kept"]


def test_installed_restores_the_previous_handlers() -> None:
    before = {sig: signal.getsignal(sig) for sig in lifetime.STOP_SIGNALS}
    with lifetime.Interrupts().installed():
        assert signal.getsignal(signal.SIGTERM) is not before[signal.SIGTERM]
    assert {sig: signal.getsignal(sig) for sig in lifetime.STOP_SIGNALS} == before
    assert isinstance(lifetime.critical(), contextlib.nullcontext)  # nothing to defer for


def test_die_with_parent_refuses_a_thread_that_may_exit_first() -> None:
    errors: list[BaseException] = []

    def attempt() -> None:
        try:
            lifetime.die_with_parent()
        except RuntimeError as exc:
            errors.append(exc)

    worker = threading.Thread(target=attempt)
    worker.start()
    worker.join()
    assert len(errors) == 1
    assert "main thread" in str(errors[0])


def test_owner_tells_this_process_from_a_recycled_pid() -> None:
    me = lifetime.Owner.me()
    assert me.alive()
    assert not lifetime.Owner(me.pid, me.start + 1).alive()  # same pid, another process
    assert lifetime.Owner.of(2**22 + 1) is None  # above pid_max: never a process
