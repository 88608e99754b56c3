"""pod-block-routes probe: every other node's pod block routed directly (via the node or a tunnel) or
left to the default gateway → ok naming which, with typed observations per node; an unreachable or
blackhole route to a block → fail naming the node, the proof line and the clean-up; no other node
with a podCIDR → skip; the lookup command is one validated template: one `ip -batch` for every
address (real iproute2 output: routes, a typed `local` route, an error with its `Command failed -:N`
line), the per-address loop where `ip` has no -batch."""

from __future__ import annotations

from probes.catalog.pod_block_routes import classify, lookup_command, parse_answers, pod_block_routes
from probes.facts import NodeFacts
from probes.model import Status
from tests.fakes import FakeShell, out
from tests.probes.helpers import WORKER2, cluster_facts, context

DEFAULT = "default via 192.168.1.1 dev wlp59s0 proto static\n"


def node(answers: str) -> FakeShell:
    return (FakeShell().on(r"^ip -o route show default$", out(DEFAULT))
            .on(r"^if ip -force -batch ", out(answers)))


async def test_direct_and_default_routes_are_ok_with_observations() -> None:
    answers = ("192.168.86.1 192.168.86.1 via 192.168.1.10 dev wlp59s0 src 192.168.1.105 uid 0 \\    cache \n"
               "192.168.87.1 192.168.87.1 via 192.168.1.1 dev wlp59s0 src 192.168.1.105 uid 0 \\    cache \n")
    host = node(answers)
    result = await pod_block_routes(context(host))
    assert result.status is Status.OK
    assert result.summary == ("routes to all 2 other pod blocks: directly to master; via the default gateway "
                              "to worker1")
    assert result.observed.pod_block_routes == {"master": "direct", "worker1": "default"}
    assert host.ran[1] == ("if ip -force -batch /dev/null 2>/dev/null; then echo ip-batch; "
                           "printf 'route get %s\\n' 192.168.86.1 192.168.87.1 | ip -o -force -batch - 2>&1; "
                           "else for a in 192.168.86.1 192.168.87.1; do printf '%s ' \"$a\"; "
                           "ip -o route get \"$a\" 2>&1 | head -n 1; done; fi")


async def test_batch_answers_map_to_their_addresses() -> None:
    answers = ("ip-batch\n"
               "192.168.86.1 via 192.168.1.10 dev wlp59s0 src 192.168.1.105 uid 0 \\    cache \n"
               "RTNETLINK answers: Invalid argument\nCommand failed -:2\n")
    result = await pod_block_routes(context(node(answers)))
    assert result.status is Status.FAIL
    assert result.proof == "worker1 192.168.87.0/24: unreachable (RTNETLINK answers: Invalid argument)"
    assert result.observed.pod_block_routes == {"master": "direct", "worker1": "unreachable"}


def test_parse_answers_of_a_batch_and_of_the_loop() -> None:
    batch = ("ip-batch\n"
             "10.1.1.1 via 10.0.0.7 dev eth0 src 10.0.0.5 uid 0 \\    cache \n"
             "RTNETLINK answers: Invalid argument\nCommand failed -:2\n"
             "local 10.1.3.1 dev lo src 10.1.3.1 uid 0 \\    cache <local> \n")
    addresses = ["10.1.1.1", "10.1.2.1", "10.1.3.1", "10.1.4.1"]
    assert parse_answers(batch, addresses) == {
        "10.1.1.1": "10.1.1.1 via 10.0.0.7 dev eth0 src 10.0.0.5 uid 0 \\    cache",
        "10.1.2.1": "RTNETLINK answers: Invalid argument",
        "10.1.3.1": "local 10.1.3.1 dev lo src 10.1.3.1 uid 0 \\    cache <local>"}  # 10.1.4.1: no answer
    loop = "10.1.1.1 10.1.1.1 via 10.0.0.7 dev eth0\n10.1.2.1 RTNETLINK answers: No route to host\n"
    assert parse_answers(loop, addresses) == {"10.1.1.1": "10.1.1.1 via 10.0.0.7 dev eth0",
                                              "10.1.2.1": "RTNETLINK answers: No route to host"}


async def test_unreachable_block_fails_naming_the_node() -> None:
    answers = ("192.168.86.1 192.168.86.1 dev vxlan.calico src 192.168.88.0 uid 0 \\    cache \n"
               "192.168.87.1 RTNETLINK answers: No route to host\n")
    result = await pod_block_routes(context(node(answers)))
    assert result.status is Status.FAIL
    assert result.summary == "no route from worker2 to the pod block of worker1"
    assert result.proof == "worker1 192.168.87.0/24: unreachable (RTNETLINK answers: No route to host)"
    assert "sudo ip route del" in result.remediation
    assert result.observed.pod_block_routes == {"master": "direct", "worker1": "unreachable"}


async def test_no_other_pod_block_skips() -> None:
    lonely = cluster_facts(nodes=[WORKER2, NodeFacts(name="edge", ready=True)])
    result = await pod_block_routes(context(node(""), facts=lonely))
    assert result.status is Status.SKIP


def test_classify_and_command() -> None:
    assert classify("10.1.2.1 via 10.0.0.1 dev eth0 src 10.0.0.5", "10.0.0.1") == "default"
    assert classify("10.1.2.1 via 10.0.0.7 dev eth0 src 10.0.0.5", "10.0.0.1") == "direct"
    assert classify("blackhole 10.1.2.1", "10.0.0.1") == "unreachable"
    assert classify("local 10.1.2.1 dev lo table local src 10.1.2.1", None) == "local"
    assert "printf 'route get %s\\n' 10.1.2.1 | ip -o -force -batch -" in lookup_command(["10.1.2.1"])
