"""Processes that never outlive the process that started them (Linux).

`make run` starts five long-lived children. They must go when it goes, however
it goes: a signal it handles (Ctrl-C, SIGTERM, SIGHUP when its terminal
closes) or a SIGKILL it cannot handle. Three pieces make that hold:

- :func:`die_with_parent` is a ``preexec_fn`` that asks the kernel to SIGKILL
  the child when its parent dies (``prctl(PR_SET_PDEATHSIG)``). The kernel
  ties that to the parent *thread* that forked, so it refuses to be made off
  the main thread; and it exits at once if the parent died before the prctl.
- :class:`Interrupts` turns SIGINT, SIGTERM and SIGHUP into one
  :class:`Interrupted` exception, raised once and only inside
  :meth:`Interrupts.armed` (the start and the watch): a second signal (make
  forwards the one its process group got) is counted, never raised inside
  the cleanup.
- :func:`critical` defers that exception past a block that starts something
  and keeps its handle, so nothing is started without being tracked.

:class:`Owner` names a process by pid *and* start time, so a recycled pid is
never taken for the process that made a temp dir (see :mod:`scratch`).
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import signal
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Final

__all__ = ["Interrupted", "Interrupts", "Owner", "critical", "die_with_parent"]

PR_SET_PDEATHSIG: Final = 1  # <linux/prctl.h>
#: The signals that mean "stop everything": Ctrl-C, kill/make/systemd, terminal closed.
STOP_SIGNALS: Final = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
_STAT_STATE: Final = 0  # fields of /proc/<pid>/stat after "(comm)", from 0
_STAT_START: Final = 19  # field 22, starttime in clock ticks since boot
_libc = ctypes.CDLL(None, use_errno=True)  # resolved here: nothing to look up after fork


def _kill_me_with_parent(parent: int) -> None:
    """In the child, between fork and exec."""
    if _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        os._exit(127)
    if os.getppid() != parent:  # the parent died before the prctl: no orphan
        os._exit(1)


def die_with_parent() -> Callable[[], None]:
    """A ``preexec_fn`` that makes the child die (SIGKILL) with this process.

    Must be made, and the child started, on the main thread: the kernel sends
    the signal when the forking *thread* exits, and only the main thread lives
    as long as the process.
    """
    if threading.current_thread() is not threading.main_thread():
        raise RuntimeError("die_with_parent: start the child from the main thread")
    return functools.partial(_kill_me_with_parent, os.getpid())


@dataclass(frozen=True)
class Owner:
    """One process, named so that a recycled pid is not mistaken for it."""

    pid: int
    start: int  # clock ticks after boot (/proc/<pid>/stat field 22)

    @classmethod
    def of(cls, pid: int) -> Owner | None:
        fields = _stat(pid)
        return None if fields is None else cls(pid, int(fields[_STAT_START]))

    @classmethod
    def me(cls) -> Owner:
        owner = cls.of(os.getpid())
        assert owner is not None  # /proc/self always exists
        return owner

    def alive(self) -> bool:
        """True while this very process runs.

        A zombie has finished, unless only its main thread has: a SIGKILLed
        JVM's other threads hold its files for a moment longer.
        """
        fields = _stat(self.pid)
        if fields is None or int(fields[_STAT_START]) != self.start:
            return False
        return fields[_STAT_STATE] not in ("Z", "X") or _threads(self.pid) > 1


def _stat(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name, or None if gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return text[text.rindex(")") + 2 :].split()


def _threads(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/task"))
    except FileNotFoundError:
        return 0


class Interrupted(BaseException):  # like KeyboardInterrupt: not an Exception to catch
    """A stop signal arrived; ``signal_name`` says which."""

    def __init__(self, signal_name: str) -> None:
        super().__init__(signal_name)
        self.signal_name = signal_name


class Interrupts:
    """SIGINT/SIGTERM/SIGHUP raise :class:`Interrupted` once, only inside :meth:`armed`.

    Outside it (before the start, during the cleanup) and after the first,
    signals are only recorded in :attr:`received`: a cleanup is never cut short.
    """

    def __init__(self) -> None:
        self.received: list[str] = []
        self._armed = False
        self._depth = 0
        self._pending: str | None = None

    @contextlib.contextmanager
    def installed(self) -> Iterator[Interrupts]:
        """Handle the stop signals here (and serve :func:`critical`), then restore."""
        global _current  # signal handlers are process-wide too
        previous = {sig: signal.signal(sig, self._handle) for sig in STOP_SIGNALS}
        _current = self
        try:
            yield self
        finally:
            _current = None
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    @contextlib.contextmanager
    def armed(self) -> Iterator[None]:
        """Inside, the first stop signal raises (at once if one came before)."""
        self._armed = True
        try:
            if self.received:
                self._fire(self.received[0])
            yield
        finally:
            self._armed = False

    def _fire(self, name: str) -> None:
        self._armed = False  # first: a signal arriving now finds us disarmed
        raise Interrupted(name)

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        self.received.append(name)
        if not self._armed:
            return
        if self._depth:
            self._pending = self._pending or name
            return
        self._fire(name)

    @contextlib.contextmanager
    def deferred(self) -> Iterator[None]:
        """Hold the exception until the block is done (a child started and kept)."""
        self._depth += 1
        try:
            yield
        finally:
            self._depth -= 1
            if self._depth == 0 and self._pending is not None and self._armed:
                self._fire(self._pending)


_current: Interrupts | None = None


def critical() -> contextlib.AbstractContextManager[None]:
    """Defer the installed :class:`Interrupts` (if any) past a start-and-keep block."""
    if _current is None or threading.current_thread() is not threading.main_thread():
        return contextlib.nullcontext()
    return _current.deferred()
