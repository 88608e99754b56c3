"""etc-hosts probe: every node name resolves → ok; missing names → fail listing exactly those names
with their InternalIPs, a `tee -a /etc/hosts` block with those lines only and the `etc-hosts` fix
(not offered when a missing node has no InternalIP); the lookup command
quotes each validated name (one getent for all, the per-name loop only when one is missing); no
nodes → skip. Output formats are real `getent ahosts | grep STREAM` output (one call; the loop)."""

from __future__ import annotations

from probes.catalog.etc_hosts import etc_hosts, lookup_command
from probes.facts import NodeFacts
from probes.model import FixProposal, Status
from tests.fakes import FakeShell, out
from tests.probes.helpers import cluster_facts, context

ALL = ("master: 192.168.1.10    STREAM master\nworker1: 192.168.1.20    STREAM worker1\n"
       "worker2: 192.168.1.105   STREAM worker2\n")
TWO_MISSING = ("master: 192.168.1.10    STREAM master\nworker1: MISSING\n"
               "worker2: 127.0.1.1       STREAM worker2\n")


def test_lookup_command_is_one_getent_then_one_per_name_when_one_is_missing() -> None:
    assert lookup_command(["master", "worker1"]) == (
        "if out=$(getent ahosts master worker1); then printf '%s\\n' \"$out\" | grep STREAM; "
        "echo 'ALL NAMES RESOLVE'; else for n in master worker1; do printf '%s: ' \"$n\"; "
        "getent ahosts \"$n\" | grep STREAM || echo MISSING; done; fi")


async def test_one_getent_resolving_every_name_is_ok() -> None:
    answer = ("192.168.1.10    STREAM master\n192.168.1.20    STREAM worker1\n"
              "192.168.1.105   STREAM worker2\nALL NAMES RESOLVE\n")
    result = await etc_hosts(context(FakeShell().on(r"getent ahosts", out(answer))))
    assert result.status is Status.OK and result.observed.unresolved_nodes == ()
    assert "192.168.1.20    STREAM worker1" in result.evidence


async def test_all_names_resolve_ok() -> None:
    result = await etc_hosts(context(FakeShell().on(r"getent ahosts", out(ALL))))
    assert result.status is Status.OK
    assert result.summary == "all 3 node names resolve on worker2"


async def test_missing_names_fail_with_exact_lines() -> None:
    result = await etc_hosts(context(FakeShell().on(r"getent ahosts", out(TWO_MISSING))))
    assert result.status is Status.FAIL
    assert result.summary == "1 node name(s) do not resolve on worker2: worker1 (192.168.1.20)"
    assert result.remediation == (
        "On worker2, add the missing nodes to /etc/hosts:\n"
        "sudo tee -a /etc/hosts << EOF\n192.168.1.20  worker1\nEOF\n"
        "sudo systemctl restart kubelet")
    assert result.fix == FixProposal(id="etc-hosts", params={})  # entries recomputed at plan time


async def test_missing_node_without_internal_ip_gets_no_fix() -> None:
    nodes = [NodeFacts(name="master", internal_ip="192.168.1.10"), NodeFacts(name="worker1"),
             NodeFacts(name="worker2", internal_ip="192.168.1.105")]
    result = await etc_hosts(context(FakeShell().on(r"getent ahosts", out(TWO_MISSING)),
                                 facts=cluster_facts(nodes=nodes)))
    assert result.status is Status.FAIL and "worker1 (no InternalIP)" in result.summary
    assert result.fix is None  # the fix could not write an entry without an address


async def test_no_nodes_skips() -> None:
    result = await etc_hosts(context(FakeShell(), facts=cluster_facts(nodes=[])))
    assert result.status is Status.SKIP
