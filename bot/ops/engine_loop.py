"""The engine's own event loop, in a thread of its own, for `netcheck serve`.

Why: with one loop, every Slack ack waited behind the sweep's callbacks — SSH packets, TLS handshakes
of pod exec WebSockets, socket writes that cross the node's network inside the system call
(docs/performance.md, "Slack: acks and memory"). So the bot (Bolt and its aiohttp server, the Slack
Web API client, health and metrics, leader election, the node-join watch) keeps the main loop, and the
engine and the fix runner (SSH, the cluster client, debug pods, the sweep) run on this one
(bot/ops/engine_bridge.py puts them here). A blocking system call or a callback of the engine then
holds up only the engine's loop; the two threads still share the GIL (docs/slack.md, "Acks under
load").

Rules the bridge follows:
- an aiohttp session, a kubernetes.aio ApiClient or an asyncssh connection is used only on the loop
  that created it (each binds its loop at first use): the engine's transports here, the node-join
  watch and the Lease store with clients of their own on the bot's loop (bot/wiring.py);
- `run(coro)` (from the bot's loop) runs the coroutine as a task here, in a copy of the caller's
  context variables; cancelling the caller cancels that task and waits, bounded by
  `ops.engine_unwind_timeout`, for it to unwind (a check's `finally` deletes its pods) before the
  caller sees CancelledError, as it did when both ran on one loop;
- `to_bot(coro)` (from this loop) is the reverse, for callbacks that talk to Slack (a fix's
  progress): the Slack client's session belongs to the bot's loop;
- `stop()` cancels what is left here (bounded), stops the loop and joins the thread
  (`ops.engine_loop_timeout`);
- the thread runs `ops.engine_nice` steps below the bot's scheduling priority (docs/event-loops.md,
  "Measured").
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import os
import sys
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import structlog

from probes.errors import NetcheckError

log = structlog.get_logger("netcheck.engine_loop")

T = TypeVar("T")
THREAD_NAME = "netcheck-engine"
MAX_NICE = 19
"""The lowest scheduling priority Linux has (setpriority(2))."""


class EngineStopped(NetcheckError):
    """The engine's loop was stopped (shutdown) before or while a call ran on it."""


async def run_on(
    loop: asyncio.AbstractEventLoop,
    coro: Coroutine[Any, Any, T],
    *,
    unwind_timeout: float,
    context: contextvars.Context | None = None,
) -> T:
    """Run `coro` as a task on `loop` (another thread's) and await its outcome on the running loop.

    The outcome (value or exception) comes back as is; a task ended by its own loop (that loop's
    shutdown) is `EngineStopped`. Cancelling the awaiting task cancels the other and waits for it
    to finish unwinding, at most `unwind_timeout` seconds."""
    ctx = context if context is not None else contextvars.copy_context()
    outcome: concurrent.futures.Future[T] = concurrent.futures.Future()
    started: list[asyncio.Task[T]] = []

    def settle(task: asyncio.Task[T]) -> None:
        if task.cancelled():
            outcome.set_exception(EngineStopped("cancelled on the engine's loop"))
        elif (exc := task.exception()) is not None:
            outcome.set_exception(exc)
        else:
            outcome.set_result(task.result())

    def start() -> None:
        task = loop.create_task(coro, context=ctx)
        started.append(task)
        task.add_done_callback(settle)

    def cancel() -> None:  # runs after start(): one loop runs its thread-safe callbacks in order
        for task in started:
            task.cancel()

    try:
        loop.call_soon_threadsafe(start)
    except RuntimeError as exc:  # that loop is closed
        coro.close()
        raise EngineStopped("the engine's loop is closed") from exc
    waiter = asyncio.wrap_future(outcome)
    try:
        return await asyncio.shield(waiter)  # shielded: cancelling the caller must not drop the outcome
    except asyncio.CancelledError:
        try:
            loop.call_soon_threadsafe(cancel)
        except RuntimeError:
            pass  # closed: nothing runs there any more
        else:
            await asyncio.wait([waiter], timeout=unwind_timeout)
        if waiter.done() and not waiter.cancelled():
            waiter.exception()  # seen: the caller was cancelled, what the task raised meanwhile is moot
        else:
            log.warning("engine_unwind_timeout", timeout=unwind_timeout)
        raise


