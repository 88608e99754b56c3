"""The engine as the bot's on-demand checks see it: every report is recorded in the fleet state.

`bot/slack/app.py::build_app` wraps the engine with it, so `/netcheck NODE`, `/netcheck all`,
node-join checks, Home-tab re-checks and re-checks after a fix all update what the watch and the
Home tab know (the watch itself records through `Watcher`, with the engine unwrapped: its reports
are the watch's, not on-demand). It is an `EngineAPI` member by member, not a `__getattr__` proxy,
so the type checker sees every call the bot makes through it.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager

from bot.fleet.state import FleetState, Source
from probes.api import EngineAPI
from probes.facts import ClusterFacts, NodeFacts
from probes.followup import Comparison
from probes.hooks import Hooks
from probes.model import Report
from probes.registry import Registry
from probes.transports.base import ClusterAPI, NodeShell


class RecordingEngine:
    def __init__(self, engine: EngineAPI, fleet: FleetState) -> None:
        self._engine = engine
        self._fleet = fleet

    async def check(self, node: str, *, probes: Sequence[str] | None = None,
                    follow_up: bool | None = None) -> Report:
        report = await self._engine.check(node, probes=probes, follow_up=follow_up)
        self._fleet.record(report, Source.ON_DEMAND)
        return report

    async def check_all(self, *, probes: Sequence[str] | None = None,
                        concurrency: int | None = None) -> list[Report]:
        reports = await self._engine.check_all(probes=probes, concurrency=concurrency)
        for report in reports:
            self._fleet.record(report, Source.ON_DEMAND)
        return reports

    # -- the rest of EngineAPI, unchanged -------------------------------------------------------------

    @property
    def registry(self) -> Registry:
        return self._engine.registry

    @property
    def cluster(self) -> ClusterAPI:
        return self._engine.cluster

    @property
    def on_report(self) -> Hooks[[Report]]:
        return self._engine.on_report

    async def facts(self, *, refresh: bool = False) -> ClusterFacts:
        return await self._engine.facts(refresh=refresh)

    async def node_names(self) -> list[str]:
        return await self._engine.node_names()

    async def resolve_node(self, name: str) -> NodeFacts:
        return await self._engine.resolve_node(name)

    def enabled(self, probe_ids: Sequence[str]) -> list[str]:
        return self._engine.enabled(probe_ids)

    async def compare(self, node: str, *, against: str | None = None) -> Comparison:
        return await self._engine.compare(node, against=against)

    async def node_shell(self, node: str) -> NodeShell:
        return await self._engine.node_shell(node)

    def node_session(self, node: str, *, privileged: bool = False) -> AbstractAsyncContextManager[None]:
        return self._engine.node_session(node, privileged=privileged)

    async def aclose(self) -> None:
        await self._engine.aclose()
