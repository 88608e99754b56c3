"""`ProbeContext`: everything a probe may touch, passed explicitly (typed, checkable)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field

from structlog.typing import FilteringBoundLogger

from probes.errors import ProbeSkip
from probes.facts import ClusterFacts, NodeFacts
from probes.model import Finding
from probes.settings import ProbeSettings
from probes.transports.base import Cluster, NodeShell, PodExec


@dataclass
class ProbeContext:
    node: NodeFacts
    facts: ClusterFacts
    cluster: Cluster
    settings: ProbeSettings
    log: FilteringBoundLogger
    """This probe's logger, bound to its node and probe id."""
    host_shell: NodeShell | None = None
    host_unavailable: str | None = None
    pod_exec: PodExec | None = None
    pod_unavailable: str | None = None
    results: Mapping[str, asyncio.Future[Finding]] = field(default_factory=dict)
    peer_pod_ip: str | None = None
    """A debug pod's IP on another Ready node, for cross-node pod-to-pod checks (None: not had)."""

    @property
    def host(self) -> NodeShell:
        """The node's shell; a probe that declared needs={"host"} only runs when it exists."""
        if self.host_shell is None:
            raise ProbeSkip(f"no shell on the node: {self.host_unavailable or 'not configured'}")
        return self.host_shell

    @property
    def pod(self) -> PodExec:
        if self.pod_exec is None:
            raise ProbeSkip(f"no debug pod on the node: {self.pod_unavailable or 'not configured'}")
        return self.pod_exec

    async def result_of(self, probe_id: str) -> Finding | None:
        """The finding of a probe this one declared in `after=`; None if it is not being run."""
        future = self.results.get(probe_id)
        return None if future is None else await asyncio.shield(future)
