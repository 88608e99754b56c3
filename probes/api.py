"""`EngineAPI`: the probe engine as the fixes and the bot use it — the one declared seam above
`probes/`.

The real one is `probes.engine.Engine` (built by `bot.wiring`); tests pass small fakes. Fixes use
the cluster, the facts, the node's shell inside a `node_session`, `check` for precheck/verify and the
registry to know which probes can run. The bot adds `node_names`/`resolve_node` (the "did you
mean" answer), `check_all`, `compare`, the `on_report` hooks (metrics) and `aclose`.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from typing import Protocol

from probes.facts import ClusterFacts, NodeFacts
from probes.followup import Comparison
from probes.hooks import Hooks
from probes.model import Report
from probes.registry import Registry
from probes.transports.base import ClusterAPI, NodeShell


class EngineAPI(Protocol):
    # Read-only for the engine's users: an attribute or a property satisfies each.
    @property
    def registry(self) -> Registry:
        """The probes this engine knows (their `after=`, `fixes=`, `explains=`)."""
        ...

    @property
    def cluster(self) -> ClusterAPI: ...

    @property
    def on_report(self) -> Hooks[[Report]]:
        """Called with every report `check` and `check_all` return (add a hook with `.add`)."""
        ...

    async def facts(self, *, refresh: bool = False) -> ClusterFacts:
        """The cluster as last discovered (`refresh`: discover it again now)."""
        ...

    async def node_names(self) -> list[str]: ...

    async def resolve_node(self, name: str) -> NodeFacts:
        """The node called `name`; `UnknownNode` (probes.errors) names the closest names."""
        ...

    def enabled(self, probe_ids: Sequence[str]) -> list[str]:
        """Those of `probe_ids` this engine can run (registered and not disabled), in that order."""
        ...

    async def check(
        self, node: str, *, probes: Sequence[str] | None = None, follow_up: bool | None = None
    ) -> Report: ...

    async def check_all(
        self, *, probes: Sequence[str] | None = None, concurrency: int | None = None
    ) -> list[Report]: ...

    async def compare(self, node: str, *, against: str | None = None) -> Comparison: ...

    async def node_shell(self, node: str) -> NodeShell:
        """The node's host shell; inside `node_session(node, ...)` that session's shell."""
        ...

    def node_session(self, node: str, *, privileged: bool = False) -> AbstractAsyncContextManager[None]:
        """Host access for one fix on `node` (privileged only after approval), released at the end."""
        ...

    async def aclose(self) -> None:
        """Close SSH connections, delete debug and host pods, release the cluster client."""
        ...
