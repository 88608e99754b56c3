"""Each lab fault's symptom with plain commands, on and then off (faults undone by the `fault` fixture).

On both layouts (`any_lab`): mtu (frag-needed from the node, the router's bridge keeps the LAN MTU),
ip-forward-off and ip-forward-unpersisted, no-masquerade on the WiFi node and on a wired worker
(pod -> API times out, nobody routes the node's pod block any more; off restores it), and the MTU
black hole, icmp-blackhole (oversize DF packets from the pod vanish without frag-needed, the pod's
TLS handshake stalls, the node's own TLS works). On the default layout: kubelet-blocked,
hosts-missing, rules-in-legacy, alternative-legacy, resolved-stub, pod-route-missing,
no-tunnel-device (which refuses on the edge layout: no tunnel device there) and ipip-blocked (raw
IP-protocol-4 packets from the WiFi node reach the control plane's raw socket, then stop at the
router's bridge filter).

The mtu fault: the router is a plain bridge (an L2 AP), so the frag-needed comes from the WiFi node
itself when it forwards its pod's traffic (pod MTU) onto the smaller WiFi link, as in the case study.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from lab.cluster import Lab

pytestmark = pytest.mark.lab


def api(lab: Lab) -> tuple[str, ...]:
    return ("curl", "-sk", "--max-time", "3", f"https://{lab.layout.api_service_ip}/version")


def big_ping(lab: Lab) -> str:
    """A DF ping from the WiFi node's pod, bigger than the faults' link MTU, within the pod MTU."""
    size = (lab.layout.small_link_mtu + lab.layout.pod_mtu) // 2 - 28
    proc = lab.pod_exec(lab.wifi_node.name, "ping", "-c", "1", "-W", "2", "-M", "do", "-s", str(size),
                        lab.control_plane.ip)
    return proc.stdout + proc.stderr


def test_mtu_frag_needed_from_the_node(any_lab: Lab, fault) -> None:
    lab, small = any_lab, any_lab.layout.small_link_mtu
    fault("no-masquerade", on=False)  # so replies can come back at all
    assert "1 received" in big_ping(lab)
    fault("mtu")
    out = big_ping(lab)
    assert f"mtu = {small}" in out or f"mtu={small}" in out, out
    link = lab.node_exec(lab.wifi_node.name, "ip", "link", "show", lab.wifi_node.iface).stdout
    assert f"mtu {small}" in link
    router = lab.router_exec("ip", "link", "show").stdout
    assert f"br-lan: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu {lab.layout.host_mtu}" in router  # only the port


def test_kubelet_blocked_refuses(lab: Lab, fault) -> None:
    argv = ("curl", "-sk", "--max-time", "3", f"https://{lab.wifi_node.ip}:10250/healthz")
    assert lab.run_ops(argv).stdout == "ok"
    fault("kubelet-blocked")
    assert lab.run_ops(argv).returncode == 7  # connection refused


def test_hosts_missing(lab: Lab, fault) -> None:
    wifi, cp = lab.wifi_node.name, lab.control_plane.name
    assert lab.node_exec(wifi, "getent", "hosts", cp).returncode == 0
    fault("hosts-missing")
    assert lab.node_exec(wifi, "getent", "hosts", cp).returncode == 2


def test_rules_in_legacy(lab: Lab, fault) -> None:
    wifi = lab.wifi_node.name
    fault("rules-in-legacy")
    assert "KUBE-SERVICES" not in lab.node_exec(wifi, "iptables-nft-save").stdout
    assert "KUBE-SERVICES" in lab.node_exec(wifi, "iptables-legacy-save").stdout
    assert "KUBE-IPTABLES-HINT" in lab.node_exec(wifi, "iptables-legacy-save", "-t", "mangle").stdout
    nft_view = lab.node_exec(wifi, "iptables", "-t", "nat", "-S")
    assert "# Warning: iptables-legacy tables present" in nft_view.stdout + nft_view.stderr


def test_alternative_legacy(lab: Lab, fault) -> None:
    wifi, wired = lab.wifi_node.name, lab.wired_worker.name
    assert lab.node_exec(wifi, "readlink", "/etc/alternatives/iptables").stdout.strip().endswith("-nft")
    fault("alternative-legacy")
    assert lab.node_exec(wifi, "readlink", "/etc/alternatives/iptables").stdout.strip() == \
        "/usr/sbin/iptables-legacy"
    assert "KUBE-SERVICES" not in lab.node_exec(wifi, "iptables-save").stdout
    assert lab.node_exec(wired, "readlink", "/etc/alternatives/iptables").stdout.strip().endswith("-nft")


def test_ip_forward_faults(any_lab: Lab, fault) -> None:
    lab, wifi, wired = any_lab, any_lab.wifi_node.name, any_lab.wired_worker.name
    fault("no-masquerade", on=False)
    assert lab.pod_exec(wifi, *api(lab)).returncode == 0
    fault("ip-forward-off")
    assert lab.node_exec(wifi, "sysctl", "-n", "net.ipv4.ip_forward").stdout.strip() == "0"
    assert lab.pod_exec(wifi, *api(lab)).returncode == 28  # the node no longer forwards the pod's traffic
    fault("ip-forward-off", on=False)
    fault("ip-forward-unpersisted")
    assert lab.node_exec(wifi, "sysctl", "-n", "net.ipv4.ip_forward").stdout.strip() == "1"
    persisted = lab.node_exec(wifi, "sh", "-c", "cat /etc/sysctl.d/*.conf 2>/dev/null").stdout
    assert "ip_forward" not in persisted
    assert "ip_forward=1" in lab.node_exec(wired, "sh", "-c", "cat /etc/sysctl.d/*.conf").stdout


def test_resolved_stub(lab: Lab, fault) -> None:
    wifi = lab.wifi_node.name
    fault("resolved-stub")
    assert "nameserver 127.0.0.53" in lab.node_exec(wifi, "cat", "/etc/resolv.conf").stdout
    assert "127.0.0.53:53" in lab.node_exec(wifi, "ss", "-ulpn").stdout
    assert "resolvConf: /etc/resolv.conf" in lab.kubelet_config(wifi).read_text()


def test_pod_route_and_tunnel_device(lab: Lab, fault) -> None:
    wifi = lab.wifi_node
    fault("pod-route-missing")
    assert wifi.pod_ip not in lab.node_exec(wifi.name, "ip", "route").stdout
    fault("pod-route-missing", on=False)
    assert f"{wifi.pod_ip} dev cali" in lab.node_exec(wifi.name, "ip", "route").stdout
    fault("no-tunnel-device")
    assert lab.node_exec(wifi.name, "ip", "link", "show", "vxlan.calico").returncode != 0


def test_no_tunnel_device_refuses_on_a_layout_without_encapsulation(edge_lab: Lab) -> None:
    before = edge_lab.active_faults()
    with pytest.raises(ValueError, match="does not apply here: layout edge has no tunnel device"):
        edge_lab.fault("no-tunnel-device", node=edge_lab.wired_worker.name)
    assert edge_lab.active_faults() == before


@pytest.mark.parametrize("role", ["wifi_node", "wired_worker"])
def test_no_masquerade_means_replies_cannot_come_back_on_any_node(any_lab: Lab, fault, role: str) -> None:
    """The case study on any node of any layout: whoever routed the node's pod block (the routed
    layout's router, or the other nodes) no longer does, and nothing NATs the pods; off restores it."""
    lab, node = any_lab, getattr(any_lab, role)
    fault("no-masquerade", node.name, on=False)
    assert lab.pod_exec(node.name, *api(lab)).returncode == 0
    fault("no-masquerade", node.name)
    assert lab.pod_exec(node.name, *api(lab)).returncode == 28
    assert "MASQUERADE" not in lab.node_exec(node.name, "iptables", "-t", "nat", "-S", "POSTROUTING").stdout
    assert node.pod_cidr not in lab.router_exec("ip", "route").stdout
    assert node.pod_cidr not in lab.node_exec(lab.control_plane.name, "ip", "route").stdout
    fault("no-masquerade", node.name, on=False)
    assert lab.pod_exec(node.name, *api(lab)).returncode == 0
    if lab.layout.router_routes_pods:
        assert f"{node.pod_cidr} via {node.ip} dev br-lan" in lab.router_exec("ip", "route").stdout


