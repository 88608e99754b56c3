"""The lab on each layout (lab.spec): nothing in netcheck or the lab depends on the default names.

Covers: on both layouts (`any_lab`), the healthy lab gives zero non-ok findings on every node from
every probe of `netcheck check --all --json` (run from the ops namespace; the default layout with
its case-study fault switched off); `Lab.attach()` in another process gets the layout back from
the lab state (`netcheck lab status` names it); the layout values are what the real network shows:
LAN, control-plane address and API port in the kubeconfig, service IPs in the node's kube-proxy
rules and the pod's resolv.conf, pod MTU on the pod's eth0. Without a lab: every layout is
well-formed and the second layout shares none of the default's names or addresses.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from lab import spec
from lab.cluster import Lab
from tests.labfixtures import started_pod

NETCHECK = str(Path(sys.executable).with_name("netcheck"))
CHECK_ALL_TIMEOUT_S = 180.0
ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.lab
def test_healthy_lab_has_zero_non_ok_findings_on_every_node(any_lab: Lab, fault) -> None:
    if "no-masquerade" in dict(any_lab.layout.default_faults):
        fault("no-masquerade", on=False)  # the default layout's case study, repaired
    proc = any_lab.run_ops([NETCHECK, "check", "--all", "--json"], timeout=CHECK_ALL_TIMEOUT_S)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    reports = {r["node"]: r for r in json.loads(proc.stdout)}
    assert set(reports) == {n.name for n in any_lab.nodes}
    for node, report in reports.items():
        findings = {f["probe"]: f for f in report["findings"]}
        assert len(findings) >= 15, (node, sorted(findings))
        problems = {p: (f["status"], f["summary"]) for p, f in findings.items() if f["status"] != "ok"}
        assert problems == {}, (node, problems)
        assert findings["iptables-mode"]["evidence"].startswith("backend=nft iptables=nft rules=nft split=no")
        assert any_lab.layout.api_service_ip in findings["pod-api"]["summary"]


@pytest.mark.lab
def test_attach_gets_the_layout_back(any_lab: Lab) -> None:
    code = ("import json, sys; from pathlib import Path; from lab.cluster import Lab; "
            "lab = Lab.attach(Path(sys.argv[1])); "
            "print(json.dumps([lab.layout.name, lab.control_plane.name, lab.wifi_node.name, lab.api_url]))")
    out = subprocess.run([sys.executable, "-c", code, str(any_lab.state)], capture_output=True, text=True,
                         cwd=ROOT, timeout=60, check=True).stdout
    assert json.loads(out) == [any_lab.layout.name, any_lab.control_plane.name, any_lab.wifi_node.name,
                               any_lab.api_url]
    assert json.loads((any_lab.state / "lab.json").read_text())["layout"] == any_lab.layout.name


@pytest.mark.lab
def test_layout_values_are_what_the_network_shows(any_lab: Lab) -> None:
    layout, node = any_lab.layout, any_lab.wifi_node
    assert f"server: https://{any_lab.control_plane.ip}:{layout.api_port}" in any_lab.kubeconfig.read_text()
    rules = any_lab.node_exec(node.name, "iptables-save", "-t", "nat", check=True).stdout
    assert f"-d {layout.api_service_ip}/32 -p tcp" in rules
    assert f"-d {layout.dns_service_ip}/32 -p udp" in rules
    assert f"--to-destination {any_lab.control_plane.ip}:{layout.api_port}" in rules
    assert ("cali40masq-ipam-pools src" in rules) == layout.nat_outgoing
    resolv = any_lab.pod_exec(node.name, "cat", "/etc/resolv.conf").stdout
    assert f"nameserver {layout.dns_service_ip}" in resolv
    with started_pod(any_lab, node.name):  # what a pod gets now, whatever rolled out and back before
        assert f"mtu {layout.pod_mtu} " in any_lab.pod_exec(node.name, "ip", "link", "show", "eth0").stdout
    address = any_lab.node_exec(node.name, "ip", "-4", "-o", "addr", "show", node.iface, check=True).stdout
    assert f"inet {node.ip}/{layout.lan_prefixlen} " in address


def test_layouts_are_well_formed_and_the_second_shares_nothing_with_the_default() -> None:
    default, edge = spec.LAYOUTS["default"], spec.LAYOUTS["edge"]
    for layout in (default, edge):
        nodes = layout.nodes(3)
        assert [n.role for n in nodes] == [spec.CONTROL_PLANE, spec.WORKER, spec.WORKER, spec.WORKER]
        assert [n.wifi for n in nodes] == [False, False, True, False]
        assert layout.small_link_mtu < layout.pod_mtu + layout.overhead
    ours, theirs = edge.nodes(spec.MAX_WORKERS), default.nodes(spec.MAX_WORKERS)
    for attribute in ("name", "iface", "ip", "pod_cidr"):
        assert not {getattr(n, attribute) for n in ours} & {getattr(n, attribute) for n in theirs}, attribute
    for attribute in ("lan_cidr", "pool_cidr", "pool_name", "service_cidr", "api_service_ip",
                      "dns_service_ip", "api_port", "pod_mtu", "encapsulation", "router_routes_pods"):
        assert getattr(edge, attribute) != getattr(default, attribute), attribute
    with pytest.raises(ValueError, match=r"unknown layout 'nope' \(layouts: default, edge\)"):
        spec.layout("nope")


def test_a_malformed_layout_is_refused_when_defined() -> None:
    from dataclasses import replace

    with pytest.raises(ValueError, match="outside the LAN"):
        replace(spec.LAYOUTS["edge"], lan_cidr="10.9.0.0/24")
    with pytest.raises(ValueError, match="small_link_mtu"):
        replace(spec.LAYOUTS["edge"], small_link_mtu=1500)
