"""The fixes against the lab (real SSH, real iptables in the node's namespace, the lab's systemctl
stand-in, the Kubernetes API stand-in), driven from the ops namespace.

Covers: on both layouts, the masquerade fix on the WiFi node with the case study on (the
`no-masquerade` fault: on the routed layout the router has also lost its route to the node's pod
block) makes masquerade, pod-api and return-path ok with exactly one rule and one unit; a second
apply changes nothing; rollback restores iptables-save and the unit directory exactly; the
calico-mtu fix from the mtu probe's proposal applies, is idempotent and rolls back exactly (on the
edge layout: no VXLAN device, pod MTU = link MTU); ip-forward also on the edge layout's wired
worker. On the default layout: `netcheck fix` refuses bad inputs (MTU 100000, CIDR
`10.0.0.0/8; reboot`, interface `eth0 && reboot`, node `../etc`) with exit 2 and nothing changed
(iptables-save, unit directory, Installation compared); ip-forward and etc-hosts on their lab
faults: probe ok after one apply, the second changes nothing, rollback restores the runtime value,
the files and the /etc/hosts inode; kernel-modules cannot load a module on
the lab (no tunnel device), so verification fails and the CLI rolls back (exit 1) leaving the
files as before.
"""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, datetime

import pytest

from lab.cluster import Lab
from tests.labfixtures import LAYOUT_FIXTURES

pytestmark = pytest.mark.lab

def masq_params(lab: Lab) -> dict[str, str]:
    node = lab.wifi_node
    return {"pod_cidr": node.pod_cidr, "interface": node.iface}


def masq_rule(lab: Lab) -> str:
    node = lab.wifi_node
    return f"-A POSTROUTING -s {node.pod_cidr} -o {node.iface} -j MASQUERADE"


def nat_rules(lab: Lab) -> list[str]:
    """The WiFi node's nat table chains and rules (counters dropped: traffic changes them, not fixes)."""
    saved = lab.node_exec(lab.wifi_node.name, "iptables-nft-save", "-t", "nat", check=True).stdout
    return [line.split(" [")[0] for line in saved.splitlines() if line.startswith((":", "-A"))]


def unit_dir(lab: Lab) -> str:
    """Every file under the WiFi node's /etc/systemd/system with its content, and its enabled state."""
    script = "cd /etc/systemd/system && find . | sort | while read f; do echo \"== $f\"; " \
             "[ -f \"$f\" ] && cat \"$f\"; done; systemctl is-enabled netcheck-masquerade.service"
    return lab.node_exec(lab.wifi_node.name, "sh", "-c", script).stdout


async def _with_engine(lab: Lab, use):  # noqa: ANN001, ANN202 - small test helper
    from bot import config as config_module
    from bot import wiring

    engine = wiring.build_engine(config_module.load(lab.config_file))
    try:
        return await use(engine)
    finally:
        await engine.aclose()


def in_ops(lab: Lab, use):  # noqa: ANN001, ANN202
    with lab.enter_ops():
        return asyncio.run(_with_engine(lab, use))


def netcheck_fix(lab: Lab, *argv: str):  # noqa: ANN202
    """The real `netcheck` entry point (bot/cli.py), run in the ops namespace with the lab's config."""
    return lab.run_ops([sys.executable, "-m", "bot.cli", "fix", *argv], timeout=120)


def test_masquerade_fix_applies_once_verifies_and_rolls_back_exactly(any_lab: Lab, case_study: str) -> None:
    from fixes.model import Approval, Outcome
    from fixes.runner import FixRunner

    lab, node, masq, rule = any_lab, any_lab.wifi_node.name, masq_params(any_lab), masq_rule(any_lab)
    rules_before, units_before = nat_rules(lab), unit_dir(lab)
    assert rule not in rules_before
    approval = Approval(approver="lab-test", approved_at=datetime.now(UTC), requested_by="lab-test")

    async def apply_twice_then_rollback(engine):  # noqa: ANN001, ANN202
        runner = FixRunner(engine)
        first = await runner.apply(node, "masquerade", masq, approval)
        after_first = (nat_rules(lab), unit_dir(lab))
        second = await runner.apply(node, "masquerade", masq, approval)
        after_second = (nat_rules(lab), unit_dir(lab))
        undone = await runner.rollback(node, "masquerade", masq, first.before or {}, approval)
        return first, after_first, second, after_second, undone

    first, (rules1, units1), second, (rules2, units2), undone = in_ops(lab, apply_twice_then_rollback)
    assert first.outcome == Outcome.APPLIED, first.message + " " + str(first.problems)
    assert {f.probe: f.status.value for f in first.verification} == {
        "masquerade": "ok", "pod-api": "ok", "return-path": "ok"}
    assert rules1.count(rule) == 1 and "ExecStart=/bin/sh -c" in units1 and units1.endswith("enabled\n")
    assert second.outcome == Outcome.NOTHING_TO_DO, second.message
    assert (rules2, units2) == (rules1, units1)
    assert undone.outcome == Outcome.ROLLED_BACK, undone.message
    assert nat_rules(lab) == rules_before
    assert unit_dir(lab) == units_before


