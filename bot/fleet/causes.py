"""What a node's problems come down to, as stable keys: the one place the watch, the Home tab and
the metrics read causes from a `Report`.

A problem finding counts by its cause: a finding no other finding explains is a cause of its own
(key: its probe id); one explained by another finding of the same node counts as that cause (key:
the cause's probe id); one explained by another node's finding (a cross-node cause,
`Finding.caused_by_node`) counts as that finding, keyed `probe@node`.
Two reports with the same keys are the same verdict; the watch posts when the keys change
(bot/fleet/state.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from probes.model import Finding, Report


@dataclass(frozen=True)
class Cause:
    key: str
    """`probe` (this node) or `probe@node` (another node)."""
    probe: str
    node: str
    summary: str
    """What the cause's finding says (another node's, when this run looked at it; else what this node
    saw of it)."""

    @property
    def elsewhere(self) -> bool:
        return "@" in self.key


def _remote_summary(report: Report, node: str, probe: str) -> str | None:
    """What the other node's finding says, when this run looked at that node (`Report.peers`)."""
    peer = next((p for p in report.peers if p.node == node), None)
    found = peer.finding(probe) if peer is not None else None
    return found.summary if found is not None else None


def _cause_of(report: Report, finding: Finding) -> Cause:
    remote = finding.caused_by_node
    if remote is not None:
        summary = _remote_summary(report, remote.node, remote.probe) or finding.summary
        return Cause(f"{remote.probe}@{remote.node}", remote.probe, remote.node, summary)
    if finding.caused_by is not None:  # its cause on this node (counted even when the cause's own
        cause = report.finding(finding.caused_by)  # probe is outside `probes`)
        summary = cause.summary if cause is not None else finding.summary
        return Cause(finding.caused_by, finding.caused_by, report.node, summary)
    return Cause(finding.probe, finding.probe, report.node, finding.summary)


def causes(report: Report, probes: frozenset[str] | None = None) -> list[Cause]:
    """The report's causes (first finding order, no duplicates); only findings of `probes` when given."""
    found: dict[str, Cause] = {}
    for finding in report.findings:
        if not finding.status.is_problem or (probes is not None and finding.probe not in probes):
            continue
        cause = _cause_of(report, finding)
        found.setdefault(cause.key, cause)
    return list(found.values())


def cause_keys(report: Report, probes: frozenset[str] | None = None) -> frozenset[str]:
    return frozenset(c.key for c in causes(report, probes))
