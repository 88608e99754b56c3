"""The cause graph of a run: which finding explains which, on one node and across nodes, and the
actions (one per fix) that resolve them.

Called by `probes/correlate.py` after every node of a run has been probed. The edges are declared
once, in the probe registry (`@probe(..., explains=...)`); this module only applies them:

- same node: a problem finding whose probe a failing probe of the node `explains` gets
  `caused_by=<that probe>`; among several candidates an unexplained one (a root) wins, in registry
  order;
- across nodes: a still unexplained problem whose measurement crossed to another node (`peer`) gets
  `caused_by_node=(peer, probe)` when a problem of the peer `explains` it `across=True`;
- a consequence carries no fix and no remediation of its own: the cause's fix is the one to apply.

`actions()` then groups the roots by fix (node, fix id, parameters), each with the list of every
problem it resolves, which is what the terminal, Slack and the node-join summary show.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from probes.model import CauseRef, Finding, FixProposal, Report, Status
from probes.registry import Registry

CAUSE_STATUSES = (Status.FAIL, Status.WARN)
"""A cause must be a diagnosed problem: a probe that merely errored explains nothing."""


def _same_node_candidates(symptom: Finding, findings: Mapping[str, Finding], registry: Registry) -> list[str]:
    """Probes of the node whose failure explains `symptom`, in registry order."""
    found = []
    for spec in registry:
        cause = findings.get(spec.id)
        if cause is None or cause.status not in CAUSE_STATUSES or spec.id == symptom.probe:
            continue
        edge = spec.explanation_of(symptom.probe)
        if edge is not None and edge.applies(spec.id, symptom, findings):
            found.append(spec.id)
    return found


def _same_node_parents(report: Report, registry: Registry) -> dict[str, str]:
    """probe -> the probe that explains it on this node: a root candidate first, and among those the
    broadest (the one explaining most of the node's problems: forwarding off outranks an MTU that
    would only stall large packets), then registry order."""
    findings = {f.probe: f for f in report.findings}
    candidates = {
        f.probe: _same_node_candidates(f, findings, registry) for f in report.findings if f.status.is_problem
    }
    roots = {probe for probe, found in candidates.items() if not found}
    breadth = {cause: sum(cause in found for found in candidates.values()) for cause in roots}
    parents = {}
    for probe, found in candidates.items():
        rooted = [c for c in found if c in roots]
        if rooted:
            parents[probe] = max(rooted, key=lambda c: breadth[c])  # max keeps the first of equals
        elif found:
            parents[probe] = found[0]
    return parents


def _root(probe: str, parents: Mapping[str, str]) -> str:
    seen = {probe}
    while probe in parents and parents[probe] not in seen:  # the registry forbids cycles; be safe anyway
        probe = parents[probe]
        seen.add(probe)
    return probe


def _cross_node_cause(symptom: Finding, peer: Report, peer_parents: Mapping[str, str],
                      registry: Registry) -> CauseRef | None:
    findings = {f.probe: f for f in peer.findings}
    for spec in registry:
        cause = findings.get(spec.id)
        if cause is None or cause.status not in CAUSE_STATUSES:
            continue
        edge = spec.explanation_of(symptom.probe, across=True)
        if edge is not None and edge.applies(spec.id, symptom, findings):
            return CauseRef(node=peer.node, probe=_root(spec.id, peer_parents))
    return None


def _as_consequence(finding: Finding, **cause: object) -> Finding:
    # no fix and no remediation of its own: the cause's are the ones to act on
    return finding.model_copy(update={**cause, "fix": None, "remediation": ""})


def attribute(reports: Sequence[Report], registry: Registry) -> list[Report]:
    """The reports (same order) with `caused_by` / `caused_by_node` set on every explained problem.

    Expects findings as the probes returned them (no attribution yet)."""
    by_node = {r.node: r for r in reports}
    parents = {r.node: _same_node_parents(r, registry) for r in reports}
    result = []
    for report in reports:
        node_parents = parents[report.node]
        findings = []
        for f in report.findings:
            if f.probe in node_parents:
                findings.append(_as_consequence(f, caused_by=node_parents[f.probe]))
                continue
            peer = by_node.get(f.peer) if f.peer and f.peer != report.node else None
            remote = (_cross_node_cause(f, peer, parents[peer.node], registry)
                      if peer is not None and f.status.is_problem else None)
            findings.append(_as_consequence(f, caused_by_node=remote) if remote else f)
        result.append(report.model_copy(update={"findings": findings}))
    return result


@dataclass(frozen=True)
class Problem:
    """One problem finding of a run, by where it was seen."""

    node: str
    finding: Finding

    @property
    def label(self) -> str:
        return f"{self.node}/{self.finding.probe}"


@dataclass
class Action:
    """One thing to do: a fix (or, without one, a cause to look at) on one node, and what it resolves."""

    node: str
    fix: FixProposal | None
    causes: list[Finding]
    """The root findings this action addresses (several when they share one fix)."""
    consequences: list[Problem] = field(default_factory=list)
    """Every problem, on any node, explained (transitively) by one of `causes`."""

    @property
    def probes(self) -> list[str]:
        return [f.probe for f in self.causes]

    @property
    def title(self) -> str:
        return self.fix.id if self.fix is not None else self.causes[0].probe

    @property
    def remediation(self) -> str:
        return next((f.remediation for f in self.causes if f.remediation), "")

    def resolves(self) -> list[Problem]:
        """Everything this action should clear: the other causes sharing its fix, then the consequences."""
        elsewhere = sorted(self.consequences, key=lambda p: p.node != self.node)  # this node's first
        return [Problem(self.node, f) for f in self.causes[1:]] + elsewhere

    def resolved_labels(self, here: str | None = None) -> list[str]:
        """'pod-api' for the action's own node (or `here`), 'worker1/pod-api' for another node."""
        own = here or self.node
        return [p.finding.probe if p.node == own else p.label for p in self.resolves()]


