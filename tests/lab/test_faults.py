"""Each lab fault's symptom with plain commands, on and then off (faults undone by the `fault` fixture):
mtu (frag-needed from the node), kubelet-blocked, hosts-missing, rules-in-legacy, alternative-legacy,
ip-forward-off, ip-forward-unpersisted, resolved-stub, pod-route-missing, no-tunnel-device,
icmp-blackhole (oversize DF packets vanish, no frag-needed) and ipip-blocked (raw IP-protocol-4 packets
from worker2 reach master's raw socket, then stop at the router's bridge filter).

The mtu fault: the router is a plain bridge (an L2 AP), so the frag-needed comes from worker2 itself
when it forwards the pod's 1450-byte-MTU traffic onto the 1400-byte WiFi link, as in the case study.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from lab.cluster import Lab

pytestmark = pytest.mark.lab


def big_ping(lab: Lab) -> str:
    proc = lab.pod_exec("worker2", "ping", "-c", "1", "-W", "2", "-M", "do", "-s", "1420", "192.168.1.10")
    return proc.stdout + proc.stderr


def test_mtu_frag_needed_from_the_node(lab: Lab, fault) -> None:
    fault("no-masquerade", on=False)  # so replies can come back at all
    assert "1 received" in big_ping(lab)
    fault("mtu")
    out = big_ping(lab)
    assert "mtu = 1400" in out or "mtu=1400" in out, out
    assert "mtu 1400" in lab.node_exec("worker2", "ip", "link", "show", "wlp59s0").stdout


def test_kubelet_blocked_refuses(lab: Lab, fault) -> None:
    argv = ("curl", "-sk", "--max-time", "3", "https://192.168.1.105:10250/healthz")
    assert lab.run_ops(argv).stdout == "ok"
    fault("kubelet-blocked")
    assert lab.run_ops(argv).returncode == 7  # connection refused


def test_hosts_missing(lab: Lab, fault) -> None:
    assert lab.node_exec("worker2", "getent", "hosts", "master").returncode == 0
    fault("hosts-missing")
    assert lab.node_exec("worker2", "getent", "hosts", "master").returncode == 2


def test_rules_in_legacy(lab: Lab, fault) -> None:
    fault("rules-in-legacy")
    assert "KUBE-SERVICES" not in lab.node_exec("worker2", "iptables-nft-save").stdout
    assert "KUBE-SERVICES" in lab.node_exec("worker2", "iptables-legacy-save").stdout
    assert "KUBE-IPTABLES-HINT" in lab.node_exec("worker2", "iptables-legacy-save", "-t", "mangle").stdout
    nft_view = lab.node_exec("worker2", "iptables", "-t", "nat", "-S")
    assert "# Warning: iptables-legacy tables present" in nft_view.stdout + nft_view.stderr


def test_alternative_legacy(lab: Lab, fault) -> None:
    assert lab.node_exec("worker2", "readlink", "/etc/alternatives/iptables").stdout.strip().endswith("-nft")
    fault("alternative-legacy")
    assert lab.node_exec("worker2", "readlink", "/etc/alternatives/iptables").stdout.strip() == \
        "/usr/sbin/iptables-legacy"
    assert "KUBE-SERVICES" not in lab.node_exec("worker2", "iptables-save").stdout
    assert lab.node_exec("worker1", "readlink", "/etc/alternatives/iptables").stdout.strip().endswith("-nft")


def test_ip_forward_faults(lab: Lab, fault) -> None:
    fault("no-masquerade", on=False)
    api = ("curl", "-sk", "--max-time", "3", "https://10.96.0.1/version")
    assert lab.pod_exec("worker2", *api).returncode == 0
    fault("ip-forward-off")
    assert lab.node_exec("worker2", "sysctl", "-n", "net.ipv4.ip_forward").stdout.strip() == "0"
    assert lab.pod_exec("worker2", *api).returncode == 28  # the node no longer forwards the pod's traffic
    fault("ip-forward-off", on=False)
    fault("ip-forward-unpersisted")
    assert lab.node_exec("worker2", "sysctl", "-n", "net.ipv4.ip_forward").stdout.strip() == "1"
    persisted = lab.node_exec("worker2", "sh", "-c", "cat /etc/sysctl.d/*.conf 2>/dev/null").stdout
    assert "ip_forward" not in persisted
    assert "ip_forward=1" in lab.node_exec("worker1", "sh", "-c", "cat /etc/sysctl.d/*.conf").stdout


def test_resolved_stub(lab: Lab, fault) -> None:
    fault("resolved-stub")
    assert "nameserver 127.0.0.53" in lab.node_exec("worker2", "cat", "/etc/resolv.conf").stdout
    assert "127.0.0.53:53" in lab.node_exec("worker2", "ss", "-ulpn").stdout
    assert "resolvConf: /etc/resolv.conf" in lab.kubelet_config("worker2").read_text()


def test_pod_route_and_tunnel_device(lab: Lab, fault) -> None:
    fault("pod-route-missing")
    assert "192.168.88.69" not in lab.node_exec("worker2", "ip", "route").stdout
    fault("pod-route-missing", on=False)
    assert "192.168.88.69 dev cali" in lab.node_exec("worker2", "ip", "route").stdout
    fault("no-tunnel-device")
    assert lab.node_exec("worker2", "ip", "link", "show", "vxlan.calico").returncode != 0


def test_icmp_blackhole_drops_silently(lab: Lab, fault) -> None:
    fault("no-masquerade", on=False)
    fault("icmp-blackhole")
    out = big_ping(lab)
    assert "0 received" in out and "mtu" not in out.lower(), out  # no frag-needed reaches the pod
    small = lab.pod_exec("worker2", "ping", "-c", "1", "-W", "2", "-s", "1000", "192.168.1.10").stdout
    assert "1 received" in small
    fault("icmp-blackhole", on=False)
    assert "1 received" in big_ping(lab)


IPIP_RECEIVER = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, 4)
s.settimeout(float(sys.argv[1]))
try:
    while True:
        data, addr = s.recvfrom(2048)
        if addr[0] == "192.168.1.105":
            print("got", addr[0]); break
except TimeoutError:
    print("nothing")
"""
IPIP_SENDER = """
import socket, time
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, 4)
for _ in range(10):
    s.sendto(b"\\x45" + b"\\x00" * 19, ("192.168.1.10", 0)); time.sleep(0.1)
"""


def ipip_reaches_master(lab: Lab) -> bool:
    receiver = subprocess.Popen(["ip", "netns", "exec", lab.ns("master"), sys.executable, "-c",
                                 IPIP_RECEIVER, "3"], stdout=subprocess.PIPE, text=True)
    try:
        lab.node_exec("worker2", sys.executable, "-c", IPIP_SENDER, check=True)
        out, _ = receiver.communicate(timeout=10)
    finally:
        if receiver.poll() is None:
            receiver.kill()
            receiver.wait()
    return out.startswith("got")


def test_ipip_blocked_at_the_router(lab: Lab, fault) -> None:
    assert ipip_reaches_master(lab)
    fault("ipip-blocked")
    assert not ipip_reaches_master(lab)
    assert "ip protocol ipencap counter" in lab.router_exec("nft", "list", "ruleset").stdout
