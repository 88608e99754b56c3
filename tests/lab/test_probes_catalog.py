"""The nine catalog probes on the lab, through `netcheck check NODE --json` run from the ops namespace.

Covers: the healthy lab (masquerade rule in place) has no problem finding from these probes on any
node, except worker1's pod-to-pod toward the WiFi node's pod when the engine pairs them (the lab
routes nobody to that block); each lab fault gives its probe's exact status with the node's real
values: kubelet-blocked (kubelet-port fail), hosts-missing (etc-hosts fail listing exactly the
other nodes with their InternalIPs), rules-in-legacy and alternative-legacy (iptables-mode fail,
the right alternative), ip-forward-off (fail) and ip-forward-unpersisted (warn), resolved-stub
(resolved-53 fail), vpn (node-address fail naming tailscale0 and wlp59s0), pool-ipip
(encapsulation warn on the WiFi node, kernel-modules skip: this kernel exposes no module list),
pool-ipip + ipip-blocked (still only the WiFi warning: the lab routes pods directly, documented
limit), no-tunnel-device (kernel-modules still ok: /sys/module/vxlan shows the module); and one node
with three faults at once (ip_forward off, /etc/hosts entries missing, kubelet port blocked) lists
exactly those three as causes.
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


@pytest.mark.parametrize("node", ["master", "worker1", "worker2"])
def test_healthy_lab_has_no_problems(lab: Lab, fault, node: str) -> None:
    fault("no-masquerade", on=False)
    found = check(lab, node)
    assert set(found) >= set(CATALOG)
    problems = {p: f for p, f in found.items() if f["status"] not in ("ok", "skip")}
    if node == "worker1" and "encapsulation" in problems:
        # When the engine pairs worker1 with the WiFi node's debug pod: the lab routes nobody to the WiFi
        # node's pod block (lab/topology.pod_route_peers, the case study's premise), so pod-to-pod from
        # worker1 to worker2 is really lost, and the probe shows the route via the router. Reported to
        # the lead; once the lab routes that block this branch is dead code and must go.
        lost = problems.pop("encapsulation")
        assert lost["status"] == "fail", lost
        assert "192.168.88.69 via 192.168.1.1" in lost["evidence"]
    assert problems == {}, problems
    for probe_id in ("kubelet-port", "etc-hosts", "iptables-mode", "ip-forward", "resolved-53",
                     "node-address", "pod-dns"):
        assert found[probe_id]["status"] == "ok", found[probe_id]
    assert found["iptables-mode"]["evidence"].startswith("backend=nft iptables=nft rules=nft split=no")


def test_kubelet_blocked(lab: Lab, fault) -> None:
    fault("kubelet-blocked")
    found = check(lab, "worker2", "kubelet-port")["kubelet-port"]
    assert found["status"] == "fail", found
    assert found["summary"].startswith("the API server cannot reach the kubelet on 192.168.1.105:10250: ")
    assert "sudo ufw allow 10250/tcp" in found["remediation"]


def test_hosts_missing(lab: Lab, fault) -> None:
    fault("hosts-missing")
    found = check(lab, "worker2", "etc-hosts")["etc-hosts"]
    assert found["status"] == "fail", found
    assert "192.168.1.10  master\n192.168.1.20  worker1\nEOF" in found["remediation"]
    assert "worker2" not in found["summary"].split(":", 1)[1]


@pytest.mark.parametrize(("fault_name", "alternative"), [("rules-in-legacy", "iptables-legacy"),
                                                        ("alternative-legacy", "iptables-nft")])
def test_iptables_backend_mismatch(lab: Lab, fault, fault_name: str, alternative: str) -> None:
    fault(fault_name)
    found = check(lab, "worker2", "iptables-mode")["iptables-mode"]
    assert found["status"] == "fail", found
    assert f"sudo update-alternatives --set iptables /usr/sbin/{alternative}" in found["remediation"]


def test_ip_forward_off_and_unpersisted(lab: Lab, fault) -> None:
    fault("ip-forward-unpersisted")
    found = check(lab, "worker2", "ip-forward")["ip-forward"]
    assert found["status"] == "warn", found
    assert found["fix"] == {"id": "ip-forward", "params": {}}
    fault("ip-forward-off")
    found = check(lab, "worker2", "ip-forward")["ip-forward"]
    assert found["status"] == "fail", found
    assert found["summary"] == "forwarding is off on worker2: net.ipv4.ip_forward=0"


def test_resolved_stub(lab: Lab, fault) -> None:
    fault("resolved-stub")
    found = check(lab, "worker2", "resolved-53")["resolved-53"]
    assert found["status"] == "fail", found
    assert "loopback nameserver 127.0.0.53" in found["summary"]
    assert "127.0.0.53" in found["evidence"] and "resolvConf: /run/systemd/resolve/resolv.conf" \
        in found["remediation"]


def test_vpn_address(lab: Lab, fault) -> None:
    fault("vpn")
    found = check(lab, "worker2", "node-address")["node-address"]
    assert found["status"] == "fail", found
    assert "is on tailscale0, a VPN/tunnel/container interface" in found["summary"]
    assert '"skipInterface":"tailscale0"' in found["remediation"]
    assert 'interface: "wlp59s0"' in found["remediation"]


def test_ipip_pool_on_wifi(lab: Lab, fault) -> None:
    fault("no-masquerade", on=False)
    fault("pool-ipip")
    found = check(lab, "worker2", "encapsulation", "kernel-modules")
    assert found["encapsulation"]["status"] == "warn", found["encapsulation"]
    assert "wlp59s0" in found["encapsulation"]["summary"]
    assert found["kernel-modules"]["status"] == "skip", found["kernel-modules"]
    assert "cannot tell whether ipip is loaded" in found["kernel-modules"]["summary"]
    fault("ipip-blocked")
    again = check(lab, "worker2", "encapsulation")["encapsulation"]
    assert again["status"] == "warn", again  # documented: a protocol-4 drop is invisible to the lab's pods


def test_no_tunnel_device(lab: Lab, fault) -> None:
    fault("no-tunnel-device")
    found = check(lab, "worker2", "kernel-modules")["kernel-modules"]
    assert found["status"] == "ok", found
    assert 'Device "vxlan.calico" does not exist.' in found["evidence"]


def test_three_faults_are_three_causes(lab: Lab, fault) -> None:
    fault("ip-forward-off", node="worker1")
    fault("hosts-missing", node="worker1")
    fault("kubelet-blocked", node="worker1")
    data = report(lab, "worker1", None)
    causes = {f["probe"] for f in data["findings"] if f["status"] in ("warn", "fail", "error")
              and f.get("caused_by") is None}
    assert causes == {"ip-forward", "etc-hosts", "kubelet-port"}, data["findings"]
