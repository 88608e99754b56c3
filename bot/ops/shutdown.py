"""Graceful shutdown: on SIGTERM let running checks and fixes finish (bounded), then clean up.

`netcheck serve` hands over the bot's task tracker (bot/ops/tasks.py: every check and fix a Slack
listener starts), registers cleanups (delete debug pods, release the leader Lease, stop the health
server) with `add_cleanup`, calls `install_signal_handlers()` and awaits `wait_for_shutdown()`.
Kubernetes sends SIGTERM and then SIGKILL after terminationGracePeriodSeconds, so the deployment's
grace period must exceed `OpsSettings.shutdown_worst_case_s` (the manifests use 65 s: by default
25 s of drain, 5 s of unwinding and three cleanups of at most 10 s each).
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable

import structlog

from bot.ops.settings import OpsSettings
from bot.ops.tasks import TaskTracker

log = structlog.get_logger(__name__)
Cleanup = Callable[[], Awaitable[None]]


class GracefulShutdown:
    def __init__(self, settings: OpsSettings | None = None, tasks: TaskTracker | None = None) -> None:
        self.settings = settings or OpsSettings()
        self.tasks = tasks or TaskTracker()
        """The checks and fixes a shutdown waits for (up to `shutdown_grace`) before the cleanups."""
        self.requested = asyncio.Event()
        self._cleanups: list[tuple[str, Cleanup]] = []
        self._signals: list[int] = []

    def add_cleanup(self, name: str, cleanup: Cleanup, *, first: bool = False) -> None:
        """Cleanups run in the order added (`first`: before those already added), after the tracked
        tasks finished or were cancelled."""
        if first:
            self._cleanups.insert(0, (name, cleanup))
        else:
            self._cleanups.append((name, cleanup))

    def install_signal_handlers(self, signals: tuple[int, ...] = (signal.SIGTERM, signal.SIGINT)) -> None:
        loop = asyncio.get_running_loop()
        for sig in signals:
            loop.add_signal_handler(sig, self.request, sig)
            self._signals.append(sig)

    def remove_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in self._signals:
            loop.remove_signal_handler(sig)
        self._signals.clear()

    def request(self, sig: int | None = None) -> None:
        if not self.requested.is_set():
            log.info("shutdown_requested", signal=signal.Signals(sig).name if sig else None,
                     running=self.tasks.running)
        self.requested.set()

    async def run_cleanups(self) -> list[str]:
        """Run every cleanup (bounded each); return the names of those that failed."""
        failed: list[str] = []
        for name, cleanup in self._cleanups:
            try:
                await asyncio.wait_for(cleanup(), timeout=self.settings.cleanup_timeout)
            except Exception as exc:  # one failing cleanup must not skip the others
                log.error("cleanup_failed", cleanup=name, error=f"{type(exc).__name__}: {exc}")
                failed.append(name)
        return failed

    async def wait_for_shutdown(self) -> list[str]:
        """Block until a signal (or `request()`), then give the tracked tasks `shutdown_grace`
        seconds (the rest are cancelled) and clean up."""
        await self.requested.wait()
        finished, cancelled = await self.tasks.close(self.settings.shutdown_grace)
        if cancelled:
            log.warning("shutdown_cancelled_tasks", cancelled=cancelled)
        failed = await self.run_cleanups()
        log.info("shutdown_complete", finished=finished, cancelled=cancelled, failed_cleanups=failed)
        return failed
