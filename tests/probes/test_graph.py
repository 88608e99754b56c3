"""The cause graph over the catalog's `explains=` declarations (probes/graph.py) and their validation.

Covers: the case study (masquerade explains pod-api, pod-dns and return-path; one action with one
fix that lists what it resolves; return-path's copy of the fix is gone); ip-forward off wins over
the masquerade it makes fail and no consequence keeps a fix; mtu explains pod-api only with host-api
ok, and the MTU chain (return-path's "NAT applies but still failing" warn, large-packet pod-to-pod);
a warn of ip-forward explains nothing; cross-node: a pod-to-pod failure toward a peer whose
ip-forward is off names that node and probe, not when the peer is fine, and a same-node cause wins;
actions are ordered by what they resolve; registry validation of unknown ids, self-explanation and
cycles at registration time.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

import probes.catalog  # noqa: F401  (registers the catalog with its explains= edges)
from probes.graph import actions, attribute, role
from probes.model import CauseRef, Finding, FixProposal, Layer, Report, Status, fail, ok
from probes.registry import Explains, Registry, RegistryError, default_registry, probe

MASQ_FIX = FixProposal(id="masquerade", params={"pod_cidr": "10.244.2.0/24", "interface": "wlan0"})


def f(probe_id: str, status: Status, **extra: object) -> Finding:
    summary = f"{probe_id} {status}"
    return Finding(probe=probe_id, layer=Layer.POD_APP, status=status, summary=summary, **extra)


def report(node: str, *findings: Finding) -> Report:
    return Report(node=node, started_at=datetime.now(UTC), duration_s=1.0, findings=list(findings))


def causes(r: Report) -> dict[str, str | None]:
    return {x.probe: x.caused_by for x in r.findings}


def test_case_study_one_action_masquerade_resolves_the_rest() -> None:
    (r,) = attribute([report(
        "edge-2", f("host-api", Status.OK), f("pod-api", Status.FAIL),
        f("masquerade", Status.FAIL, fix=MASQ_FIX, remediation="15 lines"),
        f("return-path", Status.FAIL, fix=MASQ_FIX, remediation="15 lines"), f("pod-dns", Status.FAIL),
        f("encapsulation", Status.FAIL),
    )], default_registry)
    assert causes(r) == {"host-api": None, "pod-api": "masquerade", "masquerade": None,
                         "return-path": "masquerade", "pod-dns": "masquerade", "encapsulation": "return-path"}
    assert r.finding("return-path").fix is None and r.finding("return-path").remediation == ""
    (action,) = actions([r], default_registry)
    assert action.fix == MASQ_FIX and action.node == "edge-2" and action.remediation == "15 lines"
    assert action.resolved_labels() == ["pod-api", "return-path", "pod-dns", "encapsulation"]
    assert role(r.finding("encapsulation"), "edge-2") == "consequence of return-path"
    assert role(r.finding("masquerade"), "edge-2") == "cause"


def test_ip_forward_off_is_the_one_cause_and_no_consequence_keeps_a_fix() -> None:
    (r,) = attribute([report(
        "w1", f("ip-forward", Status.FAIL, fix=FixProposal(id="ip-forward", params={})),
        f("pod-api", Status.FAIL), f("return-path", Status.FAIL, fix=MASQ_FIX),
        f("masquerade", Status.FAIL, fix=MASQ_FIX), f("pod-dns", Status.WARN), f("kubelet-port", Status.FAIL),
    )], default_registry)
    assert causes(r) == {"ip-forward": None, "pod-api": "ip-forward", "return-path": "ip-forward",
                         "masquerade": "ip-forward", "pod-dns": "ip-forward", "kubelet-port": None}
    assert [x.fix.id for x in r.findings if x.fix is not None] == ["ip-forward"]
    assert [x.probe for x in r.causes] == ["ip-forward", "kubelet-port"]


def test_the_broadest_cause_wins_a_shared_symptom() -> None:
    (r,) = attribute([report("w1", f("host-api", Status.OK), f("mtu", Status.FAIL),
                             f("ip-forward", Status.FAIL), f("pod-api", Status.FAIL),
                             f("pod-dns", Status.FAIL))], default_registry)
    assert causes(r)["pod-api"] == "ip-forward"  # it explains pod-api and pod-dns; mtu only pod-api
    assert [x.probe for x in r.causes] == ["mtu", "ip-forward"]  # both still causes


def test_a_warn_of_ip_forward_explains_nothing() -> None:
    (r,) = attribute([report("w1", f("ip-forward", Status.WARN), f("pod-api", Status.FAIL))],
                     default_registry)
    assert causes(r)["pod-api"] is None


def test_mtu_needs_host_api_ok_and_explains_the_chain() -> None:
    (down,) = attribute([report("n", f("host-api", Status.ERROR), f("mtu", Status.FAIL),
                                f("pod-api", Status.FAIL))], default_registry)
    assert causes(down)["pod-api"] is None  # an errored host-api: the pod's failure is not shown to be MTU
    (chain,) = attribute([report(
        "n", f("host-api", Status.OK), f("mtu", Status.FAIL), f("pod-api", Status.FAIL),
        f("masquerade", Status.OK), f("return-path", Status.WARN), f("encapsulation", Status.WARN),
    )], default_registry)
    assert causes(chain) == {"host-api": None, "mtu": None, "pod-api": "mtu", "masquerade": None,
                             "return-path": "mtu", "encapsulation": "mtu"}
    assert [x.probe for x in chain.causes] == ["mtu"]
    # where pods need no NAT, the stalled pod-api makes masquerade fail too: the same stall
    (routed,) = attribute([report(
        "n", f("host-api", Status.OK), f("mtu", Status.FAIL), f("pod-api", Status.FAIL),
        f("masquerade", Status.FAIL, fix=MASQ_FIX), f("return-path", Status.FAIL, fix=MASQ_FIX),
    )], default_registry)
    assert causes(routed) == {"host-api": None, "mtu": None, "pod-api": "mtu", "masquerade": "mtu",
                              "return-path": "masquerade"}
    assert [x.probe for x in routed.causes] == ["mtu"]
    (lost,) = attribute([report("n", f("mtu", Status.FAIL), f("encapsulation", Status.FAIL))],
                        default_registry)
    assert causes(lost)["encapsulation"] is None  # total pod-to-pod loss is not an MTU symptom


def test_cross_node_failure_names_the_peer_node_and_probe() -> None:
    cp = report("cp-a", f("ip-forward", Status.OK), f("encapsulation", Status.FAIL, peer="w-b"))
    worker = report("w-b", f("ip-forward", Status.FAIL), f("pod-api", Status.FAIL),
                    f("masquerade", Status.FAIL, fix=MASQ_FIX), f("encapsulation", Status.FAIL, peer="cp-a"))
    healthy = report("w-c", f("ip-forward", Status.OK), f("encapsulation", Status.OK, peer="cp-a"))
    cp2, worker2, healthy2 = attribute([cp, worker, healthy], default_registry)
    enc = cp2.finding("encapsulation")
    assert enc.caused_by is None and enc.caused_by_node == CauseRef(node="w-b", probe="ip-forward")
    assert cp2.causes == [] and healthy2.causes == []
    assert worker2.finding("encapsulation").caused_by == "ip-forward"  # own cause first
    (action,) = actions([cp2, worker2, healthy2], default_registry)
    assert (action.node, action.probes) == ("w-b", ["ip-forward"])
    assert action.resolved_labels() == ["pod-api", "masquerade", "encapsulation", "cp-a/encapsulation"]
    assert role(enc, "cp-a") == "consequence of ip-forward on w-b"


def test_no_cross_node_cause_when_the_peer_is_fine() -> None:
    cp, worker = attribute([report("cp-a", f("encapsulation", Status.FAIL, peer="w-b")),
                            report("w-b", f("ip-forward", Status.OK), f("pod-routes", Status.OK))],
                           default_registry)
    assert cp.finding("encapsulation").caused_by_node is None
    assert [x.probe for x in cp.causes] == ["encapsulation"]


def test_a_peers_pod_route_explains_pod_to_pod_toward_it() -> None:
    cp, worker = attribute([report("cp-a", f("encapsulation", Status.FAIL, peer="w-b")),
                            report("w-b", f("pod-routes", Status.FAIL), f("pod-api", Status.FAIL))],
                           default_registry)
    assert cp.finding("encapsulation").caused_by_node == CauseRef(node="w-b", probe="pod-routes")


def test_actions_most_resolving_first() -> None:
    a = report("a", f("etc-hosts", Status.FAIL))
    b = report("b", f("ip-forward", Status.FAIL, fix=FixProposal(id="ip-forward", params={})),
               f("pod-api", Status.FAIL), f("pod-dns", Status.FAIL))
    found = actions(attribute([a, b], default_registry), default_registry)
    assert [(x.node, x.title, len(x.resolves())) for x in found] == [("b", "ip-forward", 2),
                                                                      ("a", "etc-hosts", 0)]


def test_registry_rejects_unknown_self_and_cyclic_explanations() -> None:
    reg = Registry()

    @probe(id="a", layer=Layer.POD_APP, explains=("b",), registry=reg)
    async def a(ctx):
        return ok("a")

    with pytest.raises(RegistryError, match="'a' explains unknown probe 'b'"):
        reg.validate()

    @probe(id="b", layer=Layer.POD_APP, explains=(Explains("a", across=True),), registry=reg)
    async def b(ctx):
        return fail("b")

    with pytest.raises(RegistryError, match="probe explains cycle: a -> b -> a"):
        reg.validate()

    own = Registry()

    @probe(id="c", layer=Layer.POD_APP, explains=("c",), registry=own)
    async def c(ctx):
        return ok("c")

    with pytest.raises(RegistryError, match="'c' explains itself"):
        own.validate()


def test_a_small_link_on_the_peer_explains_this_nodes_short_pod_path() -> None:
    from probes.observations import Observations

    short_beyond = f("mtu", Status.FAIL, peer="w-b", observed=Observations(link_fits=True))
    short_here = f("mtu", Status.FAIL, peer="w-b", observed=Observations(link_fits=False))
    for mine, expected in ((short_beyond, CauseRef(node="w-b", probe="mtu")), (short_here, None)):
        a, b = attribute([report("w-a", mine), report("w-b", f("mtu", Status.FAIL))], default_registry)
        assert a.finding("mtu").caused_by_node == expected
