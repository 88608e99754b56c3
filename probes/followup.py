"""What a check of one node looks at beyond that node: the peer it blamed and a reference node.

Called by the engine (`Engine.check` for `netcheck check NODE` and `/netcheck NODE`, and
`Engine.compare` for `netcheck diff` and node joins). `run(node, probe_ids, facts)` is the engine's
way of running some probes of another node in the same run.

- Peer: a problem whose measurement crossed to another node (`Finding.peer`) and that nothing on
  this node explains makes the engine run, on that peer, the probes the registry says can explain it
  from there (`explains=(Explains(..., across=True))`: ip-forward, pod-routes, node-address, mtu …),
  before the failure is called local. The cause graph then names the peer when the fault is there.
- Reference: the probes that found problems here (and what they run after) are run on a reference
  node — Ready, same pool, not the blamed peer — so every problem says node-local or cluster-wide.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Sequence

from pydantic import BaseModel, ConfigDict

from probes.correlate import NAT_PROBE, correlate
from probes.diff import NodeDiff, compare_nodes
from probes.facts import ClusterFacts
from probes.graph import attribute
from probes.model import Report
from probes.reference import api_node, candidates, healthy
from probes.registry import Registry
from probes.settings import ProbeSettings

RunProbes = Callable[[str, Sequence[str], ClusterFacts], Awaitable[Report]]

REFERENCE_TRIES = 2
"""Reference candidates tried in turn until one is healthy (each try is a debug pod and some probes)."""
ROUTE_PROBE = "pod-block-routes"
"""The probe that reads how a node routes to the other nodes' pod blocks (a diff needs every node's)."""


class Comparison(BaseModel):
    """`Engine.compare`'s result: the node, its reference, the diff, and the other nodes' partial reports."""

    model_config = ConfigDict(frozen=True)

    report: Report
    reference: Report | None
    diff: NodeDiff | None
    others: list[Report] = []


def peer_probes(report: Report, registry: Registry) -> dict[str, set[str]]:
    """peer node -> the probes to run there: those that can explain, from the peer, a problem of
    `report` that crossed to it and that nothing on this node explains."""
    attributed = attribute([report], registry)[0]
    jobs: dict[str, set[str]] = {}
    for f in attributed.findings:
        if not f.status.is_problem or f.explained or not f.peer or f.peer == report.node:
            continue
        explainers = {spec.id for spec in registry if spec.explanation_of(f.probe, across=True)}
        if explainers:
            jobs.setdefault(f.peer, set()).update(explainers)
    return jobs


def problems_of(report: Report) -> set[str]:
    return {f.probe for f in report.findings if f.status.is_problem}


def reference_probes(report: Report, registry: Registry) -> set[str]:
    """The probes that found problems here, plus what they run after (a verdict needs its inputs)."""
    wanted = {p for p in problems_of(report) if p in registry}
    pending = list(wanted)
    while pending:
        for dep in registry[pending.pop()].after:
            if dep not in wanted:
                wanted.add(dep)
                pending.append(dep)
    return wanted


async def _first_healthy(names: Iterable[str], probe_ids: Sequence[str], facts: ClusterFacts,
                         run: RunProbes) -> tuple[str | None, list[Report]]:
    """Try candidates in turn; (the healthy one or None, every report made)."""
    tried = []
    for name in names:
        report = await run(name, probe_ids, facts)
        tried.append(report)
        if healthy(report):
            return name, tried
    return None, tried


async def examine(report: Report, facts: ClusterFacts, registry: Registry, settings: ProbeSettings,
                  run: RunProbes) -> Report:
    """`report` correlated with its blamed peers and a reference; their findings in `peers`."""
    if not any(f.status.is_problem for f in report.findings):
        return correlate([report], facts, registry, settings, pick_reference=False)[0]
    jobs = peer_probes(report, registry)
    witness = api_node(facts)
    if NAT_PROBE in problems_of(report) and witness is not None and witness.name != report.node \
            and ROUTE_PROBE in registry:
        # does the API's own node route our pod block back? Then no NAT is needed (probes/reference.py)
        jobs.setdefault(witness.name, set()).add(ROUTE_PROBE)
    ref_ids = sorted(reference_probes(report, registry))
    names = [n.name for n in candidates(report.node, facts, settings, exclude=jobs)][:REFERENCE_TRIES]
    peer_runs = [run(peer, sorted(ids), facts) for peer, ids in sorted(jobs.items())]
    peers, (reference, tried) = await asyncio.gather(
        asyncio.gather(*peer_runs), _first_healthy(names, ref_ids, facts, run) if ref_ids else _none()
    )
    run_reports = [report, *peers, *tried]
    correlated = correlate(run_reports, facts, registry, settings, reference=reference, pick_reference=False)
    return correlated[0].model_copy(update={"peers": correlated[1:]})


async def _none() -> tuple[str | None, list[Report]]:
    return None, []


async def compare(node: str, against: str | None, facts: ClusterFacts, registry: Registry,
                  settings: ProbeSettings, run: RunProbes, all_probes: Sequence[str]) -> Comparison:
    """Full check of `node` and of its reference (`against`, else the first healthy candidate), how
    every other node routes to the pod blocks, and the field-by-field diff."""
    names = [against] if against else [n.name for n in candidates(node, facts, settings)][:REFERENCE_TRIES]
    mine, (reference, tried) = await asyncio.gather(
        run(node, all_probes, facts), _first_healthy(names, all_probes, facts, run))
    if against:
        reference = against
    jobs = peer_probes(mine, registry)
    done = {node, *(r.node for r in tried)}
    limit = asyncio.Semaphore(settings.max_nodes_in_parallel)

    async def others_of(name: str) -> Report:
        async with limit:
            return await run(name, sorted(jobs.get(name, set()) | {ROUTE_PROBE}), facts)

    others = await asyncio.gather(*(others_of(n.name) for n in facts.nodes if n.name not in done))
    run_reports = [mine, *tried, *others]
    correlated = correlate(run_reports, facts, registry, settings, reference=reference, pick_reference=False)
    by_node = {r.node: r for r in correlated}
    ref_report = by_node.get(reference) if reference else None
    diff = compare_nodes(by_node[node], ref_report, correlated) if ref_report is not None else None
    main = by_node[node].model_copy(update={"peers": [r for r in correlated if r.node != node]})
    return Comparison(report=main, reference=ref_report, diff=diff,
                      others=[r for r in correlated if r.node not in (node, reference)])
