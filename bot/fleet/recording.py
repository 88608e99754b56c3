"""The engine as the bot's on-demand checks see it: every report is recorded in the fleet state.

`bot/slack/app.py::build_app` wraps the engine with it, so `/netcheck NODE`, `/netcheck all`,
node-join checks, Home-tab re-checks and re-checks after a fix all update what the watch and the
Home tab know (the watch itself records through `Watcher`, with the engine unwrapped).
"""

from __future__ import annotations

from typing import Any

from bot.fleet.state import FleetState, Source


class RecordingEngine:
    def __init__(self, engine: Any, fleet: FleetState) -> None:
        self._engine = engine
        self._fleet = fleet

    def __getattr__(self, name: str) -> Any:
        return getattr(self._engine, name)

    async def check(self, node: str, **kwargs: Any) -> Any:
        report = await self._engine.check(node, **kwargs)
        self._fleet.record(report, Source.ON_DEMAND)
        return report

    async def check_all(self, **kwargs: Any) -> Any:
        reports = await self._engine.check_all(**kwargs)
        for report in reports:
            self._fleet.record(report, Source.ON_DEMAND)
        return reports
