"""Probe `pod-block-routes`: how this node routes to every other node's pod block.

Run by the engine, and on every other node by the node diff (`Engine.compare`): whether a new node's
pod block is routed from everywhere is only visible from the other nodes. One command (one `ip -batch`)
asks `ip -o route get` for the first address of each other node's `spec.podCIDR`. A route is `direct`
(via that node, or a Calico tunnel device), `default` (left to the default gateway: fine when the
router knows the pod blocks, which only a request across can show), or `unreachable` (an unreachable,
prohibit or blackhole route: nothing from here reaches those pods).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping

from probes.catalog.pod_routes import parse_route
from probes.context import ProbeContext
from probes.model import Finding, Layer, ProbeResult, fail, ok, skip
from probes.observations import Observations, RouteKind
from probes.registry import Explains, probe
from probes.transports.commands import ip, render

_DEFAULT = "ip -o route show default"
_LINE = re.compile(r"^(?P<addr>[0-9a-fA-F.:]+) (?P<route>.*)$")
_BATCH_MARK = "ip-batch"
"""First line of the answer when the node's `ip` took the lookups as one batch (iproute2's -batch)."""
_FAILED = re.compile(r"^Command failed -:(?P<line>[0-9]+)$")


def lookup_command(addresses: list[str]) -> str:
    """One `ip -o -force -batch -` with a `route get` per address: one process however many nodes the
    cluster has (a shell loop started `ip` and `head` per node, on every node: quadratic in a sweep).
    An `ip` without -batch (BusyBox) gets the loop
    `for a in A B; do printf '%s ' "$a"; ip -o route get "$a" 2>&1 | head -n 1; done`."""
    args = {f"a{i}": ip(address) for i, address in enumerate(addresses)}
    keys = " ".join(f"{{{key}}}" for key in args)
    loop = f"for a in {keys}; do printf '%s ' \"$a\"; ip -o route get \"$a\" 2>&1 | head -n 1; done"
    batch = f"echo {_BATCH_MARK}; printf 'route get %s\\n' {keys} | ip -o -force -batch - 2>&1"
    return render(f"if ip -force -batch /dev/null 2>/dev/null; then {batch}; else {loop}; fi", **args)


def parse_answers(output: str, addresses: list[str]) -> dict[str, str]:
    """Each address's `ip -o route get` answer (a route line or the error ip printed for it).
    The batch prints each route as `ip route get` does (the address first, or after a route type:
    `local 10.0.0.1 ...`) and each failure as its message then `Command failed -:N` (N: the line of
    the batch, i.e. the address's position); the loop prints `ADDRESS ANSWER` lines."""
    lines = output.splitlines()
    if not lines or lines[0].strip() != _BATCH_MARK:
        return {m["addr"]: m["route"].strip() for m in map(_LINE.match, lines) if m}
    wanted, message = set(addresses), ""
    answers: dict[str, str] = {}
    for line in (raw.strip() for raw in lines[1:]):
        failed = _FAILED.match(line)
        words = line.split()
        if failed:
            index = int(failed["line"]) - 1
            if 0 <= index < len(addresses):
                answers.setdefault(addresses[index], message)
        elif words and words[0] in wanted:
            answers.setdefault(words[0], line)
        elif len(words) > 1 and words[1] in wanted:
            answers.setdefault(words[1], line)
        else:
            message = line  # an error message: its `Command failed` line follows
    return answers


def first_address(pod_cidr: str) -> str:
    network = ipaddress.ip_network(pod_cidr, strict=False)
    return str(network.network_address + 1) if network.num_addresses > 2 else str(network.network_address)


def classify(answer: str, default_via: str | None) -> RouteKind:
    """One `ip -o route get` answer as direct / default / unreachable / local."""
    if answer.startswith("local "):
        return "local"
    route = parse_route(answer)
    if route is None or route.dev is None:
        return "unreachable"
    if default_via is not None and route.via == default_via:
        return "default"
    return "direct"


def _peer_block_unreachable(symptom: Finding, findings: Mapping[str, Finding]) -> bool:
    """The symptom crossed to a node whose pod block this node has no route to."""
    mine = findings.get("pod-block-routes")
    routes = mine.observed.pod_block_routes if mine is not None and mine.observed is not None else None
    return bool(routes and symptom.peer and routes.get(symptom.peer) == "unreachable")


@probe(id="pod-block-routes", layer=Layer.HOST_ROUTE, needs={"host"},
       explains=(Explains("encapsulation", when=_peer_block_unreachable),))
async def pod_block_routes(ctx: ProbeContext) -> ProbeResult:
    """This node has a usable route to every other node's pod block (direct, tunnel or default gateway).

    Runs `ip -o route show default` and, for the first address of each other node's podCIDR,
    `ip -o route get <address>`. ok: every block is routed — directly (via that node or a Calico
    tunnel device) or through the default gateway (the summary says which; whether the gateway knows
    the pod blocks only a request across shows, see encapsulation). fail: an unreachable, prohibit or
    blackhole route to a block: pods here cannot reach that node's pods (a stale static route; delete
    it). skip: no other node has a podCIDR.
    """
    others = [n for n in ctx.facts.nodes if n.name != ctx.node.name and n.pod_cidr]
    if not others:
        return skip("no other node has a spec.podCIDR")
    timeout = ctx.settings.command_timeout
    default = await ctx.host.run(render(_DEFAULT), timeout=timeout)
    default_route = parse_route(default.stdout) if default.ok else None
    default_via = default_route.via if default_route is not None else None
    addresses = {first_address(n.pod_cidr or ""): n for n in others}
    result = await ctx.host.run(lookup_command(list(addresses)), timeout=timeout)
    answers = parse_answers(result.stdout, list(addresses))
    routes: dict[str, RouteKind] = {}
    lines = []
    for address, node in addresses.items():
        answer = answers.get(address, "")
        routes[node.name] = classify(answer, default_via) if answer else "unreachable"
        lines.append(f"{node.name} {node.pod_cidr}: {routes[node.name]} ({answer or 'no answer'})")
    evidence = "\n".join([f"$ {default.command}\n{default.output}", f"$ {result.command}\n{result.output}"])
    observed = Observations(pod_block_routes=routes)
    dead = [n for n, kind in routes.items() if kind == "unreachable"]
    if dead:
        return fail(f"no route from {ctx.node.name} to the pod block of {', '.join(dead)}", evidence,
                    "Remove the unreachable/blackhole route(s) shown (`sudo ip route del <CIDR>`); Calico "
                    "programs pod-block routes itself (calico-node logs on this node say why it did not).",
                    proof="\n".join(line for line in lines if "unreachable" in line), observed=observed)
    by_kind: dict[str, list[str]] = {}
    for name, kind in routes.items():
        by_kind.setdefault(kind, []).append(name)
    words = {"direct": "directly", "default": "via the default gateway", "local": "locally"}
    said = "; ".join(f"{words[kind]} to {', '.join(names)}" for kind, names in by_kind.items())
    return ok(f"routes to all {len(routes)} other pod blocks: {said}", evidence, proof="\n".join(lines),
              observed=observed)

