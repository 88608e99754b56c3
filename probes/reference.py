"""The reference node: a healthy node of the same pool to compare a node with.

Used by `probes/correlate.py` (differential verdicts, "is NAT needed here?"), by the engine's
single-node follow-up and by `Engine.compare` (node diff). Picked per run: the configured
`probes.reference_node`, else a Ready node of the same pool (a pool label, else control plane vs
workers) whose probes were all ok in this run; same-pool nodes first, then the others.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Collection, Mapping

from probes.facts import ClusterFacts, NodeFacts
from probes.model import Report, Status
from probes.settings import ProbeSettings

CONTROL_PLANE_LABELS = ("node-role.kubernetes.io/control-plane", "node-role.kubernetes.io/master")


def pool_of(node: NodeFacts, settings: ProbeSettings) -> str:
    """The node's pool: the first configured pool label it has, else its role."""
    for key in settings.node_pool_labels:
        if key in node.labels:
            return f"{key}={node.labels[key]}"
    return "control-plane" if any(k in node.labels for k in CONTROL_PLANE_LABELS) else "worker"


def healthy(report: Report) -> bool:
    """Every probe ok (or skipped) in this run, and at least one ok."""
    return (any(f.status is Status.OK for f in report.findings)
            and not any(f.status.is_problem for f in report.findings))


def candidates(node: str, facts: ClusterFacts, settings: ProbeSettings,
               exclude: Collection[str] = ()) -> list[NodeFacts]:
    """Ready nodes to try as `node`'s reference, best first (the configured one, then same pool)."""
    me = facts.node(node)
    others = [n for n in facts.nodes if n.ready and n.name != node and n.name not in exclude]
    mine = pool_of(me, settings) if me is not None else None
    others.sort(key=lambda n: (n.name != settings.reference_node, pool_of(n, settings) != mine))
    return others


def pick(node: str, reports: Mapping[str, Report], facts: ClusterFacts,
         settings: ProbeSettings) -> str | None:
    """The reference for `node` among this run's reports (None: no healthy node to compare with)."""
    configured = settings.reference_node
    if configured and configured != node and configured in reports:
        return configured
    for candidate in candidates(node, facts, settings):
        report = reports.get(candidate.name)
        if report is not None and healthy(report):
            return candidate.name
    return None


def _subnet(node: NodeFacts) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    """The node's LAN as Calico autodetected it (`projectcalico.org/IPv4Address`, CIDR form)."""
    address = node.calico_ipv4_address
    try:
        return ipaddress.ip_network(address, strict=False) if address and "/" in address else None
    except ValueError:
        return None


def same_network(a: NodeFacts, b: NodeFacts, facts: ClusterFacts) -> bool:
    """Same IP pool for their pod blocks, and the same LAN where Calico says which."""
    def pool(node: NodeFacts) -> str | None:
        if not node.pod_cidr:
            return None
        first = str(ipaddress.ip_network(node.pod_cidr, strict=False).network_address)
        found = facts.pool_containing(first)
        return found.name if found else None

    if pool(a) is None or pool(a) != pool(b):
        return False
    lan_a, lan_b = _subnet(a), _subnet(b)
    return lan_a is None or lan_b is None or lan_a == lan_b


def api_node(facts: ClusterFacts) -> NodeFacts | None:
    """The node the API endpoint runs on (its InternalIP), when it is a node of the cluster."""
    endpoint = facts.api_endpoint
    return next((n for n in facts.nodes if endpoint is not None and n.internal_ip == endpoint.ip), None)


def nat_not_needed(node: str, reference: str | None, reports: Mapping[str, Report],
                   facts: ClusterFacts) -> str | None:
    """Why NAT is evidently not needed for `node`'s pods (None: no such evidence): the node the API
    runs on routes this node's pod block directly (replies never meet a router), or the reference
    node's pods reach the API endpoint without NAT over the same network."""
    endpoint = facts.api_endpoint
    me = facts.node(node)
    host = api_node(facts)
    if endpoint is None or me is None:
        return None
    if host is not None and host.name != node and host.name in reports:
        routes = reports[host.name].observations().pod_block_routes or {}
        if routes.get(node) == "direct":
            return f"{host.name}, where the API runs, routes {me.pod_cidr or 'its pod block'} directly back"
    ref = facts.node(reference) if reference else None
    report = reports.get(reference) if reference else None
    if ref is None or report is None:
        return None
    if ref.internal_ip == endpoint.ip:
        return None  # the API runs on the reference itself: its pods' requests never cross the network
    masquerade = report.finding("masquerade")
    seen = report.observations()
    if masquerade is None or masquerade.status is not Status.OK:
        return None
    if seen.pod_nat != "none" or seen.pod_nat_needed is not False or not same_network(me, ref, facts):
        return None
    return f"pods on {ref.name} reach the API at {endpoint.ip} without NAT on the same network"
