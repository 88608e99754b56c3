"""`netcheck check NODE --timings`: where a check's time went, on one screen.

Pure functions over a `Report` (its findings' and its peers' `timing`, the run's `timings`), used by
bot/commands/check.py and bench/run. The critical path is walked back from the finding that finished
last: through the probe it waited for (`after=`), the transport it waited for (SSH connection, debug
pod), or the finding that called for it (a follow-up's `queued_for`), down to discovery and start-up.
"""

from __future__ import annotations

from dataclasses import dataclass

from probes.model import Finding, Report
from probes.timing import FindingTiming, Span

TABLE_ROWS = 24
"""Findings listed under the critical path (the slowest first): the rest would not fit one screen."""


@dataclass(frozen=True)
class Step:
    """One stretch of the critical path (seconds since the run began)."""

    from_s: float
    to_s: float
    what: str


def _timed(report: Report) -> dict[tuple[str, str], FindingTiming]:
    found: dict[tuple[str, str], FindingTiming] = {}
    for r in (report, *report.peers):
        for f in r.findings:
            if f.timing is not None:
                found[(r.node, f.probe)] = f.timing
    return found


def _span_for(spans: list[Span], wait_on: str, node: str, before: float) -> Span | None:
    """The transport span a wait was for (the latest of its kind on that node ending by `before`)."""
    kind = {"SSH connection": "ssh", "host pod": "host-pod", "debug pod": "debug-pod"}.get(wait_on)
    if wait_on.startswith("debug pod on "):
        kind, node = "debug-pod", wait_on.removeprefix("debug pod on ")
    candidates = [s for s in spans if s.what == kind and s.node == node and s.to_s <= before + 0.01]
    return max(candidates, key=lambda s: s.to_s, default=None)


def critical_path(report: Report) -> list[Step]:
    """The chain of waits that decided when the last finding was done, earliest first."""
    timed = _timed(report)
    if not timed:
        return []
    spans = list(report.timings.spans) if report.timings is not None else []
    node, probe = max(timed, key=lambda key: timed[key].finished_s)
    steps: list[Step] = []
    seen: set[tuple[str, str]] = set()
    while (node, probe) not in seen:
        seen.add((node, probe))
        t = timed[(node, probe)]
        last = max(t.waited, key=lambda w: w.to_s, default=None)
        if last is not None and last.on.startswith("probe ") and last.to_s > t.started_s:
            dep = (node, last.on.removeprefix("probe "))
            steps.append(Step(last.to_s, t.finished_s, f"{node} {probe} (after {dep[1]})"))
            if dep in timed:
                node, probe = dep
                continue
            break
        steps.append(Step(t.started_s, t.finished_s, f"{node} {probe}"))
        if last is not None and last.on != "discovery" and not last.on.startswith("probe "):
            span = _span_for(spans, last.on, node, last.to_s)
            steps.append(Step(span.from_s if span else last.from_s, last.to_s,
                              f"{last.on} for {node} {probe}" + _reuse(span)))
        if t.queued_for:
            trigger_node, _, trigger_probe = t.queued_for.partition(" ")
            if (trigger_node, trigger_probe) in timed:
                steps.append(Step(t.queued_s, t.queued_s, f"{node} {probe} queued by {t.queued_for}"))
                node, probe = trigger_node, trigger_probe
                continue
        break
    discovery = next((s for s in spans if s.what == "discovery"), None)
    if discovery is not None:
        steps.append(Step(discovery.from_s, discovery.to_s, "discovery"))
    return sorted(steps, key=lambda s: (s.from_s, s.to_s))


def _reuse(span: Span | None) -> str:
    if span is None:
        return ""
    if span.reused:
        return " (reused, already running)"
    return f" ({span.seconds:.2f} s{'' if span.ok else ', failed'})"


def render_timings(report: Report) -> str:
    """The critical path, the transports and the slowest findings (seconds since the process started
    when the start-up is known, else since the run began)."""
    timings = report.timings
    startup = (timings.startup_s or 0.0) if timings is not None else 0.0
    lines = []
    end = max((t.finished_s for t in _timed(report).values()), default=0.0)
    origin = "netcheck started" if startup else "the check began"
    lines.append(f"where the time went: {startup + end:.2f} s (seconds since {origin})")
    lines.append("critical path:")
    if startup:
        lines.append(f"  {0:6.2f} → {startup:6.2f}  start-up: interpreter, imports, configuration")
    for step in critical_path(report):
        lines.append(f"  {startup + step.from_s:6.2f} → {startup + step.to_s:6.2f}  {step.what}")
    spans = [s for s in timings.spans if s.what != "discovery"] if timings is not None else []
    if spans:
        lines.append("transports:")
        for s in spans:
            state = "reused" if s.reused else ("ok" if s.ok else "failed")
            lines.append(f"  {s.what:<9} {s.node or '':<14} {startup + s.from_s:6.2f} → "
                         f"{startup + s.to_s:6.2f}  {s.seconds:5.2f} s  {state}")
    rows = [(r.node, f) for r in (report, *report.peers) for f in r.findings if f.timing is not None]
    rows.sort(key=lambda row: row[1].timing.finished_s if row[1].timing else 0.0, reverse=True)
    if rows:
        lines.append("findings (slowest first): queued  started  finished  waited for")
        for node, f in rows[:TABLE_ROWS]:
            lines.append(_row(node, f, startup))
        if len(rows) > TABLE_ROWS:
            lines.append(f"  … {len(rows) - TABLE_ROWS} more in --json (findings[].timing)")
    return "\n".join(lines)


def _row(node: str, f: Finding, startup: float) -> str:
    t = f.timing
    assert t is not None
    waits = ", ".join(f"{w.on} {w.seconds:.2f} s" for w in t.waited) or "-"
    return (f"  {node:<10} {f.probe:<17} {startup + t.queued_s:6.2f} {startup + t.started_s:8.2f} "
            f"{startup + t.finished_s:9.2f}  {waits}")
