"""Probe `pod-routes`: the pod can route to the API service IP and the node routes back to the pod.

Run by the engine. Also home of `parse_route` (`ip -o route get` parsing), which the mtu,
masquerade and return-path probes use to find the interface toward the API endpoint.
docs/calico.md#pod-routes: a pod whose only routes are `default via 169.254.1.1 dev eth0` plus the
169.254.1.1 link route is normal (ClusterIPs are DNATed on the host); the real faults are a
missing `<podIP> dev caliX scope link` host route, proxy_arp != 1 on the veth, or a veth that is down.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass

from probes.context import ProbeContext
from probes.model import Layer, ProbeResult, fail, ok
from probes.registry import Explains, probe
from probes.transports.base import run_all
from probes.transports.commands import iface, ip, render

CALICO_GATEWAY = "169.254.1.1"


@dataclass(frozen=True)
class Route:
    dev: str | None
    via: str | None
    src: str | None


def parse_route(output: str) -> Route | None:
    """`ip -o route get X` -> Route; None for unreachable/prohibit answers or errors."""
    line = output.strip().splitlines()[0] if output.strip() else ""
    if not line or re.match(r"^(unreachable|prohibit|blackhole|RTNETLINK)", line):
        return None

    def field(name: str) -> str | None:
        match = re.search(rf"\b{name} (\S+)", line)
        return match.group(1) if match else None

    return Route(dev=field("dev"), via=field("via"), src=field("src"))


def link_is_up(output: str) -> bool:
    """`ip -o link show dev X`: admin UP flag set and the operational state is not DOWN."""
    flags = re.search(r"<([^>]*)>", output)
    return bool(flags and "UP" in flags.group(1).split(",") and " state DOWN " not in output)


# Pods that cannot be routed to lose every reply: the API's, DNS's and other pods'; and masquerade
# and return-path then see pod-api failing for a reason that is not theirs.
@probe(id="pod-routes", layer=Layer.POD_NETWORK, needs={"pod", "host"}, explains=(
    Explains("pod-api", only_when_failing=True), Explains("pod-dns", only_when_failing=True),
    Explains("masquerade", only_when_failing=True), Explains("return-path", only_when_failing=True),
    Explains("encapsulation", only_when_failing=True, across=True),
))
async def pod_routes(ctx: ProbeContext) -> ProbeResult:
    """Pod has a route to the API service IP; the node routes the pod IP to its up, proxy-ARP veth.

    Runs `ip -o route get <service IP>` in the pod, and on the node `ip -o route get <pod IP>`,
    `ip -o link show dev <cali veth>` and /proc/sys/net/ipv4/conf/<veth>/proxy_arp.
    A pod whose only routes are `default via 169.254.1.1 dev eth0` and the 169.254.1.1 link route
    is normal for Calico (service IPs are DNATed on the host), so that is ok, not "missing routes".
    fail: no pod route, no `<pod IP> dev cali… scope link` route on the node, the veth down, or
    proxy_arp off (the pod's 169.254.1.1 gateway never answers ARP): restart calico-node there.
    """
    timeout = ctx.settings.command_timeout
    svc = ctx.facts.api_service_ip
    pod_ip = ctx.pod.ip
    # one exec for both reads: every pod exec is a new WebSocket (several round trips); meanwhile the
    # node's route back to the pod (its IP is known without asking the pod)
    (pod_table, pod_get), host_get = await asyncio.gather(
        run_all(ctx.pod, [render("ip -o route show"), render("ip -o route get {ip}", ip=ip(svc))],
                timeout=timeout),
        ctx.host.run(render("ip -o route get {ip}", ip=ip(pod_ip)), timeout=timeout))
    evidence = [f"pod $ {pod_table.command}\n{pod_table.output}",
                f"pod $ {pod_get.command}\n{pod_get.output}"]
    pod_route = parse_route(pod_get.stdout) if pod_get.ok else None
    if pod_route is None:
        return fail(f"pod {pod_ip} has no route to the API service IP {svc}", evidence="\n".join(evidence),
                    remediation="The CNI did not set up the pod's routes: check the CNI config "
                                "(/etc/cni/net.d/) and calico-node logs on this node, then recreate the pod.")

    evidence.append(f"node $ {host_get.command}\n{host_get.output}")
    host_route = parse_route(host_get.stdout) if host_get.ok else None
    if host_route is None or host_route.dev is None or host_route.via is not None:
        return fail(f"node has no direct route back to pod IP {pod_ip} "
                    f"(expected '{pod_ip} dev caliX scope link')",
                    evidence="\n".join(evidence),
                    remediation="calico-node programs the workload route: check its logs on this node "
                                "(kubectl logs -n calico-system calico-node-<pod> -c calico-node) and "
                                "recreate the pod.")
    veth = iface(host_route.dev)
    calico_style = pod_route.via == CALICO_GATEWAY
    # the veth's state and (Calico-style) its proxy_arp in one batch: one round trip
    reads = [render("ip -o link show dev {dev}", dev=veth)]
    if calico_style:
        reads.append(render("cat /proc/sys/net/ipv4/conf/{dev}/proxy_arp", dev=veth))
    link, *arp_read = await run_all(ctx.host, reads, timeout=timeout)
    evidence.append(f"node $ {link.command}\n{link.output}")
    if not link.ok or not link_is_up(link.stdout):
        return fail(f"pod veth {veth} on the node is down", evidence="\n".join(evidence),
                    remediation=f"sudo ip link set {veth} up   # then recreate the pod if it stays down")

    if calico_style:
        arp = arp_read[0]
        evidence.append(f"node $ {arp.command}\n{arp.output}")
        if arp.stdout.strip() != "1":
            return fail(f"proxy_arp is {arp.stdout.strip() or 'unreadable'} on {veth}: the pod's gateway "
                        f"{CALICO_GATEWAY} gets no ARP answer", evidence="\n".join(evidence),
                        remediation=f"sudo sysctl -w net.ipv4.conf.{veth}.proxy_arp=1   "
                                    "# calico-node sets this; restart it if it keeps coming back as 0")
    normal = (f"; the lone 'default via {CALICO_GATEWAY} dev {pod_route.dev}' route is normal for Calico "
              "(ClusterIPs are DNATed on the host)") if calico_style else ""
    return ok(f"pod routes {svc} via {pod_route.via or 'link'} dev {pod_route.dev}; node routes {pod_ip} "
              f"dev {veth} (up{', proxy_arp=1' if calico_style else ''}){normal}",
              evidence="\n".join(evidence))
