"""The probe unit tests' one set of builders: the case-study cluster (three nodes; worker2 is the
WiFi worker), its IP pools, a Finding, and a ProbeContext over the fakes of tests/fakes.

Used by tests/probes/test_<probe>.py and tests/fixes/test_remediation_drift.py. Values are the
default lab layout's (lab/spec.py), so a unit test reads like the lab scenario it mirrors.
"""

from __future__ import annotations

import asyncio
from typing import Any

import structlog

from probes.context import ProbeContext
from probes.facts import ClusterFacts, Endpoint, InstallationFacts, IPPoolFacts, NodeFacts
from probes.model import Finding, Layer, ProbeResult, Status
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
"""The case study's pool: it overlaps the nodes' LAN (192.168.1.0/24), hence masquerade's finding."""
IPIP_POOL = IPPoolFacts(name="default-ipv4-ippool", cidr="192.168.0.0/16", ipip_mode="Always",
                        nat_outgoing=True)
PLAIN_POOL = IPPoolFacts(name="default-ipv4-ippool", cidr="192.168.0.0/16")


def cluster_facts(*, pools: list[IPPoolFacts] | None = None, nodes: list[NodeFacts] | None = None,
                  installation: InstallationFacts | None = None,
                  endpoint: str | None = "192.168.1.10") -> ClusterFacts:
    return ClusterFacts(
        api_service_ip="10.96.0.1", api_service_port=443,
        api_endpoints=[Endpoint(ip=endpoint, port=6443)] if endpoint else [],
        service_cidr="10.96.0.0/12", cluster_pod_cidr="192.168.0.0/16", dns_service_ip="10.96.0.10",
        nodes=[MASTER, WORKER1, WORKER2] if nodes is None else nodes,
        ippools=[VXLAN_POOL] if pools is None else pools,
        installation=installation,
    )


def finding(probe: str, status: Status, summary: str = "", **extra: Any) -> Finding:
    return Finding(probe=probe, layer=Layer.POD_APP, status=status, summary=summary or str(status), **extra)


def _resolved(results: dict[str, Finding | ProbeResult]) -> dict[str, asyncio.Future[Finding]]:
    """Earlier probes' findings as already-resolved futures (what `ctx.result_of` awaits)."""
    futures: dict[str, asyncio.Future[Finding]] = {}
    loop = asyncio.get_running_loop()
    for probe_id, found in results.items():
        future: asyncio.Future[Finding] = loop.create_future()
        future.set_result(found if isinstance(found, Finding) else Finding(
            probe=probe_id, layer=Layer.POD_APP, **found.model_dump()))
        futures[probe_id] = future
    return futures


def context(host: FakeShell | None = None, pod: FakePod | None = None, *,
            facts: ClusterFacts | None = None, cluster: FakeCluster | None = None,
            node: NodeFacts = WORKER2, results: dict[str, Finding | ProbeResult] | None = None,
            peer_pod_ip: str | None = None, settings: ProbeSettings | None = None) -> ProbeContext:
    """A ProbeContext for `node` (worker2 by default) over the given fakes; `results` are the
    findings of the probes it runs after."""
    return ProbeContext(
        node=node, facts=facts or cluster_facts(), cluster=cluster or FakeCluster(),
        settings=settings or ProbeSettings(), log=structlog.get_logger(),
        host_shell=host, host_unavailable=None if host else "no ssh in this test",
        pod_exec=pod, pod_unavailable=None if pod else "no pod in this test",
        results=_resolved(results) if results else {}, peer_pod_ip=peer_pod_ip,
    )
