"""The bot's shared state: settings, engine, fix runner, approver policy, task tracker, checks in flight.

Built once by `app.py::build_app`; the listeners in `commands.py` and `actions.py` receive it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import structlog
from slack_sdk.web.async_client import AsyncWebClient

from bot.fleet.slots import FleetSlots
from bot.fleet.state import FleetState
from bot.ops.tasks import TaskTracker
from bot.slack.approvals import Approvers, ProposalLedger
from bot.slack.ports import ApprovalFactory, FixRunner
from bot.slack.settings import SlackSettings
from bot.watch.settings import WatchSettings
from probes.api import EngineAPI

log = structlog.get_logger("netcheck.slack")

PERMALINKS_KEPT = 256
"""Permalinks remembered (a message's permalink does not change): commands refused with "already
running" while a node's check runs ask Slack for its thread's link once, not once each."""


@dataclass
class Runtime:
    settings: SlackSettings
    engine: EngineAPI
    runner: FixRunner | None
    approval_factory: ApprovalFactory
    probe_count: int
    client: AsyncWebClient
    approvers: Approvers
    ledger: ProposalLedger
    tasks: TaskTracker = field(default_factory=TaskTracker)
    running: dict[str, tuple[str, str]] = field(default_factory=dict)
    """node -> (channel, parent ts) of the check in flight."""
    watch: WatchSettings | None = None
    """The continuous watch's settings (None: no watch); the Home tab describes it."""
    fleet: FleetState = field(default_factory=FleetState)
    """Every node's last check and verdict (the watch, commands, node joins and the Home tab share it)."""
    permalinks: dict[tuple[str, str], str] = field(default_factory=dict)
    """(channel, ts) -> permalink, the last `PERMALINKS_KEPT` asked for."""
    check_slots: FleetSlots = field(init=False)
    """Bounds the checks commands start (each one is SSH, a debug pod and a catalog of probes of CPU); the
    watch's sweeps share it and give way to commands (bot/fleet/slots.py)."""

    def __post_init__(self) -> None:
        self.check_slots = FleetSlots(self.settings.max_concurrent_checks)

    def channel_allowed(self, channel: str) -> bool:
        return not self.settings.allowed_channels or channel in self.settings.allowed_channels

    async def permalink(self, channel: str, ts: str) -> str:
        known = self.permalinks.get((channel, ts))
        if known is not None:
            return known
        try:
            answer = await self.client.chat_getPermalink(channel=channel, message_ts=ts)
            link = str(answer["permalink"])
        except Exception as exc:  # a link is a nicety: construct one rather than fail the reply
            log.warning("permalink_failed", channel=channel, ts=ts, error=str(exc))
            return f"https://slack.com/archives/{channel}/p{ts.replace('.', '')}"
        if len(self.permalinks) >= PERMALINKS_KEPT:
            del self.permalinks[next(iter(self.permalinks))]  # the oldest (dicts keep insertion order)
        self.permalinks[(channel, ts)] = link
        return link