@pytest.mark.parametrize(
    ("argv", "error"),
    [
        (("calico-mtu", "--param", "mtu=100000"), "invalid MTU"),
        (("masquerade", "--param", "pod_cidr=10.0.0.0/8; reboot", "--param", "interface={iface}"),
         "invalid CIDR"),
        (("masquerade", "--param", "pod_cidr=10.0.0.0/8", "--param", "interface=eth0 && reboot"),
         "invalid interface name"),
    ],
)
def test_bad_input_is_refused_and_nothing_changes(
    lab: Lab, case_study: str, argv: tuple[str, ...], error: str
) -> None:
    argv = tuple(arg.format(iface=lab.wifi_node.iface) for arg in argv)
    before = (nat_rules(lab), unit_dir(lab), in_ops(lab, lambda e: e.cluster.get_installation()))
    proc = netcheck_fix(lab, lab.wifi_node.name, *argv, "--yes")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    said = [line for line in proc.stderr.splitlines() if not line.startswith("{")]  # not log lines
    assert proc.stdout == "" and len(said) == 1 and error in said[0]  # the error: one line on stderr
    assert (nat_rules(lab), unit_dir(lab), in_ops(lab, lambda e: e.cluster.get_installation())) == before


def test_bad_node_name_is_refused(lab: Lab, case_study: str) -> None:
    before = (nat_rules(lab), unit_dir(lab))
    masq = masq_params(lab)
    proc = netcheck_fix(lab, "../etc", "masquerade", "--param", f"pod_cidr={masq['pod_cidr']}",
                        "--param", f"interface={masq['interface']}", "--yes")
    assert proc.returncode == 2 and "invalid node name" in proc.stderr, proc.stdout + proc.stderr
    assert (nat_rules(lab), unit_dir(lab)) == before


def test_kernel_module_verification_failure_rolls_back(lab: Lab, fault) -> None:
    """With the pool on IPIP the probe fails and proposes ipip; this kernel cannot load ipip, so the
    fix fails and is undone (the legitimate lab test of the rollback path)."""
    node = lab.wifi_node.name
    fault("pool-ipip")
    conf = "/etc/modules-load.d/netcheck-ipip.conf"
    listing = ["sh", "-c", "ls -la --time-style=+ /etc/modules-load.d; cat /etc/modules-load.d/*"]
    before = lab.node_exec(node, *listing).stdout
    proc = netcheck_fix(lab, node, "kernel-modules", "--param", "module=ipip", "--yes")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert "rolled-back:" in proc.stdout and "modprobe" in proc.stdout
    assert lab.node_exec(node, "test", "-e", conf).returncode == 1
    assert lab.node_exec(node, *listing).stdout == before


IP_FORWARD_STATE = "sysctl -n net.ipv4.ip_forward; ls -la --time-style=+ /etc/sysctl.d; cat /etc/sysctl.d/*"


@pytest.mark.parametrize(
    ("layout", "role", "fault_name", "fix_id", "state"),
    [
        ("default", "wifi_node", "ip-forward-off", "ip-forward", IP_FORWARD_STATE),
        ("default", "wifi_node", "hosts-missing", "etc-hosts", "cat /etc/hosts; stat -c %i /etc/hosts"),
        ("edge", "wired_worker", "ip-forward-off", "ip-forward", IP_FORWARD_STATE),
    ],
)
def test_node_fix_makes_its_probe_ok_once_and_rolls_back_exactly(
    request: pytest.FixtureRequest, layout: str, role: str, fault_name: str, fix_id: str, state: str
) -> None:
    from fixes.model import Approval, Outcome
    from fixes.runner import FixRunner

    lab: Lab = request.getfixturevalue(LAYOUT_FIXTURES[layout])
    node = getattr(lab, role).name
    was_on = node in lab.active_faults().get(fault_name, set())
    lab.fault(fault_name, node=node, on=True)
    request.addfinalizer(lambda: lab.fault(fault_name, node=node, on=was_on))
    read = ["sh", "-c", state]
    before = lab.node_exec(node, *read).stdout
    approval = Approval(approver="lab-test", approved_at=datetime.now(UTC), requested_by="lab-test")

    async def apply_twice_then_rollback(engine):  # noqa: ANN001, ANN202
        runner = FixRunner(engine)
        first = await runner.apply(node, fix_id, {}, approval)
        applied = lab.node_exec(node, *read).stdout
        second = await runner.apply(node, fix_id, {}, approval)
        again = lab.node_exec(node, *read).stdout
        undone = await runner.rollback(node, fix_id, {}, first.before or {}, approval)
        return first, applied, second, again, undone

    first, applied, second, again, undone = in_ops(lab, apply_twice_then_rollback)
    assert first.outcome == Outcome.APPLIED, f"{first.message} {first.problems}"
    assert [f.status.value for f in first.verification] == ["ok"]
    assert applied != before
    assert second.outcome == Outcome.NOTHING_TO_DO and again == applied
    assert undone.outcome == Outcome.ROLLED_BACK, undone.message
    assert lab.node_exec(node, *read).stdout == before


