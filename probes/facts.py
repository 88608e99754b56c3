"""What the engine learns about the cluster and the node before probes run (one discovery per run).

Filled by `probes/transports/cluster.py` from the API (Service default/kubernetes, its
Endpoints, Nodes, the Calico Installation and IPPools) and the config's overrides.
Missing Calico objects are `None`/empty, and the probes that need them `skip`.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from pydantic import BaseModel, ConfigDict

ENCAP_OVERHEAD_V4 = {"ipip": 20, "vxlan": 50, "wireguard": 60}
"""Bytes of IPv4 encapsulation overhead Calico subtracts from the host MTU (felix int_dataplane)."""


class _Facts(BaseModel):
    model_config = ConfigDict(frozen=True)


class NodeFacts(_Facts):
    name: str
    internal_ip: str | None = None
    pod_cidr: str | None = None
    pod_cidrs: list[str] = []
    """spec.podCIDRs: every pod block of the node (dual stack has one per family)."""
    ready: bool = False
    annotations: dict[str, str] = {}
    labels: dict[str, str] = {}

    @property
    def pod_blocks(self) -> list[str]:
        """spec.podCIDR and spec.podCIDRs, each once, in that order."""
        return list(dict.fromkeys([*([self.pod_cidr] if self.pod_cidr else []), *self.pod_cidrs]))

    @property
    def calico_ipv4_address(self) -> str | None:
        """Calico's autodetected address (`projectcalico.org/IPv4Address`, CIDR form)."""
        return self.annotations.get("projectcalico.org/IPv4Address")


class IPPoolFacts(_Facts):
    name: str
    cidr: str
    ipip_mode: str = "Never"  # Never | Always | CrossSubnet
    vxlan_mode: str = "Never"
    nat_outgoing: bool = False
    disabled: bool = False

    @property
    def encapsulation(self) -> str | None:
        """'ipip', 'vxlan' or None (no encapsulation)."""
        if self.vxlan_mode in ("Always", "CrossSubnet"):
            return "vxlan"
        if self.ipip_mode in ("Always", "CrossSubnet"):
            return "ipip"
        return None

    def contains(self, address: str) -> bool:
        try:
            return ipaddress.ip_address(address) in ipaddress.ip_network(self.cidr, strict=False)
        except ValueError:
            return False


class InstallationFacts(_Facts):
    """operator.tigera.io/v1 Installation `default`, the fields probes read."""

    mtu: int | None = None
    status_mtu: int | None = None
    node_address_autodetection_v4: dict[str, Any] | None = None
    ip_pools: list[dict[str, Any]] = []
    raw: dict[str, Any] = {}

    @property
    def pod_mtu(self) -> int | None:
        """The tunnel/pod MTU: spec.calicoNetwork.mtu, else what the operator reports in status."""
        return self.mtu or self.status_mtu


class Endpoint(_Facts):
    ip: str
    port: int


class ClusterFacts(_Facts):
    api_service_ip: str
    api_service_port: int = 443
    api_endpoints: list[Endpoint] = []
    service_cidr: str | None = None
    cluster_pod_cidr: str | None = None
    dns_service_ip: str | None = None
    nodes: list[NodeFacts] = []
    installation: InstallationFacts | None = None
    ippools: list[IPPoolFacts] = []

    def node(self, name: str) -> NodeFacts | None:
        return next((n for n in self.nodes if n.name == name), None)

    def pool_containing(self, address: str) -> IPPoolFacts | None:
        return next((p for p in self.ippools if not p.disabled and p.contains(address)), None)

    @property
    def api_endpoint(self) -> Endpoint | None:
        """The API server's real address: where the service DNAT sends pod traffic."""
        return self.api_endpoints[0] if self.api_endpoints else None
