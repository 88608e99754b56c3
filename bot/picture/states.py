"""What each box of the layer picture shows: its shade (ok, problem, not checked), the probes behind it,
and which boxes hold a cause. Pure functions of a `Report`; `draw.py` paints what these return.

A box's shade comes from the findings of its layer (`Finding.layer`): any warn/fail/error makes it a
problem, else any ok makes it ok, else (no finding, or all skipped) it was not checked. The node's own
leg is judged by the probes that test the host's path alone (`HOST_LEG_PROBES`), the API server box
by whether anything reached the API (`API_PROBES`).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from bot.picture.layout import API_SERVER, BOXES, HOST_LEG
from probes.model import Finding, Report, Status

HOST_LEG_PROBES = frozenset({"host-api"})
"""Probes that measure the node's own path to the API (no pod network, veth or pod NAT on it)."""
API_PROBES = frozenset({"host-api", "pod-api"})
"""Probes whose success proves the API server answers (docs/troubleshooting.md#key-indicator)."""


class Shade(StrEnum):
    OK = "ok"
    PROBLEM = "problem"
    UNCHECKED = "not checked"


@dataclass(frozen=True)
class CauseMark:
    """A box that holds a cause, and the words that name it."""

    box: str
    probe: str
    label: str


def box_of(finding: Finding) -> str:
    """The key of the box a finding belongs to."""
    return HOST_LEG if finding.probe in HOST_LEG_PROBES else finding.layer.value


def shade_of(findings: list[Finding]) -> Shade:
    if any(f.status.is_problem for f in findings):
        return Shade.PROBLEM
    if any(f.status is Status.OK for f in findings):
        return Shade.OK
    return Shade.UNCHECKED


def findings_by_box(report: Report) -> dict[str, list[Finding]]:
    grouped: dict[str, list[Finding]] = {key: [] for key in BOXES}
    for finding in report.findings:
        key = box_of(finding)
        if key in grouped:
            grouped[key].append(finding)
    return grouped


def api_shade(report: Report) -> Shade:
    """Reached (ok) when any API probe got an answer; a problem when every one that ran failed."""
    tried = [f for f in report.findings if f.probe in API_PROBES and f.status is not Status.SKIP]
    if any(f.status is Status.OK for f in tried):
        return Shade.OK
    return Shade.PROBLEM if tried else Shade.UNCHECKED


def box_shades(report: Report) -> dict[str, Shade]:
    """Every box's shade: what the picture paints and what tests compare pixels with."""
    shades = {key: shade_of(found) for key, found in findings_by_box(report).items()}
    shades[API_SERVER] = api_shade(report)
    return shades


def cause_marks(report: Report) -> list[CauseMark]:
    """The causes the picture marks: each problem nothing explains, in its own layer; and where
    another node's finding explains a problem here, that problem's layer, naming the other node."""
    marks = [CauseMark(box_of(f), f.probe, f"{f.probe}: {f.summary}") for f in report.causes]
    for f in report.findings:
        remote = f.caused_by_node
        if f.status.is_problem and remote is not None:
            label = f"{remote.probe} on {remote.node} (seen here as {f.probe}: {f.summary})"
            marks.append(CauseMark(box_of(f), remote.probe, label))
    return marks
