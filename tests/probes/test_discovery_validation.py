"""Discovery treats the API as a boundary (probes/transports/discovery.py).

Covers: a node whose name is not a node name is left out; malformed InternalIP/podCIDR/podCIDRs
become None/dropped; non-string annotations are dropped; an IPPool with a malformed CIDR is left
out, unknown encapsulation modes read as Never, `natOutgoing: "false"` is not true; a non-integer
Installation MTU is None; a malformed endpoint address is skipped; a clusterIP that is not an
address is one ClusterError line. Each malformed value logs one warning.
"""

from __future__ import annotations

from typing import Any

import pytest

from probes.errors import ClusterError
from probes.transports.discovery import discover


class Source:
    def __init__(self, nodes: list[dict[str, Any]], pools: list[dict[str, Any]],
                 installation: dict[str, Any] | None, cluster_ip: Any = "10.96.0.1") -> None:
        self.nodes, self.pools, self.installation, self.cluster_ip = nodes, pools, installation, cluster_ip

    async def get_service(self, namespace: str, name: str) -> dict[str, Any]:
        return {"spec": {"clusterIP": self.cluster_ip, "ports": [{"name": "https", "port": "443; x"}]}}

    async def get_endpoints(self, namespace: str, name: str) -> dict[str, Any]:
        return {"subsets": [{"ports": [{"name": "https", "port": 6443}],
                             "addresses": [{"ip": "10.0.0.10"}, {"ip": "10.0.0.11;touch /tmp/x"}, "junk"]}]}

    async def list_nodes(self) -> list[dict[str, Any]]:
        return self.nodes

    async def get_installation(self) -> dict[str, Any] | None:
        return self.installation

    async def list_ippools(self) -> list[dict[str, Any]]:
        return self.pools


def node(name: Any, ip: Any = "10.0.0.5", pod_cidr: Any = "10.244.1.0/24", **meta: Any) -> dict[str, Any]:
    return {"metadata": {"name": name, **meta}, "spec": {"podCIDR": pod_cidr, "podCIDRs": [pod_cidr, 7]},
            "status": {"addresses": [{"type": "InternalIP", "address": ip}],
                       "conditions": [{"type": "Ready", "status": "True"}]}}


async def test_hostile_cluster_objects_are_dropped_or_blanked(capsys: pytest.CaptureFixture[str]) -> None:
    nodes = [
        node("good-node"),
        node("bad;touch /tmp/x"),
        node("upper-Case"),
        node("worker9\n"),
        node(None),
        node("ip-node", ip="10.0.0.5; touch /tmp/x", pod_cidr="0.0.0.0/0",
             annotations={"projectcalico.org/IPv4Address": "1.2.3.4/24", "n": 5}),
        {"metadata": "not a mapping"},
    ]
    pools = [
        {"metadata": {"name": "ok-pool"}, "spec": {"cidr": "10.244.0.0/16", "ipipMode": "Always; x",
                                                   "natOutgoing": "false"}},
        {"metadata": {"name": "bad-pool"}, "spec": {"cidr": "10.0.0.0/8 && touch /tmp/x"}},
        {"metadata": {"name": "all-pool"}, "spec": {"cidr": "0.0.0.0/0"}},
    ]
    installation = {"spec": {"calicoNetwork": {"mtu": "1400; reboot", "ipPools": "x"}},
                    "status": {"mtu": 1450}}
    facts = await discover(Source(nodes, pools, installation))
    assert [n.name for n in facts.nodes] == ["good-node", "ip-node"]
    good, hostile = facts.nodes
    assert (good.internal_ip, good.pod_cidr) == ("10.0.0.5", "10.244.1.0/24")
    assert good.pod_cidrs == ["10.244.1.0/24"]
    assert (hostile.internal_ip, hostile.pod_cidr, hostile.pod_cidrs) == (None, None, [])
    assert hostile.annotations == {"projectcalico.org/IPv4Address": "1.2.3.4/24"}
    assert [(p.name, p.cidr, p.ipip_mode, p.nat_outgoing) for p in facts.ippools] == [
        ("ok-pool", "10.244.0.0/16", "Never", False)]
    assert facts.installation is not None
    installed = facts.installation
    assert (installed.mtu, installed.status_mtu, installed.ip_pools) == (None, 1450, [])
    assert [e.ip for e in facts.api_endpoints] == ["10.0.0.10"] and facts.api_service_port == 443
    captured = capsys.readouterr()
    printed = (captured.out + captured.err).splitlines()
    warnings = [line for line in printed if "malformed value ignored" in line]
    assert len(warnings) >= 10 and all("\n" not in w for w in warnings)


@pytest.mark.parametrize("cluster_ip", ["10.96.0.1; touch /tmp/x", None, ["10.96.0.1"]])
async def test_a_cluster_ip_that_is_not_an_address_is_one_line(cluster_ip: Any) -> None:
    with pytest.raises(ClusterError) as err:
        await discover(Source([], [], None, cluster_ip=cluster_ip))
    assert "no valid clusterIP" in str(err.value) and "\n" not in str(err.value)
