"""Probe `mtu`: a pod's real MTU plus encapsulation overhead fits the path toward the API endpoint.

Run by the engine. Measured, not read back: the debug pod's eth0 MTU is what calico-node on this
node gives new pods now (an Installation change reaches a node only when its calico-node restarted
with it, and running pods keep their MTU: docs/calico.md#mtu-changes-and-the-operator-rollout).
docs/calico.md#mtu: that MTU already IS the tunnel/pod MTU, so the overhead is added once and
compared with the interface MTU and the measured path MTU (DF pings from the node and from the pod,
whose "Frag needed ... (mtu = X)" / "message too long, mtu=X" answers are the evidence). The
configured value (Installation, /var/lib/calico/mtu, Calico interfaces) is evidence only.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
from collections.abc import Mapping

from probes.catalog.pod_routes import parse_route
from probes.context import ProbeContext
from probes.errors import ProbeSkip
from probes.facts import ENCAP_OVERHEAD_V4
from probes.model import Finding, FixProposal, Layer, ProbeResult, Status, fail, ok, warn
from probes.observations import LinkKind, Observations
from probes.registry import Explains, probe
from probes.transports.base import CommandResult, CommandRunner, run_all
from probes.transports.commands import Arg, iface, integer, ipv4, mtu, render

IP_ICMP_HEADERS = 28  # 20 IPv4 + 8 ICMP: ping -s N sends N + 28 bytes
PING_WAIT_S = 1
"""ping -w: each size gets echo requests 0.2 s apart until the first reply or ICMP error, for at most
this long. A reply on a LAN path comes in far less, which keeps the search short; one request alone
(-c 1 -W) would take a lost first packet (neighbour or tunnel resolution on a fresh path) for a size
that does not pass, and the search would report a path MTU that is not there."""
PMTU_SEARCH_STEP = 10  # bytes: precision of the path-MTU search when no ICMP names the MTU
_POD_MTU_LINKS = ("vxlan.calico", "tunl0", "wireguard.cali")
_TUNNEL_FOR = {"vxlan": "vxlan.calico", "ipip": "tunl0", "wireguard": "wireguard.cali"}
_VPN_NAMES = re.compile(r"^(tailscale|wg|tun|tap|zt|nebula|utun|ppp|wireguard)")
_WIRELESS = "test -d /sys/class/net/{dev}/wireless"


def link_mtus(output: str) -> dict[str, int]:
    """`ip -o link show` -> {name: mtu} (veth names lose their '@ifN' suffix)."""
    found: dict[str, int] = {}
    for match in re.finditer(r"^\d+: ([^:@\s]+)(?:@\S+)?: <[^>]*> mtu (\d+)", output, re.M):
        found[match.group(1)] = int(match.group(2))
    return found


def link_kind(name: str, wireless: bool) -> LinkKind:
    """wifi (wl* or a /sys/class/net/<if>/wireless directory), vpn (tunnel names), else ethernet."""
    if wireless or name.startswith("wl"):
        return "wifi"
    return "vpn" if _VPN_NAMES.match(name) else "ethernet"


def reported_mtu(output: str) -> int | None:
    match = re.search(r"mtu ?= ?(\d+)", output)
    return int(match.group(1)) if match else None


async def _ping(shell: CommandRunner, address: str, size: int, timeout: float) -> CommandResult:
    wait = Arg(str(integer(PING_WAIT_S, 1, 60, "ping wait")))
    command = render("ping -M do -c 1 -i 0.2 -w {wait} -s {size} {ip}",
                     wait=wait, size=mtu(size, 0), ip=ipv4(address))
    return await shell.run(command, timeout=timeout)


async def measure_path_mtu(shell: CommandRunner, address: str, link_mtu: int,
                           timeout: float) -> tuple[int | None, list[str]]:
    """Path MTU toward `address` (None when it cannot be measured) and the ping transcripts."""
    transcript: list[str] = []
    first = await _ping(shell, address, link_mtu - IP_ICMP_HEADERS, timeout)
    transcript.append(f"$ {first.command}\n{first.output}")
    if first.ok:
        return link_mtu, transcript
    told = reported_mtu(first.output)
    if told is not None:
        return told, transcript
    small = await _ping(shell, address, 56, timeout)
    transcript.append(f"$ {small.command}\n{small.output}")
    if not small.ok:
        return None, transcript  # the endpoint does not answer ping at all: nothing to measure
    # Big packets vanish without an ICMP answer (a PMTU black hole): find the largest that passes.
    low, high = 56 + IP_ICMP_HEADERS, link_mtu
    while high - low > PMTU_SEARCH_STEP:
        middle = (low + high) // 2
        probe_result = await _ping(shell, address, middle - IP_ICMP_HEADERS, timeout)
        transcript.append(f"$ {probe_result.command}\n{probe_result.output}")
        told = reported_mtu(probe_result.output)
        if told is not None:
            return told, transcript
        low, high = (middle, high) if probe_result.ok else (low, middle)
    return low, transcript


async def configured_pod_mtu(ctx: ProbeContext, links: dict[str, int]) -> tuple[int | None, str]:
    """The MTU Calico is configured to give pods, and where it was read (evidence only: pods keep the
    MTU they were created with, and calico-node applies a new value node by node)."""
    install = ctx.facts.installation
    if install is not None and install.pod_mtu:
        return install.pod_mtu, "Installation default" + (" spec" if install.mtu else " status")
    saved = await ctx.host.run("cat /var/lib/calico/mtu", timeout=ctx.settings.command_timeout)
    if saved.ok and saved.stdout.strip().isdigit():
        return int(saved.stdout.strip()), "/var/lib/calico/mtu"
    for name in (*_POD_MTU_LINKS, *sorted(n for n in links if n.startswith("cali"))):
        if name in links:
            return links[name], f"interface {name}"
    return None, "nowhere (no Installation mtu, /var/lib/calico/mtu or Calico interface)"


POD_IFACE = "eth0"  # the CNI's interface name in every pod (kubelet passes CNI_IFNAME=eth0)


PodPath = tuple[str, int | None, list[str]]


async def _pod_paths(ctx: ProbeContext, pod_value: int, timeout: float) -> list[PodPath]:
    """DF pings of the pod's full packet size from the debug pod toward the API endpoint and the peer
    pod: (what, path MTU or None when unmeasurable, transcript)."""
    assert ctx.facts.api_endpoint is not None
    targets = [(f"API endpoint {ctx.facts.api_endpoint.ip}", ctx.facts.api_endpoint.ip)]
    if ctx.peer_pod_ip:
        targets.append((f"peer pod {ctx.peer_pod_ip}", ctx.peer_pod_ip))
    # both at once: a black-holed target waits out its pings, and execs are cheap on the event loop
    results = await asyncio.gather(*(measure_path_mtu(ctx.pod, address, pod_value, timeout)
                                     for _, address in targets))
    return [(what, path, transcript) for (what, _), (path, transcript) in zip(targets, results, strict=True)]


def _host_api_ok(symptom: Finding, findings: Mapping[str, Finding]) -> bool:
    """The host reaches the API, so a pod failing on the same path is the pods' larger packets."""
    host = findings.get("host-api")
    return host is not None and host.status is Status.OK


