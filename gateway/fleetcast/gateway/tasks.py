"""An owner for short-lived tasks (closing a connection, say) started from sync code.

Every task started here is kept until it ends and is cancelled and awaited
by :meth:`Tasks.close`, which the app's cleanup calls: nothing is left
running after shutdown, and an exception is logged rather than lost.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Iterable
from typing import Any, Final

import structlog

log = structlog.stdlib.get_logger(__name__)

#: How long a cancelled task gets before it is cancelled again.
RECANCEL_AFTER_S: Final = 0.5


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


class Tasks:
    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()

    def __len__(self) -> int:
        return len(self._tasks)

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
        """Let running tasks finish, for at most ``seconds``."""
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=seconds)

    async def close(self) -> None:
        await cancel_and_wait(list(self._tasks))
