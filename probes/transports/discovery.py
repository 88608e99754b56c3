"""Cluster discovery: turn the API's objects into `ClusterFacts`, once per run.

Called through `Transports.discover` (wired in `bot.wiring`). Reads Service and Endpoints
`default/kubernetes`, the nodes, the Calico
Installation `default` and the IPPools. Missing Calico objects give None/[] (probes skip);
configured overrides (`cluster:` in the config) win over what was discovered.
"""

from __future__ import annotations

from typing import Any, Protocol

import structlog
from pydantic import BaseModel, ConfigDict, Field, field_validator

from probes.errors import ClusterForbidden, ClusterNotFound, InvalidInput
from probes.facts import ClusterFacts, Endpoint, InstallationFacts, IPPoolFacts, NodeFacts
from probes.transports import commands

log = structlog.get_logger("netcheck.discovery")


class ClusterOverrides(BaseModel):
    """Facts the operator states in the config; each wins over discovery."""

    model_config = ConfigDict(extra="forbid")

    service_cidr: str | None = Field(None, description="Service CIDR, when the API does not tell it.")
    pod_cidr: str | None = Field(None, description="Cluster pod CIDR (all nodes' pod blocks).")
    api_service_ip: str | None = Field(
        None, description="API service IP; default: Service default/kubernetes."
    )
    api_service_port: int | None = Field(
        None, ge=1, le=65535, description="API service port; default: Service default/kubernetes."
    )
    dns_service_ip: str | None = Field(
        None,
        description="Cluster DNS service IP, named in pod-dns remediation (not read from kube-system: "
        "the bot's RBAC stays out of that namespace).",
    )

    @field_validator("service_cidr", "pod_cidr")
    @classmethod
    def _cidr(cls, value: str | None) -> str | None:
        return None if value is None else _valid(commands.cidr, value)

    @field_validator("api_service_ip", "dns_service_ip")
    @classmethod
    def _ip(cls, value: str | None) -> str | None:
        return None if value is None else _valid(commands.ip, value)


def _valid(validator: Any, value: str) -> str:
    try:
        return validator(value).value
    except InvalidInput as exc:
        raise ValueError(str(exc)) from None


class DiscoverySource(Protocol):
    """What discovery reads (implemented by transports/cluster.KubeCluster; fakes in tests)."""

    async def get_service(self, namespace: str, name: str) -> dict[str, Any]: ...
    async def get_endpoints(self, namespace: str, name: str) -> dict[str, Any]: ...
    async def list_nodes(self) -> list[dict[str, Any]]: ...
    async def get_installation(self) -> dict[str, Any] | None: ...
    async def list_ippools(self) -> list[dict[str, Any]]: ...


def _https_port(ports: list[dict[str, Any]], key: str) -> int | None:
    chosen = next((p for p in ports if p.get("name") == "https"), ports[0] if ports else None)
    return None if chosen is None else int(chosen[key])


def node_facts(node: dict[str, Any]) -> NodeFacts:
    meta, spec, status = node.get("metadata", {}), node.get("spec", {}), node.get("status", {})
    addresses = status.get("addresses") or []
    internal = next((a["address"] for a in addresses if a.get("type") == "InternalIP"), None)
    conditions = status.get("conditions") or []
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
    return NodeFacts(
        name=meta["name"],
        internal_ip=internal,
        pod_cidr=spec.get("podCIDR"),
        pod_cidrs=spec.get("podCIDRs") or [],
        ready=ready,
        annotations=meta.get("annotations") or {},
        labels=meta.get("labels") or {},
    )


def installation_facts(obj: dict[str, Any]) -> InstallationFacts:
    network = (obj.get("spec") or {}).get("calicoNetwork") or {}
    return InstallationFacts(
        mtu=network.get("mtu"),
        status_mtu=(obj.get("status") or {}).get("mtu"),
        node_address_autodetection_v4=network.get("nodeAddressAutodetectionV4"),
        ip_pools=network.get("ipPools") or [],
        raw=obj,
    )


def ippool_facts(obj: dict[str, Any]) -> IPPoolFacts:
    spec = obj.get("spec") or {}
    return IPPoolFacts(
        name=obj["metadata"]["name"],
        cidr=spec["cidr"],
        ipip_mode=spec.get("ipipMode") or "Never",
        vxlan_mode=spec.get("vxlanMode") or "Never",
        nat_outgoing=bool(spec.get("natOutgoing", False)),
        disabled=bool(spec.get("disabled", False)),
    )


async def _optional(what: str, coro: Any, absent: Any) -> Any:
    """A Calico or DNS object that may legitimately be missing; RBAC denial is logged, not fatal."""
    try:
        return await coro
    except ClusterNotFound:
        return absent
    except ClusterForbidden as exc:
        log.warning("discovery: not allowed to read", what=what, error=str(exc))
        return absent


async def discover(source: DiscoverySource, overrides: ClusterOverrides | None = None) -> ClusterFacts:
    overrides = overrides or ClusterOverrides()
    service = await source.get_service("default", "kubernetes")
    endpoints = await _optional("endpoints default/kubernetes",
                                source.get_endpoints("default", "kubernetes"), {})
    nodes = await source.list_nodes()
    installation = await _optional("Installation default", source.get_installation(), None)
    pools = await _optional("IPPools", source.list_ippools(), [])

    svc_spec = service.get("spec") or {}
    service_port = _https_port(svc_spec.get("ports") or [], "port") or 443
    api_endpoints = [
        Endpoint(ip=address["ip"], port=port)
        for subset in endpoints.get("subsets") or []
        if (port := _https_port(subset.get("ports") or [], "port")) is not None
        for address in subset.get("addresses") or []
    ]
    return ClusterFacts(
        api_service_ip=overrides.api_service_ip or svc_spec["clusterIP"],
        api_service_port=overrides.api_service_port or service_port,
        api_endpoints=api_endpoints,
        service_cidr=overrides.service_cidr,
        cluster_pod_cidr=overrides.pod_cidr,
        dns_service_ip=overrides.dns_service_ip,
        nodes=sorted((node_facts(n) for n in nodes), key=lambda n: n.name),
        installation=installation_facts(installation) if installation else None,
        ippools=[ippool_facts(p) for p in pools],
    )
