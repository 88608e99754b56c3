"""Probe `encapsulation`: the pool's encapsulation suits the node's link, and pods reach pods on other nodes.

Run by the engine. Two checks, each reported on its own line of evidence:
- IPIP (ipipMode Always/CrossSubnet) carried over a WiFi interface (name wl*, or
  /sys/class/net/<if>/wireless) — many WiFi drivers and home routers drop IP protocol 4; VXLAN
  (UDP 4789) is the usual remedy (docs/calico.md#encapsulation). Needs the node shell to find the interface.
- cross-node pod-to-pod: `ping` from this node's debug pod to a debug pod on another Ready node
  (`ctx.peer_pod_ip`: the engine starts that pod for the `peer-pod` need).
A router that drops IP protocol 4 is invisible from a pod except as this loss. (In the lab, whose
kernel has no ipip, pod traffic is routed directly, so a protocol-4 drop there would only show as
missing ICMP "protocol unreachable" answers from the peer host; this probe does not send raw
protocol-4 packets, so the lab's ipip-blocked fault does not change its result.)
The engine runs it only with the node's shell and debug pod (needs=); pod-to-pod is reported as not
checked when no other Ready node can have a debug pod.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re

from probes.catalog.kernel_modules import node_pools
from probes.context import ProbeContext
from probes.model import Layer, ProbeResult, fail, ok, warn
from probes.registry import probe
from probes.transports.base import CommandResult, run_all
from probes.transports.commands import Arg, iface, integer, ip, mtu, render

# Echo requests 0.2 s apart until the first reply or the first ICMP error (iputils ping stops once
# replies + errors reach -c), for at most 3 s: a loaded node's first reply (neighbour resolution) can
# take over a second; only total loss is a verdict.
_PING = "ping -c 1 -i 0.2 -w 3 {ip}"
# Then full-size packets with DF set: an MTU mismatch on the way passes small pings and loses these.
_PING_LARGE = "ping -M do -c 1 -i 0.2 -w 3 -s {size} {ip}"
_POD_MTU = "cat /sys/class/net/eth0/mtu"
IP_ICMP_HEADERS = 28  # ping -s N sends N + 20 (IPv4) + 8 (ICMP) bytes
_ADDRS = "ip -o -4 addr show"
_ROUTE = "ip -o route get {ip}"
_WIRELESS = "test -d /sys/class/net/{iface}/wireless"
_ADDR_LINE = re.compile(r"^\d+:\s+(?P<iface>\S+)\s+inet\s+(?P<ip>[\d.]+)/", re.MULTILINE)
_LOSS = re.compile(r"(\d+(?:\.\d+)?)% packet loss")


async def node_link(ctx: ProbeContext, evidence: list[str]) -> tuple[str | None, bool]:
    """(interface holding the InternalIP, is it WiFi), from the node shell."""
    timeout = ctx.settings.command_timeout
    addrs = await ctx.host.run(render(_ADDRS), timeout=timeout)
    owners = {m["ip"]: m["iface"] for m in _ADDR_LINE.finditer(addrs.stdout)}
    link = owners.get(ctx.node.internal_ip or "")
    if link is None and ctx.facts.api_endpoint is not None:
        route = await ctx.host.run(render(_ROUTE, ip=ip(ctx.facts.api_endpoint.ip)), timeout=timeout)
        dev = re.search(r"\bdev (\S+)", route.stdout)
        link = dev.group(1) if dev else None
    if link is None:
        evidence.append(f"node link: not found\n$ {_ADDRS}\n{addrs.output}")
        return None, False
    wireless = await ctx.host.run(render(_WIRELESS, iface=iface(link)), timeout=timeout)
    is_wifi = link.startswith("wl") or wireless.ok
    evidence.append(f"node link: {link} ({'WiFi' if is_wifi else 'not WiFi'}; "
                    f"/sys/class/net/{link}/wireless {'present' if wireless.ok else 'absent'})")
    return link, is_wifi


@probe(id="encapsulation", layer=Layer.ROUTER, needs={"host", "pod", "peer-pod"})
async def encapsulation(ctx: ProbeContext) -> ProbeResult:
    """IPIP is not used over WiFi, and the debug pod reaches a pod on another node.

    Reads the node's IP pools (ipipMode/vxlanMode); on the node `ip -o -4 addr show` and
    /sys/class/net/<if>/wireless find its link; meanwhile, from the debug pod,
    `ping -c 1 -i 0.2 -w 3 <peer pod IP>` (ends at the first reply or ICMP error) to a debug pod on
    another node. fail: no reply from the peer pod (cross-node pod traffic is lost: encapsulation
    dropped by the router, e.g. IPIP protocol 4 — which gives no ICMP error, only silence — or
    missing routes). warn: small pings pass but pod-MTU-sized ones with DF set
    (`ping -M do -s <eth0 MTU - 28>`) are lost (an MTU mismatch on the way: see mtu here and on the
    peer); or IPIP over a WiFi interface; remediation: switch the pool to VXLAN (Installation
    ipPools `encapsulation: VXLANCrossSubnet`, UDP 4789). ok otherwise. Pod-to-pod is reported as not
    checked when no other Ready node has a debug pod.
    """
    evidence: list[str] = []
    pools = node_pools(ctx)
    ipip_pools = [p for p in pools if p.encapsulation == "ipip"]
    pool_text = ", ".join(f"{p.name} {p.cidr} ipipMode={p.ipip_mode} vxlanMode={p.vxlan_mode}" for p in pools)
    evidence.append("pools: " + (pool_text or "none (not Calico?)"))
    link_evidence: list[str] = []
    link_read = asyncio.ensure_future(node_link(ctx, link_evidence))
    try:
        ping_evidence: list[str] = []
        loss, large_lost = await _pod_to_pod(ctx, ping_evidence)  # meanwhile the node's link is read
        link, is_wifi = await link_read
    finally:
        if not link_read.done():
            link_read.cancel()
    evidence += link_evidence + ping_evidence
    peer_name = _node_of_pod(ctx, ctx.peer_pod_ip) if ctx.peer_pod_ip else None
    where = f"on {peer_name}" if peer_name else "on another node"
    vxlan_fix = (
        "Switch the pool to VXLAN (UDP 4789, passes WiFi and home routers):\n"
        "kubectl patch installation default --type json -p "
        "'[{\"op\":\"replace\",\"path\":\"/spec/calicoNetwork/ipPools/0/encapsulation\",\"value\":\"VXLANCrossSubnet\"}]'\n"
        "(pools not managed by the operator: calicoctl patch ippool "
        + (ipip_pools[0].name if ipip_pools else "<pool>")
        + " -p '{\"spec\":{\"ipipMode\":\"Never\",\"vxlanMode\":\"CrossSubnet\"}}')"
    )
    if loss == "100":
        enc = pools[0].encapsulation if pools else None
        remediation = (
            f"Pods on {ctx.node.name} cannot reach pods on other nodes. "
            f"Check, on {ctx.node.name} and the peer:\n"
            "- the route to the peer's pod block (`ip route` on both nodes; "
            "BGP TCP 179 for IPIP/unencapsulated pools, Felix for VXLAN)\n"
            "- ip_forward and the firewall between nodes (IPIP = IP protocol 4, VXLAN = UDP 4789)\n"
            + (f"- IPIP: a router or WiFi link that drops protocol 4 answers nothing at all.\n{vxlan_fix}"
               if enc == "ipip" else f"- encapsulation: {enc or 'none'}")
        )
        return fail(f"no reply from the pod {ctx.peer_pod_ip} {where} (pod-to-pod lost)",
                    "\n".join(evidence), remediation, proof=_proof(evidence))
    if large_lost is not None:
        return warn(f"pod-to-pod to {ctx.peer_pod_ip} {where}: small packets pass, {large_lost}-byte packets "
                    "with DF set are lost (an MTU smaller than the pods' on the way)", "\n".join(evidence),
                    "Packets as large as the pod MTU do not pass between these nodes: see the mtu findings "
                    f"of {ctx.node.name} and {peer_name or 'the peer node'} (a link below Calico's MTU).",
                    proof=_proof(evidence))
    if ipip_pools and is_wifi:
        return warn(f"IPIP encapsulation over WiFi interface {link}: WiFi drivers/routers often drop "
                    "IP protocol 4; use VXLAN", "\n".join(evidence), vxlan_fix)
    parts = ["no IPIP over WiFi" if link else "link not checked",
             f"pod-to-pod to {ctx.peer_pod_ip} ok ({loss}% loss)" if loss is not None
             else "pod-to-pod not checked"]
    return ok("; ".join(parts), "\n".join(evidence))


async def _pod_to_pod(ctx: ProbeContext, evidence: list[str]) -> tuple[str | None, int | None]:
    """(loss percentage or None when not measured, the DF size lost when only large packets are)."""
    if ctx.peer_pod_ip is None:  # the one need the engine may not meet: no other Ready node
        evidence.append("pod-to-pod skipped: no debug pod on another Ready node")
        return None, None
    peer = ip(ctx.peer_pod_ip)
    # the pod's MTU (for the large pings) is read in the same exec: one pod exec less in sequence
    result, mtu_read = await run_all(ctx.pod, [render(_PING, ip=peer), render(_POD_MTU)],
                                     timeout=ctx.settings.command_timeout)
    found = _LOSS.search(result.stdout)
    # No statistics line: ping itself failed (missing, bad address): no verdict on the path.
    loss = found.group(1) if found else None
    source = f"{ctx.pod.name} {ctx.pod.ip}"
    evidence.append(f"$ {result.command} (from {source})\n{result.output}")
    if loss == "100":
        route = await ctx.host.run(render(_ROUTE, ip=peer), timeout=ctx.settings.command_timeout)
        evidence.append(f"$ ip -o route get {peer}   (on {ctx.node.name})\n{route.output}")
    elif loss is not None and loss != "100":
        return loss, await _large_packets_lost(ctx, peer, mtu_read, evidence)
    return loss, None


def _node_of_pod(ctx: ProbeContext, pod_ip: str) -> str | None:
    """The node whose pod block holds `pod_ip` (from the nodes' spec.podCIDR)."""
    for node in ctx.facts.nodes:
        block = ipaddress.ip_network(node.pod_cidr, strict=False) if node.pod_cidr else None
        if block is not None and ipaddress.ip_address(pod_ip) in block:
            return node.name
    return None


def _proof(evidence: list[str]) -> str:
    """The ping statistics and errors (frag needed, unreachable), not the whole transcript."""
    keep = re.compile(r"packet loss|Frag needed|[Uu]nreachable|message too long|^\$ ping|^\$ ip")
    return "\n".join(line for block in evidence for line in block.splitlines() if keep.search(line))


async def _large_packets_lost(ctx: ProbeContext, peer: Arg, read: CommandResult,
                              evidence: list[str]) -> int | None:
    """Full pod-MTU-sized packets with DF to the peer pod (`read`: the pod's eth0 MTU): the size
    when all are lost, else None."""
    timeout = ctx.settings.command_timeout
    if not read.ok or not read.stdout.strip().isdigit():
        evidence.append(f"large packets not checked: pod MTU unreadable ({read.output})")
        return None
    pod_mtu = integer(read.stdout.strip(), 576, 65535, "pod MTU")
    size = mtu(pod_mtu - IP_ICMP_HEADERS, 0)
    result = await ctx.pod.run(render(_PING_LARGE, size=size, ip=peer), timeout=timeout)
    evidence.append(f"$ {result.command}   (pod MTU {pod_mtu})\n{result.output}")
    found = _LOSS.search(result.stdout)
    return pod_mtu if found and found.group(1) == "100" else None
