"""Root cause over symptoms: which failing probe explains which other failing probe.

Used by `probes.engine` after every probe of a node has run: a problem finding whose probe is
listed under a failing cause gets `caused_by=<cause id>`, so `Report.causes` (and the CLI and
Slack summaries) name the cause first. Kept declarative so a new probe adds one line here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from probes.model import Finding, Status

Condition = Callable[[Mapping[str, Finding]], bool]


def _always(findings: Mapping[str, Finding]) -> bool:
    return True


def _host_api_ok(findings: Mapping[str, Finding]) -> bool:
    host = findings.get("host-api")
    return host is not None and host.status is Status.OK


EXPLAINS: dict[str, tuple[tuple[str, Condition], ...]] = {
    # cause id: (symptom id, condition on the other findings), in order of preference
    # a node that forwards nothing fails every pod-traffic check, including "is it NATed" (masquerade
    # fails when pod-api does and no NAT applies): forwarding is the cause, not the missing rule
    "ip-forward": tuple(
        (symptom, _always)
        for symptom in ("pod-api", "masquerade", "return-path", "pod-dns", "encapsulation")
    ),
    "host-api": (("pod-api", _always),),
    "masquerade": (("pod-api", _always), ("pod-dns", _always)),
    # replies to pod IPs that the router cannot route also lose cross-node pod traffic it carries
    "return-path": (("pod-api", _always), ("pod-dns", _always), ("encapsulation", _always)),
    "mtu": (("pod-api", _host_api_ok),),
    "kubelet-port": (),
}
"""Cause probe id -> the symptoms its failure explains. The first failing cause in this order wins."""

_CAUSE_STATUSES = (Status.FAIL, Status.WARN)
"""A cause must be a diagnosed problem: a probe that merely errored explains nothing."""


def attribute_causes(findings: Sequence[Finding]) -> list[Finding]:
    """Return the findings (same order) with `caused_by` set on symptoms explained by a cause."""
    by_id = {f.probe: f for f in findings}
    caused_by: dict[str, str] = {}
    for cause, symptoms in EXPLAINS.items():
        cause_finding = by_id.get(cause)
        if cause_finding is None or cause_finding.status not in _CAUSE_STATUSES:
            continue
        if cause in caused_by:
            continue  # this cause is itself explained by an earlier one; let that one claim symptoms
        for symptom, condition in symptoms:
            finding = by_id.get(symptom)
            if finding is None or not finding.status.is_problem or symptom in caused_by:
                continue
            if condition(by_id):
                caused_by[symptom] = cause
    return [
        f.model_copy(update={"caused_by": caused_by[f.probe]})
        if f.probe in caused_by and f.caused_by is None
        else f
        for f in findings
    ]
