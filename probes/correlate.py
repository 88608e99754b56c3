"""One run's findings across nodes turned into one picture: causes, consequences, reference verdicts.

Called by the engine once per run (`check`, `check_all`, `compare`), on the findings as the probes
returned them:
1. the cause graph (`probes/graph.py`), same node and across nodes;
2. `masquerade` on a node whose pods fail for another cause is re-judged against the reference: when
   the reference's pods reach the API without NAT on the same network, no NAT is needed here either,
   so it is `ok` (with the reason), not a `fail` with a fix that would not help;
3. the graph again (the re-judged finding may have been someone's cause), then differential
   verdicts: every problem says whether it is node-local (the reference is ok), peer-side (the cause
   is on another node) or cluster-wide (every other node checked fails it too).
"""

from __future__ import annotations

from collections.abc import Sequence

from probes.facts import ClusterFacts
from probes.graph import attribute
from probes.model import Finding, Report, Status
from probes.observations import Observations
from probes.reference import nat_not_needed, pick
from probes.registry import Registry
from probes.settings import ProbeSettings

NAT_PROBE = "masquerade"
RETURN_PATH_PROBE = "return-path"
"""Its "the router has no route back" verdict stands on masquerade's "no NAT and failing"."""


def correlate(reports: Sequence[Report], facts: ClusterFacts, registry: Registry, settings: ProbeSettings,
              *, reference: str | None = None, pick_reference: bool = True) -> list[Report]:
    """The reports (same order), attributed and compared. `reference` forces the reference node;
    `pick_reference=False` compares with none unless forced (partial runs)."""
    raw = list(reports)
    first = {r.node: r for r in attribute(raw, registry)}

    def reference_for(node: str) -> str | None:
        if reference is not None:
            return reference if reference != node and reference in first else None
        return pick(node, first, facts, settings) if pick_reference else None

    refs = {r.node: reference_for(r.node) for r in raw}
    rejudged = [_rejudge_nat(r, first[r.node], refs[r.node], first, facts) for r in raw]
    final = attribute(rejudged, registry)
    by_node = {r.node: r for r in final}
    return [_differential(r, refs[r.node], by_node) for r in final]


def _cause_label(finding: Finding) -> str:
    if finding.caused_by is not None:
        return finding.caused_by
    ref = finding.caused_by_node
    return f"{ref.probe} on {ref.node}" if ref is not None else "another cause"


def _rejudge_nat(raw: Report, attributed: Report, reference: str | None, reports: dict[str, Report],
                 facts: ClusterFacts) -> Report:
    before = attributed.finding(NAT_PROBE)
    if before is None or before.status is not Status.FAIL or not before.explained:
        return raw
    if before.observed is None or before.observed.pod_nat != "none":
        return raw
    why = nat_not_needed(raw.node, reference, reports, facts)
    if why is None:
        return raw
    observed = (before.observed or Observations()).merged(Observations(pod_nat_needed=False))
    cause = _cause_label(before)
    verdict = Finding(
        probe=before.probe, layer=before.layer, status=Status.OK,
        summary=f"no NAT, and none needed: {why}; pods here fail because of {cause}",
        evidence=before.evidence, proof=before.proof, observed=observed, duration_s=before.duration_s,
    )
    replaced = {NAT_PROBE: verdict}
    return_path = raw.finding(RETURN_PATH_PROBE)
    if return_path is not None and return_path.status is Status.FAIL:
        # its "the router has no route back" assumed NAT was needed: that premise is gone
        replaced[RETURN_PATH_PROBE] = Finding(
            probe=return_path.probe, layer=return_path.layer, status=Status.SKIP,
            summary=f"not judged: no NAT is needed here ({why}); pods fail because of {cause}",
            evidence=return_path.evidence, duration_s=return_path.duration_s,
        )
    return raw.model_copy(update={"findings": [replaced.get(f.probe, f) for f in raw.findings]})


def _differential(report: Report, reference: str | None, reports: dict[str, Report]) -> Report:
    findings = []
    for f in report.findings:
        if not f.status.is_problem:
            findings.append(f)
            continue
        findings.append(f.model_copy(update=_scope(report.node, f, reference, reports)))
    return report.model_copy(update={"findings": findings, "reference": reference})


def _scope(node: str, f: Finding, reference: str | None, reports: dict[str, Report]) -> dict[str, object]:
    if f.caused_by_node is not None:
        where = f.caused_by_node
        return {"scope": "peer-side", "comparison": f"the fault is on {where.node}: {where.probe}"}
    seen = [(r.node, r.finding(f.probe)) for r in reports.values() if r.node != node]
    measured = [(n, other) for n, other in seen if other is not None and other.status is not Status.SKIP]
    if measured and all(other.status.is_problem for _, other in measured):
        names = ", ".join([node, *(n for n, _ in measured)])
        return {"scope": "cluster-wide", "comparison": f"{f.probe} fails on every node checked ({names})"}
    ref = reports[reference].finding(f.probe) if reference in reports else None
    if ref is not None and ref.status is Status.OK:
        return {"scope": "node-local", "comparison": f"on {reference}: {ref.summary}"}
    return {}