def _is_warn(symptom: Finding, findings: Mapping[str, Finding]) -> bool:
    """return-path's "NAT applies but still failing" / encapsulation's "large packets lost"."""
    return symptom.status is Status.WARN


def _only_beyond_this_link(symptom: Finding, findings: Mapping[str, Finding]) -> bool:
    """The other node's mtu failed although its own link fits: only the pod path toward this one is short."""
    return symptom.observed is not None and symptom.observed.link_fits is True


# Packets larger than the path stall TLS handshakes (the certificate is the first big packet),
# leave return-path with "NAT applies but still failing", and lose large pod-to-pod packets; where
# pods need no NAT, masquerade's "no NAT and pod-api fails" is the same stall. A small link here also
# fails another node's mtu whose pod path toward this node's pod is all that is short.
@probe(id="mtu", layer=Layer.PHYSICAL, needs={"host", "pod", "peer-pod"}, fixes=("calico-mtu",), explains=(
    Explains("pod-api", when=_host_api_ok, only_when_failing=True),
    Explains("masquerade", when=_host_api_ok, only_when_failing=True),
    Explains("return-path", when=_is_warn, only_when_failing=True),
    Explains("encapsulation", when=_is_warn, only_when_failing=True, across=True),
    Explains("mtu", when=_only_beyond_this_link, only_when_failing=True, across=True),
))
async def mtu_probe(ctx: ProbeContext) -> ProbeResult:
    """A pod's real MTU + encapsulation overhead fits the node's link and the measured paths.

    Measures, never reads back: the MTU of the debug pod's `eth0` (created for this check, so it has
    what calico-node on this node gives new pods now), DF pings of that full size from the pod
    toward the API endpoint and a debug pod on another node (`ping -M do -s MTU-28`), and from the
    node the MTU of the interface `ip -o route get <API endpoint>` names and its path MTU. Adds the
    pool's overhead (IPIP 20, VXLAN 50, WireGuard 60) to the pod MTU. The Installation's MTU (else
    /var/lib/calico/mtu or vxlan.calico/tunl0) is shown as evidence, not used for the verdict.
    fail: pod MTU + overhead exceeds the interface or path MTU, or the pod's full-size packets do not
    pass (TLS handshakes stall); fix `calico-mtu` patches the Installation to the largest value that
    fits (not offered when the Installation already has it and only the rollout is missing).
    warn: the path is smaller than the interface but pod packets still fit.
    """
    timeout = ctx.settings.command_timeout
    endpoint = ctx.facts.api_endpoint
    if endpoint is None or ipaddress.ip_address(endpoint.ip).version != 4:
        raise ProbeSkip("the API server's real IPv4 address is unknown (no endpoint of default/kubernetes)")
    # independent reads at once: the node's in one batch (one SSH channel), the pod's beside it
    (all_links, route_out), pod_link = await asyncio.gather(
        run_all(ctx.host, ["ip -o link show", render("ip -o route get {ip}", ip=ipv4(endpoint.ip))],
                timeout=timeout),
        ctx.pod.run(render("ip -o link show dev {dev}", dev=iface(POD_IFACE)), timeout=timeout))
    links = link_mtus(all_links.stdout)
    pod_value = link_mtus(pod_link.stdout).get(POD_IFACE)
    if pod_value is None:
        raise ProbeSkip(f"cannot read the debug pod's {POD_IFACE} MTU: {pod_link.output}")
    pool = ctx.facts.pool_containing(_first_address(ctx.node.pod_cidr)) if ctx.node.pod_cidr else None
    encap = "wireguard" if "wireguard.cali" in links else (pool.encapsulation if pool else None)
    overhead = ENCAP_OVERHEAD_V4.get(encap or "", 0)

    route = parse_route(route_out.stdout) if route_out.ok else None
    if route is None or route.dev is None:
        raise ProbeSkip(f"the node has no route to the API endpoint {endpoint.ip}: {route_out.output}")
    pod_evidence = f"$ {pod_link.command}   (in debug pod {ctx.pod.name})\n{pod_link.output}"
    if route.dev == "lo" or route_out.stdout.startswith("local "):
        return ok(f"the API endpoint {endpoint.ip} is this node's own address: no link MTU on the path",
                  evidence=f"$ {route_out.command}\n{route_out.output}\n{pod_evidence}")
    dev = iface(route.dev)
    link_reads = [render("ip -o link show dev {dev}", dev=dev), render(_WIRELESS, dev=dev)]
    link_mtu = links.get(dev.value)
    if link_mtu is not None:
        # `ip -o link show` gave its MTU: the pings start now, the link's own line (evidence) and its
        # wireless check are read beside them
        (path_mtu, transcript), pod_paths, (link, wireless), (configured, configured_source) = (
            await asyncio.gather(
                measure_path_mtu(ctx.host, endpoint.ip, link_mtu, timeout),
                _pod_paths(ctx, pod_value, timeout),
                run_all(ctx.host, link_reads, timeout=timeout), configured_pod_mtu(ctx, links)))
    else:
        (configured, configured_source), link = await asyncio.gather(
            configured_pod_mtu(ctx, links), ctx.host.run(link_reads[0], timeout=timeout))
        link_mtu = link_mtus(link.stdout).get(dev.value)
        if link_mtu is None:
            raise ProbeSkip(f"cannot read the MTU of {dev}: {link.output}")
        # The node's own path and the pod's paths are measured at the same time (different transports).
        (path_mtu, transcript), pod_paths, wireless = await asyncio.gather(
            measure_path_mtu(ctx.host, endpoint.ip, link_mtu, timeout), _pod_paths(ctx, pod_value, timeout),
            ctx.host.run(link_reads[1], timeout=timeout))

    effective = min(link_mtu, path_mtu or link_mtu)
    needed = pod_value + overhead
    short = [(what, path) for what, path, _ in pod_paths if path is not None and path < pod_value]
    configured_line = f"configured pod MTU {configured or 'unknown'} (from {configured_source})"
    if configured and configured != pod_value:
        configured_line += (f"; this pod has {pod_value}: calico-node on {ctx.node.name} does not give new "
                            "pods the configured MTU yet")
    facts_line = (f"pod MTU {pod_value} (measured: debug pod {POD_IFACE}), encapsulation {encap or 'none'} "
                  f"(+{overhead}), {dev} MTU {link_mtu}, path MTU to {endpoint.ip}: "
                  f"{path_mtu if path_mtu else 'not measurable (no ping answer)'}")
    pod_lines = [f"from the pod, {POD_IFACE} MTU {pod_value} toward {what}: "
                 + (f"path MTU {path}" if path is not None else "not measurable (no ping answer)")
                 for what, path, _ in pod_paths]
    if not ctx.peer_pod_ip:
        pod_lines.append("no debug pod on another node: the pod-to-pod path was not measured")
    evidence = "\n".join([facts_line, configured_line, *pod_lines, pod_evidence,
                          f"$ {route_out.command}\n{route_out.output}", f"$ {link.command}\n{link.output}",
                          *transcript, *(line for _, _, lines in pod_paths for line in lines)])
    # the numbers and the pings' own words (frag needed, message too long, loss), not every transcript line
    told = [ln for t in [*transcript, *(line for _, _, lines in pod_paths for line in lines)]
            for ln in t.splitlines() if re.search(r"mtu|packet loss|^\$ ping", ln, re.I)]
    proof = "\n".join([facts_line, *pod_lines, *told[-6:]])
    observed = Observations(uplink=dev.value, uplink_mtu=link_mtu,
                            uplink_kind=link_kind(dev.value, wireless.ok), path_mtu=path_mtu,
                            pod_mtu=pod_value, link_fits=needed <= effective)
    if needed > effective or short:
        recommended = min([effective - overhead, *(path for _, path in short)])
        if needed > effective:
            where = "path" if effective < link_mtu else dev.value
            summary = (f"pod MTU {pod_value} + {encap or 'no'} overhead {overhead} = {needed} exceeds "
                       f"{where} MTU {effective} toward {endpoint.ip}")
        else:
            summary = f"pod packets of {pod_value} bytes do not pass: " + ", ".join(
                f"path MTU {path} toward {what}" for what, path in short)
        if configured == recommended:
            # The Installation already has the value: the rollout (or recreating pods) is what is missing.
            return fail(summary, evidence=evidence,
                        remediation=_rollout_remediation(ctx.node.name, recommended), proof=proof,
                        observed=observed)
        return fail(summary, evidence=evidence,
                    remediation=_remediation(dev.value, link_mtu, effective, recommended, encap),
                    fix=FixProposal(id="calico-mtu", params={"mtu": recommended}), proof=proof,
                    observed=observed)
    if path_mtu is not None and path_mtu < link_mtu:
        return warn(f"path MTU to {endpoint.ip} is {path_mtu}, below {dev} MTU {link_mtu}; pod packets "
                    f"({needed}) fit, host traffic relies on ICMP frag-needed getting through",
                    evidence=evidence, proof=proof, observed=observed)
    return ok(f"pod MTU {pod_value} + {overhead} = {needed} fits {dev} MTU {link_mtu}"
              f"{f' and path MTU {path_mtu}' if path_mtu else ''}", evidence=evidence, observed=observed)


