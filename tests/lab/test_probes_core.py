"""The six core probes on the lab, through `netcheck check NODE --json` run from the ops namespace.

On both layouts (`any_lab`): the case study on the WiFi worker (host-api ok, pod-api/masquerade/
return-path fail, fix masquerade with the node's pod CIDR and interface, offered once: return-path
is its consequence; "NAT skipped: destination
inside pool" where the pool overlaps the LAN, "no NAT at all" on the routed layout), no false
positives on the other nodes meanwhile (`check --all`), the small-MTU fault (mtu fail,
calico-mtu fix with the link MTU less the encapsulation overhead: 1400 - VXLAN 50, or 1440 with
none), and a missing host route to the wired worker's debug pod (pod-routes fail). On the default
layout: all ok once the MASQUERADE rule is there."""

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


def test_case_study_on_the_wifi_worker(any_lab: Lab, fault) -> None:
    layout, node = any_lab.layout, any_lab.wifi_node
    fault("no-masquerade")
    found = check(any_lab, node.name)
    assert statuses(found) == {"host-api": "ok", "pod-api": "fail", "pod-routes": "ok", "mtu": "ok",
                               "masquerade": "fail", "return-path": "fail"}, found
    if layout.nat_outgoing:  # the pool overlaps the LAN: Calico's natOutgoing skips the API's address
        expected = (f"NAT skipped: destination {any_lab.control_plane.ip} inside pool {layout.pool_name} "
                    f"({layout.pool_cidr})")
    else:
        expected = f"no NAT at all for {node.pod_cidr} leaving via {node.iface}"
    assert found["masquerade"]["summary"].startswith(expected), found["masquerade"]
    fix = {"id": "masquerade", "params": {"pod_cidr": node.pod_cidr, "interface": node.iface}}
    assert found["masquerade"]["fix"] == fix
    # one fix, one place: return-path is the same fault seen from the router, a consequence of masquerade
    assert found["return-path"]["caused_by"] == "masquerade" and found["return-path"]["fix"] is None
    assert found["return-path"]["summary"] == (f"replies to pod IP {node.pod_ip} cannot come back: the "
                                               f"router has no route to {node.pod_cidr}")
    assert "SYN_SENT" in found["return-path"]["evidence"] or "Flags [S]" in found["return-path"]["evidence"]
    assert f"-s {node.pod_cidr} -o {node.iface} -j MASQUERADE" in found["masquerade"]["remediation"]
    assert "is normal for Calico" in found["pod-routes"]["summary"]


def test_all_ok_once_the_masquerade_rule_is_there(lab: Lab, fault) -> None:
    node = lab.wifi_node
    fault("no-masquerade", on=False)  # on the default layout: adds the rule
    found = check(lab, node.name)
    assert set(statuses(found).values()) == {"ok"}, found
    assert found["masquerade"]["summary"] == f"explicit MASQUERADE for {node.pod_cidr} on {node.iface}"


def test_no_false_positives_on_the_other_nodes_beside_the_case_study(any_lab: Lab, fault) -> None:
    fault("no-masquerade")  # on the WiFi node
    argv = [NETCHECK, "check", "--all", "--json"]
    for probe_id in CORE:
        argv += ["--probe", probe_id]
    proc = any_lab.run_ops(argv, timeout=CHECK_TIMEOUT_S)
    reports = {r["node"]: r for r in json.loads(proc.stdout)}
    assert set(reports) == {n.name for n in any_lab.nodes}, proc.stderr[-2000:]
    for node in (n.name for n in any_lab.nodes if n != any_lab.wifi_node):
        assert {f["status"] for f in reports[node]["findings"]} == {"ok"}, reports[node]


def test_small_mtu_fails_with_calico_mtu_fix(any_lab: Lab, fault) -> None:
    layout = any_lab.layout
    fault("no-masquerade", on=False)
    fault("mtu")
    found = check(any_lab, any_lab.wifi_node.name)
    assert found["mtu"]["status"] == "fail", found["mtu"]
    fitting = layout.small_link_mtu - layout.overhead  # e.g. 1400 - VXLAN 50 on the default layout
    assert found["mtu"]["fix"] == {"id": "calico-mtu", "params": {"mtu": fitting}}
    assert f'"mtu":{fitting}' in found["mtu"]["remediation"]


def test_missing_host_route_to_the_pod_fails_pod_routes(any_lab: Lab, fault) -> None:
    """On the wired worker: a fault on a node that is not the WiFi one."""
    node = any_lab.wired_worker
    fault("pod-route-missing", node.name)
    found = check(any_lab, node.name)
    assert found["pod-routes"]["status"] == "fail", found["pod-routes"]
    assert node.pod_ip in found["pod-routes"]["summary"]
