"""The fleet's state: every node's last check and what the channel was last told about it.

One `FleetState` per bot process, shared by everything that checks nodes: the watch's sweeps, the
`/netcheck` commands, node-join checks and re-checks (all record their reports here), the App Home
tab (reads it) and /metrics (updated on every record, bot/fleet/metrics.py).

A node's verdict is the set of its causes (bot/fleet/causes.py), counted over the watched probes.
The channel hears about a change only after `agree` consecutive checks saw the same new verdict, so
a flapping probe posts nothing. Only the watch commits a change (`record(..., announce=True)`):
other checks count towards the streak but never post, and the next sweep posts what they saw.
After a start (a restart, or a new leader) nothing has been announced: the first check of each node
sets its baseline silently, so a restart does not re-post problems the channel already knows about
(and problems present at the very first start are shown by the Home tab and /metrics, not posted).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum

from bot.fleet.causes import Cause, causes
from bot.fleet.metrics import FleetMetrics
from bot.watch.settings import DEFAULT_AGREE, REGRESSIONS_KEPT
from probes.model import Report


class Source(StrEnum):
    WATCH = "watch"
    ON_DEMAND = "on_demand"
    """A `/netcheck` command, a node-join check or a re-check."""

    @property
    def label(self) -> str:
        """How a person reads it ("on demand"); the value is a metric label, so it has no space."""
        return self.value.replace("_", " ")


class ChangeKind(StrEnum):
    REGRESSION = "regression"
    """A cause the channel was not told about appeared."""
    RECOVERY = "recovery"
    """Every cause the channel was told about is gone, and no new one came."""
    IMPROVED = "improved"
    """Some causes are gone, the rest are still there (nothing new)."""


@dataclass(frozen=True)
class Change:
    node: str
    kind: ChangeKind
    report: Report
    """The check that completed the streak (the one a regression thread shows)."""
    new: tuple[Cause, ...]
    resolved: tuple[str, ...]
    """Keys of the causes that are gone."""
    still: tuple[Cause, ...]
    since: datetime | None
    """When the verdict before this one was announced (None: at the baseline)."""


@dataclass
class NodeRecord:
    node: str
    report: Report
    source: Source
    checked_at: float
    """time.time() of the record."""
    verdict: frozenset[str]
    announced: frozenset[str] | None = None
    """The causes the channel was last told about (None: no baseline yet)."""
    announced_at: datetime | None = None
    candidate: frozenset[str] | None = None
    streak: int = 0
    last_thread: tuple[str, str] | None = None
    """(channel, ts) of the last regression thread, for the recovery line's link."""

    @property
    def causes(self) -> list[Cause]:
        return causes(self.report)


@dataclass(frozen=True)
class Regression:
    node: str
    at: float
    causes: tuple[Cause, ...]
    thread: tuple[str, str] | None = None


