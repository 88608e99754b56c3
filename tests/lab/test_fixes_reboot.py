"""Node fixes survive a reboot, and their rollback leaves nothing a reboot could bring back.

In the lab (real iptables in the node's namespace, the systemctl stand-in, real sysctls), each fix is
applied through the real FixRunner over SSH, then `lab.boot.boot` simulates a reboot of the node
(units inactive, forwarding reset and re-applied from the node's own sysctl files, nat flushed and
the cluster's rules reloaded, enabled units started). Covers:
- masquerade on the node whose pod traffic leaves un-NATed: after the fix and a boot, the rule is
  there exactly once and the unit is enabled and active; after rollback and the same boot, no rule,
  no unit, no boot link;
- ip-forward with forwarding off and not persisted: after the fix and a boot ip_forward is 1; after
  rollback and a boot it is 0 and netcheck's drop-in is gone.
Names and addresses come from the lab object (the WiFi node), not literals.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from lab.boot import boot
from lab.cluster import Lab
from lab.spec import NodeSpec
from tests.lab.test_fixes import in_ops
from tests.labfixtures import MASQUERADE_UNIT, MASQUERADE_UNIT_PATH, remove_masquerade_unit

pytestmark = pytest.mark.lab

UNIT = MASQUERADE_UNIT
DROP_IN = "/etc/sysctl.d/99-netcheck-ip-forward.conf"


def wifi_node(lab: Lab) -> NodeSpec:
    return next(n for n in lab.nodes if n.wifi)


def masquerade_rules(lab: Lab, node: NodeSpec) -> int:
    wanted = f"-A POSTROUTING -s {node.pod_cidr} -o {node.iface} -j MASQUERADE"
    saved = lab.node_exec(node.name, "iptables-nft-save", "-t", "nat", check=True).stdout
    return sum(1 for line in saved.splitlines() if line.strip() == wanted)


def unit_state(lab: Lab, node: NodeSpec) -> tuple[str, str, bool]:
    enabled = lab.node_exec(node.name, "systemctl", "is-enabled", UNIT)
    active = lab.node_exec(node.name, "systemctl", "is-active", UNIT)
    exists = lab.node_exec(node.name, "test", "-e", MASQUERADE_UNIT_PATH).returncode == 0
    return enabled.stdout.strip(), active.stdout.strip(), exists


def ip_forward(lab: Lab, node: NodeSpec) -> str:
    return lab.node_exec(node.name, "sysctl", "-n", "net.ipv4.ip_forward", check=True).stdout.strip()


def approval():  # noqa: ANN201
    from fixes.model import Approval

    return Approval(approver="lab-test", approved_at=datetime.now(UTC), requested_by="lab-test")


@pytest.fixture
def no_masquerade(lab: Lab) -> Iterator[NodeSpec]:
    node = wifi_node(lab)
    remove_masquerade_unit(lab, node.name)
    lab.fault("no-masquerade", node=node.name, on=True)
    yield node
    remove_masquerade_unit(lab, node.name)
    boot(lab, node.name)  # back to the lab's own rules, whatever the test left
    lab.fault("no-masquerade", node=node.name, on=True)


def test_masquerade_survives_a_reboot_and_its_rollback_leaves_nothing(
    lab: Lab, no_masquerade: NodeSpec
) -> None:
    from fixes.model import Outcome
    from fixes.runner import FixRunner

    node = no_masquerade
    params = {"pod_cidr": node.pod_cidr, "interface": node.iface}

    async def apply(engine):  # noqa: ANN001, ANN202
        return await FixRunner(engine).apply(node.name, "masquerade", params, approval())

    applied = in_ops(lab, apply)
    assert applied.outcome == Outcome.APPLIED, f"{applied.message} {applied.problems}"
    steps = boot(lab, node.name)
    assert f"start {UNIT}: exit 0" in steps, steps
    assert masquerade_rules(lab, node) == 1
    assert unit_state(lab, node) == ("enabled", "active", True)
    boot(lab, node.name)  # a second boot still gives one rule, never two
    assert masquerade_rules(lab, node) == 1

    async def rollback(engine):  # noqa: ANN001, ANN202
        return await FixRunner(engine).rollback(node.name, "masquerade", params, applied.before or {},
                                                approval())

    undone = in_ops(lab, rollback)
    assert undone.outcome == Outcome.ROLLED_BACK, undone.message
    steps = boot(lab, node.name)
    assert not any(UNIT in step for step in steps), steps
    assert masquerade_rules(lab, node) == 0
    assert unit_state(lab, node)[2] is False
    wants = lab.node_exec(node.name, "ls", "/etc/systemd/system/multi-user.target.wants").stdout
    assert UNIT not in wants


def test_ip_forward_survives_a_reboot_and_its_rollback_leaves_nothing(lab: Lab, fault) -> None:
    from fixes.model import Outcome
    from fixes.runner import FixRunner

    node = wifi_node(lab)
    fault("ip-forward-unpersisted", node=node.name)  # only netcheck's drop-in can persist it
    fault("ip-forward-off", node=node.name)
    boot(lab, node.name)
    assert ip_forward(lab, node) == "0"  # the starting point: a reboot leaves forwarding off

    async def apply(engine):  # noqa: ANN001, ANN202
        return await FixRunner(engine).apply(node.name, "ip-forward", {}, approval())

    applied = in_ops(lab, apply)
    assert applied.outcome == Outcome.APPLIED, f"{applied.message} {applied.problems}"
    lab.node_exec(node.name, "sysctl", "-qw", "net.ipv4.ip_forward=0", check=True)  # lost at power-off
    steps = boot(lab, node.name)
    assert ip_forward(lab, node) == "1", steps

    async def rollback(engine):  # noqa: ANN001, ANN202
        return await FixRunner(engine).rollback(node.name, "ip-forward", {}, applied.before or {}, approval())

    undone = in_ops(lab, rollback)
    assert undone.outcome == Outcome.ROLLED_BACK, undone.message
    boot(lab, node.name)
    assert ip_forward(lab, node) == "0"
    assert lab.node_exec(node.name, "test", "-e", DROP_IN).returncode == 1
