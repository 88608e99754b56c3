"""Fix parameters bound to the node and the cluster, checked in `plan` before anything changes.

A parameter can be well-formed and still wrong for this node: `pod_cidr=10.0.0.0/8` is a valid
CIDR but masquerades someone else's LAN. Each function here takes a value that already passed its
validator (probes/transports/commands.py) and refuses it with one `InvalidInput` line unless it
belongs here. They only read (cluster facts, `ip -o link show` on the node). Used by the fixes in
fixes/catalog/; the rules are listed in docs/security.md ("Fix parameters are bound to the node").
"""

from __future__ import annotations

import ipaddress
import re
from typing import TYPE_CHECKING

from probes.errors import InvalidInput
from probes.facts import ClusterFacts, NodeFacts
from probes.transports.commands import Arg, network

if TYPE_CHECKING:  # fixes.base imports nothing from here; the annotation only
    from fixes.base import Fix

_LINK_LINE = re.compile(r"^\d+:\s+([^:@\s]+)(?:@\S+)?:\s.*?\bmtu\s+(\d+)")
LISTED_MAX = 12
"""Interface names listed in a refusal (a node with hundreds of veths lists the first ones)."""


async def node_facts(fix: Fix) -> NodeFacts:
    """The fix's node as the cluster describes it; an unknown node is refused."""
    facts = await fix.engine.facts()
    node = facts.node(fix.node)
    if node is None:
        raise InvalidInput(f"unknown node {fix.node!r}: not in the cluster's node list")
    return node


def _networks(values: list[str]) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    found = []
    for value in values:
        try:
            found.append(network(value))
        except InvalidInput:
            continue  # discovery already dropped what is malformed; never widen on a bad value
    return found


async def pod_block(fix: Fix, pod_cidr: Arg, *, version: int = 4) -> Arg:
    """`pod_cidr` must be one of the node's pod blocks (spec.podCIDR/podCIDRs) or lie inside the
    cluster's pod range (config `cluster.pod_cidr`, or an enabled Calico IP pool), and hold no
    node's or API server's address."""
    wanted = network(pod_cidr.value, "pod CIDR")
    if wanted.version != version:
        raise InvalidInput(f"pod CIDR {wanted} is IPv{wanted.version}; this fix handles IPv{version} only")
    facts = await fix.engine.facts()
    node = await node_facts(fix)
    blocks = _networks(node.pod_blocks)
    ranges = _networks([facts.cluster_pod_cidr] if facts.cluster_pod_cidr else [])
    ranges += _networks([pool.cidr for pool in facts.ippools if not pool.disabled])
    inside = wanted in blocks or any(
        wanted.version == r.version and wanted.subnet_of(r) for r in ranges  # type: ignore[arg-type]
    )
    if inside:
        _no_host_inside(wanted, facts)
        return Arg(str(wanted))
    known = ", ".join(str(b) for b in blocks) or "none"
    pools = ", ".join(str(r) for r in ranges) or "none known"
    raise InvalidInput(f"pod CIDR {wanted} is not a pod block of {fix.node} ({known}) "
                       f"nor inside the cluster pod range ({pools})")


def _no_host_inside(wanted: ipaddress.IPv4Network | ipaddress.IPv6Network, facts: ClusterFacts) -> None:
    """A pod range never holds a node's or the API server's address; a pool that overlaps the LAN
    (docs/calico.md, "How Calico masquerades") must not turn into masquerading the LAN itself."""
    hosts = [(n.name, n.internal_ip) for n in facts.nodes if n.internal_ip]
    hosts += [("the API server", e.ip) for e in facts.api_endpoints]
    for owner, address in hosts:
        try:
            held = ipaddress.ip_address(address) in wanted
        except ValueError:  # discovery drops malformed addresses; never fail open on one anyway
            held = False
        if held:
            raise InvalidInput(f"pod CIDR {wanted} contains {address} ({owner}): "
                               "that is the host network, not pods")


def parse_links(output: str) -> dict[str, tuple[int, bool]]:
    """`ip -o link show` -> {name: (mtu, is_loopback)}; `veth1@if4` is the interface `veth1`."""
    links: dict[str, tuple[int, bool]] = {}
    for line in output.splitlines():
        found = _LINK_LINE.match(line)
        if found:
            links[found.group(1)] = (int(found.group(2)), "link/loopback" in line)
    return links


async def node_links(fix: Fix) -> dict[str, tuple[int, bool]]:
    """The node's interfaces, read on the node itself (read-only)."""
    listed = await fix.run("ip -o link show")
    return parse_links(listed.stdout)


async def node_interface(fix: Fix, interface: Arg) -> tuple[Arg, int]:
    """`interface` must exist on the node and not be the loopback; returns it with its MTU."""
    links = await node_links(fix)
    if interface.value not in links:
        names = sorted(name for name, (_, loopback) in links.items() if not loopback)
        listed = ", ".join(names[:LISTED_MAX]) + (" …" if len(names) > LISTED_MAX else "")
        raise InvalidInput(f"interface {interface.value!r} does not exist on {fix.node} "
                           f"(it has: {listed or 'no interfaces listed'})")
    link_mtu, loopback = links[interface.value]
    if loopback:
        raise InvalidInput(f"interface {interface.value!r} on {fix.node} is the loopback")
    return interface, link_mtu
