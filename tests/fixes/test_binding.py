"""Fix parameters bound to the node and the cluster (fixes/binding.py), with the fake node/engine.

Covers: masquerade refuses at plan time, with one line and no command that changes anything, a
CIDR that is valid but not this node's (0.0.0.0/0, ::/0, a LAN range, another cluster's range),
IPv6/scoped/mapped forms, an interface that does not exist on the node or is the loopback, a
trailing newline; it accepts the node's pod block and a range inside an enabled IP pool; the
verify step counts the rule as iptables-save prints it (masked source, any option order) and
not a rule with extra matches or a negation.
"""

from __future__ import annotations

import pytest

from fixes.binding import parse_links
from fixes.catalog.masquerade import count_effective_rules, effective_rule
from fixes.runner import FixRunner
from probes.errors import InvalidInput
from probes.transports.commands import Arg
from tests.fixes.fakenode import POD_CIDRS, FakeNode, node_engine

NODE = "worker2"
IFACE = "wlp59s0"


def setup() -> tuple[FakeNode, FixRunner]:
    node = FakeNode(node=NODE)
    return node, FixRunner(node_engine(node))


@pytest.mark.parametrize(
    ("pod_cidr", "interface", "error"),
    [
        ("0.0.0.0/0", IFACE, "prefix-0"),
        ("::/0", IFACE, "prefix-0"),
        ("::ffff:10.2.3.0/120", IFACE, "IPv4-mapped"),
        ("fe80::%wlan0/64", IFACE, "no scope"),
        ("fd00:10:244::/64", IFACE, "IPv4 only"),
        ("10.0.0.0/8", IFACE, "not a pod block of worker2"),
        ("192.168.1.0/24", IFACE, "contains 192.168.1.105 (worker2)"),  # the LAN, inside the pool
        ("192.168.0.0/16", IFACE, "that is the host network"),  # the whole pool overlaps the LAN
        ("192.168.88.128/25", IFACE, None),  # inside the pool, no host in it
        (POD_CIDRS[NODE], "eth0", "does not exist on worker2"),
        (POD_CIDRS[NODE], "lo", "is the loopback"),
        (POD_CIDRS[NODE], "wlp59s0\n", "invalid interface name"),
        (POD_CIDRS[NODE] + "\n", IFACE, "invalid CIDR"),
    ],
)
async def test_masquerade_refuses_parameters_not_bound_to_the_node(
    pod_cidr: str, interface: str, error: str | None
) -> None:
    node, runner = setup()
    if error is None:
        # A range inside the cluster's pod pool, without a host address in it, is accepted.
        plan = await runner.plan(NODE, "masquerade", {"pod_cidr": pod_cidr, "interface": interface})
        assert plan.params["pod_cidr"] == pod_cidr
    else:
        with pytest.raises(InvalidInput) as err:
            await runner.plan(NODE, "masquerade", {"pod_cidr": pod_cidr, "interface": interface})
        assert error in str(err.value) and "\n" not in str(err.value)
    assert node.changes() == [], "refused or planned: nothing that changes the node ran"


async def test_masquerade_accepts_the_nodes_pod_block_and_lists_interfaces_on_refusal() -> None:
    node, runner = setup()
    plan = await runner.plan(NODE, "masquerade", {"pod_cidr": POD_CIDRS[NODE], "interface": IFACE})
    assert plan.params == {"pod_cidr": POD_CIDRS[NODE], "interface": IFACE}
    with pytest.raises(InvalidInput, match=r"\(it has: cali1234abcd, wlp59s0\)"):
        await runner.plan(NODE, "masquerade", {"pod_cidr": POD_CIDRS[NODE], "interface": "eth9"})


def test_parse_links_reads_names_mtus_and_loopback() -> None:
    output = ("1: lo: <LOOPBACK,UP> mtu 65536 qdisc noqueue state UNKNOWN\\    link/loopback 00:00\n"
              "7: cali0a1b@if3: <BROADCAST,UP> mtu 1450 qdisc noqueue\\    link/ether 02:00\n"
              "garbage line\n")
    assert parse_links(output) == {"lo": (65536, True), "cali0a1b": (1450, False)}


@pytest.mark.parametrize(
    ("line", "counted"),
    [
        ("-A POSTROUTING -s 192.168.88.0/24 -o wlp59s0 -j MASQUERADE", True),
        ("-A POSTROUTING -o wlp59s0 -s 192.168.88.0/24 -j MASQUERADE", True),
        ("-A POSTROUTING -s 192.168.88.5/24 -o wlp59s0 -j MASQUERADE", True),  # masked by the kernel
        ("-A POSTROUTING -o wlp59s0 -j MASQUERADE", False),  # 0.0.0.0/0: iptables-save omits -s
        ("-A POSTROUTING ! -s 192.168.88.0/24 -o wlp59s0 -j MASQUERADE", False),
        ("-A POSTROUTING -s 192.168.88.0/24 -o wlp59s0 -m comment --comment x -j MASQUERADE", False),
        ("-A POSTROUTING -s 192.168.88.0/24 -o wlp59s+ -j MASQUERADE", False),
        ("-A POSTROUTING -s 192.168.88.0/24 -o wlp59s0 -j SNAT --to-source 1.2.3.4", False),
        ("-A KUBE-POSTROUTING -s 192.168.88.0/24 -o wlp59s0 -j MASQUERADE", False),
        ("-A POSTROUTING -s '192.168.88.0/24 -o wlp59s0 -j MASQUERADE", False),
    ],
)
def test_verification_compares_the_effective_rule(line: str, counted: bool) -> None:
    saved = f"*nat\n:POSTROUTING ACCEPT [0:0]\n{line}\nCOMMIT\n"
    assert count_effective_rules(saved, Arg("192.168.88.0/24"), Arg("wlp59s0")) == int(counted)


def test_effective_rule_reads_a_missing_source_as_every_address() -> None:
    source, out = effective_rule("-A POSTROUTING -o wlp59s0 -j MASQUERADE")  # type: ignore[misc]
    assert (str(source), out) == ("0.0.0.0/0", "wlp59s0")
