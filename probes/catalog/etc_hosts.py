"""Probe `etc-hosts`: every cluster node's name resolves on this node.

Run by the engine (docs/troubleshooting.md#node-names-that-do-not-resolve).
One command asks `getent ahosts` for every node name at once (not `getent hosts`, which asks DNS
for an IPv6 address of every name before /etc/hosts answers: the page above); its exit status says
only "some key was missing", so only then does the same command ask for each name in turn, one
call and one output line per name (a loop on every node is quadratic in a fleet sweep: 30 nodes,
900 `getent`s). Of getaddrinfo's three lines per address (one per socket type) the STREAM one is
kept: address and name, as `getent hosts` prints them.
"""

from __future__ import annotations

import re

from probes.context import ProbeContext
from probes.model import FixProposal, Layer, ProbeResult, fail, ok, skip
from probes.observations import Observations
from probes.registry import probe
from probes.transports.commands import node_name, render

_MISSING = "MISSING"
_ALL_RESOLVE = "ALL NAMES RESOLVE"
"""Printed after getent's lines when one call resolved every name (a host alias has no spaces)."""
_LINE = re.compile(r"^(?P<name>[a-z0-9.-]+): (?P<answer>.*)$")


def lookup_command(names: list[str]) -> str:
    """`if out=$(getent ahosts master worker1 ...); then printf '%s\\n' "$out" | grep STREAM;
    echo 'ALL NAMES RESOLVE'; else for n in master worker1 ...; do printf '%s: ' "$n";
    getent ahosts "$n" | grep STREAM || echo MISSING; done; fi` (the first call's partial answer is
    dropped: the loop's lines say which name is missing)."""
    args = {f"n{i}": node_name(name) for i, name in enumerate(names)}
    keys = " ".join(f"{{{key}}}" for key in args)
    loop = (f"for n in {keys}; do printf '%s: ' \"$n\"; getent ahosts \"$n\" | grep STREAM "
            f"|| echo {_MISSING}; done")
    every = f"out=$(getent ahosts {keys})"
    return render(f"if {every}; then printf '%s\\n' \"$out\" | grep STREAM; echo '{_ALL_RESOLVE}'; "
                  f"else {loop}; fi", **args)


def missing_names(output: str, names: list[str]) -> list[str]:
    """Names whose line says MISSING, or that have no line at all (the loop was cut short); none when
    one getent resolved them all."""
    if any(line.strip() == _ALL_RESOLVE for line in output.splitlines()):
        return []
    answered = {}
    for line in output.splitlines():
        m = _LINE.match(line.strip())
        if m and m["name"] not in answered:
            answered[m["name"]] = m["answer"].strip()
    return [n for n in names if answered.get(n, _MISSING) == _MISSING]


@probe(id="etc-hosts", layer=Layer.HOST_ROUTE, needs={"host"}, fixes=("etc-hosts",))
async def etc_hosts(ctx: ProbeContext) -> ProbeResult:
    """Every cluster node's name resolves on this node (`getent ahosts`, i.e. /etc/hosts or DNS).

    Runs `getent ahosts <name>` on the node for each node name the API lists. fail: the names that
    do not resolve, listed exactly with their InternalIPs; remediation appends those lines to
    /etc/hosts (docs/troubleshooting.md#node-names-that-do-not-resolve) and restarts kubelet.
    ok: every name resolves. skip: the API listed no nodes.
    """
    names = [n.name for n in ctx.facts.nodes]
    if not names:
        return skip("the API listed no nodes to look up")
    result = await ctx.host.run(lookup_command(names), timeout=ctx.settings.command_timeout)
    missing = missing_names(result.stdout, names)
    evidence = f"$ getent ahosts <name>, for {', '.join(names)}\n{result.output}"
    observed = Observations(unresolved_nodes=tuple(missing))
    if not missing:
        return ok(f"all {len(names)} node names resolve on {ctx.node.name}", evidence, observed=observed)
    ips = {n.name: n.internal_ip for n in ctx.facts.nodes}
    entries = "\n".join(f"{ips[n] or '<InternalIP unknown>'}  {n}" for n in missing)
    remediation = (
        f"On {ctx.node.name}, add the missing nodes to /etc/hosts:\n"
        f"sudo tee -a /etc/hosts << EOF\n{entries}\nEOF\n"
        "sudo systemctl restart kubelet"
    )
    listed = ", ".join(f"{n} ({ips[n] or 'no InternalIP'})" for n in missing)
    proof = "\n".join(ln for ln in result.stdout.splitlines() if ln.strip().endswith(_MISSING))
    # The fix recomputes the entries from the cluster at plan time (the button carries no data); it
    # can only write nodes whose InternalIP the API knows.
    fix = FixProposal(id="etc-hosts", params={}) if all(ips[n] for n in missing) else None
    return fail(f"{len(missing)} node name(s) do not resolve on {ctx.node.name}: {listed}",
                evidence, remediation, fix, proof=proof, observed=observed)
