"""The continuous watch: sweep every node on a schedule and post when a node's verdict changes.

Started by `netcheck serve` on the leader when `watch.interval` is set (bot/commands/serve.py). A
sweep checks every node with `watch.probes` (a problem followed to the blamed peer and a reference
node, as `/netcheck NODE` does, so a cause on another node is named; `watch.follow_up: false` skips
that), at most `watch.max_parallel` at once and each within the fleet bound
(`Runtime.check_slots.background()`: a command waiting for a slot goes first), records each report
in the fleet state (bot/fleet/state.py), which decides when the channel hears of it:
- a regression: a parent naming the new cause, the usual thread (findings cause first, fix buttons
  under the usual approval rules, the layer picture), the parent updated with the verdict;
- a recovery (or an improvement): one line in the channel, with a link to the regression's thread.
A node being checked by a command right now is left to that command in this sweep. `sweep()` is
public: tests drive sweeps one by one; `run()` sweeps, then waits `watch.interval` (or until
`FleetState.request_sweep()`, which `FleetState.sweep_now()` uses to run and await one).
"""

from __future__ import annotations

import asyncio
import time

import structlog

from bot.fleet.state import Change, ChangeKind, FleetState, Source
from bot.ops import metrics as ops_metrics
from bot.slack import blocks as bk
from bot.slack import fleet_text, pictures, threads
from bot.slack import messages as msg
from bot.slack.runtime import Runtime
from bot.watch.settings import WatchSettings
from probes.api import EngineAPI
from probes.model import Report

log = structlog.get_logger("netcheck.watch")


class Watcher:
    def __init__(self, rt: Runtime, engine: EngineAPI, fleet: FleetState, settings: WatchSettings) -> None:
        if settings.interval is None or settings.channel is None:
            raise ValueError("the watch needs watch.interval and watch.channel")
        self.rt = rt
        self.engine = engine
        """The engine without the bot's on-demand recording (the watch records its reports itself)."""
        self.fleet = fleet
        self.settings = settings
        self.channel: str = settings.channel
        self.interval: float = settings.interval

    # ---- schedule ---------------------------------------------------------------------------------

    async def run(self) -> None:
        """Sweep, wait `interval` (or until `fleet.request_sweep()`), repeat until cancelled."""
        log.info("watch_started", interval_s=self.interval, channel=self.channel, probes=self.settings.probes)
        while True:
            try:
                await self.sweep()
            except Exception:  # one bad sweep (cluster unreachable) must not end the watch
                log.exception("sweep_failed")
                await self.fleet.sweep_done()  # counted all the same: waiters see the attempt
            await self.fleet.wait_for_request(self.interval)

    # ---- one sweep --------------------------------------------------------------------------------

    async def sweep(self) -> list[Change]:
        """Check every node once and post what changed; returns the changes posted."""
        started = time.monotonic()
        self.fleet.sweep_started()
        await self.engine.facts(refresh=True)  # nodes that joined or left since the last sweep
        names = list(await self.engine.node_names())
        self.fleet.forget(names)
        parallel = asyncio.Semaphore(self.settings.max_parallel)

        async def one(node: str) -> Change | None:
            async with parallel:
                if node in self.rt.running:
                    log.info("sweep_skipped_node", node=node, reason="a command is checking it")
                    return None
                async with self.rt.check_slots.background():
                    report = await self._check(node)
            if report is None:
                return None
            change = self.fleet.record(report, Source.WATCH, announce=True)
            if change is not None:
                await self.post(change)
            return change

        changes = [c for c in await asyncio.gather(*(one(n) for n in names)) if c is not None]
        duration = time.monotonic() - started
        if self.fleet.metrics is not None:
            self.fleet.metrics.sweep_duration.observe(duration)
        await self.fleet.sweep_done()
        log.info("sweep_done", nodes=len(names), changes=len(changes), duration_s=round(duration, 2))
        return changes

    async def _check(self, node: str) -> Report | None:
        try:
            report: Report = await self.engine.check(node, probes=self.settings.probes,
                                                     follow_up=self.settings.follow_up)
        except Exception as exc:  # e.g. the node left between listing and checking; next sweep knows
            log.warning("sweep_check_failed", node=node, error=str(exc))
            return None
        ops_metrics.record_report(report)
        return report

    # ---- posts ------------------------------------------------------------------------------------

    async def post(self, change: Change) -> None:
        log.info("verdict_changed", node=change.node, kind=change.kind.value,
                 new=[c.key for c in change.new], resolved=list(change.resolved))
        if self.fleet.metrics is not None:
            self.fleet.metrics.posts.labels(kind=change.kind.value).inc()
        if change.kind is ChangeKind.REGRESSION:
            await self._regression(change)
            return
        record = self.fleet.nodes.get(change.node)
        thread = record.last_thread if record is not None else None
        link = await self.rt.permalink(*thread) if thread is not None else None
        line = (fleet_text.recovery_line if change.kind is ChangeKind.RECOVERY
                else fleet_text.improved_line)(change, time.time(), link)
        await threads.call(self.rt, "chat.postMessage", change.report, channel=self.channel, text=line,
                           blocks=[bk.section(line)])

    async def _regression(self, change: Change) -> None:
        """The usual check thread, under a parent that says what regressed."""
        report = change.report
        pending = fleet_text.regression_pending(change.node)
        parent_ts = await threads.post_parent(self.rt, self.channel, pending)
        if parent_ts is None:
            return  # logged by threads.call; the Home tab and /metrics still show the change
        self.fleet.thread_posted(change.node, self.channel, parent_ts)
        drawing = pictures.start(self.rt, report)
        try:
            missing = await threads.post_findings(self.rt, self.channel, parent_ts, report,
                                                  fleet_text.WATCH_REQUESTER)
            note = fleet_text.regression_note(change, self.fleet.agree)
            lost = msg.findings_undelivered(report.node, missing, len(report.findings)) if missing else None
            await threads.update_parent(self.rt, self.channel, parent_ts,
                                        fleet_text.regression_parent(change), report, note, lost)
            await pictures.upload(self.rt, self.channel, parent_ts, report, drawing)
        finally:
            if drawing is not None:
                drawing.cancel()