def root_of(node: str, finding: Finding, reports: Mapping[str, Report]) -> tuple[str, str]:
    """(node, probe) of the finding at the top of `finding`'s cause chain."""
    seen: set[tuple[str, str]] = set()
    where, current = node, finding
    while (where, current.probe) not in seen:
        seen.add((where, current.probe))
        if current.caused_by is not None:
            nxt = reports[where].finding(current.caused_by)
        elif current.caused_by_node is not None and current.caused_by_node.node in reports:
            where = current.caused_by_node.node
            nxt = reports[where].finding(current.caused_by_node.probe)
        else:
            break
        if nxt is None:
            break
        current = nxt
    return where, current.probe


def actions(reports: Sequence[Report], registry: Registry | None = None) -> list[Action]:
    """One action per (node, fix) over attributed reports — most problems resolved first."""
    by_node = {r.node: r for r in reports}
    grouped: dict[tuple[object, ...], Action] = {}
    owner: dict[tuple[str, str], Action] = {}
    for report in reports:
        for f in report.causes:
            key: tuple[object, ...] = ((report.node, f.fix.id, tuple(sorted(f.fix.params.items())))
                                       if f.fix is not None else (report.node, "probe", f.probe))
            action = grouped.get(key)
            if action is None:
                action = grouped[key] = Action(node=report.node, fix=f.fix, causes=[])
            action.causes.append(f)
            owner[(report.node, f.probe)] = action
    for report in reports:
        for f in report.findings:
            if f.status.is_problem and f.explained:
                action = owner.get(root_of(report.node, f, by_node))
                if action is not None:
                    action.consequences.append(Problem(report.node, f))
    order = {spec.id: i for i, spec in enumerate(registry)} if registry is not None else {}
    node_order = {r.node: i for i, r in enumerate(reports)}

    def rank(action: Action) -> tuple[int, int, int, int]:
        fixable = 0 if action.fix is not None else 1
        return (-len(action.resolves()), fixable, node_order[action.node],
                min(order.get(p, len(order)) for p in action.probes))

    return sorted(grouped.values(), key=rank)


def split_for(todo: Sequence[Action], node: str) -> tuple[list[Action], list[Action]]:
    """`todo` for a check of `node`: the actions on `node` or that resolve one of its problems, and
    the rest — problems of the peers it looked at (a blamed peer, a reference) that explain nothing
    on `node`. Those belong to the peer's own check, not to this node's things to do."""
    mine = [a for a in todo if a.node == node or any(p.node == node for p in a.resolves())]
    return mine, [a for a in todo if a not in mine]


def consequences_for(run: Sequence[Report], here: str | None,
                     todo: Sequence[Action] = ()) -> list[tuple[str, Finding]]:
    """(node, finding) of every explained problem of the run; with `here` (a node's check), those on
    `here` and those that `todo`, its things to do (`split_for`), resolves — not a peer's problems
    that are the peer's own."""
    resolved = {(p.node, p.finding.probe) for a in todo for p in a.consequences}
    return [(r.node, f) for r in run for f in r.findings if f.status.is_problem and f.explained
            and (here is None or r.node == here or (r.node, f.probe) in resolved)]


def role(finding: Finding, here: str) -> str:
    """'cause', 'consequence of X' (same node) or 'consequence of node/X' — the summary lines' word."""
    if finding.caused_by is not None:
        return f"consequence of {finding.caused_by}"
    if finding.caused_by_node is not None:
        ref = finding.caused_by_node
        on = f" on {ref.node}" if ref.node != here else ""
        return f"consequence of {ref.probe}{on}"
    return "cause" if finding.status.is_problem else ""
