"""Probe `masquerade`: is pod egress toward the API endpoint's real address source-NATed?

Run by the engine; `return_path` reads its finding. Three sources of NAT are checked, in order:
an explicit MASQUERADE/SNAT rule in nat POSTROUTING (following jumps) in the iptables backend the
node's `iptables` alternative points at, a masquerade/snat line in `nft list ruleset`, and Calico's
natOutgoing — which applies only when the post-DNAT destination is outside every IP pool
(docs/calico.md#how-calico-masquerades; a pool overlapping the node LAN silently disables it).
Without NAT the pod's source IP reaches the router, which usually has no route back; when the
pod-api probe shows replies do come back (the network routes the pod CIDR) that is fine.
"""

from __future__ import annotations

import ipaddress
import re
import shlex
from dataclasses import dataclass

from probes.catalog.pod_routes import parse_route
from probes.context import ProbeContext
from probes.errors import ProbeSkip
from probes.model import FixProposal, Layer, ProbeResult, Status, fail, ok, warn
from probes.observations import Observations
from probes.registry import Explains, probe
from probes.transports.base import CommandResult, run_all
from probes.transports.commands import ipv4, render

NAT_TARGETS = ("MASQUERADE", "SNAT")
_PROOF_CHAINS = ("-A POSTROUTING", "-A cali-nat-outgoing")
_MAX_CHAIN_DEPTH = 8  # iptables itself limits jump nesting; this only guards against odd dumps


@dataclass(frozen=True)
class Backend:
    """The iptables binaries the node's `iptables` alternative points at."""

    iptables: str
    save: str


_ALTERNATIVE = "readlink -f /etc/alternatives/iptables"


def iptables_backend(target: CommandResult) -> Backend:
    """legacy when /etc/alternatives/iptables resolves to iptables-legacy (`target`: what _ALTERNATIVE
    printed), else the default (nft)."""
    if target.ok and target.stdout.strip().endswith("-legacy"):
        return Backend("/usr/sbin/iptables-legacy", "iptables-legacy-save")
    return Backend("/usr/sbin/iptables", "iptables-save")


def nat_rules(dump: str) -> dict[str, list[list[str]]]:
    """`iptables-save -t nat` -> {chain: [rule tokens after '-A CHAIN']}."""
    chains: dict[str, list[list[str]]] = {}
    for line in dump.splitlines():
        if line.startswith("-A "):
            # shlex only where a quote or escape needs it (comments): a sweep parses every node's nat table
            tokens = shlex.split(line) if any(c in line for c in "\"'\\") else line.split()
            chains.setdefault(tokens[1], []).append(tokens[2:])
    return chains


def _option(tokens: list[str], name: str) -> tuple[str | None, bool]:
    """Value of an option and whether it is negated ('! -s X')."""
    for i, token in enumerate(tokens[:-1]):
        if token == name:
            return tokens[i + 1], i > 0 and tokens[i - 1] == "!"
    return None, False


def _covers(network: str | None, negated: bool, pod_cidr: str) -> bool:
    if network is None:
        return True
    pods = ipaddress.ip_network(pod_cidr, strict=False)
    rule = ipaddress.ip_network(network, strict=False)
    inside = pods.version == rule.version and pods.subnet_of(rule)  # type: ignore[arg-type]
    return inside != negated


def _iface_matches(pattern: str, dev: str) -> bool:
    """iptables -o semantics: 'eth+' matches every name starting with 'eth'."""
    return dev.startswith(pattern[:-1]) if pattern.endswith("+") else dev == pattern


def _matches_dst(network: str | None, negated: bool, destination: str) -> bool:
    if network is None:
        return True
    return (ipaddress.ip_address(destination) in ipaddress.ip_network(network, strict=False)) != negated


def explicit_nat_rule(chains: dict[str, list[list[str]]], pod_cidr: str, dev: str,
                      destination: str) -> str | None:
    """The first POSTROUTING-reachable MASQUERADE/SNAT rule that NATs pod_cidr -> destination via dev."""
    def walk(chain: str, depth: int) -> str | None:
        for tokens in chains.get(chain, []):
            if "--match-set" in tokens:
                continue  # ipset-based rules are Calico's natOutgoing, judged separately
            source, source_neg = _option(tokens, "-s")
            out, out_neg = _option(tokens, "-o")
            dst, dst_neg = _option(tokens, "-d")
            if not _covers(source, source_neg, pod_cidr) or not _matches_dst(dst, dst_neg, destination):
                continue
            if out is not None and _iface_matches(out, dev) == out_neg:
                continue
            target = _option(tokens, "-j")[0] or _option(tokens, "-g")[0]
            if target is None or target.startswith("KUBE-") or "--mark" in tokens:
                # kube-proxy only masquerades packets it marked, and it does not mark pod->ClusterIP
                # traffic when it knows the cluster CIDR (docs/kube-proxy.md#iptables-mode): not NAT
                # for pod egress.
                continue
            if target in NAT_TARGETS:
                return f"-A {chain} " + " ".join(tokens)
            if target in chains and depth < _MAX_CHAIN_DEPTH:
                found = walk(target, depth + 1)
                if found:
                    return found
        return None

    return walk("POSTROUTING", 0)


