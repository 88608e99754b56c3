"""Lab faults and hooks seen through the API stand-in with the official kubernetes client, in-process via
Lab.enter_ops(): vpn (tailscale0 tun + IPv4Address annotation), pool-ipip (IPPool/Installation), the
Installation MTU rollout (vxlan.calico follows when the node's calico-node rolled; the pod veth only for
a pod created afterwards), and the control API's node join.
"""

from __future__ import annotations

import time

import pytest
from kubernetes import client, config

from lab import topology
from lab.cluster import Lab

pytestmark = pytest.mark.lab
INSTALLATION = ("operator.tigera.io", "v1", "installations", "default")
IPPOOL = ("crd.projectcalico.org", "v1", "ippools", "default-ipv4-ippool")
ROLLOUT_S = 30.0


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


def wait_rolled_out(lab: Lab, generation: int) -> None:
    """Until the calico-node DaemonSet reports `generation` observed and every pod updated and available."""
    deadline = time.monotonic() + ROLLOUT_S
    while time.monotonic() < deadline:
        with lab.enter_ops():
            ds = client.AppsV1Api(api(lab)).read_namespaced_daemon_set("calico-node", "calico-system")
        status = ds.status
        counts = (status.updated_number_scheduled, status.number_available, status.desired_number_scheduled)
        if (ds.metadata.generation >= generation and status.observed_generation >= ds.metadata.generation
                and len(set(counts)) == 1):
            return
        time.sleep(0.1)
    raise AssertionError(f"rollout did not finish: {status}")


def start_pod(lab: Lab, node: str) -> str:
    """A pod pinned to `node`, Running (so created after whatever rolled out before); returns its name."""
    with lab.enter_ops():
        core = client.CoreV1Api(api(lab))
        pod = core.create_namespaced_pod("netcheck", {
            "metadata": {"generateName": "mtu-test-"},
            "spec": {"nodeName": node, "containers": [{"name": "c", "image": "busybox"}]}})
        name = pod.metadata.name
        deadline = time.monotonic() + ROLLOUT_S
        while core.read_namespaced_pod(name, "netcheck").status.phase != "Running":
            assert time.monotonic() < deadline, "pod did not start"
            time.sleep(0.05)
    return name


def delete_pod(lab: Lab, name: str) -> None:
    with lab.enter_ops():
        client.CoreV1Api(api(lab)).delete_namespaced_pod(name, "netcheck", grace_period_seconds=0)


def test_installation_mtu_reaches_new_pods_only_after_the_rollout(lab: Lab) -> None:
    node = lab.nodes[1].name
    cali = topology.cali_name(node)
    with lab.enter_ops():
        objects = client.CustomObjectsApi(api(lab))
        generation = client.AppsV1Api(api(lab)).read_namespaced_daemon_set(
            "calico-node", "calico-system").metadata.generation
        objects.patch_cluster_custom_object(*INSTALLATION, {"spec": {"calicoNetwork": {"mtu": 1400}}})
    try:
        wait_rolled_out(lab, generation + 1)
        # Felix set the tunnel device; no pod has started since, so the pod's veth is as it was.
        assert "mtu 1400" in lab.node_exec(node, "ip", "link", "show", "vxlan.calico").stdout
        assert "mtu 1450" in lab.pod_exec(node, "ip", "link", "show", "eth0").stdout
        name = start_pod(lab, node)  # a pod created after the node's turn: the CNI gives it 1400
        assert "mtu 1400" in lab.pod_exec(node, "ip", "link", "show", "eth0").stdout
        assert "mtu 1400" in lab.node_exec(node, "ip", "link", "show", cali).stdout
        delete_pod(lab, name)
    finally:
        with lab.enter_ops():
            objects.patch_cluster_custom_object(*INSTALLATION, {"spec": {"calicoNetwork": {"mtu": 1450}}})
        wait_rolled_out(lab, generation + 2)
        delete_pod(lab, start_pod(lab, node))  # back to the lab's MTU on the veth too
    assert "mtu 1450" in lab.pod_exec(node, "ip", "link", "show", "eth0").stdout
    assert "mtu 1450" in lab.node_exec(node, "ip", "link", "show", "vxlan.calico").stdout


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
