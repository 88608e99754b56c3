"""Probe-side settings: every timeout is a named, documented field (no literal timeouts in logic)."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

DEFAULT_POOL_LABELS = (
    "cloud.google.com/gke-nodepool",
    "eks.amazonaws.com/nodegroup",
    "kubernetes.azure.com/agentpool",
    "node.kubernetes.io/pool",
)
"""Labels the big providers (and a common convention) put the node pool's name in."""


class ProbeSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    default_timeout: float = Field(20.0, gt=0, description="Seconds one probe may take in all.")
    command_timeout: float = Field(8.0, gt=0, description="Seconds one node or pod command may take.")
    http_timeout: float = Field(
        4.0, gt=0, description="Seconds the curl to the API service IP waits (curl --max-time)."
    )
    timeouts: dict[str, Annotated[float, Field(gt=0)]] = Field(
        default_factory=dict, description="Per-probe overrides of default_timeout, by probe id."
    )
    disabled: list[str] = Field(default_factory=list, description="Probe ids never run.")
    max_nodes_in_parallel: int = Field(
        32, ge=1,
        description="Nodes `check --all` probes at the same time. Each costs netcheck one SSH connection, "
        "one debug pod start (a pod create and a few reads on the API server) and about 0.1 s of its own "
        "CPU, and spends most of its time waiting on the network and the node: a lower bound does not "
        "lower that CPU, it only queues nodes in waves. 32 sweeps a small or mid-size cluster in one wave "
        "and asks no more of the API server than a 32-pod DaemonSet rollout; lower it for an API server "
        "or ops host that cannot take that (docs/performance.md#fleet).",
    )
    transport_timeout: float = Field(
        120.0, gt=0,
        description="Safety cap on a probe's wait for its node's SSH connection or debug pod; the "
        "transports end a dead node's wait first (ssh.connect_timeout, debug_pod.start_timeout).",
    )

    reference_node: str | None = Field(
        None, description="Node to compare others with (diff, differential verdicts); None: picked per run "
                          "(Ready, same node pool, every probe ok)."
    )
    node_pool_labels: list[str] = Field(
        default_factory=lambda: list(DEFAULT_POOL_LABELS),
        description="Node labels that name a node's pool, first present wins; without one, control-plane "
                    "and workers are the two pools.",
    )
    follow_up: bool = Field(
        True,
        description="A single-node check with problems also probes the blamed peer and a reference node.",
    )

    def timeout_for(self, probe_id: str) -> float:
        return self.timeouts.get(probe_id, self.default_timeout)
