"""Settings of the fixes (`fixes:` in the configuration file), apart from fixes/base.py so that
reading the configuration (every CLI command does, before its first request) imports pydantic, not
the fix machinery.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class FixSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    command_timeout: float = Field(
        15.0, gt=0, description="Seconds one node command of a fix may take (systemctl, iptables)."
    )
    rollout_timeout: float = Field(
        900.0, gt=0, description="Seconds calico-mtu follows the calico-node rollout (apply, and again "
        "for a rollback) before it calls it stuck; calico-node restarts one node at a time.",
    )
    rollout_poll_interval: float = Field(
        2.0, gt=0, description="Seconds between reads of the calico-node DaemonSet, its pods and "
        "TigeraStatus while a rollout is followed.",
    )
    lock_duration: float = Field(
        30.0, gt=0, description="Seconds a node's fix Lease (netcheck-fix-NODE) stays valid without "
        "renewal; its holder renews it every third of that while the fix runs.",
    )
    lock_wait: float = Field(
        60.0, ge=0, description="Seconds a fix waits for another process's fix on the same node before "
        "it is refused as busy.",
    )
    lock_retry: float = Field(1.0, gt=0, description="Seconds between attempts to take a busy node's Lease.")