def calico_nat_rule(chains: dict[str, list[list[str]]]) -> str | None:
    for chain, rules in chains.items():
        for tokens in rules:
            if "cali40masq-ipam-pools" in tokens and _option(tokens, "-j")[0] in NAT_TARGETS:
                return f"-A {chain} " + " ".join(tokens)
    return None


def nft_nat_line(ruleset: str, pod_cidr: str, dev: str) -> str | None:
    """A masquerade/snat line of `nft list ruleset` matching the pod CIDR (or no source) and dev."""
    table = ""
    for line in ruleset.splitlines():
        opened = re.match(r"^table (?:ip|inet) (\S+) \{", line)
        table = opened.group(1) if opened else table
        if not re.search(r"\b(masquerade|snat)\b", line) or table in ("kube-proxy", "calico"):
            continue
        if "@" in line or "mark" in line or "match-set" in line:
            continue  # set-, mark- or xt-match-based: kube-proxy's or Calico's own rules, judged elsewhere
        saddr = re.search(r"ip saddr (!= )?(\S+/\d+|\S+\.\S+)", line)
        oif = re.search(r'oifname (!= )?"?([^"\s]+)"?', line)
        if not saddr and not oif:
            # An unconditional masquerade line is kube-proxy's (iptables-nft shows its KUBE-POSTROUTING
            # here too, its mark check sits on an earlier line): it does not NAT pod egress.
            continue
        if saddr and not _covers(saddr.group(2), bool(saddr.group(1)), pod_cidr):
            continue
        if oif and (oif.group(2) == dev) == bool(oif.group(1)):
            continue
        return line.strip()
    return None


# Without NAT the replies to pod IPs die at the router: pod-api and pod-dns fail, and return-path's
# "the router has no route back" is the same fault seen from the router's side (one fix: NAT).
@probe(id="masquerade", layer=Layer.IPTABLES, needs={"host"}, after=("pod-api",), fixes=("masquerade",),
       explains=(Explains("pod-api", only_when_failing=True), Explains("pod-dns", only_when_failing=True),
                 Explains("return-path", only_when_failing=True)))
async def masquerade(ctx: ProbeContext) -> ProbeResult:
    """Pod egress toward the API endpoint is source-NATed (explicit rule, nftables or Calico natOutgoing).

    Reads nat POSTROUTING (`iptables-save -t nat` of the backend in use, `nft list ruleset`) for
    a MASQUERADE/SNAT rule covering the pod CIDR on the interface toward the API server's real
    address, then Calico natOutgoing, which only applies when that address is outside every IP
    pool (`ipset test cali40all-ipam-pools`; a pool overlapping the LAN silently disables it,
    docs/calico.md#how-calico-masquerades). The summary says which: explicit rule, "Calico NAT
    present", "NAT skipped: destination inside pool X", or "no NAT at all". ok: NAT applies, or no NAT is
    needed because pod-api answers. fail: no NAT and pod-api fails; fix `masquerade` installs an
    idempotent systemd unit for `-s <pod CIDR> -o <iface> -j MASQUERADE`.
    """
    timeout = ctx.settings.command_timeout
    pod_cidr, endpoint = ctx.node.pod_cidr, ctx.facts.api_endpoint
    if not pod_cidr:
        raise ProbeSkip(f"node {ctx.node.name} has no spec.podCIDR")
    if endpoint is None:
        raise ProbeSkip("the API server's real address is unknown (no endpoint of default/kubernetes)")
    pool = ctx.facts.pool_containing(str(ipaddress.ip_network(pod_cidr, strict=False).network_address))
    nat_outgoing = pool is not None and pool.nat_outgoing
    reads = [render("ip -o route get {ip}", ip=ipv4(endpoint.ip)), _ALTERNATIVE, "nft list ruleset"]
    if nat_outgoing:  # whether Calico's natOutgoing applies to the endpoint (used only without a NAT rule)
        reads.append(render("ipset test cali40all-ipam-pools {ip}", ip=ipv4(endpoint.ip)))
    # the reads that need nothing read before them, in one batch (one SSH channel, one round trip)
    route_out, alternative, nft, *pool_test = await run_all(ctx.host, reads, timeout=timeout)
    route = parse_route(route_out.stdout) if route_out.ok else None
    if route is None or route.dev is None:
        raise ProbeSkip(f"the node has no route to the API endpoint {endpoint.ip}: {route_out.output}")
    dev = route.dev
    backend = iptables_backend(alternative)
    dump = await ctx.host.run(f"{backend.save} -t nat", timeout=timeout)
    chains = nat_rules(dump.stdout)
    evidence = [f"$ {route_out.command}\n{route_out.output}", f"$ {dump.command}\n{dump.output}"]
    # what proves it: the route's interface and the POSTROUTING rules (not the whole nat table)
    proof = [f"$ {route_out.command}\n{route_out.output}",
             f"$ {dump.command} | grep POSTROUTING\n" + "\n".join(
                 ln for ln in dump.stdout.splitlines() if ln.startswith(_PROOF_CHAINS))]

    fix = FixProposal(id="masquerade", params={"pod_cidr": pod_cidr, "interface": dev})
    rule = explicit_nat_rule(chains, pod_cidr, dev, endpoint.ip)
    if rule:
        return ok(f"explicit {_target(rule)} for {pod_cidr} on {dev}",
                  evidence="\n".join([rule, *evidence]), proof=rule,
                  observed=Observations(pod_nat="explicit"))
    line = nft_nat_line(nft.stdout, pod_cidr, dev) if nft.ok else None
    if line:
        return ok(f"explicit nftables NAT for {pod_cidr} on {dev}",
                  evidence="\n".join([line, *evidence]), proof=line,
                  observed=Observations(pod_nat="nftables"))

    if pool is not None and pool_test:
        test = pool_test[0]
        evidence.append(f"$ {test.command}\n{test.output}")
        proof.append(f"pool {pool.name} {pool.cidr} natOutgoing=true\n$ {test.command}\n{test.output}")
        inside_pool = ctx.facts.pool_containing(endpoint.ip)
        if test.ok:
            inside = True
        elif "NOT in set" in test.output:
            inside = False
        else:  # no ipset tool or set on the node (nftables mode): fall back to the pools from the API
            inside = inside_pool is not None
        if inside:
            where = f"{inside_pool.name} ({inside_pool.cidr})" if inside_pool else "cali40all-ipam-pools"
            summary = f"NAT skipped: destination {endpoint.ip} inside pool {where}"
            return await _no_nat(ctx, summary, evidence, proof, fix, backend, pod_cidr, dev)
        calico_rule = calico_nat_rule(chains) or "(Calico rule not in this iptables backend: nftables mode?)"
        return ok(f"Calico NAT present (pool {pool.name} natOutgoing, {endpoint.ip} outside every pool)",
                  evidence="\n".join([calico_rule, *evidence]), proof="\n".join([calico_rule, *proof[2:]]),
                  observed=Observations(pod_nat="calico"))
    return await _no_nat(ctx, "no NAT at all", evidence, proof, fix, backend, pod_cidr, dev)


