"""Correlating a run (probes/correlate.py, probes/reference.py) and the node diff (probes/diff.py).

Covers: masquerade failing only because ip-forward is off becomes ok ("no NAT, and none needed")
when the reference's pods reach the API without NAT on the same network, or the node the API runs on
routes the node's pod block directly back — and stays a consequence
without a fix when the reference is the API host, uses NAT, or sits on another LAN; reference
picking (Ready, same pool label, every probe ok; the configured one first); scopes node-local,
peer-side and cluster-wide with their sentences; the diff of two nodes' observations field by field,
routes to each pod block from the other nodes included, unmeasured fields listed apart.
"""

from __future__ import annotations

from datetime import UTC, datetime

import probes.catalog  # noqa: F401
from probes.correlate import correlate
from probes.diff import compare_nodes
from probes.facts import ClusterFacts, Endpoint, IPPoolFacts, NodeFacts
from probes.model import Finding, FixProposal, Layer, Report, Status
from probes.observations import Observations
from probes.reference import pick
from probes.registry import default_registry
from probes.settings import ProbeSettings

POOL = IPPoolFacts(name="pods", cidr="10.244.0.0/16")


def node(name: str, ip: str, block: int, *, lan: str = "24", **extra: object) -> NodeFacts:
    return NodeFacts(name=name, internal_ip=ip, pod_cidr=f"10.244.{block}.0/24", ready=True,
                     annotations={"projectcalico.org/IPv4Address": f"{ip}/{lan}"}, **extra)


CP = node("cp-1", "172.20.0.5", 0, labels={"node-role.kubernetes.io/control-plane": ""})
A = node("edge-a", "172.20.0.6", 1)
B = node("edge-b", "172.20.0.7", 2)


def facts(*nodes: NodeFacts) -> ClusterFacts:
    return ClusterFacts(api_service_ip="10.43.0.1", api_endpoints=[Endpoint(ip=CP.internal_ip, port=6443)],
                        nodes=list(nodes or (CP, A, B)), ippools=[POOL])


def f(probe_id: str, status: Status, **extra: object) -> Finding:
    extra.setdefault("summary", f"{probe_id} {status}")
    return Finding(probe=probe_id, layer=Layer.POD_APP, status=status, **extra)


def report(name: str, *findings: Finding) -> Report:
    return Report(node=name, started_at=datetime.now(UTC), duration_s=1.0, findings=list(findings))


NO_NAT_NEEDED = Observations(pod_nat="none", pod_nat_needed=False)
MASQ = FixProposal(id="masquerade", params={"pod_cidr": "10.244.1.0/24", "interface": "enp1s0"})


def forwarding_off(name: str) -> Report:
    return report(name, f("ip-forward", Status.FAIL, fix=FixProposal(id="ip-forward", params={})),
                  f("pod-api", Status.FAIL, summary="pod cannot reach the API at 10.43.0.1:443: timed out"),
                  f("masquerade", Status.FAIL, fix=MASQ, remediation="add NAT",
                    observed=Observations(pod_nat="none", pod_nat_needed=True)),
                  f("return-path", Status.FAIL, fix=MASQ, summary="the router has no route to 10.244.1.0/24"))


def healthy(name: str, nat: Observations = NO_NAT_NEEDED) -> Report:
    return report(name, f("ip-forward", Status.OK),
                  f("pod-api", Status.OK, summary="pod reaches the API at 10.43.0.1:443: HTTP 200"),
                  f("masquerade", Status.OK, observed=nat))


def test_masquerade_is_ok_when_a_reference_shows_no_nat_is_needed() -> None:
    bad, good, cp = correlate([forwarding_off("edge-a"), healthy("edge-b"), healthy("cp-1")], facts(),
                              default_registry, ProbeSettings())
    masq = bad.finding("masquerade")
    assert masq.status is Status.OK and masq.fix is None
    assert masq.summary == ("no NAT, and none needed: pods on edge-b reach the API at 172.20.0.5 without "
                            "NAT on the same network; pods here fail because of ip-forward")
    assert [x.probe for x in bad.causes] == ["ip-forward"]
    return_path = bad.finding("return-path")
    assert return_path.status is Status.SKIP and return_path.summary.startswith(
        "not judged: no NAT is needed here (pods on edge-b reach the API")
    assert bad.reference == "edge-b"
    pod_api = bad.finding("pod-api")
    assert pod_api.scope == "node-local"
    assert pod_api.comparison == "on edge-b: pod reaches the API at 10.43.0.1:443: HTTP 200"


