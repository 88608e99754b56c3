"""Typed facts a probe read on a node, carried on its `Finding` for comparing nodes and for the cause graph.

A probe returns the fields it measured (`ok(..., observed=Observations(ip_forward=True))`); the
`Report` merges its findings' observations into one view of the node (`Report.observations()`).
`probes/diff.py` compares two nodes field by field and `probes/reference.py` reads them to tell
whether NAT is needed on a network — from these values, never by re-parsing evidence text.
Every field is optional: None means "not measured in this run".
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

LinkKind = Literal["ethernet", "wifi", "vpn"]
PodNat = Literal["explicit", "nftables", "calico", "none"]
RouteKind = Literal["direct", "default", "unreachable", "local"]


class Observations(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    ip_forward: bool | None = Field(None, description="net.ipv4.ip_forward is 1 now (ip-forward).")
    ipv6_forwarding: bool | None = Field(
        None, description="net.ipv6.conf.all.forwarding is 1 (only read with global IPv6; ip-forward)."
    )
    forwarding_persisted: bool | None = Field(
        None, description="The forwarding sysctls are 1 in sysctl.conf/sysctl.d too (ip-forward)."
    )
    rp_filter: int | None = Field(
        None, description="net.ipv4.conf.all.rp_filter (0 off, 1 strict, 2 loose; ip-forward)."
    )
    pod_ip: str | None = Field(None, description="The debug pod's IP on this node (pod-api).")
    uplink: str | None = Field(None, description="Interface toward the API endpoint (mtu).")
    uplink_mtu: int | None = Field(None, description="MTU of that interface (mtu).")
    uplink_kind: LinkKind | None = Field(
        None, description="ethernet, wifi (wl*, /sys/class/net/<if>/wireless) or vpn (tun/wg names; mtu)."
    )
    path_mtu: int | None = Field(None, description="Measured path MTU toward the API endpoint (mtu).")
    pod_mtu: int | None = Field(None, description="The pod MTU measured in a new debug pod (mtu).")
    link_fits: bool | None = Field(
        None, description="Pod MTU + encapsulation fits this node's uplink and its path to the API (mtu)."
    )
    iptables_backend: Literal["nft", "legacy"] | None = Field(
        None, description="Backend the cluster's rules live in (iptables-mode)."
    )
    pod_nat: PodNat | None = Field(
        None, description="How pod egress to the API endpoint is NATed: explicit rule, nftables, "
                          "Calico natOutgoing or none (masquerade)."
    )
    pod_nat_needed: bool | None = Field(
        None, description="False when pods reach the API without NAT, True when they fail without it."
    )
    kubelet_reachable: bool | None = Field(
        None, description="The API server reached this node's kubelet on 10250 (kubelet-port)."
    )
    unresolved_nodes: tuple[str, ...] | None = Field(
        None, description="Node names that do not resolve here (/etc/hosts or DNS; etc-hosts)."
    )
    pod_block_routes: dict[str, RouteKind] | None = Field(
        None, description="How this node routes to each other node's pod block, by node (pod-block-routes)."
    )

    def merged(self, other: Observations | None) -> Observations:
        """These facts with `other`'s measured fields added (other wins where both measured)."""
        if other is None:
            return self
        return Observations.model_validate(
            {**self.model_dump(exclude_none=True), **other.model_dump(exclude_none=True)}
        )
