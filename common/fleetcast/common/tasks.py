"""Every task of a process has one owner: its :class:`Supervisor`.

Two kinds of task, one owner:

- *services*: coroutine functions that run until cancelled (a listener, a
  pump, a sweep). Started by name; one that ends or crashes is logged (with
  its traceback) and started again after a short backoff, so a bug in one
  loop never leaves the process silently without it.
- *short-lived tasks* started from sync code (closing a connection, handling
  one client packet): kept until they end, their exceptions logged.

:meth:`Supervisor.stop` cancels and awaits them all, re-cancelling any that
swallowed a cancellation, so nothing is left running after shutdown.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping
from typing import Any, Final

import structlog

log = structlog.stdlib.get_logger(__name__)

#: How long a cancelled task gets before it is cancelled again.
RECANCEL_AFTER_S: Final = 0.5
#: First and longest pause before a crashed service is started again (seconds).
RESTART_MIN_S: Final = 0.5
RESTART_MAX_S: Final = 10.0

Service = Callable[[], Awaitable[None]]


async def cancel_and_wait(tasks: Iterable[asyncio.Task[Any]]) -> None:
    """Cancel ``tasks`` and wait until every one has ended.

    A library awaited inside a task (redis-py's connection code, say) can
    swallow a cancellation, and a loop around it then waits on as if nothing
    happened, hanging the app's shutdown. So a task still running after
    :data:`RECANCEL_AFTER_S` is cancelled again until it ends.
    """
    pending = set(tasks)
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=RECANCEL_AFTER_S)
        for task in pending:
            log.warning("task ignored a cancellation, cancelling again", task=task.get_name())


class Supervisor:
    """Owns a process's services and short-lived tasks (see the module docstring)."""

    def __init__(self, on_restart: Callable[[str], None] | None = None) -> None:
        self._services: dict[str, asyncio.Task[None]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._on_restart = on_restart

    def __len__(self) -> int:
        """Short-lived tasks still running."""
        return len(self._tasks)

    # --- services -----------------------------------------------------------------

    def start(self, services: Mapping[str, Service]) -> None:
        """Run each service under its name until :meth:`stop`."""
        for name, service in services.items():
            if name in self._services:
                raise ValueError(f"service {name!r} already runs")
            self._services[name] = asyncio.get_running_loop().create_task(
                self._keep(name, service), name=name
            )

    async def _keep(self, name: str, service: Service) -> None:
        pause = RESTART_MIN_S
        while True:
            try:
                await service()
                log.error("service ended; starting it again", service=name)
            except Exception:
                log.exception("service crashed; starting it again", service=name)
            if self._on_restart is not None:
                self._on_restart(name)
            await asyncio.sleep(pause)
            pause = min(pause * 2, RESTART_MAX_S)

    # --- short-lived tasks --------------------------------------------------------------

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("task failed", task=task.get_name(), exc_info=task.exception())

    async def settle(self, seconds: float) -> None:
        """Let short-lived tasks finish, for at most ``seconds``."""
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=seconds)

    async def stop(self) -> None:
        """Cancel and await every service, then every short-lived task."""
        services, self._services = list(self._services.values()), {}
        await cancel_and_wait(services)
        await cancel_and_wait(list(self._tasks))
