"""Lab topology for real. On both layouts: the case study (host answers, the WiFi node's pod times
out, a MASQUERADE rule fixes it), healthy pods on the control plane and the wired worker meanwhile,
cluster DNS, Calico-like wiring (per layout: who routes the pod blocks, VXLAN device or none). On
the default layout: the systemctl stand-in over SSH, the netcheck namespace, no host dotfiles.
"""

from __future__ import annotations

import pytest

from lab import spec, topology
from lab.cluster import Lab

pytestmark = pytest.mark.lab


def api_url(lab: Lab) -> str:
    return f"https://{lab.layout.api_service_ip}/version"


def curl(lab: Lab, argv_runner, node: str) -> str:
    return argv_runner(node, "curl", "-sk", "--max-time", "3", api_url(lab)).stdout


def test_case_study(any_lab: Lab, fault) -> None:
    lab, wifi = any_lab, any_lab.wifi_node
    fault("no-masquerade")
    assert '"gitVersion"' in curl(lab, lab.node_exec, wifi.name)
    timed_out = lab.pod_exec(wifi.name, "curl", "-sk", "--max-time", "3", api_url(lab))
    assert timed_out.returncode == 28, timed_out  # curl: operation timed out
    for healthy in (lab.control_plane.name, lab.wired_worker.name):
        assert '"gitVersion"' in curl(lab, lab.pod_exec, healthy)
    # what the masquerade fix installs (the fault fixture takes it away again afterwards)
    lab.node_exec(wifi.name, "iptables", "-t", "nat", "-A", "POSTROUTING", "-s", wifi.pod_cidr,
                  "-o", wifi.iface, "-j", "MASQUERADE", check=True)
    rules = lab.node_exec(wifi.name, "iptables", "-t", "nat", "-S", "POSTROUTING").stdout
    assert f"-A POSTROUTING -s {wifi.pod_cidr} -o {wifi.iface} -j MASQUERADE" in rules
    assert '"gitVersion"' in curl(lab, lab.pod_exec, wifi.name)


def test_calico_like_wiring(any_lab: Lab) -> None:
    lab, layout, wifi, wired = any_lab, any_lab.layout, any_lab.wifi_node, any_lab.wired_worker
    pod_routes = lab.pod_exec(wifi.name, "ip", "route").stdout
    assert f"default via {spec.POD_GATEWAY} dev eth0" in pod_routes
    cali = topology.cali_name(wifi.name)
    assert lab.node_exec(wifi.name, "sysctl", "-n", f"net.ipv4.conf.{cali}.proxy_arp").stdout.strip() == "1"
    host_routes = lab.node_exec(wired.name, "ip", "route").stdout
    router_routes = lab.router_exec("ip", "route").stdout.strip().splitlines()
    cp = lab.control_plane
    if layout.router_routes_pods:  # a routed pod network: the router knows every block, nodes use it
        assert f"{cp.pod_cidr} via" not in host_routes and f"default via {layout.router_ip}" in host_routes
        assert sorted(r.strip() for r in router_routes[:-1]) == \
            sorted(f"{n.pod_cidr} via {n.ip} dev br-lan" for n in lab.nodes)
    else:  # nodes route each other's blocks; nobody routes the WiFi node's, the router none at all
        assert f"{cp.pod_cidr} via {cp.ip} dev {wired.iface}" in host_routes
        assert wifi.pod_cidr not in host_routes
        assert len(router_routes) == 1
    assert router_routes[-1].startswith(f"{layout.lan_cidr} dev br-lan")
    vxlan = lab.node_exec(wifi.name, "ip", "-d", "link", "show", "vxlan.calico")
    if layout.vxlan:
        assert "vxlan id 4096" in vxlan.stdout and "dstport 4789" in vxlan.stdout
        assert f"mtu {layout.pod_mtu}" in vxlan.stdout
    else:
        assert vxlan.returncode != 0  # no encapsulation, no tunnel device


def test_cluster_dns_from_a_pod(any_lab: Lab) -> None:
    lab, domain = any_lab, any_lab.layout.cluster_domain
    out = lab.pod_exec(lab.control_plane.name, "dig", "+short", "+time=2", "+tries=1",
                       f"kubernetes.default.svc.{domain}").stdout
    assert out.strip() == lab.layout.api_service_ip
    missing = lab.pod_exec(lab.control_plane.name, "dig", "+time=2", "+tries=1", f"nothere.{domain}").stdout
    assert "NXDOMAIN" in missing


def ssh(lab: Lab, node_ip: str, command: str):
    return lab.run_ops(["ssh", "-i", str(lab.ssh_key), "-o", f"UserKnownHostsFile={lab.known_hosts}",
                        "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", f"root@{node_ip}", command])


UNIT = """[Unit]
Description=Lab test unit
[Service]
Type=oneshot
ExecStart=/usr/sbin/iptables -t nat -A POSTROUTING {rule}
ExecStop=/usr/sbin/iptables -t nat -D POSTROUTING {rule}
RemainAfterExit=yes
[Install]
WantedBy=multi-user.target
"""


def test_systemctl_stand_in_over_ssh(lab: Lab) -> None:
    node = lab.wired_worker
    rule = f"-s {node.pod_cidr} -o {node.iface} -j MASQUERADE"
    assert ssh(lab, node.ip, "hostname").stdout.strip() == node.name
    unit = UNIT.format(rule=rule)
    install = ssh(lab, node.ip, f"cat > /etc/systemd/system/lab-test.service <<'EOF'\n{unit}EOF\n"
                  "systemctl daemon-reload && systemctl enable --now lab-test.service")
    try:
        assert install.returncode == 0, install.stderr
        assert ssh(lab, node.ip, "systemctl is-active lab-test").stdout.strip() == "active"
        assert ssh(lab, node.ip, "systemctl is-enabled lab-test").stdout.strip() == "enabled"
        rules = lab.node_exec(node.name, "iptables-save", "-t", "nat").stdout
        assert rule in rules
        assert ssh(lab, node.ip, "systemctl disable --now lab-test").returncode == 0
        assert f"-s {node.pod_cidr} -o {node.iface}" not in lab.node_exec(node.name, "iptables-save").stdout
        unknown = ssh(lab, node.ip, "systemctl start nope.service")
        assert unknown.returncode != 0 and "Unit nope.service not found" in unknown.stderr
    finally:
        ssh(lab, node.ip, "systemctl disable --now lab-test; rm -f /etc/systemd/system/lab-test.service")


@pytest.mark.lab
def test_api_has_netchecks_namespace_like_an_installed_cluster(lab: Lab) -> None:
    from kubernetes import client, config

    with lab.enter_ops():
        api = client.CoreV1Api(config.new_client_from_config(str(lab.kubeconfig)))
        namespace = api.read_namespace(spec.DEBUG_POD_NAMESPACE)
    assert namespace.metadata.name == spec.DEBUG_POD_NAMESPACE
    assert namespace.status.phase == "Active"


@pytest.mark.lab
def test_node_shells_do_not_run_this_machines_root_dotfiles(lab: Lab) -> None:
    """A node's root shell is a node's, not this host's: no host .bashrc (pyenv init and its lock)."""
    result = ssh(lab, lab.wired_worker.ip,
                 "wc -c < /root/.bashrc 2>/dev/null || echo 0; echo \"[$PYENV_ROOT]\"")
    assert result.returncode == 0, result.stderr
    size, pyenv_root = result.stdout.split()
    assert size == "0"
    assert pyenv_root == "[]"
