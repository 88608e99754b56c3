"""The fleet bound: how many node checks run at once, shared by commands and the watch's sweeps.

A check is an SSH session, a debug pod and a dozen probes; a small machine runs a few at a time
(`slack.max_concurrent_checks`). Commands take a slot as soon as one is free (`async with slots`, the
way a semaphore is used). The watch takes one with `async with slots.background()`, which waits
while any command is waiting and never takes the last free slot, so a command asked for during a
sweep starts at once (or after the one check ahead of it), not after the whole sweep.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import TracebackType


class FleetSlots:
    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError("the fleet bound needs at least one slot")
        self.size = size
        self._busy = 0
        self._commands_waiting = 0
        self._changed = asyncio.Condition()

    @property
    def busy(self) -> int:
        return self._busy

    def _background_may_take(self) -> bool:
        reserve = 1 if self.size > 1 else 0  # keep one slot free for a command
        return self._commands_waiting == 0 and self._busy < self.size - reserve

    async def acquire(self) -> None:
        """A command's slot: the next free one."""
        async with self._changed:
            self._commands_waiting += 1
            try:
                await self._changed.wait_for(lambda: self._busy < self.size)
            finally:
                self._commands_waiting -= 1
                self._changed.notify_all()  # a sweep may go on once no command waits
            self._busy += 1

    async def release(self) -> None:
        async with self._changed:
            self._busy -= 1
            self._changed.notify_all()

    async def __aenter__(self) -> None:
        await self.acquire()

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await asyncio.shield(self.release())  # a cancelled check still gives its slot back

    @asynccontextmanager
    async def background(self) -> AsyncIterator[None]:
        """A sweep's slot: only while no command waits, and never the last free one."""
        async with self._changed:
            await self._changed.wait_for(self._background_may_take)
            self._busy += 1
        try:
            yield
        finally:
            await asyncio.shield(self.release())