def test_masquerade_stays_a_consequence_without_a_fix_when_nat_may_be_needed() -> None:
    cases = [
        ([forwarding_off("edge-a"), healthy("cp-1")], facts(CP, A)),  # the API host proves nothing
        ([forwarding_off("edge-a"), healthy("edge-b", Observations(pod_nat="explicit"))], facts()),
        ([forwarding_off("edge-a"), healthy("edge-b")],
         facts(CP, A, node("edge-b", "172.21.0.7", 2))),  # another LAN
    ]
    for reports, cluster in cases:
        bad = correlate(reports, cluster, default_registry, ProbeSettings())[0]
        masq = bad.finding("masquerade")
        assert masq.status is Status.FAIL and masq.caused_by == "ip-forward", masq
        assert masq.fix is None and masq.remediation == ""


def test_masquerade_is_ok_when_the_api_node_routes_the_pod_block_back() -> None:
    api_host = report("cp-1", f("pod-block-routes", Status.OK, observed=Observations(
        pod_block_routes={"edge-a": "direct", "edge-b": "default"})))
    bad, cp = correlate([forwarding_off("edge-a"), api_host], facts(CP, A), default_registry, ProbeSettings())
    masq = bad.finding("masquerade")
    assert masq.status is Status.OK and masq.summary == (
        "no NAT, and none needed: cp-1, where the API runs, routes 10.244.1.0/24 directly back; pods here "
        "fail because of ip-forward")
    run = [forwarding_off("edge-b"), api_host]
    other, _ = correlate(run, facts(CP, B), default_registry, ProbeSettings())
    assert other.finding("masquerade").status is Status.FAIL  # left to the default gateway: NAT may be needed


def test_reference_is_ready_same_pool_and_healthy_or_configured() -> None:
    pool = {"node.kubernetes.io/pool": "edge"}
    a, b = node("edge-a", "172.20.0.6", 1, labels=pool), node("edge-b", "172.20.0.7", 2, labels=pool)
    other = node("core-c", "172.20.0.8", 3, labels={"node.kubernetes.io/pool": "core"})
    cluster = facts(CP, other, a, b)
    run = (healthy("cp-1"), healthy("core-c"), forwarding_off("edge-a"), healthy("edge-b"))
    reports = {r.node: r for r in run}
    settings = ProbeSettings()
    assert pick("edge-a", reports, cluster, settings) == "edge-b"
    reports["edge-b"] = forwarding_off("edge-b")
    assert pick("edge-a", reports, cluster, settings) == "cp-1"  # no healthy node of the pool: the others
    assert pick("edge-a", reports, cluster, ProbeSettings(reference_node="core-c")) == "core-c"


def test_cluster_wide_and_peer_side_scopes() -> None:
    dns = [report(n, f("pod-dns", Status.FAIL)) for n in ("cp-1", "edge-a", "edge-b")]
    for r in correlate(dns, facts(), default_registry, ProbeSettings()):
        assert r.finding("pod-dns").scope == "cluster-wide"
        assert r.finding("pod-dns").comparison.startswith("pod-dns fails on every node checked (")
    crossing = report("cp-1", f("encapsulation", Status.FAIL, peer="edge-a"))
    cp, a = correlate([crossing, forwarding_off("edge-a")], facts(CP, A), default_registry, ProbeSettings())
    assert cp.finding("encapsulation").scope == "peer-side"
    assert cp.finding("encapsulation").comparison == "the fault is on edge-a: ip-forward"


def test_diff_field_by_field_with_routes_from_the_other_nodes() -> None:
    new = report("edge-c", f("ip-forward", Status.FAIL, observed=Observations(ip_forward=False, rp_filter=2)),
                 f("mtu", Status.FAIL,
                   observed=Observations(uplink="wlan0", uplink_mtu=1440, uplink_kind="wifi")),
                 f("masquerade", Status.OK, observed=Observations(pod_nat="calico")))
    ref = report("edge-a", f("ip-forward", Status.OK, observed=Observations(ip_forward=True, rp_filter=2)),
                 f("mtu", Status.OK,
                   observed=Observations(uplink="enp3s0", uplink_mtu=1500, uplink_kind="ethernet")),
                 f("masquerade", Status.OK, observed=Observations(pod_nat="calico")),
                 f("kubelet-port", Status.OK, observed=Observations(kubelet_reachable=True)))
    cp = report("cp-1", f("pod-block-routes", Status.OK, observed=Observations(
        pod_block_routes={"edge-c": "default", "edge-a": "direct"})))
    diff = compare_nodes(new, ref, [new, ref, cp])
    assert diff.sentence() == (
        "edge-c differs from edge-a in: ip_forward 0 (edge-a: 1); uplink wlan0 MTU 1440 wifi (edge-a: enp3s0 "
        "MTU 1500 ethernet); routes to its pod block only via the default gateway from cp-1 (edge-a: direct "
        "from cp-1)")
    assert diff.same == ["rp_filter", "NAT for its pod block"]
    assert "kubelet port 10250" in diff.unmeasured and "/etc/hosts" in diff.unmeasured
