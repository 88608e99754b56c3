"""The node's real values written on the picture's layers (addresses, interface, MTUs).

`node_values(report, facts)` collects them from the cluster facts of the run (the node's address and
pod CIDR, the API service and its endpoint, the Calico pod MTU) and from what the probes observed on
the node, when the report carries observations (uplink interface and MTU, the debug pod's IP).
A value that was not learned stays None and the picture leaves it out: it never guesses.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from probes.facts import ClusterFacts
from probes.model import Report


class NodeValues(BaseModel):
    model_config = ConfigDict(frozen=True)

    node: str
    node_ip: str | None = None
    pod_ip: str | None = None
    pod_cidr: str | None = None
    pod_mtu: int | None = None
    uplink: str | None = None
    uplink_mtu: int | None = None
    api_service: str | None = None
    """The API's service address pods use, `ip:port`."""
    api_endpoint: str | None = None
    """Where the service sends them (the API server's real address), `ip:port`."""


def _observed(report: Report) -> dict[str, Any]:
    """The probes' observations merged, as plain values (empty when the report carries none)."""
    merge = getattr(report, "observations", None)
    if merge is None:
        return {}
    observed = merge()
    return observed.model_dump(exclude_none=True) if observed is not None else {}


def node_values(report: Report, facts: ClusterFacts | None) -> NodeValues:
    values: dict[str, Any] = {"node": report.node}
    if facts is not None:
        node = facts.node(report.node)
        if node is not None:
            values["node_ip"] = node.internal_ip
            values["pod_cidr"] = node.pod_cidr
        values["api_service"] = f"{facts.api_service_ip}:{facts.api_service_port}"
        endpoint = facts.api_endpoint
        if endpoint is not None:
            values["api_endpoint"] = f"{endpoint.ip}:{endpoint.port}"
        if facts.installation is not None and facts.installation.pod_mtu:
            values["pod_mtu"] = facts.installation.pod_mtu
    observed = _observed(report)
    for key in ("uplink", "uplink_mtu", "pod_ip", "pod_mtu"):
        if observed.get(key) is not None:
            values[key] = observed[key]  # measured on the node wins over the cluster's declaration
    return NodeValues.model_validate(values)
