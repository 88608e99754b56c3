"""Operational settings of the running bot: health port, leader election and shutdown timing.

Read by `bot.ops.health`, `bot.ops.leader` and `bot.ops.shutdown`; the serve command builds one from
the configuration file (every timeout is a named field here, never a literal in the logic).
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field


class OpsSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    health_host: str = Field("0.0.0.0", description="Address the health/metrics server listens on.")
    health_port: int = Field(
        8080, ge=0, le=65535, description="Port of /healthz, /readyz and /metrics (0: any free port)."
    )
    readiness_timeout: float = Field(
        3.0, gt=0, description="Seconds each readiness check (Slack, cluster API) may take."
    )
    leader_election: bool = Field(
        True, description="Elect a leader through a Lease; false: this process always answers "
        "(one replica only, no Lease RBAC needed)."
    )
    lease_name: str = Field("netcheck-leader", description="Name of the coordination.k8s.io Lease.")
    lease_namespace: str = Field(
        "netcheck",
        description="Namespace of the Lease; default: the bot's own (POD_NAMESPACE), else netcheck.",
    )
    lease_duration: float = Field(
        15.0, gt=0, description="Seconds a Lease stays valid without renewal (leaseDurationSeconds)."
    )
    renew_deadline: float = Field(
        10.0, gt=0, description="Seconds the leader keeps trying to renew before it steps down."
    )
    retry_period: float = Field(2.0, gt=0, description="Seconds between acquire/renew attempts.")
    shutdown_grace: float = Field(
        25.0, gt=0, description="Seconds SIGTERM waits for running checks and fixes before cancelling them."
    )
    cleanup_timeout: float = Field(10.0, gt=0, description="Seconds each cleanup callback may take.")
    engine_loop_timeout: float = Field(
        10.0, gt=0, description="Seconds the engine's own event loop (its thread) may take to start, "
        "and to stop after the engine closed.",
    )
    engine_nice: int = Field(
        10, ge=0, le=19, description="How far below the bot's own the engine thread's scheduling priority "
        "is (Linux nice steps): when the CPUs are busy, Slack is acknowledged first; 0: the same.",
    )
    engine_unwind_timeout: float = Field(
        5.0, gt=0, description="Seconds a cancelled check or fix is given to unwind on the engine's "
        "loop (delete its pods) before the bot moves on.",
    )

    CLEANUPS: ClassVar[int] = 3
    """Cleanups a shutdown runs one after another, each bounded by `cleanup_timeout`: close the
    engine (its debug pods deleted), stop the election, release the Lease (bot/ops/runtime.py)."""

    @property
    def shutdown_worst_case_s(self) -> float:
        """Seconds from SIGTERM until the Lease is released at the latest: running checks and fixes
        (`shutdown_grace`), the cancelled ones unwinding, then each cleanup. A Deployment's
        terminationGracePeriodSeconds must be longer, or the kubelet's SIGKILL can come before the
        release and the standby waits out the lease."""
        return self.shutdown_grace + self.engine_unwind_timeout + self.CLEANUPS * self.cleanup_timeout
