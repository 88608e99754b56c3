"""Lab faults and hooks seen through the API stand-in with the official kubernetes client, in-process via
Lab.enter_ops(): vpn (tailscale0 tun + IPv4Address annotation), pool-ipip (IPPool/Installation), the
Installation MTU hook (cali veth, pod eth0, vxlan.calico follow), and the control API's node join.
"""

from __future__ import annotations

import pytest
from kubernetes import client, config

from lab import topology
from lab.cluster import Lab

pytestmark = pytest.mark.lab
INSTALLATION = ("operator.tigera.io", "v1", "installations", "default")
IPPOOL = ("crd.projectcalico.org", "v1", "ippools", "default-ipv4-ippool")


def api(lab: Lab) -> client.ApiClient:
    return config.new_client_from_config(config_file=str(lab.kubeconfig))


def test_vpn_fault(lab: Lab, fault) -> None:
    fault("vpn")
    link = lab.node_exec("worker2", "ip", "-o", "addr", "show", "tailscale0").stdout
    assert "100.64.0.3/32" in link
    with lab.enter_ops():
        node = client.CoreV1Api(api(lab)).read_node("worker2")
    assert node.metadata.annotations["projectcalico.org/IPv4Address"] == "100.64.0.3/32"
    fault("vpn", on=False)
    assert lab.node_exec("worker2", "ip", "link", "show", "tailscale0").returncode != 0
    with lab.enter_ops():
        node = client.CoreV1Api(api(lab)).read_node("worker2")
    assert node.metadata.annotations["projectcalico.org/IPv4Address"] == "192.168.1.105/24"


def test_pool_ipip_fault(lab: Lab, fault) -> None:
    fault("pool-ipip")
    with lab.enter_ops():
        objects = client.CustomObjectsApi(api(lab))
        pool = objects.get_cluster_custom_object(*IPPOOL)
        inst = objects.get_cluster_custom_object(*INSTALLATION)
    assert pool["spec"]["ipipMode"] == "Always" and pool["spec"]["vxlanMode"] == "Never"
    assert inst["spec"]["calicoNetwork"]["ipPools"][0]["encapsulation"] == "IPIP"


def test_installation_mtu_hook(lab: Lab) -> None:
    cali = topology.cali_name("worker1")
    with lab.enter_ops():
        objects = client.CustomObjectsApi(api(lab))
        objects.patch_cluster_custom_object(*INSTALLATION, {"spec": {"calicoNetwork": {"mtu": 1400}}})
    try:
        assert "mtu 1400" in lab.node_exec("worker1", "ip", "link", "show", cali).stdout
        assert "mtu 1400" in lab.node_exec("worker1", "ip", "link", "show", "vxlan.calico").stdout
        assert "mtu 1400" in lab.pod_exec("worker1", "ip", "link", "show", "eth0").stdout
    finally:
        with lab.enter_ops():
            objects.patch_cluster_custom_object(*INSTALLATION, {"spec": {"calicoNetwork": {"mtu": 1450}}})
    assert "mtu 1450" in lab.pod_exec("worker1", "ip", "link", "show", "eth0").stdout


def test_node_join_through_control_api(lab: Lab) -> None:
    lab.add_node("worker9", "192.168.1.29", "192.168.95.0/24", ready=False)
    try:
        with lab.enter_ops():
            names = [n.metadata.name for n in client.CoreV1Api(api(lab)).list_node().items]
        assert "worker9" in names
        lab.set_ready("worker9", True)
        with lab.enter_ops():
            node = client.CoreV1Api(api(lab)).read_node("worker9")
        ready = [c.status for c in node.status.conditions if c.type == "Ready"]
        assert ready == ["True"]
    finally:
        lab.remove_node("worker9")
