"""What the Slack bot needs from the fix runner and the cluster, as Protocols (from the engine:
`probes.api.EngineAPI`), and the values it passes between them.

The real ones are `fixes.runner.FixRunner` and a node source built on `probes/transports/cluster.py`
(bot/slack/nodesource.py); tests pass small fakes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Protocol

from pydantic import BaseModel, ConfigDict

from fixes.base import Progress
from fixes.model import Approval, FixResult, Plan
from probes.hooks import Hooks


class FixRunner(Protocol):
    """What the bot uses of `fixes.runner.FixRunner` (the engine is `probes.api.EngineAPI`)."""

    on_result: Hooks[[str, FixResult]]
    """Called with the fix id and result of every apply (the bot's metrics)."""

    async def plan(self, node: str, fix_id: str, params: dict[str, str | int]) -> Plan: ...

    async def apply(self, node: str, fix_id: str, params: dict[str, str | int], approval: Approval,
                    *, progress: Progress | None = None) -> FixResult:
        """`progress`: receives a line each time the fix advances."""
        ...


class ApprovalRecord(BaseModel):
    """Who approved which proposal; `approval_factory` turns it into the runner's `Approval`."""

    model_config = ConfigDict(frozen=True)

    approved_by: str
    requested_by: str
    proposal: str
    channel: str
    proposed_at: int


ApprovalFactory = Callable[[ApprovalRecord], Approval]


class NodeState(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    ready: bool


class NodeEvent(BaseModel):
    model_config = ConfigDict(frozen=True)

    type: str  # ADDED | MODIFIED | DELETED
    node: NodeState
    resource_version: str


class WatchExpired(Exception):
    """The watch's resourceVersion is too old (HTTP 410 Gone): re-list, then watch again."""


class NodeSource(Protocol):
    async def list_nodes(self) -> tuple[list[NodeState], str]: ...

    def watch_nodes(self, resource_version: str) -> AsyncIterator[NodeEvent]: ...
