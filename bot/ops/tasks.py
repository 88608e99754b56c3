"""Tracked background tasks: every task the bot starts is kept, logged when it fails, and stopped at
shutdown (no fire-and-forget). The Slack listeners spawn their checks and fixes here (`rt.tasks`),
and `netcheck serve` hands the same tracker to its graceful shutdown (bot/ops/shutdown.py), which
gives them `ops.shutdown_grace` seconds to finish.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

import structlog

log = structlog.get_logger("netcheck.tasks")


class TaskTracker:
    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, coro: Coroutine[Any, Any, Any], *, name: str) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            log.error("task_failed", task=task.get_name(), error=repr(exc), exc_info=exc)

    @property
    def running(self) -> int:
        return len(self._tasks)

    async def idle(self, timeout: float) -> None:
        """Wait until no task runs (tests, graceful shutdown); raises TimeoutError after `timeout`."""
        async with asyncio.timeout(timeout):
            while self._tasks:
                await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self, timeout: float) -> tuple[int, int]:
        """Give running tasks `timeout` seconds, then cancel what is left; (finished, cancelled)."""
        running = len(self._tasks)
        try:
            await self.idle(timeout)
        except TimeoutError:
            left = list(self._tasks)
            for task in left:
                task.cancel()
            await asyncio.gather(*left, return_exceptions=True)
            return max(running - len(left), 0), len(left)
        return running, 0