class EngineLoop:
    """An event loop running in a daemon thread of its own; `start()` and `stop()` from the bot's
    loop. The daemon flag is a backstop only: `stop()` ends the thread (serve calls it at shutdown,
    after the engine closed its transports on this loop)."""

    def __init__(self, *, start_timeout: float, stop_timeout: float, unwind_timeout: float,
                 nice: int = 0) -> None:
        self.start_timeout = start_timeout
        self.nice = nice
        self.stop_timeout = stop_timeout
        self.unwind_timeout = unwind_timeout
        self._loop: asyncio.AbstractEventLoop | None = None
        self._bot_loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._stopped = False

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            raise EngineStopped("the engine's loop is not running")
        return self._loop

    @property
    def bot_loop(self) -> asyncio.AbstractEventLoop:
        """The loop `start()` was called from: where callbacks to Slack and hooks are relayed."""
        if self._bot_loop is None:
            raise EngineStopped("the engine's loop was never started")
        return self._bot_loop

    async def start(self) -> None:
        if self._thread is not None:
            return
        self._bot_loop = asyncio.get_running_loop()
        self._thread = threading.Thread(target=self._main, name=THREAD_NAME, daemon=True)
        self._thread.start()
        if not await asyncio.to_thread(self._ready.wait, self.start_timeout):
            raise EngineStopped(f"the engine's loop did not start within {self.start_timeout:g} s")

    def _main(self) -> None:
        self._lower_priority()
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self._loop = loop
        loop.call_soon(self._ready.set)
        try:
            loop.run_forever()
        finally:
            try:
                loop.run_until_complete(self._cancel_left(loop))
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.run_until_complete(loop.shutdown_default_executor())
            finally:
                asyncio.set_event_loop(None)
                loop.close()

    def _lower_priority(self) -> None:
        """Raise this thread's nice value by `nice` (Linux keeps one per thread, setpriority(2)): when
        the CPUs are busy, the thread answering Slack is scheduled before the engine's."""
        if not self.nice or sys.platform != "linux":  # elsewhere a thread id is no process id
            return
        thread = threading.get_native_id()
        try:
            os.setpriority(os.PRIO_PROCESS, thread,
                           min(MAX_NICE, os.getpriority(os.PRIO_PROCESS, thread) + self.nice))
        except OSError as exc:  # a sandbox may forbid it: the engine runs at the bot's priority
            log.warning("engine_nice_failed", error=str(exc))

    async def _cancel_left(self, loop: asyncio.AbstractEventLoop) -> None:
        left = [t for t in asyncio.all_tasks(loop) if t is not asyncio.current_task()]
        for task in left:
            task.cancel()
        if left:
            _, pending = await asyncio.wait(left, timeout=self.unwind_timeout)
            if pending:
                log.warning("engine_tasks_not_unwound", tasks=sorted(t.get_name() for t in pending))

    async def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """`coro` on the engine's loop, awaited from the bot's (see `run_on`)."""
        if self._stopped or self._loop is None:
            coro.close()
            raise EngineStopped("the engine's loop is not running")
        return await run_on(self._loop, coro, unwind_timeout=self.unwind_timeout)

    async def to_bot(self, coro: Coroutine[Any, Any, T]) -> T:
        """`coro` on the bot's loop, awaited from the engine's (callbacks that talk to Slack)."""
        return await run_on(self.bot_loop, coro, unwind_timeout=self.unwind_timeout)

    def call_on_bot(self, callback: Callable[..., None], *args: Any) -> None:
        """Schedule a plain callback (a hook) on the bot's loop; from any thread."""
        try:
            self.bot_loop.call_soon_threadsafe(callback, *args)
        except RuntimeError:  # the bot's loop is closed: the process is exiting
            log.warning("hook_dropped", callback=getattr(callback, "__qualname__", repr(callback)))

    async def stop(self) -> None:
        """Cancel what still runs on the engine's loop (bounded), stop it and join its thread."""
        thread, loop = self._thread, self._loop
        if self._stopped or thread is None or loop is None:
            return
        self._stopped = True
        try:
            loop.call_soon_threadsafe(loop.stop)
        except RuntimeError:
            return  # already closed
        await asyncio.to_thread(thread.join, self.stop_timeout)
        if thread.is_alive():
            log.warning("engine_loop_not_stopped", timeout=self.stop_timeout)