@dataclass
class FleetState:
    agree: int = DEFAULT_AGREE
    watched: frozenset[str] | None = None
    """Probe ids the verdict is counted over (None: every probe). Transport findings always count."""
    always: frozenset[str] = frozenset()
    metrics: FleetMetrics | None = None
    clock: Callable[[], float] = time.time
    nodes: dict[str, NodeRecord] = field(default_factory=dict)
    regressions: deque[Regression] = field(default_factory=lambda: deque(maxlen=REGRESSIONS_KEPT))
    sweeps: int = 0
    """Sweeps completed."""
    sweeps_started: int = 0
    last_sweep_at: float | None = None
    _changed: asyncio.Condition | None = None
    _wake: asyncio.Event | None = None

    def verdict_of(self, report: Report) -> frozenset[str]:
        counted = None if self.watched is None else self.watched | self.always
        return frozenset(c.key for c in causes(report, counted))

    def record(self, report: Report, source: Source, *, announce: bool = False) -> Change | None:
        """Remember the report; with `announce`, return the change the channel should now hear of."""
        now = self.clock()
        verdict = self.verdict_of(report)
        record = self.nodes.get(report.node)
        if record is None:
            record = self.nodes[report.node] = NodeRecord(report.node, report, source, now, verdict)
        record.report, record.source, record.checked_at, record.verdict = report, source, now, verdict
        if self.metrics is not None:
            self.metrics.record(report, source.value)
        if record.candidate == verdict:
            record.streak += 1
        else:
            record.candidate, record.streak = verdict, 1
        if record.announced is None:
            record.announced, record.announced_at = verdict, None  # the baseline: nothing to post
            return None
        if not announce or verdict == record.announced or record.streak < self.agree:
            return None
        change = self._change(record, report, verdict)
        record.announced, record.announced_at = verdict, datetime.fromtimestamp(now, UTC)
        if change.kind is ChangeKind.REGRESSION:
            self.regressions.appendleft(Regression(report.node, now, change.new))
        return change

    @staticmethod
    def _change(record: NodeRecord, report: Report, verdict: frozenset[str]) -> Change:
        before = record.announced or frozenset()
        current = {c.key: c for c in causes(report)}
        new = tuple(current[k] for k in current if k in verdict - before)
        still = tuple(current[k] for k in current if k in verdict & before)
        resolved = tuple(sorted(before - verdict))
        kind = ChangeKind.REGRESSION if new else (ChangeKind.IMPROVED if verdict else ChangeKind.RECOVERY)
        return Change(report.node, kind, report, new, resolved, still, record.announced_at)

    def thread_posted(self, node: str, channel: str, ts: str) -> None:
        """The regression thread of `node` was posted at (channel, ts)."""
        record = self.nodes.get(node)
        if record is not None:
            record.last_thread = (channel, ts)
        for i, regression in enumerate(self.regressions):
            if regression.node == node and regression.thread is None:
                self.regressions[i] = Regression(regression.node, regression.at, regression.causes,
                                                 (channel, ts))
                break

    def rebaseline(self) -> None:
        """Forget what the channel was told (this replica just became the leader: another one may have
        posted meanwhile); each node's next check sets its baseline again, silently."""
        for record in self.nodes.values():
            record.announced, record.candidate, record.streak = None, None, 0

    def forget(self, present: Iterable[str]) -> list[str]:
        """Drop nodes that left the cluster (and their series); returns their names."""
        keep = set(present)
        gone = [name for name in self.nodes if name not in keep]
        for name in gone:
            del self.nodes[name]
            if self.metrics is not None:
                self.metrics.forget(name)
        return gone

    # ---- sweeps (the watch says when one is complete; tests and serve wait for them) ----------------

    def _condition(self) -> asyncio.Condition:
        if self._changed is None:
            self._changed = asyncio.Condition()
        return self._changed

    def sweep_started(self) -> None:
        self.sweeps_started += 1

    async def sweep_done(self) -> None:
        self.sweeps += 1
        self.last_sweep_at = self.clock()
        if self.metrics is not None:
            self.metrics.sweeps.inc()
        async with self._condition():
            self._condition().notify_all()

    async def wait_for_sweeps(self, count: int, timeout: float) -> None:
        """Return once `count` sweeps are complete in all; TimeoutError after `timeout` seconds."""
        async with asyncio.timeout(timeout):
            async with self._condition():
                await self._condition().wait_for(lambda: self.sweeps >= count)

    def _wake_event(self) -> asyncio.Event:
        if self._wake is None:
            self._wake = asyncio.Event()
        return self._wake

    def request_sweep(self) -> None:
        """Ask the watch to sweep now rather than at the end of its interval."""
        self._wake_event().set()

    async def wait_for_request(self, timeout: float) -> None:
        """The watch's pause between sweeps: `timeout` seconds, or less if a sweep is requested."""
        wake = self._wake_event()
        try:
            await asyncio.wait_for(wake.wait(), timeout)
        except TimeoutError:
            pass
        wake.clear()

    async def sweep_now(self, timeout: float) -> None:
        """Request a sweep and wait until a sweep that started after this call is complete (one
        running now does not count: it may have checked some nodes before whatever just changed)."""
        target = self.sweeps_started + 1
        self.request_sweep()
        await self.wait_for_sweeps(target, timeout)
