"""The engine beyond one node, with a private registry of tiny probes and the scripted fakes.

Covers: `check NODE` whose pod-to-pod leg toward a peer fails runs the peer's probes that can explain
it from there (declared `across=True`) and names the peer's probe as the cause, with the peer's
findings in `Report.peers`; the reference node is Ready, not the blamed peer, and its probes were
ok, so the problem is node-local or peer-side; a problem the reference shares is cluster-wide; no
follow-up for a healthy node or a partial (`--probe`) check; `check_all` attributes across nodes
without extra runs; `compare` diffs a node against a picked or named reference, routes included.
"""

from __future__ import annotations

from probes.engine import Engine, Transports
from probes.facts import ClusterFacts, NodeFacts
from probes.model import Layer, Status, fail, ok
from probes.observations import Observations
from probes.registry import Explains, Registry, probe
from probes.settings import ProbeSettings
from tests.fakes import FakeCluster, FakePod

CP = {"node-role.kubernetes.io/control-plane": ""}
NODES = [
    NodeFacts(name="cp-1", internal_ip="10.1.0.1", pod_cidr="10.244.0.0/24", ready=True, labels=CP),
    NodeFacts(name="edge-a", internal_ip="10.1.0.2", pod_cidr="10.244.1.0/24", ready=True),
    NodeFacts(name="edge-b", internal_ip="10.1.0.3", pod_cidr="10.244.2.0/24", ready=True),
]


class Pods:
    def __init__(self) -> None:
        self.started: list[str] = []

    async def get(self, node: NodeFacts) -> FakePod:
        self.started.append(node.name)
        return FakePod(node=node.name, name=f"debug-{node.name}", ip=node.pod_cidr.replace("0/24", "9"))

    async def release(self, node: str) -> None:
        pass

    async def aclose(self) -> None:
        pass


def cluster_registry(forwarding_off: set[str],
                     dns_down: bool = False) -> tuple[Registry, list[tuple[str, str]]]:
    """fwd fails on `forwarding_off`; pod-to-pod fails toward (and from) those nodes' pods."""
    reg, ran = Registry(), []
    by_pod_ip = {n.pod_cidr.replace("0/24", "9"): n.name for n in NODES}

    @probe(id="fwd", layer=Layer.HOST_ROUTE, registry=reg,
           explains=(Explains("p2p", across=True, only_when_failing=True),))
    async def fwd(ctx):
        ran.append((ctx.node.name, "fwd"))
        off = ctx.node.name in forwarding_off
        result = fail if off else ok
        return result(f"forwarding {'off' if off else 'on'}", observed=Observations(ip_forward=not off))

    @probe(id="p2p", layer=Layer.ROUTER, needs={"pod", "peer-pod"}, registry=reg)
    async def p2p(ctx):
        ran.append((ctx.node.name, "p2p"))
        peer = by_pod_ip.get(ctx.peer_pod_ip or "")
        if peer in forwarding_off or ctx.node.name in forwarding_off:
            return fail(f"no reply from {ctx.peer_pod_ip}")
        return ok(f"reply from {ctx.peer_pod_ip}")

    @probe(id="dns", layer=Layer.POD_APP, needs={"pod"}, registry=reg)
    async def dns(ctx):
        ran.append((ctx.node.name, "dns"))
        return fail("no answer") if dns_down else ok("resolves")

    return reg, ran


def make_engine(reg: Registry, **settings) -> tuple[Engine, Pods]:
    async def discover() -> ClusterFacts:
        return ClusterFacts(api_service_ip="10.96.0.1", nodes=NODES)

    pods = Pods()
    transports = Transports(cluster=FakeCluster(), discover=discover, pods=pods)
    return Engine(transports=transports, settings=ProbeSettings(**settings), registry=reg), pods


async def test_single_node_check_blames_the_peer_after_probing_it() -> None:
    reg, ran = cluster_registry(forwarding_off={"edge-a"})
    engine, _ = make_engine(reg)
    report = await engine.check("cp-1")  # cp-1's peer is the first other Ready node: edge-a
    p2p = report.finding("p2p")
    assert p2p.status is Status.FAIL and p2p.peer == "edge-a"
    assert (p2p.caused_by_node.node, p2p.caused_by_node.probe) == ("edge-a", "fwd")
    assert p2p.scope == "peer-side" and p2p.comparison == "the fault is on edge-a: fwd"
    assert report.causes == []  # nothing to fix on cp-1 itself
    assert ("edge-a", "fwd") in ran and ("edge-a", "p2p") not in ran  # only the probes that can explain it
    peers = {r.node: r for r in report.peers}
    assert peers["edge-a"].finding("fwd").status is Status.FAIL
    assert report.reference == "edge-b" and "edge-b" in peers  # not the blamed peer


async def test_reference_says_node_local_and_a_shared_failure_is_cluster_wide() -> None:
    reg, _ = cluster_registry(forwarding_off={"edge-b"})
    engine, _ = make_engine(reg)
    report = await engine.check("edge-b")
    assert report.reference == "edge-a"  # same pool (workers) before the control plane
    assert report.finding("p2p").caused_by == "fwd"  # its own forwarding: no peer to blame
    fwd = report.finding("fwd")
    assert fwd.scope == "node-local" and fwd.comparison == "on edge-a: forwarding on"
    reg, _ = cluster_registry(forwarding_off=set(), dns_down=True)
    engine, _ = make_engine(reg)
    report = await engine.check("edge-a")
    assert report.finding("dns").scope == "cluster-wide"
    assert report.reference is None  # both candidates tried failed dns too


async def test_no_follow_up_for_a_healthy_node_or_a_partial_check() -> None:
    reg, ran = cluster_registry(forwarding_off={"edge-a"})
    engine, _ = make_engine(reg)
    report = await engine.check("edge-b", probes=["fwd"])
    assert report.peers == [] and {n for n, _ in ran} == {"edge-b"}
    ran.clear()
    reg, ran = cluster_registry(forwarding_off=set())
    engine, _ = make_engine(reg)
    report = await engine.check("edge-b")
    assert report.peers == [] and {n for n, _ in ran} == {"edge-b"}


async def test_check_all_attributes_across_nodes() -> None:
    reg, ran = cluster_registry(forwarding_off={"edge-a"})
    engine, _ = make_engine(reg)
    reports = {r.node: r for r in await engine.check_all()}
    assert len(ran) == 9  # three probes on three nodes: no follow-up runs
    assert reports["cp-1"].finding("p2p").caused_by_node.node == "edge-a"
    assert reports["cp-1"].causes == [] and reports["edge-b"].causes == []
    assert [f.probe for f in reports["edge-a"].causes] == ["fwd"]
    assert reports["edge-a"].finding("p2p").caused_by == "fwd"
    assert reports["edge-a"].finding("fwd").scope == "node-local"


async def test_compare_diffs_against_a_picked_or_named_reference() -> None:
    reg, _ = cluster_registry(forwarding_off={"edge-b"})
    engine, _ = make_engine(reg)
    comparison = await engine.compare("edge-b")
    assert comparison.reference is not None and comparison.reference.node == "edge-a"  # same pool
    assert comparison.diff.sentence() == "edge-b differs from edge-a in: ip_forward 0 (edge-a: 1)"
    named = await engine.compare("edge-b", against="cp-1")
    assert named.diff.reference == "cp-1" and named.diff.differences[0].field == "ip_forward"
