"""`until`: wait, polling, for a condition that another task or process makes true.

The one helper the async tests share instead of sleeping a fixed time: it returns as soon as the
condition holds, and fails the test with what it waited for when `timeout` passes first.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")
POLL_S = 0.02


async def until(condition: Callable[[], T | Awaitable[T]], what: str = "the condition",
                timeout: float = 5.0, poll: float = POLL_S) -> T:
    """The first truthy value of `condition()` (a plain or an async callable)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = condition()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value  # type: ignore[return-value]
        assert loop.time() < deadline, f"timed out after {timeout:g} s waiting for {what}"
        await asyncio.sleep(poll)
