"""The engine and the fix runner as the bot sees them when they run on their own loop (`EngineLoop`,
bot/ops/engine_loop.py): `ThreadedEngine` is a `probes.api.EngineAPI`, `ThreadedFixRunner` a
`bot.slack.ports.FixRunner`, member by member, so the bot's code is the same on one loop or two.

Each coroutine method runs on the engine's loop and is awaited from the bot's; what the engine calls
back goes the other way: `on_report`/`on_result` hooks are scheduled on the bot's loop (the metrics
and any hook the bot adds run where the bot's state lives), and a fix's `progress` callback, which
edits a Slack message, runs on the bot's loop and is awaited by the fix. Built by bot/wiring.py for
`netcheck serve`; the CLI keeps one loop.
"""

from __future__ import annotations

import contextvars
from collections.abc import Coroutine, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

from bot.ops.engine_loop import EngineLoop, run_on
from fixes.base import Progress
from fixes.model import Approval, FixResult, Plan
from probes.api import EngineAPI
from probes.facts import ClusterFacts, NodeFacts
from probes.followup import Comparison
from probes.hooks import Hooks
from probes.model import Report
from probes.registry import Registry
from probes.transports.base import ClusterAPI, CommandResult, NodeShell

if TYPE_CHECKING:
    from contextlib import AbstractAsyncContextManager

    from bot.slack.ports import FixRunner

T = TypeVar("T")

_session_context: contextvars.ContextVar[contextvars.Context | None] = contextvars.ContextVar(
    "netcheck_engine_session_context", default=None)
"""Inside a bridged `node_session` block: the context the engine's session was entered in (the engine
keeps the session in a ContextVar), so the calls made inside the block see it, as on one loop."""


async def _on_engine(loop: EngineLoop, coro: Coroutine[Any, Any, T]) -> T:
    session = _session_context.get()
    if session is None:
        return await loop.run(coro)
    return await run_on(loop.loop, coro, unwind_timeout=loop.unwind_timeout, context=session)


class ThreadedEngine:
    """`EngineAPI` over an engine whose transports live on `loop`'s thread."""

    def __init__(self, engine: EngineAPI, loop: EngineLoop) -> None:
        self._engine = engine
        self._loop = loop
        self._on_report: Hooks[[Report]] = Hooks("on_report")
        engine.on_report.add(self._relay_report)
        self._closed = False

    def _relay_report(self, report: Report) -> None:
        self._loop.call_on_bot(self._on_report, report)

    @property
    def loop(self) -> EngineLoop:
        return self._loop

    # -- read-only, no I/O: the same objects on either loop --------------------------------------

    @property
    def registry(self) -> Registry:
        return self._engine.registry

    @property
    def cluster(self) -> ClusterAPI:
        """The engine's cluster client: bound to the engine's loop, use it only through the engine."""
        return self._engine.cluster

    @property
    def on_report(self) -> Hooks[[Report]]:
        """Hooks run on the bot's loop with every report the engine returns."""
        return self._on_report

    def enabled(self, probe_ids: Sequence[str]) -> list[str]:
        return self._engine.enabled(probe_ids)

    # -- on the engine's loop ----------------------------------------------------------------------

    async def facts(self, *, refresh: bool = False) -> ClusterFacts:
        return await _on_engine(self._loop, self._engine.facts(refresh=refresh))

    async def node_names(self) -> list[str]:
        return await _on_engine(self._loop, self._engine.node_names())

    async def resolve_node(self, name: str) -> NodeFacts:
        return await _on_engine(self._loop, self._engine.resolve_node(name))

    async def check(self, node: str, *, probes: Sequence[str] | None = None,
                    follow_up: bool | None = None) -> Report:
        return await _on_engine(self._loop, self._engine.check(node, probes=probes, follow_up=follow_up))

    async def check_all(self, *, probes: Sequence[str] | None = None,
                        concurrency: int | None = None) -> list[Report]:
        return await _on_engine(self._loop, self._engine.check_all(probes=probes, concurrency=concurrency))

    async def compare(self, node: str, *, against: str | None = None) -> Comparison:
        return await _on_engine(self._loop, self._engine.compare(node, against=against))

    async def node_shell(self, node: str) -> NodeShell:
        return _ThreadedShell(await _on_engine(self._loop, self._engine.node_shell(node)), self._loop)

    def node_session(self, node: str, *, privileged: bool = False) -> AbstractAsyncContextManager[None]:
        return _ThreadedSession(self._engine, self._loop, node, privileged)

    async def retire_warm_pods(self) -> None:
        await _on_engine(self._loop, self._engine.retire_warm_pods())

    async def aclose(self) -> None:
        """Close the engine on its loop (SSH, debug pods, the cluster client), then stop the loop and
        join its thread; a second call does nothing."""
        if self._closed:
            return
        self._closed = True
        try:
            await self._loop.run(self._engine.aclose())
        finally:
            await self._loop.stop()


class _ThreadedShell:
    """A node shell of the engine's, its commands run on the engine's loop (where its SSH connection
    or pod WebSocket lives)."""

    def __init__(self, shell: NodeShell, loop: EngineLoop) -> None:
        self._shell = shell
        self._loop = loop
        self.node = shell.node

    async def run(self, command: str, *, timeout: float | None = None) -> CommandResult:
        return await _on_engine(self._loop, self._shell.run(command, timeout=timeout))


class _ThreadedSession:
    """`Engine.node_session` entered and left on the engine's loop, in one context that the calls made
    inside the block share (the engine's session lives in a ContextVar of that context)."""

    def __init__(self, engine: EngineAPI, loop: EngineLoop, node: str, privileged: bool) -> None:
        self._session = engine.node_session(node, privileged=privileged)
        self._loop = loop
        self._context = contextvars.copy_context()
        self._token: contextvars.Token[contextvars.Context | None] | None = None

    async def __aenter__(self) -> None:
        await run_on(self._loop.loop, self._session.__aenter__(), unwind_timeout=self._loop.unwind_timeout,
                     context=self._context)
        self._token = _session_context.set(self._context)

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> bool | None:
        if self._token is not None:
            _session_context.reset(self._token)
        return await run_on(self._loop.loop, self._session.__aexit__(kind, exc, tb),
                            unwind_timeout=self._loop.unwind_timeout, context=self._context)


class ThreadedFixRunner:
    """`bot.slack.ports.FixRunner` over a fix runner on the engine's loop (its node Lease lock uses the
    engine's cluster client, so it lives there too)."""

    def __init__(self, runner: FixRunner, loop: EngineLoop) -> None:
        self._runner = runner
        self._loop = loop
        self.on_result: Hooks[[str, FixResult]] = Hooks("on_result")
        runner.on_result.add(self._relay_result)

    def _relay_result(self, fix_id: str, result: FixResult) -> None:
        self._loop.call_on_bot(self.on_result, fix_id, result)

    async def plan(self, node: str, fix_id: str, params: dict[str, str | int]) -> Plan:
        return await _on_engine(self._loop, self._runner.plan(node, fix_id, params))

    async def apply(self, node: str, fix_id: str, params: dict[str, str | int], approval: Approval,
                    *, progress: Progress | None = None) -> FixResult:
        relayed: Progress | None = None
        if progress is not None:
            bot_progress = progress

            async def on_bot(line: str) -> None:
                await bot_progress(line)

            async def relayed(line: str) -> None:  # called by the fix on the engine's loop
                await self._loop.to_bot(on_bot(line))

        return await _on_engine(self._loop, self._runner.apply(node, fix_id, params, approval,
                                                               progress=relayed))
