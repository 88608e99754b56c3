"""Everything `netcheck serve` needs around the Slack app: the health server, leader election and
graceful shutdown, started and stopped together.

`netcheck serve` builds one `OpsRuntime`, calls `start()`, runs the Slack side only between
`on_started_leading` and `on_stopped_leading` (a standby keeps no Socket Mode connection and no node
watch, so two replicas never both answer), hands over the task tracker its Slack listeners spawn
checks and fixes on (`tasks`), and finally awaits `run_until_shutdown()`. Readiness does not depend
on leadership: a standby that can reach Slack and the API is Ready, so rolling updates never stall
on it.
"""

from __future__ import annotations

import asyncio
import os
import socket

from bot.ops.health import HealthServer, NotReady, ReadinessCheck
from bot.ops.leader import Callback, LeaderElector, LeaseStore
from bot.ops.metrics import METRICS, Metrics
from bot.ops.settings import OpsSettings
from bot.ops.shutdown import Cleanup, GracefulShutdown
from bot.ops.tasks import TaskTracker


def replica_identity() -> str:
    """POD_NAME (set by the Deployment from the downward API), else host name and process id."""
    return os.environ.get("POD_NAME") or f"{socket.gethostname()}-{os.getpid()}"


class OpsRuntime:
    def __init__(
        self,
        settings: OpsSettings,
        *,
        lease_store: LeaseStore,
        slack_ready: ReadinessCheck,
        cluster_ready: ReadinessCheck,
        on_started_leading: Callback | None = None,
        on_stopped_leading: Callback | None = None,
        identity: str | None = None,
        metrics: Metrics | None = None,
        tasks: TaskTracker | None = None,
    ) -> None:
        self.settings = settings
        self.health = HealthServer(
            slack_ready=slack_ready, cluster_ready=cluster_ready, settings=settings,
            metrics=metrics or METRICS,
        )
        self.elector = LeaderElector(
            lease_store, identity or replica_identity(), settings=settings,
            on_started_leading=on_started_leading, on_stopped_leading=on_stopped_leading,
        )
        self.shutdown = GracefulShutdown(settings, tasks)
        self._election: asyncio.Task[None] | None = None
        self.health.add_check("leader-election", self._election_possible)

    async def _election_possible(self) -> bool:
        """Not ready while the Lease cannot be had without an operator's change (RBAC, namespace)."""
        if self.elector.blocked is not None:
            raise NotReady(self.elector.blocked)
        return True

    async def start(self, *, install_signal_handlers: bool = True) -> int:
        """Serve health, start electing; returns the health port. Cleanups run in the order below."""
        port = await self.health.start()
        self._election = asyncio.create_task(self.elector.run(), name="leader-election")
        self.shutdown.add_cleanup("stop leader election", self._stop_election)
        self.shutdown.add_cleanup("release the leader Lease", self.elector.release)
        if install_signal_handlers:
            self.shutdown.install_signal_handlers()
        return port

    def add_cleanup(self, name: str, cleanup: Cleanup) -> None:
        """Cleanups of the caller (close Slack, delete debug pods) run before the Lease is released,
        so the next leader starts only after this one stopped answering. Health stops last."""
        self.shutdown.add_cleanup(name, cleanup, first=True)

    async def _stop_election(self) -> None:
        if self._election is not None:
            self._election.cancel()
            await asyncio.gather(self._election, return_exceptions=True)

    async def run_until_shutdown(self) -> list[str]:
        """Wait for SIGTERM/SIGINT (or `shutdown.request()`), let the tracked tasks finish (bounded),
        clean up; failed cleanup names."""
        try:
            return await self.shutdown.wait_for_shutdown()
        finally:
            await self.health.stop()
