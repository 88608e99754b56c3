"""Lab topology for real: the case study (host answers, WiFi pod times out, MASQUERADE fixes it),
healthy pods on master/worker1, cluster DNS, Calico-like wiring, and the systemctl stand-in over SSH.
"""

from __future__ import annotations

import pytest

from lab import spec, topology
from lab.cluster import Lab

API = "https://10.96.0.1/version"
pytestmark = pytest.mark.lab


def curl(argv_runner, node: str) -> str:
    return argv_runner(node, "curl", "-sk", "--max-time", "3", API).stdout


def test_case_study(lab: Lab, fault) -> None:
    assert '"gitVersion"' in curl(lab.node_exec, "worker2")
    timed_out = lab.pod_exec("worker2", "curl", "-sk", "--max-time", "3", API)
    assert timed_out.returncode == 28, timed_out  # curl: operation timed out
    for healthy in ("master", "worker1"):
        assert '"gitVersion"' in curl(lab.pod_exec, healthy)
    fault("no-masquerade", "worker2", on=False)
    rules = lab.node_exec("worker2", "iptables", "-t", "nat", "-S", "POSTROUTING").stdout
    assert "-A POSTROUTING -s 192.168.88.0/24 -o wlp59s0 -j MASQUERADE" in rules
    assert '"gitVersion"' in curl(lab.pod_exec, "worker2")


def test_calico_like_wiring(lab: Lab) -> None:
    pod_routes = lab.pod_exec("worker2", "ip", "route").stdout
    assert "default via 169.254.1.1 dev eth0" in pod_routes
    host_routes = lab.node_exec("worker1", "ip", "route").stdout
    assert "192.168.86.0/24 via 192.168.1.10 dev enp3s0" in host_routes
    assert "192.168.88.0/24" not in host_routes  # nobody routes to the WiFi node's pods
    cali = topology.cali_name("worker2")
    assert lab.node_exec("worker2", "sysctl", "-n", f"net.ipv4.conf.{cali}.proxy_arp").stdout.strip() == "1"
    vxlan = lab.node_exec("worker2", "ip", "-d", "link", "show", "vxlan.calico").stdout
    assert "vxlan id 4096" in vxlan and "dstport 4789" in vxlan and "mtu 1450" in vxlan
    router_routes = lab.router_exec("ip", "route").stdout.strip().splitlines()
    assert len(router_routes) == 1 and router_routes[0].startswith("192.168.1.0/24 dev br-lan")


def test_cluster_dns_from_a_pod(lab: Lab) -> None:
    out = lab.pod_exec("master", "dig", "+short", "+time=2", "+tries=1",
                       "kubernetes.default.svc.cluster.local").stdout
    assert out.strip() == "10.96.0.1"
    missing = lab.pod_exec("master", "dig", "+time=2", "+tries=1", "nothere.cluster.local").stdout
    assert "NXDOMAIN" in missing


def ssh(lab: Lab, node_ip: str, command: str):
    return lab.run_ops(["ssh", "-i", str(lab.ssh_key), "-o", f"UserKnownHostsFile={lab.known_hosts}",
                        "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", f"root@{node_ip}", command])


UNIT = """[Unit]
Description=Lab test unit
[Service]
Type=oneshot
ExecStart=/usr/sbin/iptables -t nat -A POSTROUTING -s 192.168.87.0/24 -o enp3s0 -j MASQUERADE
ExecStop=/usr/sbin/iptables -t nat -D POSTROUTING -s 192.168.87.0/24 -o enp3s0 -j MASQUERADE
RemainAfterExit=yes
[Install]
WantedBy=multi-user.target
"""


def test_systemctl_stand_in_over_ssh(lab: Lab) -> None:
    assert ssh(lab, "192.168.1.20", "hostname").stdout.strip() == "worker1"
    install = ssh(lab, "192.168.1.20", f"cat > /etc/systemd/system/lab-test.service <<'EOF'\n{UNIT}EOF\n"
                  "systemctl daemon-reload && systemctl enable --now lab-test.service")
    try:
        assert install.returncode == 0, install.stderr
        assert ssh(lab, "192.168.1.20", "systemctl is-active lab-test").stdout.strip() == "active"
        assert ssh(lab, "192.168.1.20", "systemctl is-enabled lab-test").stdout.strip() == "enabled"
        rules = lab.node_exec("worker1", "iptables-save", "-t", "nat").stdout
        assert "-s 192.168.87.0/24 -o enp3s0 -j MASQUERADE" in rules
        assert ssh(lab, "192.168.1.20", "systemctl disable --now lab-test").returncode == 0
        assert "-s 192.168.87.0/24 -o enp3s0" not in lab.node_exec("worker1", "iptables-save").stdout
        unknown = ssh(lab, "192.168.1.20", "systemctl start nope.service")
        assert unknown.returncode != 0 and "Unit nope.service not found" in unknown.stderr
    finally:
        ssh(lab, "192.168.1.20",
            "systemctl disable --now lab-test; rm -f /etc/systemd/system/lab-test.service")


@pytest.mark.lab
def test_api_has_netchecks_namespace_like_an_installed_cluster(lab: Lab) -> None:
    from kubernetes import client, config

    with lab.enter_ops():
        api = client.CoreV1Api(config.new_client_from_config(str(lab.kubeconfig)))
        namespace = api.read_namespace(spec.DEBUG_POD_NAMESPACE)
    assert namespace.metadata.name == "netcheck"
    assert namespace.status.phase == "Active"


@pytest.mark.lab
def test_node_shells_do_not_run_this_machines_root_dotfiles(lab: Lab) -> None:
    """A node's root shell is a node's, not this host's: no host .bashrc (pyenv init and its lock)."""
    result = ssh(lab, "192.168.1.20", "wc -c < /root/.bashrc 2>/dev/null || echo 0; echo \"[$PYENV_ROOT]\"")
    assert result.returncode == 0, result.stderr
    size, pyenv_root = result.stdout.split()
    assert size == "0"
    assert pyenv_root == "[]"
