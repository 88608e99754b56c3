"""Plain-text rendering of a run for the terminal (`netcheck check` without --json, `netcheck diff`).

The graph, not the pile: one line per probe and node (status, id, summary, and "cause" or
"consequence of X"), then the things to do — one per fix, most problems resolved first, each with its
cause's proving evidence, one remediation block and the list of problems it resolves — and last one
line per consequence. `verbose` adds every finding's full evidence. Slack has its own Block Kit
rendering (bot/slack/blocks.py) of the same `probes.graph.actions`.
`color=True` (a terminal without NO_COLOR: `bot.terminal.color_enabled`) colours the status column.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence

from probes.diff import NodeDiff
from probes.graph import Action, actions, consequences_for, role, split_for
from probes.model import Finding, Report, Status
from probes.registry import default_registry

_MARK = {
    Status.OK: "ok", Status.SKIP: "skip", Status.WARN: "WARN", Status.ERROR: "ERROR", Status.FAIL: "FAIL",
}
EVIDENCE_LINES = 12
"""Lines of evidence shown without --verbose when a finding has no proof lines of its own."""
_COLOR = {  # SGR codes for the status column: green, dim, yellow, red, bold red
    Status.OK: "32", Status.SKIP: "2", Status.WARN: "33", Status.ERROR: "31", Status.FAIL: "1;31",
}


def _mark(status: Status, color: bool, width: int = 0) -> str:
    text = f"{_MARK[status]:<{width}}"
    return f"\x1b[{_COLOR[status]}m{text}\x1b[0m" if color else text


def _indent(text: str, depth: int = 6) -> str:
    return textwrap.indent(text.rstrip("\n"), " " * depth)


def evidence_text(finding: Finding, verbose: bool) -> tuple[str, str]:
    """(heading, text): the proving lines first; the full output only when verbose."""
    if verbose:
        shown = [finding.proof, finding.evidence] if finding.proof and finding.proof != finding.evidence \
            else [finding.evidence]
        return "evidence (full)", "\n--- full output ---\n".join(t for t in shown if t)
    if finding.proof:
        return "evidence (the lines that prove it; --verbose for the full output)", finding.proof
    lines = finding.evidence.splitlines()
    if len(lines) <= EVIDENCE_LINES:
        return "evidence", finding.evidence
    cut = len(lines) - EVIDENCE_LINES
    return "evidence", "\n".join([*lines[:EVIDENCE_LINES], f"… {cut} more lines (--verbose)"])


def _status_lines(report: Report, *, title: str | None = None, color: bool = False) -> list[str]:
    width = max((len(f.probe) for f in report.findings), default=0)
    via = f", via {report.access.path.value}: {report.access.reason}" if report.access else ""
    head = title or f"node {report.node}: {report.verdict.value} ({report.duration_s:.1f} s{via})"
    lines = [head]
    for f in report.findings:
        tag = role(f, report.node)
        line = f"  {_mark(f.status, color, 5)} {f.probe:<{width}}  {f.summary}"
        lines.append(line + (f"   [{tag}]" if tag else ""))
    return lines


def _scope_line(finding: Finding) -> list[str]:
    if finding.scope is None:
        return []
    return [f"    {finding.scope}" + (f" — {finding.comparison}" if finding.comparison else "")]


def _action_lines(number: int, action: Action, verbose: bool) -> list[str]:
    resolved = action.resolved_labels()
    head = f"{number}. on {action.node}: {action.title}"
    lines = [head + (f" — resolves {', '.join(resolved)}" if resolved else "")]
    for cause in action.causes:
        lines.append(f"  cause: [{_MARK[cause.status]}] {cause.probe} ({cause.layer.value}): {cause.summary}")
        lines += _scope_line(cause)
        if cause.evidence or cause.proof:
            heading, text = evidence_text(cause, verbose)
            lines += [f"    {heading}:", _indent(text)]
    if action.remediation:
        lines += ["  remediation:", _indent(action.remediation, 4)]
    if action.fix is not None:
        params = " ".join(f"--param {k}={v}" for k, v in action.fix.params.items())
        lines.append(f"  fix: netcheck fix {action.node} {action.fix.id} {params}".rstrip())
    return lines


def _consequence_lines(problems: Sequence[tuple[str, Finding]], verbose: bool) -> list[str]:
    lines = []
    for node, f in problems:
        lines.append(f"  [{_MARK[f.status]}] {node}/{f.probe}: {f.summary} — {role(f, node)}")
        lines += _scope_line(f)
        if verbose and f.evidence:
            lines += ["    evidence (full):", _indent(f.evidence)]
    return lines


def _plan(reports: Sequence[Report], verbose: bool, here: str | None = None) -> list[str]:
    """The things to do and the consequences; with `here` (one node's check), only those that
    concern `here`, and a line naming the problems the peers it looked at have of their own."""
    todo, others = actions(reports, default_registry), list[Action]()
    if here is not None:
        todo, others = split_for(todo, here)
    lines: list[str] = []
    if todo:
        noun = "thing" if len(todo) == 1 else "things"
        lines += ["", f"{len(todo)} {noun} to do (most problems resolved first):"]
        for number, action in enumerate(todo, 1):
            lines += _action_lines(number, action, verbose)
    consequences = _consequence_lines(consequences_for(reports, here, todo), verbose)
    if consequences:
        lines += ["", "consequences (no fix of their own):", *consequences]
    if others:
        named = ", ".join(f"{a.node}: {a.title}" for a in others)
        ask = " / ".join(f"netcheck check {node}" for node in sorted({a.node for a in others}))
        lines += ["", f"also seen on the nodes compared with, behind no problem of {here}'s: {named} ({ask})"]
    return lines


def headline(reports: Sequence[Report]) -> str | None:
    """'act first on worker1: ip-forward (resolves 6 problems on 2 nodes)', or None when all is well."""
    todo = actions(reports, default_registry)
    if not todo:
        return None
    first = todo[0]
    problems = first.resolves()
    nodes = {first.node, *(p.node for p in problems)}
    more = f" (resolves {len(problems)} problem{'s' if len(problems) != 1 else ''} on " \
           f"{len(nodes)} node{'s' if len(nodes) != 1 else ''})" if problems else ""
    return f"act first on {first.node}: {first.title}{more}"


def render_report(report: Report, *, verbose: bool = False, color: bool = False) -> str:
    """One node's check, and the other nodes it looked at (blamed peer, reference)."""
    lines = _status_lines(report, color=color)
    for peer in report.peers:
        why = "reference" if peer.node == report.reference else "looked at"
        count = len(peer.findings)
        title = f"{why}: node {peer.node} ({count} probe{'s' if count != 1 else ''})"
        lines += ["", *_status_lines(peer, title=title, color=color)]
    everything = [report, *report.peers]
    lines += _plan(everything, verbose, here=report.node)
    return "\n".join(lines)


def render_run(reports: Sequence[Report], *, verbose: bool = False, color: bool = False) -> str:
    """`check --all`: the node to act on first, every node's lines, then the things to do."""
    first = headline(reports)
    lines = [f"cluster: {first}" if first else f"cluster: all {len(reports)} nodes ok", ""]
    for report in reports:
        lines += [*_status_lines(report, color=color), ""]
    return "\n".join(lines[:-1] + _plan(reports, verbose))


def render_diff(diff: NodeDiff, node: Report, reference: Report | None) -> str:
    """`netcheck diff`: the differing fields first, then what matched and what was not measured."""
    lines = [diff.sentence()]
    if diff.differences:
        lines += [f"  {line}" for line in diff.lines()]
    if diff.same:
        lines.append(f"same: {', '.join(diff.same)}")
    if diff.unmeasured:
        lines.append(f"not measured on both: {', '.join(diff.unmeasured)}")
    problems = [f for f in node.findings if f.status.is_problem]
    if problems:
        lines += ["", *_status_lines(node)]
        if reference is not None:
            lines += _plan([node, reference], verbose=False)
    return "\n".join(lines)
