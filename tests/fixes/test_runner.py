"""FixRunner with the fake node/engine: the contract every fix follows.

Covers: plan contents (masquerade unit text, calico-mtu diff and fallback), precheck
nothing-to-do, apply + verify, verification failure -> exact rollback, two concurrent applies ->
one busy, a second apply changes nothing, masquerade verified for the next boot (unit enabled; rule
flushed then the unit started puts it back exactly once; otherwise rolled back, extra copies
removed), apply needs an Approval, audit events for every step,
host access: a plan (before approval) runs its commands outside a privileged session, an approved
apply and a rollback run every node command inside one,
and bad inputs (MTU 100000, CIDR with `; reboot`, interface with `&& reboot`, node `../etc`,
unknown fix) refused with one line and nothing run or patched.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

import pytest

from fixes.catalog.masquerade import UNIT_PATH
from fixes.model import Approval, Outcome
from fixes.runner import FixRunner
from probes.errors import InvalidInput
from probes.model import Status
from tests.fakes.engine import FakeEngine
from tests.fixes.fakenode import FakeNode, node_engine

MASQ = {"pod_cidr": "192.168.88.0/24", "interface": "wlp59s0"}
RULE = "POSTROUTING -s 192.168.88.0/24 -o wlp59s0 -j MASQUERADE"
APPROVAL = Approval(approver="alice@ops", approved_at=datetime(2026, 11, 26, tzinfo=UTC), requested_by="bob")


def setup(**node_kw: object) -> tuple[FakeNode, FakeEngine, FixRunner]:
    node = FakeNode(node="worker2", **node_kw)  # type: ignore[arg-type]
    engine = node_engine(node)
    return node, engine, FixRunner(engine)


async def test_masquerade_plan_shows_idempotent_unit_for_the_backend_in_use() -> None:
    node, _, runner = setup()
    plan = await runner.plan("worker2", "masquerade", MASQ)
    assert plan.params == MASQ and len(plan.summary) <= 300
    assert "nft" in plan.summary
    exec_start = ("ExecStart=/bin/sh -c '/usr/sbin/iptables-nft -t nat -C " + RULE
                  + " 2>/dev/null || /usr/sbin/iptables-nft -t nat -A " + RULE + "'")
    assert exec_start in plan.change
    assert "ExecStop=/bin/sh -c '/usr/sbin/iptables-nft -t nat -D " + RULE in plan.change
    assert "Type=oneshot" in plan.change and "RemainAfterExit=yes" in plan.change
    assert "systemctl enable --now netcheck-masquerade.service" in plan.change
    assert node.changes() == [], "planning must not change the node"


async def test_only_approved_steps_get_privileged_host_access() -> None:
    _, engine, runner = setup()
    await runner.plan("worker2", "masquerade", MASQ)
    assert engine.shells_used and {privileged for _, privileged in engine.shells_used} == {False}
    engine.shells_used.clear()
    result = await runner.apply("worker2", "masquerade", MASQ, APPROVAL)
    assert result.outcome == Outcome.APPLIED, result.message
    assert engine.shells_used and {privileged for _, privileged in engine.shells_used} == {True}
    engine.shells_used.clear()
    await runner.rollback("worker2", "masquerade", MASQ, result.before or {}, APPROVAL)
    assert engine.shells_used and {privileged for _, privileged in engine.shells_used} == {True}
    assert engine.privileged is False  # the session ended with the step


def audit_events(capsys: pytest.CaptureFixture[str]) -> list[dict]:
    """The JSON audit lines written to stderr (each line must parse on its own)."""
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    events = [json.loads(line) for line in lines]
    return [e for e in events if e.get("logger") == "netcheck.audit"]


async def test_apply_verifies_and_audits_every_step(capsys: pytest.CaptureFixture[str]) -> None:
    node, engine, runner = setup()
    capsys.readouterr()
    result = await runner.apply("worker2", "masquerade", MASQ, APPROVAL)
    events = audit_events(capsys)
    assert result.outcome == Outcome.APPLIED, result.message
    assert node.nat_rules == [RULE]
    assert UNIT_PATH in node.files and "netcheck-masquerade.service" in node.enabled
    assert {f.probe: f.status for f in result.verification} == {
        "masquerade": Status.OK, "pod-api": Status.OK, "return-path": Status.OK}
    steps = [e["step"] for e in events]
    assert steps == ["plan", "approval", "apply", "verify"]
    assert engine.refreshes == 2, "precheck and verify must judge fresh cluster facts"
    for event in events:
        assert event["who"] == "alice@ops" and event["node"] == "worker2" and event["fix"] == "masquerade"
        assert event["params"] == MASQ and "timestamp" in event and event["outcome"]
    assert events[2]["before"] == {"unit": None, "enabled": False, "rules": 0}
    assert events[2]["after"]["rules"] == 1


async def test_masquerade_verify_simulates_the_boot_start_of_the_unit() -> None:
    node, _, runner = setup()
    result = await runner.apply("worker2", "masquerade", MASQ, APPROVAL)
    assert result.outcome == Outcome.APPLIED, result.problems
    is_enabled = "systemctl is-enabled netcheck-masquerade.service"
    last_check = max(i for i, c in enumerate(node.ran) if c == is_enabled)
    boot = node.ran[last_check:]
    assert boot[1] == "systemctl stop netcheck-masquerade.service"
    assert boot[2].startswith("while /usr/sbin/iptables-nft -t nat -D POSTROUTING -s 192.168.88.0/24 ")
    assert "systemctl start netcheck-masquerade.service" in boot
    assert node.nat_rules == [RULE] and "netcheck-masquerade.service" in node.active


@pytest.mark.parametrize(("fault", "problem"), [
    ({"enable_fails": True}, "netcheck-masquerade.service is not enabled (disabled): nothing would add the "
                             "rule at boot"),
    ({"start_duplicates": True}, "starting netcheck-masquerade.service as at boot left the rule 2 times, "
                                 "expected exactly once"),
])
async def test_masquerade_that_would_not_survive_a_boot_is_rolled_back(fault: dict, problem: str) -> None:
    node, _, runner = setup(**fault)
    result = await runner.apply("worker2", "masquerade", MASQ, APPROVAL)
    assert result.outcome == Outcome.ROLLED_BACK
    assert problem in result.problems
    assert node.nat_rules == [] and UNIT_PATH not in node.files


async def test_precheck_ok_means_nothing_to_do_and_nothing_changed() -> None:
    node, _, runner = setup(nat_rules=[RULE])
    result = await runner.apply("worker2", "masquerade", MASQ, APPROVAL)
    assert result.outcome == Outcome.NOTHING_TO_DO
    assert "already ok" in result.message
    assert node.changes() == [] and node.nat_rules == [RULE] and UNIT_PATH not in node.files


async def test_second_apply_changes_nothing() -> None:
    node, engine, runner = setup()
    first = await runner.apply("worker2", "masquerade", MASQ, APPROVAL)
    assert first.outcome == Outcome.APPLIED
    files, changes = dict(node.files), len(node.changes())
    # Even with the probe still (wrongly) failing, the fix sees its change in place.
    engine.forced["masquerade"] = Status.FAIL
    second = await runner.apply("worker2", "masquerade", MASQ, APPROVAL)
    assert second.outcome == Outcome.NOTHING_TO_DO, second.message
    assert node.nat_rules == [RULE] and node.files == files and len(node.changes()) == changes


async def test_verification_failure_rolls_back_exactly(capsys: pytest.CaptureFixture[str]) -> None:
    node, engine, runner = setup()
    files_before, rules_before = dict(node.files), list(node.nat_rules)
    engine.forced["return-path"] = Status.FAIL
    capsys.readouterr()
    result = await runner.apply("worker2", "masquerade", MASQ, APPROVAL)
    events = audit_events(capsys)
    assert result.outcome == Outcome.ROLLED_BACK
    assert "return-path is fail" in result.message and "rolled back" in result.message
    assert node.files == files_before and node.nat_rules == rules_before and not node.enabled
    assert [e["step"] for e in events][-2:] == ["verify", "rollback"]
    assert events[-1]["outcome"] == "rolled-back"
    assert events[-1]["before"] == {"unit": None, "enabled": False, "rules": 0}
    assert events[-1]["after"] == {"unit": None, "rules": 0}


async def test_rollback_keeps_a_rule_that_was_there_before() -> None:
    node, engine, runner = setup(nat_rules=[RULE])
    engine.forced.update({"masquerade": Status.FAIL, "pod-api": Status.FAIL})
    result = await runner.apply("worker2", "masquerade", MASQ, APPROVAL)
    assert result.outcome == Outcome.ROLLED_BACK
    assert node.nat_rules == [RULE] and UNIT_PATH not in node.files


async def test_two_concurrent_applies_one_runs_one_is_busy() -> None:
    node, _, runner = setup()
    results = await asyncio.gather(
        runner.apply("worker2", "masquerade", MASQ, APPROVAL),
        runner.apply("worker2", "masquerade", MASQ, APPROVAL),
    )
    outcomes = sorted(r.outcome for r in results)
    assert outcomes == [Outcome.APPLIED, Outcome.BUSY]
    busy = next(r for r in results if r.outcome == Outcome.BUSY)
    assert "already being applied" in busy.message
    assert node.nat_rules == [RULE]


async def test_apply_requires_an_approval() -> None:
    node, _, runner = setup()
    with pytest.raises(TypeError):
        await runner.apply("worker2", "masquerade", MASQ, None)  # type: ignore[arg-type]
    assert node.ran == []


@pytest.mark.parametrize(
    ("node_name", "fix_id", "params", "error"),
    [
        ("worker2", "calico-mtu", {"mtu": 100000}, "invalid MTU '100000'"),
        ("worker2", "masquerade", {"pod_cidr": "10.0.0.0/8; reboot", "interface": "wlp59s0"}, "invalid CIDR"),
        ("worker2", "masquerade", {"pod_cidr": "10.0.0.0/8", "interface": "eth0 && reboot"},
         "invalid interface name"),
        ("../etc", "masquerade", MASQ, "invalid node name"),
        ("worker2", "no-such-fix", {}, "unknown fix"),
        ("worker2", "kernel-modules", {"module": "ipip; reboot"}, "module=ipip or module=vxlan"),
    ],
)
async def test_bad_input_is_refused_with_nothing_run(
    node_name: str, fix_id: str, params: dict[str, str | int], error: str
) -> None:
    node, engine, runner = setup()
    installation_before = json.dumps(engine.cluster.installation, sort_keys=True)
    result = await runner.apply(node_name, fix_id, params, APPROVAL)
    assert result.outcome == Outcome.REFUSED
    assert error in result.message and "\n" not in result.message
    assert node.ran == [], "no command may run for a refused input"
    assert engine.cluster.patches == [] and engine.checks == []
    assert json.dumps(engine.cluster.installation, sort_keys=True) == installation_before
    with pytest.raises(InvalidInput):
        await runner.plan(node_name, fix_id, params)
    assert node.ran == []


def test_audit_lines_survive_a_warning_log_level(capsys) -> None:
    """`netcheck fix` runs at --log-level warning by default; the audit trail must not be filtered."""
    import structlog

    from bot import logging as netcheck_logging
    from fixes.audit import audit

    netcheck_logging.configure(level="warning", json=True)
    try:
        audit("apply", who="alice@ops", node="worker2", fix="masquerade", params={"interface": "wlp59s0"},
              outcome="applied")
    finally:
        structlog.reset_defaults()
    line = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    assert (line["event"], line["who"], line["outcome"]) == ("fix.apply", "alice@ops", "applied")
