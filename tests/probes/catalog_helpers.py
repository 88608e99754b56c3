"""Shared helpers for the catalog probe unit tests: the lab's three-node cluster facts and a context.

Used by tests/probes/test_{kubelet_port,etc_hosts,iptables_mode,ip_forward,resolved_53,
kernel_modules,node_address,encapsulation,pod_dns}.py. Values are the lab's (lab/spec.py).
"""

from __future__ import annotations

import structlog

from probes.context import ProbeContext
from probes.facts import ClusterFacts, Endpoint, IPPoolFacts, NodeFacts
from probes.settings import ProbeSettings
from tests.fakes import FakeCluster, FakePod, FakeShell

MASTER = NodeFacts(name="master", internal_ip="192.168.1.10", pod_cidr="192.168.86.0/24", ready=True,
                   annotations={"projectcalico.org/IPv4Address": "192.168.1.10/24"})
WORKER1 = NodeFacts(name="worker1", internal_ip="192.168.1.20", pod_cidr="192.168.87.0/24", ready=True,
                    annotations={"projectcalico.org/IPv4Address": "192.168.1.20/24"})
WORKER2 = NodeFacts(name="worker2", internal_ip="192.168.1.105", pod_cidr="192.168.88.0/24", ready=True,
                    annotations={"projectcalico.org/IPv4Address": "192.168.1.105/24"})
VXLAN_POOL = IPPoolFacts(name="default-ipv4-ippool", cidr="192.168.0.0/16", vxlan_mode="CrossSubnet",
                         nat_outgoing=True)
IPIP_POOL = IPPoolFacts(name="default-ipv4-ippool", cidr="192.168.0.0/16", ipip_mode="Always",
                        nat_outgoing=True)
PLAIN_POOL = IPPoolFacts(name="default-ipv4-ippool", cidr="192.168.0.0/16")


def cluster_facts(*, pools: list[IPPoolFacts] | None = None, nodes: list[NodeFacts] | None = None,
                  endpoint: str | None = "192.168.1.10") -> ClusterFacts:
    return ClusterFacts(
        api_service_ip="10.96.0.1", api_service_port=443,
        api_endpoints=[Endpoint(ip=endpoint, port=6443)] if endpoint else [],
        service_cidr="10.96.0.0/12", cluster_pod_cidr="192.168.0.0/16", dns_service_ip="10.96.0.10",
        nodes=[MASTER, WORKER1, WORKER2] if nodes is None else nodes,
        ippools=[VXLAN_POOL] if pools is None else pools,
    )


def ctx(host: FakeShell | None = None, pod: FakePod | None = None, *, cluster: FakeCluster | None = None,
        facts: ClusterFacts | None = None, node: NodeFacts = WORKER2,
        peer_pod_ip: str | None = None, settings: ProbeSettings | None = None) -> ProbeContext:
    """A ProbeContext for `node` (worker2 by default) with the given fakes."""
    return ProbeContext(
        node=node, facts=facts or cluster_facts(), cluster=cluster or FakeCluster(),
        settings=settings or ProbeSettings(), log=structlog.get_logger(),
        host_shell=host, host_unavailable=None if host else "no ssh in this test",
        pod_exec=pod, pod_unavailable=None if pod else "no pod in this test",
        peer_pod_ip=peer_pod_ip,
    )