def test_mtu_black_hole_stalls_the_pods_tls_silently(any_lab: Lab, fault) -> None:
    """icmp-blackhole: link MTU below the pod MTU plus overhead and frag-needed dropped. The pod's
    TLS handshake stalls on the server's certificate flight, its DF pings get no answer at all (no
    frag-needed), small packets pass, and the node's own TLS (its MTU is the link's) still works."""
    lab, wifi = any_lab, any_lab.wifi_node.name
    fault("no-masquerade", on=False)
    fault("icmp-blackhole")
    out = big_ping(lab)
    assert "0 received" in out and "mtu" not in out.lower(), out  # no frag-needed reaches the pod
    small = lab.pod_exec(wifi, "ping", "-c", "1", "-W", "2", "-s", "1000", lab.control_plane.ip).stdout
    assert "1 received" in small
    assert lab.pod_exec(wifi, *api(lab)).returncode == 28  # the handshake stalls
    assert lab.node_exec(wifi, *api(lab)).returncode == 0
    fault("icmp-blackhole", on=False)
    assert "1 received" in big_ping(lab)
    assert lab.pod_exec(wifi, *api(lab)).returncode == 0


IPIP_RECEIVER = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, 4)
s.settimeout(float(sys.argv[1]))
try:
    while True:
        data, addr = s.recvfrom(2048)
        if addr[0] == sys.argv[2]:
            print("got", addr[0]); break
except TimeoutError:
    print("nothing")
"""
IPIP_SENDER = """
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, 4)
for _ in range(10):
    s.sendto(b"\\x45" + b"\\x00" * 19, (sys.argv[1], 0)); time.sleep(0.1)
"""


def ipip_reaches_the_control_plane(lab: Lab) -> bool:
    receiver = subprocess.Popen(["ip", "netns", "exec", lab.ns(lab.control_plane.name), sys.executable, "-c",
                                 IPIP_RECEIVER, "3", lab.wifi_node.ip], stdout=subprocess.PIPE, text=True)
    try:
        lab.node_exec(lab.wifi_node.name, sys.executable, "-c", IPIP_SENDER, lab.control_plane.ip, check=True)
        out, _ = receiver.communicate(timeout=10)
    finally:
        if receiver.poll() is None:
            receiver.kill()
            receiver.wait()
    return out.startswith("got")


def test_ipip_blocked_at_the_router(lab: Lab, fault) -> None:
    assert ipip_reaches_the_control_plane(lab)
    fault("ipip-blocked")
    assert not ipip_reaches_the_control_plane(lab)
    assert "ip protocol ipencap counter" in lab.router_exec("nft", "list", "ruleset").stdout