def test_calico_mtu_from_the_probe_proposal_and_exact_rollback(any_lab: Lab, fault) -> None:
    from fixes.model import Approval, Outcome
    from fixes.runner import FixRunner
    from fixes.settings import FixSettings

    lab, node = any_lab, any_lab.wifi_node.name
    fault("mtu")  # the WiFi node's LAN link is below the pod MTU plus overhead: the pod MTU must shrink
    approval = Approval(approver="lab-test", approved_at=datetime.now(UTC), requested_by="lab-test")

    async def flow(engine):  # noqa: ANN001, ANN202
        spec_before = (await engine.cluster.get_installation())["spec"]
        proposal = (await engine.check(node, probes=["mtu"])).finding("mtu").fix
        runner = FixRunner(engine, settings=FixSettings(rollout_timeout=60, rollout_poll_interval=0.2))
        too_big = await runner.apply(node, "calico-mtu", {"mtu": lab.layout.small_link_mtu + 1}, approval)
        spec_refused = (await engine.cluster.get_installation())["spec"]
        first = await runner.apply(node, "calico-mtu", dict(proposal.params), approval)
        spec_applied = (await engine.cluster.get_installation())["spec"]
        second = await runner.apply(node, "calico-mtu", dict(proposal.params), approval)
        params = dict(proposal.params)
        undone = await runner.rollback(node, "calico-mtu", params, first.before or {}, approval)
        spec_after = (await engine.cluster.get_installation())["spec"]
        return spec_before, proposal, too_big, spec_refused, first, spec_applied, second, undone, spec_after

    before, proposal, too_big, refused, first, applied, second, undone, after = in_ops(lab, flow)
    assert proposal is not None and proposal.id == "calico-mtu"
    assert proposal.params["mtu"] == lab.layout.small_link_mtu - lab.layout.overhead
    assert too_big.outcome == Outcome.REFUSED and "does not fit" in too_big.message and refused == before
    assert first.outcome == Outcome.APPLIED, f"{first.message} {first.problems}"
    assert "(verified)" in first.message  # after the stand-in's operator rolled calico-node
    assert applied["calicoNetwork"]["mtu"] == proposal.params["mtu"]
    assert second.outcome == Outcome.NOTHING_TO_DO
    assert undone.outcome == Outcome.ROLLED_BACK and after == before


def test_two_concurrent_masquerade_applies_one_runs(lab: Lab, case_study: str) -> None:
    from fixes.model import Approval, Outcome
    from fixes.runner import FixRunner

    node, masq = lab.wifi_node.name, masq_params(lab)
    rules_before, units_before = nat_rules(lab), unit_dir(lab)
    approval = Approval(approver="lab-test", approved_at=datetime.now(UTC), requested_by="lab-test")

    async def race(engine):  # noqa: ANN001, ANN202
        runner = FixRunner(engine)
        results = await asyncio.gather(runner.apply(node, "masquerade", masq, approval),
                                       runner.apply(node, "masquerade", masq, approval))
        rules = nat_rules(lab)
        applied = next(r for r in results if r.outcome == Outcome.APPLIED)
        undone = await runner.rollback(node, "masquerade", masq, applied.before or {}, approval)
        return sorted(r.outcome for r in results), rules, undone

    outcomes, rules, undone = in_ops(lab, race)
    assert outcomes == [Outcome.APPLIED, Outcome.BUSY]
    assert rules.count(masq_rule(lab)) == 1
    assert undone.outcome == Outcome.ROLLED_BACK
    assert (nat_rules(lab), unit_dir(lab)) == (rules_before, units_before)


def test_cli_refuses_without_terminal_then_applies_with_yes(lab: Lab, case_study: str) -> None:
    params = masq_params(lab)
    masq = ("masquerade", "--param", f"pod_cidr={params['pod_cidr']}", "--param",
            f"interface={params['interface']}")
    node, rule = lab.wifi_node.name, masq_rule(lab)
    before = (nat_rules(lab), unit_dir(lab))
    refused = netcheck_fix(lab, node, *masq)
    assert refused.returncode == 2 and "no terminal" in refused.stderr, refused.stdout + refused.stderr
    assert (nat_rules(lab), unit_dir(lab)) == before
    applied = netcheck_fix(lab, node, *masq, "--yes")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert "applied:" in applied.stdout and "return-path    ok" in applied.stdout
    assert nat_rules(lab).count(rule) == 1
    again = netcheck_fix(lab, node, *masq, "--yes")
    assert again.returncode == 0 and "nothing-to-do:" in again.stdout and nat_rules(lab).count(rule) == 1
