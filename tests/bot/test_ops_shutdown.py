"""Graceful shutdown on a real SIGTERM sent to this process.

Covers: a running check finishes within the grace period before cleanups run; a task past the grace
period is cancelled; cleanups run in order after the tasks, a failing or hanging cleanup does not
skip the next one and is reported by name.
"""

from __future__ import annotations

import asyncio
import os
import signal

from bot.ops.settings import OpsSettings
from bot.ops.shutdown import GracefulShutdown


async def test_sigterm_waits_for_checks_then_cleans_up():
    shutdown = GracefulShutdown(OpsSettings(shutdown_grace=2.0, cleanup_timeout=0.5))
    events: list[str] = []

    async def check() -> None:
        await asyncio.sleep(0.3)
        events.append("check finished")

    async def delete_debug_pods() -> None:
        events.append("debug pods deleted")

    async def broken() -> None:
        raise RuntimeError("API gone")

    async def release_lease() -> None:
        events.append("lease released")

    shutdown.tasks.spawn(check(), name="check")
    shutdown.add_cleanup("debug-pods", delete_debug_pods)
    shutdown.add_cleanup("broken", broken)
    shutdown.add_cleanup("lease", release_lease)
    shutdown.install_signal_handlers()
    try:
        waiter = asyncio.create_task(shutdown.wait_for_shutdown())
        await asyncio.sleep(0.05)
        assert not waiter.done()
        os.kill(os.getpid(), signal.SIGTERM)
        failed = await asyncio.wait_for(waiter, timeout=5)
    finally:
        shutdown.remove_signal_handlers()
    assert events == ["check finished", "debug pods deleted", "lease released"]
    assert failed == ["broken"]
    assert shutdown.tasks.running == 0


async def test_grace_period_bounds_the_wait():
    shutdown = GracefulShutdown(OpsSettings(shutdown_grace=0.2, cleanup_timeout=0.2))
    cancelled = asyncio.Event()

    async def endless_fix() -> None:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    async def hangs() -> None:
        await asyncio.sleep(60)

    ran: list[str] = []

    async def after() -> None:
        ran.append("after")

    shutdown.tasks.spawn(endless_fix(), name="fix")
    shutdown.add_cleanup("hangs", hangs)
    shutdown.add_cleanup("after", after)
    shutdown.request()
    loop = asyncio.get_running_loop()
    started = loop.time()
    failed = await shutdown.wait_for_shutdown()
    assert loop.time() - started < 2
    assert cancelled.is_set()
    assert failed == ["hangs"]
    assert ran == ["after"]
