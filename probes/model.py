"""The typed results every probe, the engine, the CLI and the Slack bot share.

A probe returns a `ProbeResult` (built with `ok()`, `warn()`, `fail()`, `skip()`); the engine
stamps it with the probe's id and layer into a `Finding`; a node's findings make a `Report`.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from functools import partial
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from probes.observations import Observations

EVIDENCE_LIMIT = 4000
"""Characters of evidence kept per finding; longer output keeps its head and tail."""


class Status(StrEnum):
    OK = "ok"
    SKIP = "skip"
    WARN = "warn"
    ERROR = "error"
    FAIL = "fail"

    @property
    def severity(self) -> int:
        """Order used for a report's verdict: a confirmed failure outranks a probe that broke."""
        return _SEVERITY[self]

    @property
    def is_problem(self) -> bool:
        return self in (Status.WARN, Status.FAIL, Status.ERROR)


_SEVERITY = {Status.OK: 0, Status.SKIP: 1, Status.WARN: 2, Status.ERROR: 3, Status.FAIL: 4}


class Layer(StrEnum):
    """The layers of docs/troubleshooting.md#layers, top (pod) to bottom (router)."""

    POD_APP = "pod-app"
    POD_NETWORK = "pod-network"
    HOST_VETH = "host-veth"
    IPTABLES = "iptables"
    HOST_ROUTE = "host-route"
    PHYSICAL = "physical-interface"
    ROUTER = "router"


def trim(text: str, limit: int = EVIDENCE_LIMIT) -> str:
    """Keep the head and the tail of long output, and say how much was cut."""
    if len(text) <= limit:
        return text
    half = (limit - 60) // 2
    cut = len(text) - 2 * half
    return f"{text[:half]}\n… [{cut} characters trimmed] …\n{text[-half:]}"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class FixProposal(_Frozen):
    """A fix a probe recommends: the id of a registered fix and the values it needs."""

    id: str
    params: dict[str, str | int]


class ProbeResult(_Frozen):
    """What a probe function returns; the engine turns it into a `Finding`."""

    status: Status
    summary: str
    evidence: str = ""
    proof: str = ""
    remediation: str = ""
    fix: FixProposal | None = None
    observed: Observations | None = None


Scope = Literal["node-local", "peer-side", "cluster-wide"]


class CauseRef(_Frozen):
    """A finding of another node: the cause of a consequence seen here."""

    node: str
    probe: str


class Finding(_Frozen):
    probe: str
    layer: Layer
    status: Status
    summary: str
    evidence: str = Field(default="", description="The full command output (trimmed to EVIDENCE_LIMIT).")
    proof: str = Field(
        default="", description="The few lines of the evidence that prove the point (shown first)."
    )
    remediation: str = ""
    fix: FixProposal | None = None
    caused_by: str | None = Field(
        default=None, description="Id of the probe on the same node whose failure explains this one."
    )
    caused_by_node: CauseRef | None = Field(
        default=None, description="The node and probe whose failure explains this one, when on another node."
    )
    peer: str | None = Field(
        default=None, description="The other node this probe's measurement crossed to (pod-to-pod peer)."
    )
    scope: Scope | None = Field(
        default=None, description="Compared with a reference node: node-local, peer-side or cluster-wide."
    )
    comparison: str | None = Field(
        default=None, description="The differential sentence behind `scope` (what the reference saw)."
    )
    observed: Observations | None = Field(
        default=None, description="Typed facts the probe read (for node diffs and the cause graph)."
    )
    duration_s: float | None = Field(
        default=None, description="Seconds the probe took, waiting for its transports included."
    )

    @property
    def explained(self) -> bool:
        """A consequence: another finding (here or on another node) explains it."""
        return self.caused_by is not None or self.caused_by_node is not None

    @property
    def proof_or_evidence(self) -> str:
        return self.proof or self.evidence


class AccessPath(StrEnum):
    """How the engine reaches a node's host side (`node_access`, docs/node-access.md)."""

    SSH = "ssh"
    HOST_POD = "host-pod"


class Access(_Frozen):
    """The host path a report used, and why that one (the configured mode, or what `auto` found)."""

    path: AccessPath
    reason: str


class Report(_Frozen):
    node: str
    started_at: datetime
    duration_s: float
    findings: list[Finding]
    reference: str | None = Field(
        default=None, description="The healthy node this report was compared with, if any."
    )
    peers: list[Report] = Field(
        default_factory=list,
        description="Other nodes' findings a single-node check looked at (a blamed peer, the reference).",
    )
    access: Access | None = Field(
        default=None, description="How the node's host side was reached (None: no host access configured)."
    )

    @property
    def verdict(self) -> Status:
        return max((f.status for f in self.findings), key=lambda s: s.severity, default=Status.OK)

    @property
    def causes(self) -> list[Finding]:
        """Problems that are not explained by another finding, here or on another node: what to fix."""
        return [f for f in self.findings if f.status.is_problem and not f.explained]

    def finding(self, probe: str) -> Finding | None:
        return next((f for f in self.findings if f.probe == probe), None)

    def observations(self) -> Observations:
        """Every finding's observed facts merged into one view of the node."""
        merged = Observations()
        for f in self.findings:
            merged = merged.merged(f.observed)
        return merged

    def as_json(self) -> dict[str, object]:
        """The documented `--json` shape (docs/json-output.md)."""
        data = self.model_dump(mode="json", exclude={"peers"})
        data["verdict"] = self.verdict.value
        data["duration_s"] = round(self.duration_s, 3)
        for finding, dumped in zip(self.findings, data["findings"], strict=True):
            # only what was measured: a None field would read as "measured, and empty"
            dumped["observed"] = finding.observed.model_dump(mode="json", exclude_none=True) \
                if finding.observed is not None else None
        data["peers"] = [peer.as_json() for peer in self.peers]
        return data


def result(
    status: Status,
    summary: str,
    evidence: str = "",
    remediation: str = "",
    fix: FixProposal | None = None,
    *,
    proof: str = "",
    observed: Observations | None = None,
) -> ProbeResult:
    """A probe's answer; `ok`, `warn`, `fail` and `skip` are this with the status filled in."""
    return ProbeResult(
        status=status,
        summary=summary,
        evidence=trim(evidence.strip("\n")),
        proof=trim(proof.strip("\n")),
        remediation=remediation.strip("\n"),
        fix=fix,
        observed=observed,
    )


ok = partial(result, Status.OK)
warn = partial(result, Status.WARN)
fail = partial(result, Status.FAIL)
skip = partial(result, Status.SKIP)