def _first_address(pod_cidr: str) -> str:
    return str(ipaddress.ip_network(pod_cidr, strict=False).network_address)


def _rollout_remediation(node: str, mtu: int) -> str:
    return "\n".join([
        f"The Installation already sets the pod MTU to {mtu}, but pods created on {node} now still get "
        "the old one: calico-node on this node has not restarted with it yet.",
        "  kubectl rollout status ds/calico-node -n calico-system",
        "  kubectl get tigerastatus calico",
        "Once it has rolled out, recreate the pods created before (they keep their old eth0 MTU), e.g.",
        "  kubectl rollout restart deployment/<name> -n <namespace>",
    ])


def _remediation(dev: str, link_mtu: int, effective: int, recommended: int, encap: str | None) -> str:
    tunnel = _TUNNEL_FOR.get(encap or "")
    lines = [
        f"Set the pod network MTU to {recommended} ({effective} minus the {encap or 'no'} overhead) "
        "in the Calico Installation (recommended):",
        f"  kubectl patch installation default --type=merge "
        f"-p '{{\"spec\":{{\"calicoNetwork\":{{\"mtu\":{recommended}}}}}}}'",
        "  kubectl rollout status ds/calico-node -n calico-system",
        "  Existing pods keep their old eth0 MTU until they are recreated.",
        "Fallback (manual, temporary, lost on reboot / calico-node restart):",
    ]
    if effective < link_mtu:
        lines.append(f"  sudo ip link set {dev} mtu {effective}")
    if tunnel:
        lines.append(f"  sudo ip link set {tunnel} mtu {recommended}")
    lines.append("  kubectl delete pod -n calico-system calico-node-<pod-on-this-node>")
    return "\n".join(lines)
