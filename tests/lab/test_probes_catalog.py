"""The nine catalog probes on the lab, through `netcheck check NODE --json` run from the ops namespace.

Covers (on both layouts, `any_lab`, unless noted): each lab fault gives its probe's exact status
with the node's real values: kubelet-blocked (kubelet-port fail), hosts-missing (etc-hosts fail
listing exactly the other nodes with their InternalIPs), rules-in-legacy and alternative-legacy
(default layout: iptables-mode fail, the right alternative), ip-forward-off (fail) and
ip-forward-unpersisted (warn) on the wired worker, resolved-stub (default layout: resolved-53
fail), vpn
(node-address fail naming tailscale0 and the node's uplink), pool-ipip (encapsulation warn on the
WiFi node, kernel-modules skip: this kernel exposes no module list), pool-ipip + ipip-blocked
(still only the WiFi warning: the lab routes pods directly, documented limit), no-tunnel-device
(default layout, VXLAN: kernel-modules still ok, /sys/module/vxlan shows the module); and one
wired worker with three faults at once (ip_forward off, /etc/hosts entries missing, kubelet port
blocked) lists exactly those three as causes. The healthy lab is in tests/lab/test_layouts.py.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from lab.cluster import Lab

pytestmark = pytest.mark.lab

CATALOG = ("kubelet-port", "etc-hosts", "iptables-mode", "ip-forward", "resolved-53", "kernel-modules",
           "node-address", "encapsulation", "pod-dns")
NETCHECK = str(Path(sys.executable).with_name("netcheck"))
CHECK_TIMEOUT_S = 120.0


def report(lab: Lab, node: str, probes: tuple[str, ...] | None = CATALOG) -> dict:
    argv = [NETCHECK, "check", node, "--json"]
    for probe_id in probes or ():
        argv += ["--probe", probe_id]
    proc = lab.run_ops(argv, timeout=CHECK_TIMEOUT_S)
    assert proc.returncode in (0, 1), proc.stderr[-2000:]
    data = json.loads(proc.stdout)
    assert data["node"] == node
    return data


def check(lab: Lab, node: str, *probes: str) -> dict[str, dict]:
    """Findings by probe id (the given probes, or the nine catalog probes)."""
    return {f["probe"]: f for f in report(lab, node, probes or CATALOG)["findings"]}


def test_kubelet_blocked(any_lab: Lab, fault) -> None:
    node = any_lab.wifi_node
    fault("kubelet-blocked")
    found = check(any_lab, node.name, "kubelet-port")["kubelet-port"]
    assert found["status"] == "fail", found
    assert found["summary"].startswith(f"the API server cannot reach the kubelet on {node.ip}:10250: ")
    assert "sudo ufw allow 10250/tcp" in found["remediation"]


def test_hosts_missing(any_lab: Lab, fault) -> None:
    node = any_lab.wifi_node
    fault("hosts-missing")
    found = check(any_lab, node.name, "etc-hosts")["etc-hosts"]
    assert found["status"] == "fail", found
    others = "".join(f"{n.ip}  {n.name}\n" for n in any_lab.nodes if n != node)
    assert others + "EOF" in found["remediation"]
    assert node.name not in found["summary"].split(":", 1)[1]


@pytest.mark.parametrize(("fault_name", "alternative"), [("rules-in-legacy", "iptables-legacy"),
                                                        ("alternative-legacy", "iptables-nft")])
def test_iptables_backend_mismatch(lab: Lab, fault, fault_name: str, alternative: str) -> None:
    fault(fault_name)
    found = check(lab, lab.wifi_node.name, "iptables-mode")["iptables-mode"]
    assert found["status"] == "fail", found
    assert f"sudo update-alternatives --set iptables /usr/sbin/{alternative}" in found["remediation"]


def test_ip_forward_off_and_unpersisted(any_lab: Lab, fault) -> None:
    """On the wired worker: a fault on a node that is not the WiFi one."""
    node = any_lab.wired_worker.name
    fault("ip-forward-unpersisted", node)
    found = check(any_lab, node, "ip-forward")["ip-forward"]
    assert found["status"] == "warn", found
    assert found["fix"] == {"id": "ip-forward", "params": {}}
    fault("ip-forward-off", node)
    found = check(any_lab, node, "ip-forward")["ip-forward"]
    assert found["status"] == "fail", found
    assert found["summary"] == f"forwarding is off on {node}: net.ipv4.ip_forward=0"


def test_resolved_stub(lab: Lab, fault) -> None:
    fault("resolved-stub")
    found = check(lab, lab.wifi_node.name, "resolved-53")["resolved-53"]
    assert found["status"] == "fail", found
    assert "loopback nameserver 127.0.0.53" in found["summary"]
    assert "127.0.0.53" in found["evidence"] and "resolvConf: /run/systemd/resolve/resolv.conf" \
        in found["remediation"]


def test_vpn_address(any_lab: Lab, fault) -> None:
    node = any_lab.wifi_node
    fault("vpn")
    found = check(any_lab, node.name, "node-address")["node-address"]
    assert found["status"] == "fail", found
    assert "is on tailscale0, a VPN/tunnel/container interface" in found["summary"]
    assert '"skipInterface":"tailscale0"' in found["remediation"]
    assert f'interface: "{node.iface}"' in found["remediation"]


def test_ipip_pool_on_wifi(any_lab: Lab, fault) -> None:
    node = any_lab.wifi_node
    fault("no-masquerade", on=False)
    fault("pool-ipip")
    found = check(any_lab, node.name, "encapsulation", "kernel-modules")
    assert found["encapsulation"]["status"] == "warn", found["encapsulation"]
    assert node.iface in found["encapsulation"]["summary"]
    assert found["kernel-modules"]["status"] == "skip", found["kernel-modules"]
    assert "cannot tell whether ipip is loaded" in found["kernel-modules"]["summary"]
    fault("ipip-blocked")
    again = check(any_lab, node.name, "encapsulation")["encapsulation"]
    assert again["status"] == "warn", again  # documented: a protocol-4 drop is invisible to the lab's pods


def test_no_tunnel_device(lab: Lab, fault) -> None:
    """VXLAN layouts only (the edge layout has no tunnel device: the fault refuses there)."""
    fault("no-tunnel-device")
    found = check(lab, lab.wifi_node.name, "kernel-modules")["kernel-modules"]
    assert found["status"] == "ok", found
    assert 'Device "vxlan.calico" does not exist.' in found["evidence"]


def test_three_faults_are_three_causes(any_lab: Lab, fault) -> None:
    node = any_lab.wired_worker.name
    fault("ip-forward-off", node=node)
    fault("hosts-missing", node=node)
    fault("kubelet-blocked", node=node)
    data = report(any_lab, node, None)
    causes = {f["probe"] for f in data["findings"] if f["status"] in ("warn", "fail", "error")
              and f.get("caused_by") is None}
    assert causes == {"ip-forward", "etc-hosts", "kubelet-port"}, data["findings"]
