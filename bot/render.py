"""Plain-text rendering of a `Report` for the terminal (`netcheck check` without --json).

One line per probe (status, id, summary), then the details of every non-ok finding: root causes
first, then the findings they explain. Slack has its own Block Kit rendering (bot/slack/blocks.py).
"""

from __future__ import annotations

import textwrap

from probes.model import Finding, Report, Status

_MARK = {
    Status.OK: "ok", Status.SKIP: "skip", Status.WARN: "WARN", Status.ERROR: "ERROR", Status.FAIL: "FAIL",
}


def _indent(text: str) -> str:
    return textwrap.indent(text.rstrip("\n"), "      ")


def _details(finding: Finding) -> str:
    head = f"  [{_MARK[finding.status]}] {finding.probe} ({finding.layer.value}): {finding.summary}"
    lines = [head]
    if finding.caused_by:
        lines.append(f"    explained by: {finding.caused_by}")
    if finding.evidence:
        lines += ["    evidence:", _indent(finding.evidence)]
    if finding.remediation:
        lines += ["    remediation:", _indent(finding.remediation)]
    if finding.fix is not None:
        params = " ".join(f"{k}={v}" for k, v in finding.fix.params.items())
        lines.append(f"    proposed fix: {finding.fix.id} {params}".rstrip())
    return "\n".join(lines)


def render_report(report: Report) -> str:
    width = max((len(f.probe) for f in report.findings), default=0)
    via = f", via {report.access.path.value}: {report.access.reason}" if report.access else ""
    lines = [f"node {report.node}: {report.verdict.value} ({report.duration_s:.1f} s{via})"]
    lines += [f"  {_MARK[f.status]:<5} {f.probe:<{width}}  {f.summary}" for f in report.findings]
    causes = report.causes
    symptoms = [f for f in report.findings if f.status.is_problem and f.caused_by is not None]
    if causes or symptoms:
        lines.append("")
        lines.append("details (causes first):")
        lines += [_details(f) for f in (*causes, *symptoms)]
    return "\n".join(lines)
