"""The six core probes on the lab, through `netcheck check NODE --json` run from the ops namespace:
the case study on the WiFi worker (host-api ok, pod-api/masquerade/return-path fail, fix masquerade
with worker2's pod CIDR and interface, offered once: return-path is its consequence), all ok once the
MASQUERADE rule is there, no false positives on
master and worker1, the small-MTU fault (mtu fail, calico-mtu fix with 1400 - VXLAN 50), and a missing
host route to the debug pod (pod-routes fail)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from lab.cluster import Lab

pytestmark = pytest.mark.lab

CORE = ("host-api", "pod-api", "pod-routes", "mtu", "masquerade", "return-path")
NETCHECK = str(Path(sys.executable).with_name("netcheck"))
CHECK_TIMEOUT_S = 120.0


def check(lab: Lab, node: str) -> dict[str, dict]:
    """The core findings of one node, by probe id."""
    argv = [NETCHECK, "check", node, "--json"]
    for probe_id in CORE:
        argv += ["--probe", probe_id]
    proc = lab.run_ops(argv, timeout=CHECK_TIMEOUT_S)
    assert proc.returncode in (0, 1), proc.stderr[-2000:]
    report = json.loads(proc.stdout)
    assert report["node"] == node
    return {f["probe"]: f for f in report["findings"]}


def statuses(findings: dict[str, dict]) -> dict[str, str]:
    return {probe_id: f["status"] for probe_id, f in findings.items()}


def test_case_study_on_the_wifi_worker(lab: Lab, fault) -> None:
    fault("no-masquerade")
    found = check(lab, "worker2")
    assert statuses(found) == {"host-api": "ok", "pod-api": "fail", "pod-routes": "ok", "mtu": "ok",
                               "masquerade": "fail", "return-path": "fail"}, found
    assert found["masquerade"]["summary"].startswith(
        "NAT skipped: destination 192.168.1.10 inside pool default-ipv4-ippool (192.168.0.0/16)")
    fix = {"id": "masquerade", "params": {"pod_cidr": "192.168.88.0/24", "interface": "wlp59s0"}}
    assert found["masquerade"]["fix"] == fix
    # one fix, one place: return-path is the same fault seen from the router, a consequence of masquerade
    assert found["return-path"]["caused_by"] == "masquerade" and found["return-path"]["fix"] is None
    assert found["return-path"]["summary"] == ("replies to pod IP 192.168.88.69 cannot come back: the router "
                                               "has no route to 192.168.88.0/24")
    assert "SYN_SENT" in found["return-path"]["evidence"] or "Flags [S]" in found["return-path"]["evidence"]
    assert "-s 192.168.88.0/24 -o wlp59s0 -j MASQUERADE" in found["masquerade"]["remediation"]
    assert "is normal for Calico" in found["pod-routes"]["summary"]


def test_all_ok_once_the_masquerade_rule_is_there(lab: Lab, fault) -> None:
    fault("no-masquerade", on=False)
    found = check(lab, "worker2")
    assert set(statuses(found).values()) == {"ok"}, found
    assert found["masquerade"]["summary"] == "explicit MASQUERADE for 192.168.88.0/24 on wlp59s0"


@pytest.mark.parametrize("node", ["master", "worker1"])
def test_no_false_positives_on_healthy_nodes(lab: Lab, node: str) -> None:
    found = check(lab, node)
    assert set(statuses(found).values()) == {"ok"}, found


def test_small_mtu_fails_with_calico_mtu_fix(lab: Lab, fault) -> None:
    fault("no-masquerade", on=False)
    fault("mtu")
    found = check(lab, "worker2")
    assert found["mtu"]["status"] == "fail", found["mtu"]
    assert found["mtu"]["fix"] == {"id": "calico-mtu", "params": {"mtu": 1350}}
    assert '"mtu":1350' in found["mtu"]["remediation"]


def test_missing_host_route_to_the_pod_fails_pod_routes(lab: Lab, fault) -> None:
    fault("no-masquerade", on=False)
    fault("pod-route-missing")
    found = check(lab, "worker2")
    assert found["pod-routes"]["status"] == "fail", found["pod-routes"]
    assert "192.168.88.69" in found["pod-routes"]["summary"]