def _target(rule: str) -> str:
    return "SNAT" if "-j SNAT" in rule else "MASQUERADE"


async def _no_nat(ctx: ProbeContext, summary: str, evidence: list[str], proof: list[str], fix: FixProposal,
                  backend: Backend, pod_cidr: str, dev: str) -> ProbeResult:
    pod_api = await ctx.result_of("pod-api")
    shown = "\n".join(proof)
    if pod_api is not None and pod_api.status is Status.OK:
        # Replies to pod IPs come back (the network routes the pod CIDR): no NAT is needed here.
        return ok(f"{summary}; not needed: pod-api answers, so the network routes {pod_cidr} back",
                  evidence="\n".join(evidence), proof=shown,
                  observed=Observations(pod_nat="none", pod_nat_needed=False))
    remediation = masquerade_remediation(backend, pod_cidr, dev)
    if pod_api is None or pod_api.status is not Status.FAIL:
        # Without a pod-api answer nobody saw replies go missing: the router may route the pod CIDR.
        unproven = "pod-api not run" if pod_api is None else f"pod-api {pod_api.status}"
        return warn(f"{summary} for {pod_cidr} leaving via {dev}; whether replies come back is unproven "
                    f"({unproven})", evidence="\n".join(evidence), remediation=remediation, fix=fix,
                    proof=shown, observed=Observations(pod_nat="none"))
    return fail(f"{summary} for {pod_cidr} leaving via {dev}", evidence="\n".join(evidence),
                remediation=remediation, fix=fix, proof=shown,
                observed=Observations(pod_nat="none", pod_nat_needed=True))


def masquerade_remediation(backend: Backend, pod_cidr: str, dev: str) -> str:
    rule = f"-t nat -A POSTROUTING -s {pod_cidr} -o {dev} -j MASQUERADE"
    check = rule.replace(" -A ", " -C ", 1)
    return "\n".join([
        "NAT pod traffic to the node's address on this node",
        "(docs/troubleshooting.md#router-drops-replies-to-pod-ips):",
        f"  sudo {backend.iptables} {rule}",
        "Make it permanent (idempotent, survives reboots):",
        "  sudo tee /etc/systemd/system/netcheck-masquerade.service << 'EOF'",
        "  [Unit]",
        "  Description=Masquerade Kubernetes pod traffic leaving the node",
        "  After=network.target",
        "  [Service]",
        "  Type=oneshot",
        f"  ExecStart=/bin/sh -c '{backend.iptables} {check} || {backend.iptables} {rule}'",
        "  RemainAfterExit=yes",
        "  [Install]",
        "  WantedBy=multi-user.target",
        "  EOF",
        "  sudo systemctl daemon-reload && sudo systemctl enable --now netcheck-masquerade.service",
    ])
