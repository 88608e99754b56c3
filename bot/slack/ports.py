"""What the Slack bot needs from the engine, the fix runner and the cluster, as Protocols.

The real ones are `probes.engine.Engine`, `fixes.runner.FixRunner` and a node source built on
`probes/transports/cluster.py`; tests pass small fakes. Used by `runtime.py` and `nodewatch.py`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict

from probes.followup import Comparison
from probes.model import Report


class Engine(Protocol):
    async def node_names(self) -> list[str]: ...

    async def check(self, node: str, *, probes: Any = None) -> Report: ...

    async def check_all(self, *, probes: Any = None) -> list[Report]: ...

    async def facts(self, *, refresh: bool = False) -> Any: ...

    async def compare(self, node: str, *, against: str | None = None) -> Comparison: ...


class PlanLike(Protocol):
    summary: str


class FixResultLike(Protocol):
    outcome: str
    message: str


class FixRunner(Protocol):
    async def plan(self, node: str, fix_id: str, params: dict[str, Any]) -> PlanLike: ...

    async def apply(self, node: str, fix_id: str, params: dict[str, Any], approval: Any,
                    *, progress: Any = None) -> FixResultLike:
        """`progress`: an async callable receiving a line each time the fix advances."""
        ...


class ApprovalRecord(BaseModel):
    """Who approved which proposal; `approval_factory` turns it into the runner's `Approval`."""

    model_config = ConfigDict(frozen=True)

    approved_by: str
    requested_by: str
    proposal: str
    channel: str
    proposed_at: int


ApprovalFactory = Callable[[ApprovalRecord], Any]


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
