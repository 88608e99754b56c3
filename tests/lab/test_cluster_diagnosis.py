"""One cause graph across the lab's nodes: `netcheck check --all --json` for single-node faults.

On both layouts (`any_lab`: the case study, and the routed `edge` cluster with other names,
interfaces, CIDRs and service IPs). Covers, each fault on one node (picked by role, never by name):
the healthy lab has no non-ok finding on any node; for ip-forward-off, pod-route-missing,
kubelet-blocked and mtu on a wired worker, and the MTU black hole (icmp-blackhole) and a missing
masquerade on the WiFi worker: the faulty node's probe is the one cause of the run; every problem on
another node names that node and probe (`caused_by_node`); no consequence carries a fix; only the
cause's fix is proposed (no masquerade fix unless NAT is the fault); the black hole stalls the pod's
TLS and pod-api, return-path and pod-to-pod are consequences of `mtu`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from lab.cluster import Lab

pytestmark = pytest.mark.lab

NETCHECK = str(Path(sys.executable).with_name("netcheck"))
CHECK_TIMEOUT_S = 240.0
PROBLEM = ("warn", "fail", "error")


def check_all(lab: Lab) -> list[dict]:
    proc = lab.run_ops([NETCHECK, "check", "--all", "--json"], timeout=CHECK_TIMEOUT_S)
    assert proc.returncode in (0, 1), proc.stderr[-2000:]
    reports = json.loads(proc.stdout)
    assert sorted(r["node"] for r in reports) == sorted(n.name for n in lab.nodes)
    return reports


def problems(reports: list[dict]) -> list[tuple[str, dict]]:
    return [(r["node"], f) for r in reports for f in r["findings"] if f["status"] in PROBLEM]


def causes(reports: list[dict]) -> set[tuple[str, str]]:
    return {(node, f["probe"]) for node, f in problems(reports)
            if f["caused_by"] is None and f["caused_by_node"] is None}


def brief(reports: list[dict]) -> list[str]:
    """The problems, one line each, for assertion messages."""
    return [f"{node}/{f['probe']} {f['status']}: {f['summary']} (caused_by={f['caused_by']}, "
            f"caused_by_node={f['caused_by_node']}, fix={f['fix']})" for node, f in problems(reports)]


@pytest.fixture
def healthy(any_lab: Lab, fault) -> None:
    """The lab with its default case study (if any) switched off: every node healthy."""
    fault("no-masquerade", node=any_lab.wifi_node.name, on=False)


def test_healthy_lab_has_no_problem_anywhere(any_lab: Lab, healthy: None) -> None:
    reports = check_all(any_lab)
    assert problems(reports) == [], brief(reports)
    assert all(r["verdict"] in ("ok", "skip") for r in reports)


SCENARIOS = [
    # fault, the node's role, the probe that must be the one cause, the fix it proposes
    ("ip-forward-off", "wired", "ip-forward", "ip-forward"),
    ("pod-route-missing", "wired", "pod-routes", None),
    ("kubelet-blocked", "wired", "kubelet-port", None),
    ("mtu", "wired", "mtu", "calico-mtu"),
    ("icmp-blackhole", "wifi", "mtu", "calico-mtu"),
    ("no-masquerade", "wifi", "masquerade", "masquerade"),
]


@pytest.mark.parametrize(("fault_name", "role", "cause", "fix"), SCENARIOS,
                         ids=[f"{s[0]}-on-{s[1]}" for s in SCENARIOS])
def test_one_fault_is_one_cause(any_lab: Lab, healthy: None, fault, fault_name: str, role: str, cause: str,
                                fix: str | None) -> None:
    node = (any_lab.wired_worker if role == "wired" else any_lab.wifi_node).name
    fault(fault_name, node=node)
    reports = check_all(any_lab)
    seen = brief(reports)
    assert causes(reports) == {(node, cause)}, seen
    for where, f in problems(reports):
        if where != node:  # every related failure elsewhere names the faulty node and probe
            assert f["caused_by_node"] == {"node": node, "probe": cause}, seen
        if f["caused_by"] is not None or f["caused_by_node"] is not None:
            assert f["fix"] is None and f["remediation"] == "", seen  # no fix for a consequence
    proposed = {(where, f["fix"]["id"]) for where, f in problems(reports) if f["fix"] is not None}
    assert proposed == ({(node, fix)} if fix else set()), seen
    by_probe = {f["probe"]: f for r in reports if r["node"] == node for f in r["findings"]}
    if cause == "mtu":  # the MTU chain: what fails on the pods' side is the MTU's doing
        for symptom in ("pod-api", "return-path", "encapsulation"):
            if by_probe[symptom]["status"] in PROBLEM:
                assert by_probe[symptom]["caused_by"] == "mtu", seen
    if fault_name == "icmp-blackhole":  # the pod's TLS handshake stalls: mtu, not NAT or routes
        assert by_probe["pod-api"]["status"] == "fail" and by_probe["pod-api"]["caused_by"] == "mtu", seen
        # NAT applies but still failing (a consequence), or, where pods need no NAT, not judged
        return_path = by_probe["return-path"]
        assert return_path["caused_by"] == "mtu" or return_path["status"] == "skip", seen
