"""Probe `node-address`: Calico autodetected this node's address on its primary interface.

Run by the engine. Compares the annotation `projectcalico.org/IPv4Address`
(docs/calico.md#node-address-autodetection), the node's InternalIP,
the interface that holds each address (`ip -o -4 addr show`) and the
route toward the API server (`ip -o route get`). Calico's `firstFound` skips docker0, cni*, ...
but not VPN interfaces, so a tailscale0/wg0 address is the classic wrong pick
(docs/troubleshooting.md#vpn-interfaces-and-address-autodetection).
"""

from __future__ import annotations

import re

from probes.context import ProbeContext
from probes.errors import ProbeSkip
from probes.model import Layer, ProbeResult, fail, ok
from probes.registry import Explains, probe
from probes.transports.commands import ip, render

_ADDRS = "ip -o -4 addr show"
_ROUTE = "ip -o route get {ip}"
_ADDR_LINE = re.compile(r"^\d+:\s+(?P<iface>\S+)\s+inet\s+(?P<ip>[\d.]+)/\d+", re.MULTILINE)
# VPN, tunnel, bridge and container interfaces: never the address other nodes should peer with.
_NOT_PRIMARY = re.compile(
    r"^(tailscale|wg|tun|tap|zt|nebula|utun|ppp|docker|cni|cali|tunl|vxlan|flannel|veth|br-|virbr|podman"
    r"|lxcbr|cbr|kube-ipvs|nodelocaldns|wireguard)"
)


def address_owners(ip_addr_output: str) -> dict[str, str]:
    """{IPv4 address: interface} from `ip -o -4 addr show`."""
    return {m["ip"]: m["iface"] for m in _ADDR_LINE.finditer(ip_addr_output)}


def route_dev_src(route_output: str) -> tuple[str | None, str | None]:
    dev = re.search(r"\bdev (\S+)", route_output)
    src = re.search(r"\bsrc (\S+)", route_output)
    return (dev.group(1) if dev else None, src.group(1) if src else None)


# A wrong autodetected address (a VPN's) sends other nodes' tunnels toward this node astray.
@probe(id="node-address", layer=Layer.PHYSICAL, needs={"host"},
       explains=(Explains("encapsulation", only_when_failing=True, across=True),))
async def node_address(ctx: ProbeContext) -> ProbeResult:
    """Calico's node address (projectcalico.org/IPv4Address) is the InternalIP on the primary interface.

    Reads the node annotation and InternalIP from the API; runs `ip -o -4 addr show` and
    `ip -o route get <API server endpoint>` on the node. fail: the annotated address is on a VPN,
    tunnel or container interface (tailscale0, wg*, tun*, docker0, cni*, ...) or differs from the
    InternalIP, so other nodes send pod traffic to the wrong place; remediation: set
    Installation spec.calicoNetwork.nodeAddressAutodetectionV4 to `interface: "<primary>"`,
    `skipInterface: "<vpn>"` or `kubernetes: NodeInternalIP`, then restart calico-node.
    ok: annotation = InternalIP, on the primary interface. skip: no annotation (not Calico).
    """
    annotated_cidr = ctx.node.calico_ipv4_address
    if not annotated_cidr:
        raise ProbeSkip("node has no projectcalico.org/IPv4Address annotation (Calico not running here?)")
    annotated = annotated_cidr.split("/")[0]
    timeout = ctx.settings.command_timeout
    addrs = await ctx.host.run(render(_ADDRS), timeout=timeout)
    owners = address_owners(addrs.stdout)
    evidence = [f"annotation projectcalico.org/IPv4Address={annotated_cidr}",
                f"InternalIP={ctx.node.internal_ip or '(none)'}", f"$ {_ADDRS}\n{addrs.output}"]
    route_dev = route_src = None
    api = ctx.facts.api_endpoint
    if api is not None:
        route = await ctx.host.run(render(_ROUTE, ip=ip(api.ip)), timeout=timeout)
        route_dev, route_src = route_dev_src(route.stdout)
        evidence.append(f"$ ip -o route get {api.ip}\n{route.output}")
    internal = ctx.node.internal_ip or route_src
    primary = owners.get(internal or "") or route_dev
    holder = owners.get(annotated)
    problems = []
    if holder is not None and _NOT_PRIMARY.match(holder):
        problems.append(f"{annotated} is on {holder}, a VPN/tunnel/container interface")
    elif holder is None:
        problems.append(f"{annotated} is on no interface of {ctx.node.name}")
    if internal and annotated != internal:
        problems.append(f"it differs from the InternalIP {internal}" + (f" on {primary}" if primary else ""))
    if not problems:
        return ok(f"Calico uses {annotated} on {holder}, the InternalIP's interface", "\n".join(evidence))
    vpn_pattern = holder if holder and _NOT_PRIMARY.match(holder) else "tailscale.*|wg.*|tun.*|docker.*"
    primary_name = primary or "<primary interface>"
    remediation = (
        "Tell Calico which address to use (Installation default), then let calico-node restart:\n"
        "kubectl patch installation default --type merge -p "
        f"'{{\"spec\":{{\"calicoNetwork\":{{\"nodeAddressAutodetectionV4\":{{\"skipInterface\":\"{vpn_pattern}\"}}}}}}}}'\n"
        f"# or name the primary interface (a regex for all nodes): interface: \"{primary_name}\"\n"
        "# or use each node's InternalIP: kubernetes: NodeInternalIP\n"
        f"Verify: kubectl get node {ctx.node.name} -o yaml | grep projectcalico.org/IPv4Address "
        f"(expect {internal or 'the InternalIP'})"
    )
    return fail(f"Calico's address for {ctx.node.name} is wrong: " + "; ".join(problems),
                "\n".join(evidence), remediation)
