"""Probe `return-path`: the WiFi case study — pod packets leave, replies never come back.

See docs/troubleshooting.md#router-drops-replies-to-pod-ips.
Run by the engine after host-api, pod-api and masquerade, whose findings it combines: host ok,
pod failing and no NAT means the pod's own source IP reached the router, which has no route back
to the pod CIDR. The node's conntrack table (SYN_SENT / [UNREPLIED] entries for the pod IP) or a
short capture of unanswered SYNs on the outgoing interface is the evidence.
"""

from __future__ import annotations

import asyncio
import math
import re

from probes.catalog.host_api import api_curl_command
from probes.catalog.pod_routes import parse_route
from probes.context import ProbeContext
from probes.errors import ProbeSkip
from probes.model import Layer, ProbeResult, Status, fail, ok, warn
from probes.registry import Explains, probe
from probes.transports.commands import Arg, iface, integer, ipv4, render

CAPTURE_PACKETS = 20


# Replies to pod IPs that the router cannot route also lose the cross-node pod traffic it carries.
@probe(id="return-path", layer=Layer.ROUTER, needs={"host", "pod"},
       after=("host-api", "pod-api", "masquerade"), fixes=("masquerade",), explains=(
           Explains("pod-api", only_when_failing=True), Explains("pod-dns", only_when_failing=True),
           Explains("encapsulation", only_when_failing=True),
       ))
async def return_path(ctx: ProbeContext) -> ProbeResult:
    """Replies to pod IPs come back (host-api ok, pod-api failing, no NAT: the router has no route back).

    The case study's diagnosis, from host-api, pod-api and masquerade; the evidence is what the
    node sees: `conntrack -L -s <pod IP>` entries stuck in SYN_SENT [UNREPLIED], or a short
    `tcpdump` of SYN retransmissions with no reply. fail: pod source IPs leave the node and the
    router drops the replies (no route to the pod CIDR); fix `masquerade`. warn: NAT applies but
    pod-api still fails (look at mtu, firewalls). skip: host-api fails (node problem first).
    """
    host_api = await ctx.result_of("host-api")
    pod_api = await ctx.result_of("pod-api")
    masq = await ctx.result_of("masquerade")
    if host_api is None or pod_api is None or masq is None:
        raise ProbeSkip("needs host-api, pod-api and masquerade in the same run")
    if host_api.status is not Status.OK:
        raise ProbeSkip(f"node-level problem first: host-api is {host_api.status}: {host_api.summary}")
    if pod_api.status is Status.OK:
        return ok(f"replies to pod IPs come back (pod-api ok: {pod_api.summary})")
    if pod_api.status is not Status.FAIL:
        raise ProbeSkip(f"pod-api did not give an answer ({pod_api.status}: {pod_api.summary})")
    if masq.status is Status.OK:
        return warn(f"pod-api fails although NAT applies ({masq.summary}): look at MTU, a firewall or "
                    "pod routes instead", evidence=pod_api.evidence, proof=pod_api.proof_or_evidence,
                    remediation="See the mtu, pod-routes and iptables findings of this node.")
    if masq.status is not Status.FAIL:
        raise ProbeSkip(f"masquerade did not give an answer ({masq.status}: {masq.summary})")

    pod_cidr = ctx.node.pod_cidr or "the pod CIDR"
    pod_ip = ctx.pod.ip  # needs={"pod"}: the engine runs this probe only with the debug pod
    evidence = [f"host-api: {host_api.summary}", f"pod-api: {pod_api.summary}", f"masquerade: {masq.summary}",
                await _observe(ctx, pod_ip)]
    # the unreplied connections (or unanswered SYNs) are the proof; the three verdicts are its premises
    seen = [ln for ln in evidence[3:] for ln in ln.splitlines()
            if re.search(r"SYN_SENT|UNREPLIED|Flags \[S\]", ln)][:8]
    return fail(f"replies to pod IP {pod_ip} cannot come back: the router has no route to {pod_cidr}",
                evidence="\n".join(evidence), remediation=masq.remediation, fix=masq.fix,
                proof="\n".join([*evidence[:3], *seen]))


async def _observe(ctx: ProbeContext, pod_ip: str) -> str:
    """Unreplied connections of the pod in conntrack, or else a capture of its unanswered SYNs."""
    timeout = ctx.settings.command_timeout
    table = await ctx.host.run(render("conntrack -L -s {ip} 2>/dev/null", ip=ipv4(pod_ip)), timeout=timeout)
    unreplied = [ln for ln in table.stdout.splitlines() if re.search(r"SYN_SENT|\[UNREPLIED\]", ln)]
    if unreplied:
        return f"$ {table.command}   (unreplied entries)\n" + "\n".join(unreplied)
    return await _capture(ctx, pod_ip) or f"$ {table.command}\n{table.output or '(no entries)'}"


async def _capture(ctx: ProbeContext, pod_ip: str) -> str | None:
    """tcpdump on the interface toward the API endpoint while the pod retries its request."""
    endpoint = ctx.facts.api_endpoint
    if endpoint is None:
        return None
    timeout = ctx.settings.command_timeout
    route_out = await ctx.host.run(render("ip -o route get {ip}", ip=ipv4(endpoint.ip)), timeout=timeout)
    route = parse_route(route_out.stdout) if route_out.ok else None
    if route is None or route.dev is None:
        return None
    seconds = Arg(str(integer(math.ceil(ctx.settings.http_timeout), 1, 600, "capture seconds")))
    count = Arg(str(CAPTURE_PACKETS))
    capture_cmd = render("timeout {seconds} tcpdump -ni {dev} -c {count} host {ip}", seconds=seconds,
                         dev=iface(route.dev), count=count, ip=ipv4(pod_ip))
    curl = api_curl_command(ctx.facts.api_service_ip, ctx.facts.api_service_port, ctx.settings.http_timeout)
    captured, _ = await asyncio.gather(ctx.host.run(capture_cmd, timeout=timeout),
                                       ctx.pod.run(curl, timeout=timeout))
    return f"$ {captured.command}   (while the pod retried its request)\n{captured.output}"


