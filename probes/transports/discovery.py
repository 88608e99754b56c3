"""Cluster discovery: turn the API's objects into `ClusterFacts`, once per run.

Called through `Transports.discover` (wired in `bot.wiring`). Reads Service and Endpoints
`default/kubernetes`, the nodes, the Calico
Installation `default` and the IPPools. Missing Calico objects give None/[] (probes skip);
configured overrides (`cluster:` in the config) win over what was discovered. Every name, address,
CIDR and MTU read here goes through the validator module first: a node with a malformed name or a
pool with a malformed CIDR is left out, a malformed address/CIDR/MTU field is None (one warning
line each), so nothing hostile stored in the cluster reaches a command or a fix parameter.
"""

from __future__ import annotations

from typing import Any, Protocol

import structlog
from pydantic import BaseModel, ConfigDict, Field, field_validator

from probes.errors import ClusterError, ClusterForbidden, ClusterNotFound, InvalidInput
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
        return None if value is None else commands.field_value(commands.cidr, value)

    @field_validator("api_service_ip", "dns_service_ip")
    @classmethod
    def _ip(cls, value: str | None) -> str | None:
        return None if value is None else commands.field_value(commands.ip, value)


class DiscoverySource(Protocol):
    """What discovery reads (implemented by transports/cluster.KubeCluster; fakes in tests)."""

    async def get_service(self, namespace: str, name: str) -> dict[str, Any]: ...
    async def get_endpoints(self, namespace: str, name: str) -> dict[str, Any]: ...
    async def list_nodes(self) -> list[dict[str, Any]]: ...
    async def get_installation(self) -> dict[str, Any] | None: ...
    async def list_ippools(self) -> list[dict[str, Any]]: ...


def _https_port(ports: list[dict[str, Any]], key: str) -> int | None:
    ports = [p for p in ports if isinstance(p, dict)] if isinstance(ports, list) else []
    chosen = next((p for p in ports if p.get("name") == "https"), ports[0] if ports else None)
    if chosen is None:
        return None
    try:
        return commands.integer(chosen.get(key), 1, 65535, "port")
    except InvalidInput:
        return None


def _checked(validator: Any, value: Any, what: str) -> str | None:
    """A cluster value through its validator, or None (logged): the API is a boundary too. A
    malformed name, address or CIDR in a Node or IPPool must not reach a command or a fix."""
    if value is None:
        return None
    try:
        return str(validator(value).value)
    except InvalidInput as exc:
        log.warning("discovery: malformed value ignored", what=what, error=str(exc))
        return None


def _strings(mapping: Any) -> dict[str, str]:
    """Annotations/labels as str -> str (the API only stores strings; anything else is dropped)."""
    if not isinstance(mapping, dict):
        return {}
    return {k: v for k, v in mapping.items() if isinstance(k, str) and isinstance(v, str)}


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def node_facts(node: dict[str, Any]) -> NodeFacts | None:
    """The node's facts, or None when its name is not a valid node name (it cannot be addressed)."""
    meta, spec, status = _dict(node.get("metadata")), _dict(node.get("spec")), _dict(node.get("status"))
    name = _checked(commands.node_name, meta.get("name"), "node name")
    if name is None:
        return None
    addresses = [a for a in status.get("addresses") or [] if isinstance(a, dict)]
    internal = next((a.get("address") for a in addresses if a.get("type") == "InternalIP"), None)
    conditions = [c for c in status.get("conditions") or [] if isinstance(c, dict)]
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
    listed = spec.get("podCIDRs")
    pod_cidrs: list[Any] = listed if isinstance(listed, list) else []
    return NodeFacts(
        name=name,
        internal_ip=_checked(commands.ip, internal, f"node {name} InternalIP"),
        pod_cidr=_checked(commands.cidr, spec.get("podCIDR"), f"node {name} spec.podCIDR"),
        pod_cidrs=[c for c in (_checked(commands.cidr, v, f"node {name} spec.podCIDRs") for v in pod_cidrs)
                   if c is not None],
        ready=ready,
        annotations=_strings(meta.get("annotations")),
        labels=_strings(meta.get("labels")),
    )


def _mtu(value: Any, what: str) -> int | None:
    if value is None:
        return None
    try:
        return commands.integer(value, commands.MTU_MIN, commands.MTU_MAX, "MTU")
    except InvalidInput as exc:
        log.warning("discovery: malformed value ignored", what=what, error=str(exc))
        return None


def installation_facts(obj: dict[str, Any]) -> InstallationFacts:
    network = _dict(_dict(obj.get("spec")).get("calicoNetwork"))
    autodetection = network.get("nodeAddressAutodetectionV4")
    pools = network.get("ipPools")
    return InstallationFacts(
        mtu=_mtu(network.get("mtu"), "Installation spec.calicoNetwork.mtu"),
        status_mtu=_mtu(_dict(obj.get("status")).get("mtu"), "Installation status.mtu"),
        node_address_autodetection_v4=autodetection if isinstance(autodetection, dict) else None,
        ip_pools=[p for p in pools if isinstance(p, dict)] if isinstance(pools, list) else [],
        raw=obj,
    )


_ENCAP_MODES = ("Never", "Always", "CrossSubnet")


def _mode(value: Any, what: str) -> str:
    if value in (None, ""):
        return "Never"
    if value not in _ENCAP_MODES:
        log.warning("discovery: malformed value ignored", what=what, error=f"not one of {_ENCAP_MODES}")
        return "Never"
    return str(value)


def ippool_facts(obj: dict[str, Any]) -> IPPoolFacts | None:
    """The pool's facts, or None when its name or CIDR is malformed (a pool nobody can rely on)."""
    spec = _dict(obj.get("spec"))
    name = _checked(commands.node_name, _dict(obj.get("metadata")).get("name"), "IPPool name")
    cidr = _checked(commands.cidr, spec.get("cidr"), f"IPPool {name} spec.cidr")
    if name is None or cidr is None:
        return None
    return IPPoolFacts(
        name=name,
        cidr=cidr,
        ipip_mode=_mode(spec.get("ipipMode"), f"IPPool {name} spec.ipipMode"),
        vxlan_mode=_mode(spec.get("vxlanMode"), f"IPPool {name} spec.vxlanMode"),
        nat_outgoing=spec.get("natOutgoing") is True,
        disabled=spec.get("disabled") is True,
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
        Endpoint(ip=address_ip, port=port)
        for subset in endpoints.get("subsets") or []
        if (port := _https_port(subset.get("ports") or [], "port")) is not None
        for address in subset.get("addresses") or []
        if (address_ip := _checked(commands.ip, _dict(address).get("ip"), "API endpoint address"))
    ]
    service_ip = overrides.api_service_ip or _checked(commands.ip, svc_spec.get("clusterIP"),
                                                      "Service default/kubernetes clusterIP")
    if service_ip is None:
        raise ClusterError("Service default/kubernetes has no valid clusterIP; set cluster.api_service_ip")
    return ClusterFacts(
        api_service_ip=service_ip,
        api_service_port=overrides.api_service_port or service_port,
        api_endpoints=api_endpoints,
        service_cidr=overrides.service_cidr,
        cluster_pod_cidr=overrides.pod_cidr,
        dns_service_ip=overrides.dns_service_ip,
        nodes=sorted((f for n in nodes if (f := node_facts(n)) is not None), key=lambda n: n.name),
        installation=installation_facts(installation) if installation else None,
        ippools=[pool for p in pools if (pool := ippool_facts(p)) is not None],
    )
