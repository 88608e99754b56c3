"""Shared test helpers for the probe unit tests: the case-study cluster facts and a ProbeContext.

Used by tests/probes/test_{host_api,pod_api,pod_routes,mtu,masquerade,return_path}.py.
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

WORKER2 = NodeFacts(name="worker2", internal_ip="192.168.1.105", pod_cidr="192.168.88.0/24", ready=True)
OVERLAPPING_POOL = IPPoolFacts(name="default-ipv4-ippool", cidr="192.168.0.0/16", vxlan_mode="CrossSubnet",
                               nat_outgoing=True)


def facts(pools: list[IPPoolFacts] | None = None, installation: InstallationFacts | None = None,
          endpoint: str | None = "192.168.1.10") -> ClusterFacts:
    return ClusterFacts(
        api_service_ip="10.96.0.1", api_service_port=443,
        api_endpoints=[Endpoint(ip=endpoint, port=6443)] if endpoint else [],
        nodes=[WORKER2], ippools=[OVERLAPPING_POOL] if pools is None else pools,
        installation=installation,
    )


def finding(probe: str, status: Status, summary: str = "", **extra: Any) -> Finding:
    return Finding(probe=probe, layer=Layer.POD_APP, status=status, summary=summary or str(status), **extra)


def context(host: FakeShell | None = None, pod: FakePod | None = None, *,
            cluster_facts: ClusterFacts | None = None, node: NodeFacts = WORKER2,
            results: dict[str, Finding | ProbeResult] | None = None) -> ProbeContext:
    """A ProbeContext on worker2; `results` become already-resolved futures of earlier probes."""
    futures: dict[str, asyncio.Future[Finding]] = {}
    loop = asyncio.get_running_loop()
    for probe_id, found in (results or {}).items():
        future: asyncio.Future[Finding] = loop.create_future()
        future.set_result(found if isinstance(found, Finding) else Finding(
            probe=probe_id, layer=Layer.POD_APP, **found.model_dump()))
        futures[probe_id] = future
    return ProbeContext(
        node=node, facts=cluster_facts or facts(), cluster=FakeCluster(), settings=ProbeSettings(),
        log=structlog.get_logger(), host_shell=host, host_unavailable=None if host else "no ssh in this test",
        pod_exec=pod, pod_unavailable=None if pod else "no pod in this test", results=futures,
    )
